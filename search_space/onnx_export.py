"""A network as an ONNX file at a fixed input size, checked against the eager model it came from.

`export_onnx(model, input_size, path)` writes the file with torch's dynamo exporter (batch 1,
input `image`, output `logits`, opset `OPSET`), runs onnx's checker on it, runs it in
onnxruntime on a seeded random image and returns an `OnnxCheck`: how far its logits are from the
eager model's, against `ONNX_TOLERANCE`. `measure_onnx(path)` times the file in onnxruntime with
`search_space.latency`'s protocols, so its figure stands beside the eager and deployed ones.

onnx, onnxruntime and onnxscript (torch's exporter needs it) are optional: `pip install -e
'.[onnx]'`. They are imported when a function needs them, so `search_space` works without them.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from search_space.latency import FULL, LatencyResult, Protocol, time_calls

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
INSTALL_HINT = "pip install -e '.[onnx]'"
OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "logits"
# onnxruntime reorders the arithmetic (its own convolution kernels and fusions): on a CPU its
# fp32 logits stay within this fraction of the largest eager logit (measured: 2.3e-7 to 7.5e-7
# on every registered architecture with random batch-norm statistics at the tests' small inputs,
# onnxruntime 1.32; tested). The same bound, and margin, as deploy.FP32_TOLERANCE.
ONNX_TOLERANCE = 1e-4
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# Logs "torchvision is not installed. Skipping torchvision::nms" (and three more) per export.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


@dataclass(frozen=True)
class OnnxCheck:
    """An exported file and how closely onnxruntime reproduces the eager model's logits."""

    path: Path
    input_size: tuple[int, int]
    logits_shape: tuple[int, ...]
    max_abs_difference: float  # max |onnxruntime - eager| over the logits of one random image
    largest_logit: float  # max |eager|: fp32 rounding errors grow with the values computed
    tolerance: float = ONNX_TOLERANCE

    @property
    def relative_difference(self) -> float:
        """max |onnxruntime - eager| / max |eager|: the benchmark's Δ column."""
        if self.largest_logit == 0:  # logits all zero: only an exact copy is close
            return 0.0 if self.max_abs_difference == 0 else math.inf
        return self.max_abs_difference / self.largest_logit

    @property
    def passed(self) -> bool:
        # Relative to the largest logit, as deploy.FP32_TOLERANCE: an absolute bound would be
        # too loose for small logits and too tight for a trained model's large ones.
        return self.max_abs_difference <= self.tolerance * self.largest_logit

    def describe(self) -> str:
        height, width = self.input_size
        logits = "x".join(map(str, self.logits_shape))
        verdict = "" if self.passed else ": OVER the tolerance"
        return (
            f"ONNX: {self.path}, 1x3x{height}x{width} -> {logits} logits, largest logit "
            f"difference {self.max_abs_difference:.1e} (tolerance {self.tolerance:.0e} of the "
            f"largest logit, {self.largest_logit:.2f}){verdict}"
        )


def missing_packages() -> tuple[str, ...]:
    """The ONNX packages that are not installed; none when everything here works."""
    return tuple(name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None)


def runs_on(device: str | torch.device) -> bool:
    """Whether onnxruntime has a provider for `device` here (CUDA needs onnxruntime-gpu)."""
    provider = _PROVIDERS.get(torch.device(device).type)
    return provider in require_package("onnxruntime").get_available_providers()


