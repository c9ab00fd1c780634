"""The inference path a user deploys: `deploy(model)` -> a module that maps images to logits.

The deployed copy:

- runs in eval mode, with every batch norm that directly follows a convolution folded into that
  convolution's weights and bias (exact in real arithmetic: eval-mode batch norm is a per-channel
  affine map); a batch norm anywhere else is left in place and named in the fold report;
- keeps weights and activations channels-last, the layout oneDNN's fast depthwise kernels want;
- runs under `torch.inference_mode` (no autograd bookkeeping), optionally in fp16/bf16 weights;
- optionally goes through `torch.compile` with freezing (weights become constants, so the
  compiler may pre-pack them and fuse conv + ReLU and residual adds) and, on CUDA, CUDA graphs
  (one launch per forward pass instead of hundreds).

What each step buys is measured by `python -m experiments.benchmarks.inference_speed` (its table
is in RESULTS.md): on CPUs channels-last is most of the gain; on a GPU at batch 1 the eager and fast
paths are bound by kernel launches, and CUDA graphs are what count.

Compiling: dynamo compiles the model's shared `forward` once per architecture and gives up
after 8 in one process (then runs eager, with a warning); call `torch.compiler.reset()`
between architectures, as `measure_latency` and the benchmark do.

`FP32_TOLERANCE` states how far its fp32 logits may be from the eager model's.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import platform
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import fuse_conv_bn_eval

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
# Folding reorders the arithmetic (conv then scale, versus pre-scaled weights): on a CPU, fp32
# logits of the fast path stay within this fraction of the largest eager logit (measured: 2e-7
# to 1e-6 on every registered architecture with random batch-norm statistics; tested). CUDA
# convolutions run in TF32 by default, eager ones too: there the fast path was 2e-4 to 3e-4 from
# eager on an H200, fp16 5e-4 to 7e-4 (the benchmark's Δ column shows it on any device).
FP32_TOLERANCE = 1e-4
_FOLDABLE_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)  # SyncBatchNorm: models trained with DDP
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
# glibc's mallopt parameters (malloc.h) and the thresholds `retain_freed_memory` sets: a 1 GiB
# mmap threshold keeps even the 40 MB logits of a 512x1024 image on the heap; glibc builds that
# refuse it get 32 MiB, the ceiling of glibc's own dynamic threshold.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_RETAINED_BYTES = 1 << 30
_MMAP_FALLBACK = 32 << 20


@dataclass(frozen=True)
class FoldReport:
    folded: int
    left: tuple[str, ...]  # names (in the folded model) of the batch norms not folded


def fold_batchnorms(model: nn.Module) -> FoldReport:
    """Fold, in place, each batch norm that follows a `Conv2d` in an `nn.Sequential`.

    Inside a `Sequential` the convolution's output feeds nothing but the next module, so the
    pair can become one convolution; the batch norm's slot becomes an `nn.Identity`, which keeps
    every module's name (a deployed layer maps back to the trained one). The model must be in
    eval mode: a batch norm in training mode normalises by the batch, which no weight can fold.
    """
    if model.training:
        raise ValueError("fold_batchnorms needs a model in eval mode")
    folded = 0
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        pairs = itertools.pairwise(list(sequential.named_children()))  # a copy: slots change
        for (conv_name, conv), (norm_name, norm) in pairs:
            if _foldable(conv, norm):
                setattr(sequential, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(sequential, norm_name, nn.Identity())
                folded += 1
    left = tuple(name for name, m in model.named_modules() if isinstance(m, _BATCH_NORMS))
    return FoldReport(folded, left)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    # Without running statistics, eval-mode batch norm still uses the batch's: not foldable.
    # Exactly Conv2d: a subclass may compute something else (weight standardisation, say).
    return (
        type(conv) is nn.Conv2d
        and isinstance(norm, _FOLDABLE_NORMS)
        and norm.running_mean is not None
        and norm.num_features == conv.out_channels
    )


class DeployedModel(nn.Module):
    """`image -> logits`, like the eval-mode model; built by `deploy`."""

    def __init__(
        self,
        network: nn.Module,
        *,
        fold: FoldReport,
        channels_last: bool,
        dtype: str,
        compiled: bool,
        cuda_graphs: bool,
    ) -> None:
        super().__init__()
        self.network = network
        self.fold_report = fold
        self.dtype_name = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.cuda_graphs = cuda_graphs
        self.path = deployed_path(
            channels_last=channels_last, dtype=dtype, compiled=compiled, cuda_graphs=cuda_graphs
        )

    def forward(self, image: Tensor) -> Tensor:
        with torch.inference_mode():
            image = image.to(dtype=DTYPES[self.dtype_name], memory_format=self.memory_format)
            logits = self.network(image)
            # CUDA graph replays reuse their output buffer: a copy keeps the logits valid after
            # the next call, as an eager model's are.
            return logits.clone() if self.cuda_graphs else logits


def deployed_path(
    *, channels_last: bool, dtype: str, compiled: bool = False, cuda_graphs: bool = False
) -> str:
    """The name of a deployed path, its steps joined: `folded+channels_last+fp16`."""
    steps = {
        "channels_last": channels_last,
        dtype: dtype != "fp32",
        "compiled": compiled,
        "cuda_graphs": cuda_graphs,
    }
    return "+".join(["folded", *(step for step, on in steps.items() if on)])


def deploy(
    model: nn.Module,
    *,
    channels_last: bool = True,
    dtype: str = "fp32",
    compile: bool = False,
    cuda_graphs: bool | None = None,
) -> DeployedModel:
    """A fast inference copy of `model` (left untouched) on the device its parameters are on.

    `dtype` "fp16"/"bf16" casts the folded weights (folding happens in fp32 first, so the
    batch-norm scale is not rounded twice). `cuda_graphs` defaults to on when compiling a model
    on CUDA; it needs fixed input shapes, which a deployed segmenter has.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    network = copy.deepcopy(model).eval()
    report = fold_batchnorms(network)
    network = network.to(dtype=DTYPES[dtype])
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    on_cuda = any(p.is_cuda for p in network.parameters())
    use_graphs = compile and (on_cuda if cuda_graphs is None else cuda_graphs)
    if compile:
        # Freezing lets inductor treat the weights as constants (pre-packed oneDNN weights, conv
        # + ReLU fusion); dynamic=False: a deployed model sees one input size.
        options = {"freezing": True, "triton.cudagraphs": use_graphs}
        network = torch.compile(network, dynamic=False, options=options)
    return DeployedModel(
        network,
        fold=report,
        channels_last=channels_last,
        dtype=dtype,
        compiled=compile,
        cuda_graphs=use_graphs,
    )


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, process-wide; False where it can't.

    PyTorch takes CPU tensors straight from malloc. With glibc's adaptive defaults, the large
    activations of a forward pass are unmapped or trimmed off the heap when freed, and the next
    call page-faults them back in: tens of thousands of page faults per call on DFANet A, and a
    latency that settles at a different figure in every process (up to 2x apart). Fixed
    thresholds remove both (a preloaded jemalloc or tcmalloc does the same). The price: the
    process keeps its peak memory.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _RETAINED_BYTES)
        and (
            libc.mallopt(_M_MMAP_THRESHOLD, _RETAINED_BYTES)
            or libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_FALLBACK)
        )
    )
