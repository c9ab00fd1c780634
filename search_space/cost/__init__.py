"""The cost model: MAdds in the paper's convention, fvcore's default total, parameters.

MAdds (paper convention) are the multiply-adds of convolutions and fully connected layers at
batch 1, eval mode, at the architecture's input size. They are counted with fvcore's own conv
and linear formulas, applied by forward hooks to a copy of the network on the `meta` device:
no memory is allocated and no arithmetic runs, so screening an architecture by MAdds costs
milliseconds at any resolution (a traced count of a large network at 1024x2048 takes ~10 s on
two cores). Every conv and linear layer of the project is an `nn.Conv2d`/`nn.Linear` module,
which is what the hooks see; a test checks the figure against torch's FlopCounterMode and
fvcore's traced count on every registered architecture.

fvcore's default total also counts batch norm, bilinear upsampling and pooling, which papers do
not. It needs a real traced forward pass, so it is computed only when asked for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from math import prod

import torch
from torch import nn

from search_space.model import DEFAULT_NUM_CLASSES, build
from search_space.spec import ArchSpec


@dataclass(frozen=True)
class Cost:
    input_size: tuple[int, int]
    madds: int
    params: int
    fvcore_total: int | None = None

    @property
    def gmadds(self) -> float:
        return self.madds / 1e9


def count_madds(spec: ArchSpec, num_classes: int = DEFAULT_NUM_CLASSES) -> Cost:
    """MAdds and parameters, without running any arithmetic."""
    from fvcore.nn.jit_handles import conv_flop_count

    with torch.device("meta"):
        model = build(spec, num_classes).eval()
        image = torch.empty(1, 3, *spec.input_size)
    madds = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal madds
        if isinstance(module, nn.Conv2d):
            madds += int(
                conv_flop_count(
                    list(inputs[0].shape), list(module.weight.shape), list(output.shape)
                )
            )
        else:  # nn.Linear: every output element is one dot product of in_features terms
            madds += prod(output.shape) * module.in_features

    hooks = [
        module.register_forward_hook(count)
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model(image)
    for hook in hooks:
        hook.remove()
    params = sum(parameter.numel() for parameter in model.parameters())
    return Cost(input_size=tuple(spec.input_size), madds=madds, params=params)


def fvcore_default_total(spec: ArchSpec, num_classes: int = DEFAULT_NUM_CLASSES) -> int:
    """fvcore's default FLOP total (conv, linear, batch norm, upsampling, pooling), traced."""
    from fvcore.nn import FlopCountAnalysis

    model = build(spec, num_classes).eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, *spec.input_size))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about shape-dependent branches (exact-size resizing); harmless here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(analysis.total())


def count_cost(
    spec: ArchSpec, num_classes: int = DEFAULT_NUM_CLASSES, *, with_fvcore_total: bool = True
) -> Cost:
    cost = count_madds(spec, num_classes)
    if not with_fvcore_total:
        return cost
    return Cost(
        input_size=cost.input_size,
        madds=cost.madds,
        params=cost.params,
        fvcore_total=fvcore_default_total(spec, num_classes),
    )
