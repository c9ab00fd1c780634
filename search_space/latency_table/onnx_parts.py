"""Latency tables for a device that cannot run this stack: the parts as ONNX files, its times in.

`export_parts` writes every part of a space (and seeded whole networks for the correction) as
ONNX files, with a `manifest.json` that lists them; the device's own benchmark tool times each
file, and `import_times` turns its `file,median_ms` CSV into a `LatencyTable`.
`onnxruntime_table` does both on this machine, with onnxruntime (`time_manifest`) as the tool.

The files come from torch's TorchScript exporter (`dynamo=False`) followed by onnxscript's
optimizer, the pass the dynamo exporter ends with: node for node the dynamo exporter's graphs,
but for global pooling, one GlobalAveragePool where dynamo writes ReduceMean-Reshape-Gather
(compared on every kind of part; onnxruntime's outputs within 4e-7 of the largest eager one).
It takes ~0.015 s a part against ~0.5 s for torch.export on two cores: the heads space's 1,551
parts in ~25 s rather than ~13 min. torch deprecates that exporter; should it go, the dynamo
exporter (as `search_space.onnx_export` uses it) writes the same graphs, ~30 times slower.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from search_space.deploy import DTYPES
from search_space.latency import Protocol, device_name, median_and_spread, time_calls
from search_space.latency_table.build import (
    CALIBRATION_SEED,
    NETWORK_PROTOCOL,
    PART_PROTOCOL,
    VALIDATION_NETWORKS,
    coverage_text,
    fit_correction,
    seeded_deployed,
    software_versions,
    table_members,
    table_notes,
    validate,
    weight_count,
)
from search_space.latency_table.table import (
    BYTES_PER_WEIGHT,
    CalibrationNetwork,
    Entry,
    LatencyTable,
    PartsSum,
    size_text,
)
from search_space.model import build
from search_space.onnx_export import (
    INSTALL_HINT,
    ONNX_PACKAGES,
    OPSET,
    intra_op_threads,
    missing_packages,
    onnxruntime_session,
    require_package,
)
from search_space.parts import network_parts, part_from_key_fields, space_parts
from search_space.space import SearchSpace
from workbench.files import write_text
from workbench.progress import ProgressLine

MANIFEST_FORMAT = "dfanet-workbench ONNX parts, version 1"
MANIFEST_NAME = "manifest.json"
# ONNX's Conv has no bfloat16 (opset 18): a bf16 export fails onnx's checker.
ONNX_DTYPES = ("fp32", "fp16")
OUTPUT_NAME = "output"
TIME_COLUMNS = ("median_ms", "p10_ms", "p90_ms", "repeats")
MISSING_LISTED = 5  # files a "no time for" error names
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
IMPORT_COMMAND = (
    "python -m search_space.latency_table --import TIMES.csv --manifest DIR "
    "--device-name NAME --out FILE"
)


def export_parts(
    space: SearchSpace,
    input_sizes: Sequence[tuple[int, int]],
    out_dir: Path,
    *,
    batch: int,
    dtype: str,
    num_classes: int,
    calibration_networks: int,
    validation_networks: int = VALIDATION_NETWORKS,
    progress: Callable[[str], None] | None = print,
) -> Path:
    """Every part of `space` at each input size, and per size the seeded members build_table
    measures whole (calibration, then validation), as ONNX files under `out_dir` (which must be
    empty or new); returns the manifest."""
    _check_packages(ONNX_PACKAGES)
    if dtype not in ONNX_DTYPES:
        raise ValueError(f"ONNX export supports dtypes {list(ONNX_DTYPES)}, not {dtype!r}")
    out_dir = Path(out_dir)
    # Stale files of an earlier export would be timed by a tool that times the whole folder.
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty; export into a new or empty folder")
    spaces = {tuple(size): space.with_fixed({"input_size": size}) for size in input_sizes}
    parts = sorted(
        {part for pinned in spaces.values() for part in space_parts(pinned, num_classes)}
    )
    members = {
        size: table_members(
            space, size, calibration_networks + validation_networks, seed=CALIBRATION_SEED
        )
        for size in spaces
    }
    line = ProgressLine(
        "ONNX export", len(parts) + sum(map(len, members.values())), unit="files", write=progress
    )
    if progress is not None:
        progress(
            f"ONNX export: {len(parts)} distinct parts of space '{space.name}', then "
            f"{calibration_networks} + {validation_networks} whole networks per input size "
            f"(fit, then validation), into {out_dir}"
        )
    part_rows = []
    for index, part in enumerate(parts, 1):
        file = f"parts/part_{index:05d}.onnx"
        module = seeded_deployed(part.module, dtype=dtype)
        _export(
            module,
            part.example_inputs(batch=batch, dtype=DTYPES[dtype], device="cpu"),
            out_dir / file,
        )
        part_rows.append(
            {
                "file": file,
                "key": part.key,
                "kind": part.kind,
                "arguments": dict(part.arguments),
                "inputs": part.inputs,
                # What build.measure_part counts: the correction's term in weights needs it.
                "weights": weight_count(module),
            }
        )
        line.advance()
    network_rows = []
    for size, specs in members.items():
        for index, spec in enumerate(specs, 1):
            file = f"networks/network_{size_text(size)}_{index:03d}.onnx"
            # The values do not matter to a trace at fixed shapes; the shape and dtype do.
            image = torch.zeros(batch, 3, *size, dtype=DTYPES[dtype])
            _export(
                seeded_deployed(functools.partial(build, spec, num_classes), dtype=dtype),
                (image,),
                out_dir / file,
            )
            counts = network_parts(spec, num_classes)
            network_rows.append(
                {
                    "file": file,
                    "input_size": size,
                    "role": "calibration" if index <= calibration_networks else "validation",
                    "genes": spec.to_dict(),
                    "parts": {part.key: count for part, count in sorted(counts.items())},
                }
            )
            line.advance()
    line.finish()
    manifest = {
        "format": MANIFEST_FORMAT,
        "instructions": (
            "Time each file on the target device: inputs input0, input1, ... (batch x channels x "
            "height x width, the dtype below; the shapes of a part's 'inputs' without the "
            f"batch), one output '{OUTPUT_NAME}'. Write a CSV with the header file,median_ms "
            "(optional p10_ms, p90_ms, repeats) and one row per file, named as listed here, "
            f"then: {IMPORT_COMMAND}"
        ),
        "space": space.name,
        "input_sizes": list(spaces),
        "num_classes": num_classes,
        "batch": batch,
        "dtype": dtype,
        "opset": OPSET,
        "coverage": coverage_text(space.name, len(parts)),
        "software": {**software_versions(), **_versions(("onnx", "onnxscript"))},
        "parts": part_rows,
        "networks": network_rows,
    }
    path = out_dir / MANIFEST_NAME
    write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def import_times(manifest_dir: Path, times_file: Path, *, device_name: str) -> LatencyTable:
    """The table of an `export_parts` folder from a vendor tool's times of its files."""
    manifest_dir, times_file = Path(manifest_dir), Path(times_file)
    manifest = _read_manifest(manifest_dir)
    listed = [row["file"] for row in (*manifest["parts"], *manifest["networks"])]
    times = _read_times(times_file, set(listed), manifest_dir / MANIFEST_NAME)
    missing = [file for file in listed if file not in times]
    if missing:
        raise ValueError(
            f"{times_file} has no time for {len(missing)} file(s) of "
            f"{manifest_dir / MANIFEST_NAME}, first {', '.join(missing[:MISSING_LISTED])}"
        )
    entries = {}
    for row in manifest["parts"]:
        part = part_from_key_fields(row["kind"], row["arguments"], row["inputs"])
        if part.key != row["key"]:  # written by another version of search_space.parts
            raise ValueError(
                f"{manifest_dir / MANIFEST_NAME}: part {row['file']} reads back as {part.key}, "
                f"not {row['key']}; export the parts again with this code"
            )
        entries[part] = Entry(part, **times[row["file"]]._asdict(), weights=row["weights"])
    part_by_key = {part.key: part for part in entries}
    networks: dict[tuple[tuple[int, int], str], list[CalibrationNetwork]] = {}
    for row in manifest["networks"]:
        measured_ms = times[row["file"]].median_ms
        if measured_ms == 0:  # the correction is fitted on errors relative to it
            raise ValueError(
                f"{times_file}: the time of {row['file']} is 0; a whole network's must be > 0"
            )
        counts: dict[str, int] = row["parts"]
        unknown = sorted(set(counts) - set(part_by_key))
        if unknown:
            raise ValueError(
                f"{manifest_dir / MANIFEST_NAME}: network {row['file']} runs {len(unknown)} "
                f"part(s) the manifest does not list, first {unknown[0]}"
            )
        sums = PartsSum.of(
            Counter({part_by_key[key]: count for key, count in counts.items()}),
            entries,
            bytes_per_weight=BYTES_PER_WEIGHT[manifest["dtype"]],
        )
        networks.setdefault((tuple(row["input_size"]), row["role"]), []).append(
            CalibrationNetwork(row["genes"], measured_ms, sums)
        )
    sizes = tuple((int(height), int(width)) for height, width in manifest["input_sizes"])
    corrections = {size: fit_correction(networks.get((size, "calibration"), [])) for size in sizes}
    validation = {
        size: validate(corrections[size], networks[size, "validation"])
        for size in sizes
        if (size, "validation") in networks
    }
    return LatencyTable(
        device="imported",
        device_name=device_name,
        threads=None,
        dtype=manifest["dtype"],
        batch=manifest["batch"],
        path="onnx (imported times)",
        num_classes=manifest["num_classes"],
        space=manifest["space"],
        input_sizes=sizes,
        coverage=manifest["coverage"],
        software=manifest["software"],
        protocol={"imported": times_file.name},
        entries=entries,
        corrections=corrections,
        notes=table_notes(corrections, validation),
        validation=validation,
    )


