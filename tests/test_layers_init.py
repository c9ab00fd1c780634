"""The initialisation that lets deep multi-tower networks train from scratch (docs/search-space.md,
"Initialisation"): every block starts as its shortcut, the ReLU-gated attention as the identity."""

from __future__ import annotations

import torch

from search_space.layers import FCAttention, XceptionBlock, batch_norm_of


def test_a_fresh_block_is_its_shortcut() -> None:
    x = torch.randn(4, 16, 8, 8)
    same_shape = XceptionBlock(16, 16, expansion=4, stride=1).train()
    torch.testing.assert_close(same_shape(x), torch.relu(x))
    downsampling = XceptionBlock(16, 32, expansion=4, stride=2).train()
    torch.testing.assert_close(downsampling(x), torch.relu(downsampling.shortcut(x)))


def test_a_fresh_block_still_learns_its_branch() -> None:
    block = XceptionBlock(16, 16, expansion=4, stride=1).train()
    block(torch.randn(4, 16, 8, 8)).square().mean().backward()
    scale = batch_norm_of(block.residual[-1]).weight.grad
    assert scale is not None and scale.abs().sum() > 0  # the zero scale moves at once


def test_a_fresh_relu_gate_passes_features_through() -> None:
    x = torch.randn(4, 16, 8, 8)
    for mode in ("train", "eval"):
        attention = FCAttention(16, hidden=32, gate="relu")
        attention.train(mode == "train")
        torch.testing.assert_close(attention(x), x)
    # The SE-style gate is left to its usual initialisation: it halves features on average.
    sigmoid = FCAttention(16, hidden=32, gate="sigmoid").eval()
    assert not torch.allclose(sigmoid(x), x)
