"""Heads: how a network turns the towers' features into logits. One builder per `head` gene."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from search_space.heads.aspp import ASPPHead
from search_space.heads.bisenet import BiSeNetHead
from search_space.heads.dfa import DFAHead
from search_space.heads.icnet import ICNetHead
from search_space.spec import ArchSpec

HEAD_BUILDERS: dict[str, Callable[[ArchSpec, int], nn.Module]] = {
    "dfa": DFAHead,
    "aspp": ASPPHead,
    "icnet": ICNetHead,
    "bisenet": BiSeNetHead,
}


def build_head(spec: ArchSpec, num_classes: int) -> nn.Module:
    return HEAD_BUILDERS[spec.head](spec, num_classes)
