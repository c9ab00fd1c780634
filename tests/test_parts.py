"""`network_parts` against what the deployed network really runs, traced with hooks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from search_space.deploy import deploy, fold_batchnorms
from search_space.model import build
from search_space.parts import PART_MODULES, network_parts
from search_space.registry import arch_names, get_arch
from search_space.space import load_space
from search_space.spec import ArchSpec
from workbench.conf import compose_option

# The module classes that are parts, by kind (glue operations are traced as functions).
MODULE_KINDS = {
    cls: kind
    for kind, cls in PART_MODULES.items()
    if kind not in {"resize", "concat", "add", "to_channels_last", "cascade_fusion"}
}
MODULE_KINDS[type(PART_MODULES["cascade_fusion"](
    coarse_channels=1, fine_channels=1, out_channels=1, dilation=1, num_classes=1
).unit)] = "cascade_fusion"  # fmt: skip
# By name: `x + y` reaches the mode as TensorBase.add.
GLUE_KINDS = {"interpolate": "resize", "cat": "concat", "add": "add", "to": "to_channels_last"}
Traced = Counter[tuple[str, tuple[tuple[int, ...], ...], int]]


def traced_parts(spec: ArchSpec) -> Traced:
    """(kind, input shapes, parameter count) of every part the deployed network calls."""
    torch.manual_seed(0)
    model = deploy(build(spec).eval())
    calls: Traced = Counter()
    depth = 0

    def shapes(tensors: Any) -> tuple[tuple[int, ...], ...]:
        flat = tensors if isinstance(tensors, list | tuple) else [tensors]
        return tuple(_shape(t) for t in flat if isinstance(t, torch.Tensor))

    def enter(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        nonlocal depth
        if depth == 0:
            params = sum(p.numel() for p in module.parameters())
            calls[(MODULE_KINDS[type(module)], shapes(inputs), params)] += 1
        depth += 1

    def leave(*_: Any) -> None:
        nonlocal depth
        depth -= 1

    class Glue(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kind = GLUE_KINDS.get(getattr(func, "__name__", ""))
            if depth == 0 and kind is not None:
                inputs = args[0] if kind == "concat" else args[:2]
                calls[(kind, shapes(inputs), 0)] += 1
            return func(*args, **(kwargs or {}))

    parts_of_model = [m for m in model.modules() if type(m) in MODULE_KINDS]
    hooks = [m.register_forward_pre_hook(enter) for m in parts_of_model]
    hooks += [m.register_forward_hook(leave) for m in parts_of_model]
    with Glue():
        model(torch.zeros(1, 3, *spec.input_size))
    for hook in hooks:
        hook.remove()
    return calls


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    # ASPP's pooled map reaches the concatenation expanded (stride 0): a 1x1 map broadcast.
    if tensor.stride()[-1] == 0:
        return (tensor.shape[1], 1, 1)
    return tuple(tensor.shape[1:])


def described(spec: ArchSpec) -> Traced:
    """The same triples from `network_parts`: each part's module built to count its weights."""
    counts: Traced = Counter()
    for part, times in network_parts(spec).items():
        module = part.module().eval()
        fold_batchnorms(module)  # as in the deployed network: a norm's 2C weights, a C bias
        params = sum(p.numel() for p in module.parameters())
        counts[(part.kind, part.inputs, params)] += times
    return counts


SAMPLED = 12


def sampled_specs(space: str, size: tuple[int, int]) -> list[ArchSpec]:
    loaded = load_space(compose_option("space", space)).with_fixed({"input_size": size})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    return [loaded.suggest(study.ask()) for _ in range(SAMPLED)]


@pytest.mark.parametrize("name", arch_names())
def test_every_registered_architecture_runs_exactly_its_parts(name: str) -> None:
    spec = get_arch(name).replace(input_size=(128, 192))
    assert described(spec) == traced_parts(spec)


def test_sampled_members_of_the_heads_space_run_exactly_their_parts() -> None:
    # 96x160: odd sizes deep in the towers (ceil rounding), and every head of the space.
    specs = sampled_specs("heads", (96, 160))
    assert {spec.head for spec in specs} == {"dfa", "aspp", "icnet", "bisenet"}
    for spec in specs:
        assert described(spec) == traced_parts(spec), spec