def export_onnx(model: nn.Module, input_size: tuple[int, int], path: Path) -> OnnxCheck:
    """Write `model` (left untouched) to `path` as ONNX at batch 1 and `input_size`, and check it.

    `model` is a built network, not a `DeployedModel`: the file holds the graph, and
    onnxruntime makes its own fusions.

    The file is written under a temporary name and renamed once onnx's checker accepts it, so
    `path` never holds a partial or invalid file. An export whose logits are over the tolerance
    is kept and reported (`OnnxCheck.passed`), not raised: the caller decides.
    """
    for package in ONNX_PACKAGES:
        require_package(package)
    import onnx

    path = Path(path)
    # A CPU copy: onnxruntime's reference provider is the CPU one, and the eager logits are
    # compared on the same device, without TF32 or a GPU's kernel choices in the difference.
    network = copy.deepcopy(model).eval().cpu()
    height, width = input_size
    image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    # Eager first: a size the network refuses fails here, before the slow export.
    with torch.no_grad():
        eager = network(image).numpy()
    partial = _partial_file(path)
    try:
        with _quiet_exporter():
            torch.onnx.export(
                network,
                (image,),
                partial,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                # One self-contained file: these networks are a few MB, far from protobuf's
                # 2 GB limit, and a weights file beside it would name the temporary file.
                external_data=False,
                verbose=False,
            )
        onnx.checker.check_model(partial, full_check=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    (logits,) = onnxruntime_session(path).run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})
    if logits.shape != eager.shape:
        raise RuntimeError(
            f"{path}: onnxruntime's logits are {list(logits.shape)}, the eager model's "
            f"{list(eager.shape)}"
        )
    return OnnxCheck(
        path=path,
        input_size=(int(height), int(width)),
        logits_shape=tuple(logits.shape),
        max_abs_difference=float(np.abs(logits - eager).max()),
        largest_logit=float(np.abs(eager).max()),
    )


def onnxruntime_session(
    path: Path, threads: int | None = None, device: str | torch.device = "cpu"
) -> InferenceSession:
    """An onnxruntime session of the file at `path` on `device`, with `threads` intra-op
    threads (None: torch's current count, so that both run on the same cores)."""
    ort = require_package("onnxruntime")
    path, device = Path(path), torch.device(device)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}; write one with export_onnx")
    if not runs_on(device):
        raise ValueError(
            f"onnxruntime has no {device.type} provider here (available: "
            f"{ort.get_available_providers()}); CUDA needs onnxruntime-gpu"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads(threads)
    if device.type == "cpu":
        providers: list[str | tuple[str, dict[str, int]]] = [_PROVIDERS["cpu"]]
    else:
        # onnxruntime's usual fallback: a node the GPU provider lacks runs on the CPU.
        providers = [(_PROVIDERS["cuda"], {"device_id": device.index or 0}), _PROVIDERS["cpu"]]
    return ort.InferenceSession(str(path), options, providers=providers)


def measure_onnx(
    path: Path,
    *,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    protocol: Protocol = FULL,
) -> LatencyResult:
    """Latency of the ONNX file at `path` in onnxruntime, at the batch and size it was exported
    with, on a random image already on `device` (as `measure_module` times a model)."""
    ort = require_package("onnxruntime")
    device = torch.device(device)
    session = onnxruntime_session(path, threads, device)
    shape = session.get_inputs()[0].shape  # static: [batch, 3, height, width]
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).numpy()
    # Bound once, input and output on the device: each call times the network, no host copy.
    binding = session.io_binding()
    index = device.index or 0
    binding.bind_ortvalue_input(
        INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(image, device.type, index)
    )
    binding.bind_output(OUTPUT_NAME, device.type, index)
    # A run returns once its provider has finished, so the host clock times it on any device.
    samples = time_calls(lambda: session.run_with_iobinding(binding), torch.device("cpu"), protocol)
    batch, _, height, width = shape
    return LatencyResult.from_samples(
        samples,
        batch=batch,
        input_size=(height, width),
        device=str(device),
        dtype="fp32",
        threads=intra_op_threads(threads),
        path="onnxruntime",
    )


def require_package(package: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as error:
        needed = ", ".join(ONNX_PACKAGES)
        raise ImportError(
            f"{package} is not installed; ONNX export and timing need {needed}: {INSTALL_HINT}"
        ) from error


def intra_op_threads(threads: int | None) -> int:
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return torch.get_num_threads() if threads is None else threads


def _partial_file(path: Path) -> Path:
    """An empty file beside `path` to export into; a unique name, so exports never collide."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise OSError(f"cannot write the ONNX file {path}: {error}") from error
    os.close(handle)
    return Path(name)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx's known third-party noise, silenced for one export and restored after."""
    logger = logging.getLogger(_REGISTRATION_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch 2.13's exporter still builds the pytree LeafSpec that torch deprecates.
            warnings.filterwarnings(
                "ignore",
                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
            )
            yield
    finally:
        logger.setLevel(level)
