"""Measured latency of an architecture on the current device: the figure a deployment needs.

MAdds do not predict speed: depthwise convolutions, concatenations and resizes cost far more
time than their multiply-adds suggest, and differently on CPUs and GPUs. So latency is measured.

The protocol: warm-up calls (allocation, cuDNN's algorithm search, compilation), then timed
calls until the median has settled (the median of all calls and the median of their first half
agree within `tolerance`) or the time budget is spent, never fewer than `min_repeats`. A GPU call
is timed with CUDA events and synchronised before the next, so each figure is one image's (or
one batch's) latency, not a pipelined throughput. On a CPU the thread count is pinned for the
measurement and restored after: thread count changes latency several-fold, so it is part of
the result. CPU figures also depend on the allocator: call
`search_space.deploy.retain_freed_memory()` once per process first (the benchmark does), or
page faults on freshly mapped activations can double a median from one process to the next.

`measure_latency(spec, ...)` is what a study calls before training (`CHEAP` protocol);
`measure_module(model, ...)` times any built or deployed module;
`search_space.onnx_export.measure_onnx` times an exported ONNX file with the same protocol.

Latency on another device: `predict_latency(spec, table)` adds up the parts of `spec`
(`search_space.parts`) from a latency table measured once on that device
(`python -m search_space.latency_table`), with the table's correction for whole networks.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from search_space.deploy import DTYPES, DeployedModel, deploy
from search_space.latency_table.table import LatencyTable, size_text
from search_space.model import DEFAULT_NUM_CLASSES, build
from search_space.parts import network_parts
from search_space.spec import ArchSpec


@dataclass(frozen=True)
class Protocol:
    """How many calls to make; see the module's docstring for the stopping rule."""

    warmup: int = 5
    min_repeats: int = 10
    max_repeats: int = 200
    budget_s: float = 20.0
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        # Two calls at least: the spread needs two figures.
        if not 2 <= self.min_repeats <= self.max_repeats:
            raise ValueError(
                f"expected 2 <= min_repeats <= max_repeats, got {self.min_repeats}, "
                f"{self.max_repeats}"
            )
        if self.budget_s <= 0 or self.tolerance <= 0:
            raise ValueError("budget_s and tolerance must be positive")


FULL = Protocol()
# Before every trial of a study: a few seconds at most, a median good to ~5%.
CHEAP = Protocol(warmup=2, min_repeats=5, max_repeats=30, budget_s=3.0, tolerance=0.05)


@dataclass(frozen=True)
class LatencyResult:
    median_ms: float
    p10_ms: float  # the spread: 10th and 90th percentiles of the per-call times
    p90_ms: float
    repeats: int
    batch: int
    input_size: tuple[int, int]
    device: str
    dtype: str
    threads: int  # intra-op CPU threads during the measurement (torch's, or onnxruntime's)
    # "eager", the deployed model's steps (e.g. "folded+channels_last"), or "onnxruntime"
    path: str

    @classmethod
    def from_samples(
        cls,
        samples: list[float],
        *,
        batch: int,
        input_size: tuple[int, int],
        device: str,
        dtype: str,
        threads: int,
        path: str,
    ) -> LatencyResult:
        """The median and spread of `samples`, milliseconds per call from `time_calls`."""
        median_ms, p10_ms, p90_ms = median_and_spread(samples)
        return cls(
            median_ms=median_ms,
            p10_ms=p10_ms,
            p90_ms=p90_ms,
            repeats=len(samples),
            batch=batch,
            input_size=input_size,
            device=device,
            dtype=dtype,
            threads=threads,
            path=path,
        )

    @property
    def fps(self) -> float:
        """Images per second at this batch size."""
        return self.batch * 1e3 / self.median_ms

    @property
    def spread_ms(self) -> float:
        return self.p90_ms - self.p10_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a trial's user attributes or a table row."""
        return {**dataclasses.asdict(self), "input_size": list(self.input_size), "fps": self.fps}