def time_manifest(
    manifest_dir: Path,
    times_file: Path,
    *,
    threads: int | None,
    progress: Callable[[str], None] | None = print,
) -> None:
    """Time every file of an `export_parts` folder in onnxruntime on this CPU, with
    `threads` intra-op threads, and write the `file,median_ms,...` CSV `import_times` reads."""
    _check_packages(("onnxruntime",))
    manifest_dir = Path(manifest_dir)
    manifest = _read_manifest(manifest_dir)
    files = [
        *((row["file"], PART_PROTOCOL) for row in manifest["parts"]),
        *((row["file"], NETWORK_PROTOCOL) for row in manifest["networks"]),
    ]
    line = ProgressLine("onnxruntime", len(files), unit="files", write=progress)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("file", *TIME_COLUMNS))
    for file, protocol in files:
        samples = _time_file(manifest_dir / file, threads, protocol)
        times = median_and_spread(samples)
        writer.writerow((file, *(f"{value:.6f}" for value in times), len(samples)))
        line.advance()
    line.finish()
    write_text(Path(times_file), buffer.getvalue())


def onnxruntime_table(
    space: SearchSpace,
    input_sizes: Sequence[tuple[int, int]],
    *,
    threads: int | None,
    batch: int,
    dtype: str,
    num_classes: int,
    calibration_networks: int,
    validation_networks: int = VALIDATION_NETWORKS,
    progress: Callable[[str], None] | None = print,
) -> LatencyTable:
    """`export_parts`, `time_manifest` and `import_times` in a temporary folder: the table of
    `space` for onnxruntime on this CPU."""
    with tempfile.TemporaryDirectory(prefix="latency-table-onnx-") as folder:
        export, times_file = Path(folder) / "export", Path(folder) / "times.csv"
        export_parts(
            space, input_sizes, export, batch=batch, dtype=dtype, num_classes=num_classes,
            calibration_networks=calibration_networks, validation_networks=validation_networks,
            progress=progress,
        )  # fmt: skip
        time_manifest(export, times_file, threads=threads, progress=progress)
        table = import_times(export, times_file, device_name=device_name(torch.device("cpu")))
    # Measured here: the threads, runtime and protocol are known, unlike a vendor tool's.
    return dataclasses.replace(
        table,
        device="cpu",
        threads=intra_op_threads(threads),
        path="onnxruntime",
        software={**table.software, **_versions(("onnxruntime",))},
        protocol={
            "parts": dataclasses.asdict(PART_PROTOCOL),
            "networks": dataclasses.asdict(NETWORK_PROTOCOL),
        },
    )


