"""Latency and throughput of the reference architectures: eager against the deployed path.

    python -m experiments.benchmarks.inference_speed [--arch NAME ...] [--input-size HxW]
        [--device auto|cpu|cuda] [--batch N] [--dtype fp32|fp16|bf16] [--compile true|false]
        [--threads N] [--protocol full|cheap] [--retain-memory true|false] [--onnx true|false]
        [--out DIR]

(or the same as `key=value`: `arch=dfanet_a input_size=512x1024`).

For each architecture: parameters, GMAdds (paper convention, batch 1), then the median latency,
its 10th-90th percentile spread and the FPS of the eager model and of `search_space.deploy`'s
fast path (and of the compiled fast path with compile=true), with the speed-up over eager; with
onnx=true (the default when onnx, onnxruntime and onnxscript are installed) the same for the
network exported by `search_space.onnx_export` and run in onnxruntime (fp32, batch 1: the file's
shape is fixed), after printing how far its logits are from eager's. Batch 1 always; `batch=N`
adds rows at batch N. The paper's FPS (DFANet A and B, Table 5) stands beside batch-1 rows whose
input size is the paper row's. The table is printed and saved as CSV
and Markdown under outputs/benchmarks/, named by device, input, dtype, batch and time. The
machine's load average before and after is recorded: on a busy CPU, multi-threaded latency can
be many times the quiet figure. On a glibc CPU machine the process first makes malloc keep freed
memory (`retain_freed_memory`; retain_memory=false leaves the default): otherwise page faults
make a CPU figure depend on the process's allocation history.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import os
import re
import sys
import tempfile
import time
from argparse import ArgumentTypeError
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from experiments.training.runtime import device_name, resolve_device
from search_space.cost import count_madds
from search_space.deploy import DTYPES, deploy, retain_freed_memory
from search_space.latency import CHEAP, FULL, LatencyResult, measure_module, pinned_threads
from search_space.model import build
from search_space.onnx_export import (
    INSTALL_HINT,
    export_onnx,
    measure_onnx,
    missing_packages,
    runs_on,
)
from search_space.published import PublishedResult, published_results
from search_space.registry import HEAD_COMPARISON, arch_names, get_arch, reference
from workbench.cli import CommandParser, boolean, positive_int, size

_PAPER_ARCHS = ("dfanet_a", "dfanet_b", "backbone_a", "backbone_b", "xception_a", "xception_b")
DEFAULT_ARCHS = tuple(dict.fromkeys((*_PAPER_ARCHS, *HEAD_COMPARISON)))
PROTOCOLS = {"full": FULL, "cheap": CHEAP}


@dataclass(frozen=True)
class BenchmarkConfig:
    archs: tuple[str, ...]
    input_size: tuple[int, int]
    device: str
    batch: int
    dtype: str
    compile: bool
    threads: int | None
    protocol: str
    retain_memory: bool
    onnx: bool | None  # None: when the ONNX packages are installed (`main` resolves it)
    out: Path


@dataclass(frozen=True)
class Row:
    arch: str
    batch: int
    params: int
    gmadds: float
    latency: dict[str, LatencyResult]  # by path: "eager", "fast", "compiled", "onnx"
    deviation: dict[str, float]  # by non-eager path: max |path - eager| / max |eager|
    paper: PublishedResult | None = None

    def speedup(self, path: str) -> float:
        return self.latency["eager"].median_ms / self.latency[path].median_ms


def parse_args(argv: Sequence[str]) -> BenchmarkConfig:
    """`--key value` or `key=value` (`workbench.cli`); `--arch` may repeat."""
    parser = CommandParser(
        prog="python -m experiments.benchmarks.inference_speed", description=__doc__
    )
    parser.add_argument("--arch", action="extend", type=arch_list, metavar="NAME[,NAME...]")
    parser.add_argument("--input-size", "--input", type=size, default=(512, 1024))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument("--compile", type=boolean, default=False)
    parser.add_argument("--threads", type=positive_int)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="full")
    parser.add_argument("--retain-memory", type=boolean, default=True)
    parser.add_argument("--onnx", type=boolean)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    return BenchmarkConfig(
        archs=tuple(args.arch or DEFAULT_ARCHS),
        **{key: value for key, value in vars(args).items() if key != "arch"},
    )


def arch_list(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in arch_names()]
    if unknown:
        raise ArgumentTypeError(f"unknown architecture {unknown[0]!r}; registered: {arch_names()}")
    return names


def paper_fps(name: str, input_size: tuple[int, int]) -> PublishedResult | None:
    """The published row with an FPS for this architecture at exactly this input size.

    The registry links DFANet A to Table 4's row (accuracy); the timed row of the same model is
    in Table 5, hence the search by model name.
    """
    models = {row.model for row in reference(name).paper_rows}
    for row in published_results():
        if (
            row.source.startswith("DFANet")
            and row.model in models
            and row.fps is not None
            and row.input_size == tuple(input_size)
        ):
            return row
    return None


def onnx_unavailable(requested: bool | None, device: torch.device) -> str | None:
    """Why there is no onnxruntime column (None: there is one); onnx=true that cannot be had
    is a ValueError, raised before any work."""
    if requested is False:
        return "onnx=false"
    missing = missing_packages()
    if missing:
        reason = f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    elif not runs_on(device):
        reason = f"onnxruntime has no {device.type} provider here (CUDA needs onnxruntime-gpu)"
    else:
        return None
    if requested:
        raise ValueError(f"onnx=true, but {reason}")
    return reason


def benchmark_arch(name: str, config: BenchmarkConfig, device: torch.device) -> list[Row]:
    # The ONNX file lives as long as its rows' measurements.
    with tempfile.TemporaryDirectory(prefix="latency-onnx-") as scratch:
        return _benchmark_arch(name, config, device, Path(scratch) / f"{name}.onnx")


def _benchmark_arch(
    name: str, config: BenchmarkConfig, device: torch.device, onnx_path: Path
) -> list[Row]:
    spec = get_arch(name).replace(input_size=config.input_size)
    cost = count_madds(spec)
    torch.manual_seed(0)
    model = build(spec).eval().to(device)
    paths: dict[str, nn.Module] = {"eager": model, "fast": deploy(model, dtype=config.dtype)}
    if config.compile:
        # Dynamo caches the (shared) model code per process and stops compiling after 8
        # variants, silently running eager: drop the previous architecture's compilations.
        torch.compiler.reset()
        paths["compiled"] = deploy(model, dtype=config.dtype, compile=True)
    paper = paper_fps(name, config.input_size)
    deviation = deviations(paths, config.input_size, config.dtype, device)
    if config.onnx:
        check = export_onnx(model, config.input_size, onnx_path)
        print(f"{name}: {check.describe()}", flush=True)
        deviation["onnx"] = check.relative_difference
    protocol = PROTOCOLS[config.protocol]
    rows = []
    for batch in sorted({1, config.batch}):
        latency = {
            path: measure_module(
                module,
                input_size=config.input_size,
                batch=batch,
                dtype=config.dtype,
                threads=config.threads,
                protocol=protocol,
            )
            for path, module in paths.items()
        }
        if config.onnx and batch == 1:
            latency["onnx"] = measure_onnx(
                onnx_path, threads=config.threads, device=device, protocol=protocol
            )
        rows.append(
            Row(
                arch=name,
                batch=batch,
                params=cost.params,
                gmadds=cost.gmadds,
                latency=latency,
                deviation=deviation,
                paper=paper if batch == 1 else None,  # the paper times single images
            )
        )
    return rows


def deviations(
    paths: dict[str, nn.Module], input_size: tuple[int, int], dtype: str, device: torch.device
) -> dict[str, float]:
    """How far each fast path's logits are from eager's, on one random image, on this device.

    The tests check fp32 on a CPU; this shows it wherever the benchmark runs (TF32 convolutions
    on CUDA, half precision).
    """
    image = torch.randn(1, 3, *input_size, device=device)
    with torch.no_grad(), torch.autocast(device.type, DTYPES[dtype], enabled=dtype != "fp32"):
        logits = {path: module(image).float() for path, module in paths.items()}
    eager = logits.pop("eager")
    scale = eager.abs().max()
    return {path: float((other - eager).abs().max() / scale) for path, other in logits.items()}


def progress_line(row: Row) -> str:
    eager = row.latency["eager"]
    parts = [f"{row.arch} batch {row.batch}: eager {eager.median_ms:.1f} ms"]
    parts += [
        f"{path} {result.median_ms:.1f} ms (x{row.speedup(path):.2f})"
        for path, result in row.latency.items()
        if path != "eager"
    ]
    return ", ".join(parts)


def csv_record(row: Row) -> dict[str, object]:
    record: dict[str, object] = {
        "arch": row.arch,
        "batch": row.batch,
        "params": row.params,
        "gmadds": round(row.gmadds, 4),
    }
    for path, result in row.latency.items():
        record |= {
            f"{path}_path": result.path,
            f"{path}_median_ms": round(result.median_ms, 3),
            f"{path}_p10_ms": round(result.p10_ms, 3),
            f"{path}_p90_ms": round(result.p90_ms, 3),
            f"{path}_repeats": result.repeats,
            f"{path}_fps": round(result.fps, 2),
            f"{path}_speedup": round(row.speedup(path), 3),
        }
        if path in row.deviation:
            record[f"{path}_max_rel_diff"] = f"{row.deviation[path]:.2e}"
    record |= {
        "paper_fps": row.paper.fps if row.paper else None,
        "paper_gpu": row.paper.gpu if row.paper else None,
    }
    return record


def markdown_table(rows: Sequence[Row]) -> str:
    paths = list(dict.fromkeys(path for row in rows for path in row.latency))
    header = ["arch", "batch", "params M", "GMAdds"]
    for path in paths:
        header += [f"{path} ms (p10-p90)", f"{path} FPS"]
        header += [] if path == "eager" else [f"{path}/eager", f"{path} Δ"]
    header.append("paper FPS")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.arch, str(row.batch), f"{row.params / 1e6:.2f}", f"{row.gmadds:.2f}"]
        for path in paths:
            result = row.latency.get(path)
            if result is None:  # onnx at batch > 1: the file's batch is fixed at 1
                cells += ["n/a", "n/a", "n/a", f"{row.deviation[path]:.0e}"]
                continue
            cells += [
                f"{result.median_ms:.1f} ({result.p10_ms:.1f}-{result.p90_ms:.1f})",
                f"{result.fps:.1f}",
            ]
            if path != "eager":
                cells += [f"{row.speedup(path):.2f}x", f"{row.deviation[path]:.0e}"]
        cells.append(f"{row.paper.fps:g} ({row.paper.gpu})" if row.paper else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load() -> str:
    return (
        " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    )


def report(rows: Sequence[Row], config: BenchmarkConfig, context: dict[str, str]) -> str:
    height, width = config.input_size
    facts = "\n".join(f"- {key}: {value}" for key, value in context.items())
    return (
        f"# Latency at {height}x{width}, {config.dtype}\n\n{facts}\n\n{markdown_table(rows)}\n\n"
        "Median over timed calls after warm-up; p10-p90 is the spread. FPS = batch / median. "
        "x/eager: eager median over that path's median; x Δ: max |x - eager| / max |eager| of "
        "the logits of one random image. fast = BN folded into convs, channels-last, inference "
        "mode (search_space.deploy); compiled = fast + torch.compile with freezing (+ CUDA "
        "graphs on CUDA); onnx = the fp32 network exported to ONNX (search_space.onnx_export) "
        "and run in onnxruntime, batch 1 only, its Δ from the fp32 eager model on the CPU. "
        "Paper FPS: DFANet Table 5, batch 1, at this input size only.\n"
    )


def write_outputs(rows: Sequence[Row], markdown: str, out: Path, stem: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    records = [csv_record(row) for row in rows]
    # Every row's columns: a batch-N row has no onnx ones (left empty).
    columns = list(dict.fromkeys(column for record in records for column in record))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    md_path.write_text(markdown)
    return csv_path, md_path


def run(
    config: BenchmarkConfig, device: torch.device, command: str
) -> tuple[list[Row], Path, Path]:
    if device.type == "cuda":
        # One input size throughout: let cuDNN pick its fastest algorithms, for both paths.
        torch.backends.cudnn.benchmark = True
    retained = config.retain_memory and retain_freed_memory()
    load_before = _load()
    rows: list[Row] = []
    with pinned_threads(config.threads):  # the checks and builds too, not only the timed calls
        for name in config.archs:
            for row in benchmark_arch(name, config, device):
                print(progress_line(row), flush=True)
                rows.append(row)
    onnxruntime = importlib.import_module("onnxruntime").__version__ if config.onnx else "not run"
    name = device_name(device)
    where = f"{device.type}{rows[0].latency['eager'].threads}t" if device.type == "cpu" else "cuda"
    context = {
        "command": command,
        "device": f"{where} ({name})",
        "torch": torch.__version__,
        "protocol": f"{config.protocol}: {PROTOCOLS[config.protocol]}",
        "malloc": "freed memory retained" if retained else "default",
        "onnxruntime": onnxruntime,
        "load average (1, 5, 15 min) before / after": f"{load_before} / {_load()}",
    }
    markdown = report(rows, config, context)
    stem = "_".join(
        (
            f"{where}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}",
            "x".join(map(str, config.input_size)),
            config.dtype,
            f"b{config.batch}",
            time.strftime("%Y%m%d-%H%M%S"),
        )
    )
    csv_path, md_path = write_outputs(rows, markdown, config.out, stem)
    print(markdown)
    return rows, csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    config = parse_args(argv)
    try:
        device = resolve_device(config.device)
        no_onnx = onnx_unavailable(config.onnx, device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if no_onnx and config.onnx is None:
        print(f"note: no onnxruntime column: {no_onnx}")
    config = dataclasses.replace(config, onnx=no_onnx is None)
    command = " ".join(["python -m experiments.benchmarks.inference_speed", *argv])
    _, csv_path, md_path = run(config, device, command)
    print(f"saved {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