def median_and_spread(samples: list[float]) -> tuple[float, float, float]:
    """The median, 10th and 90th percentiles of `time_calls`'s milliseconds per call."""
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), deciles[0], deciles[-1]


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op thread count set to `threads` (None: unchanged), restored on exit."""
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def time_calls(call: Callable[[], object], device: torch.device, protocol: Protocol) -> list[float]:
    """Milliseconds per call of `call()`, following `protocol` (warm-up calls excluded)."""
    timed = _cuda_timed if device.type == "cuda" else _host_timed
    for _ in range(protocol.warmup):
        timed(call)
    samples: list[float] = []
    deadline = time.perf_counter() + protocol.budget_s
    while len(samples) < protocol.max_repeats:
        samples.append(timed(call))
        if len(samples) >= protocol.min_repeats and (
            time.perf_counter() > deadline or _settled(samples, protocol.tolerance)
        ):
            break
    return samples


def _settled(samples: list[float], tolerance: float) -> bool:
    median = statistics.median(samples)
    first_half = statistics.median(samples[: len(samples) // 2])
    return abs(median - first_half) <= tolerance * median


def _host_timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1e3


def _cuda_timed(call: Callable[[], object]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def measure_module(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    batch: int = 1,
    dtype: str = "fp32",
    threads: int | None = None,
    protocol: Protocol = FULL,
) -> LatencyResult:
    """Latency of `model` on a random image batch, on the device its parameters are on.

    A plain model runs in eval mode (restored after) under `torch.no_grad`, with autocast when
    `dtype` is fp16/bf16: what an eager user writes. A `DeployedModel` brings its own inference
    mode and dtype; autocast around it changes nothing.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = next(model.parameters()).device
    # A generator of its own: measuring must not move the caller's (a seeded study's) RNG.
    image = torch.randn(batch, 3, *input_size, generator=torch.Generator().manual_seed(0))
    image = image.to(device)
    autocast = torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")
    was_training = model.training
    model.eval()

    def call() -> Tensor:
        with torch.no_grad(), autocast:
            return model(image)

    try:
        with pinned_threads(threads) as used_threads:
            samples = time_calls(call, device, protocol)
    finally:
        model.train(was_training)
    return LatencyResult.from_samples(
        samples,
        batch=batch,
        input_size=(int(input_size[0]), int(input_size[1])),
        device=str(device),
        dtype=dtype,
        threads=used_threads,
        path=model.path if isinstance(model, DeployedModel) else "eager",
    )


def measure_latency(
    spec: ArchSpec,
    *,
    device: str | torch.device = "cpu",
    batch: int = 1,
    dtype: str = "fp32",
    fast: bool = True,
    compile: bool = False,
    threads: int | None = None,
    num_classes: int = DEFAULT_NUM_CLASSES,
    protocol: Protocol = CHEAP,
) -> LatencyResult:
    """Latency of the architecture `spec` at its input size, with random weights.

    `fast`: time the deployed path (`search_space.deploy`), else the eager model. Weights do
    not change the time, so a study can call this before training. `compile` drops the
    process's earlier torch.compile caches: every architecture shares the model's code, and
    dynamo stops compiling it after 8 variants (silently running eager).
    """
    # Initialisation under a forked RNG, for the same reason as the image's generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build(spec, num_classes).eval().to(device)
    if fast:
        if compile:
            torch.compiler.reset()
        model = deploy(model, dtype=dtype, compile=compile)
    return measure_module(
        model,
        input_size=spec.input_size,
        batch=batch,
        dtype=dtype,
        threads=threads,
        protocol=protocol,
    )


def device_name(device: torch.device) -> str:
    """The GPU's or the CPU's model name: what a latency figure is read against."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


class MissingPartError(KeyError):
    """The table holds no time for a part the architecture runs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class PredictedLatency:
    """Milliseconds per call of `spec` on the table's device, and how the figure was made."""

    median_ms: float  # the corrected sum: the prediction
    parts_ms: float  # the plain sum of the parts' times
    part_calls: int
    weight_mb: float  # the weights the parts read (the correction's third term)
    input_size: tuple[int, int]
    table_digest: str
    device: str  # the table's `describe_device()`
    # The table's error on held-out networks at this input size (None: not measured)
    table_rmspe: float | None
    table_within_10: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, beside a measured `LatencyResult.to_dict()` in a trial."""
        return {**dataclasses.asdict(self), "input_size": list(self.input_size)}


def predict_latency(
    spec: ArchSpec, table: LatencyTable, *, table_file: str | Path = "the table"
) -> PredictedLatency:
    """Latency of `spec` on the table's device, without running it.

    A part of `spec` that the table does not hold (another space, input size or class count,
    or a table from before a change to the network's code) is a `MissingPartError` naming it.
    """
    size = (int(spec.input_size[0]), int(spec.input_size[1]))
    correction = table.corrections.get(size)
    if correction is None:
        raise MissingPartError(
            f"{table_file} was built for input sizes "
            f"{', '.join(map(size_text, table.input_sizes))}, not {size_text(size)}; "
            f"{_extend_hint(table, size)}"
        )
    parts = network_parts(spec, table.num_classes)
    missing = [part for part in parts if part not in table.entries]
    if missing:
        raise MissingPartError(
            f"{table_file} holds no time for {len(missing)} part(s) of this architecture, "
            f"first {missing[0].key}; {_extend_hint(table, size)}"
        )
    sums = table.sums(parts)
    validation = table.validation.get(size)
    return PredictedLatency(
        median_ms=correction.apply(sums),
        parts_ms=sums.parts_ms,
        part_calls=sums.part_calls,
        weight_mb=sums.weight_mb,
        input_size=size,
        table_digest=table.digest,
        device=table.describe_device(),
        table_rmspe=validation.rmspe if validation else None,
        table_within_10=validation.within_10 if validation else None,
    )


def _extend_hint(table: LatencyTable, size: tuple[int, int]) -> str:
    return (
        f"the table covers space '{table.space}' with {table.num_classes} classes. Measure one "
        f"that covers this architecture on the same device: `python -m search_space.latency_table "
        f"--space SPACE --input {size_text(size)} --threads {table.threads or 'N'} "
        f"--dtype {table.dtype} --out FILE`"
    )