def _check_packages(names: Iterable[str]) -> None:
    missing = [name for name in missing_packages() if name in names]
    if missing:
        raise ValueError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")


def _versions(packages: Iterable[str]) -> dict[str, str]:
    return {name: require_package(name).__version__ for name in packages}


def _export(module: nn.Module, inputs: tuple[Tensor, ...], path: Path) -> None:
    onnx = require_package("onnx")
    optimizer = require_package("onnxscript.optimizer")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter is deprecated as a whole (it says so at each call, and of its own
        # internals); the tracer notes that a shape test (resize_to's no-op check) is fixed at
        # the traced shapes, which is what a fixed-shape file wants.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            inputs,
            buffer,
            dynamo=False,
            input_names=[f"input{index}" for index in range(len(inputs))],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
        )
    # Folds the shape arithmetic the tracer leaves (a resize's Shape-Slice-Concat) into constants.
    model = optimizer.optimize(onnx.load_from_string(buffer.getvalue()))
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def _time_file(path: Path, threads: int | None, protocol: Protocol) -> list[float]:
    """Milliseconds per run of the file in onnxruntime, on seeded random inputs bound once (as
    onnx_export.measure_onnx binds its image: each run times the graph, not a copy)."""
    ort = require_package("onnxruntime")
    session = onnxruntime_session(path, threads)
    generator = np.random.default_rng(0)
    binding = session.io_binding()
    values = []  # an OrtValue borrows its array's memory: both must outlive the runs
    for argument in session.get_inputs():
        if argument.type not in _NUMPY_TYPES:
            raise ValueError(f"{path}: input {argument.name} is {argument.type}, not fp32/fp16")
        array = generator.standard_normal(argument.shape).astype(_NUMPY_TYPES[argument.type])
        values.append(ort.OrtValue.ortvalue_from_numpy(array))
        binding.bind_ortvalue_input(argument.name, values[-1])
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")
    return time_calls(lambda: session.run_with_iobinding(binding), torch.device("cpu"), protocol)


