"""Heads: how a network turns the towers' features into logits. One builder per `head` gene."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from search_space.heads.dfa import DFAHead
from search_space.spec import ArchSpec

HEAD_BUILDERS: dict[str, Callable[[ArchSpec, int], nn.Module]] = {
    "dfa": DFAHead,
}


def build_head(spec: ArchSpec, num_classes: int) -> nn.Module:
    return HEAD_BUILDERS[spec.head](spec, num_classes)