def _read_manifest(manifest_dir: Path) -> dict[str, Any]:
    path = manifest_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no such manifest; write one with `python -m search_space.latency_table "
            "--export DIR`"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a manifest (invalid JSON: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a manifest of this version ({MANIFEST_FORMAT!r})")
    return manifest


class _Times(NamedTuple):
    """One CSV row: an `Entry` less its part."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int


def _read_times(times_file: Path, listed: set[str], manifest: Path) -> dict[str, _Times]:
    """The CSV's rows by file; errors name the CSV's line."""
    try:
        text = times_file.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM
    except FileNotFoundError:
        raise FileNotFoundError(f"{times_file}: no such times file") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [name.strip() for name in reader.fieldnames or []]
    for required in ("file", "median_ms"):
        if required not in columns:
            raise ValueError(
                f"{times_file}: no column '{required}'; the header must hold file,median_ms "
                f"(optional p10_ms, p90_ms, repeats), got {','.join(columns) or 'nothing'}"
            )
    reader.fieldnames = columns
    times: dict[str, _Times] = {}
    lines: dict[str, int] = {}
    for row in reader:
        where = f"{times_file}, line {reader.line_num}"
        # Normalised, so that `./parts/x.onnx` or a Windows tool's `parts\x.onnx` match.
        file = PurePosixPath((row["file"] or "").strip().replace("\\", "/")).as_posix()
        if file not in listed:
            raise ValueError(f"{where}: {file!r} is not a file of {manifest}")
        if file in lines:
            raise ValueError(f"{where}: {file} is timed again (first on line {lines[file]})")
        median = _time(row, "median_ms", where, file)
        times[file] = _Times(
            median_ms=median,
            # A tool that reports only a median: no spread known, no call count (0).
            p10_ms=_time(row, "p10_ms", where, file, default=median),
            p90_ms=_time(row, "p90_ms", where, file, default=median),
            repeats=int(_time(row, "repeats", where, file, default=0)),
        )
        lines[file] = reader.line_num
    return times


def _time(
    row: dict[str, str | None], column: str, where: str, file: str, default: float | None = None
) -> float:
    text = (row.get(column) or "").strip()
    if not text and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where} ({file}): {column} {text!r} is not a number >= 0")
    return value
