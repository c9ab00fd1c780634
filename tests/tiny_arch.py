"""The smallest architecture worth timing or deploying in a test: one narrow, shallow tower."""

from __future__ import annotations

from search_space.spec import ArchSpec

TINY = ArchSpec(
    widths=(8, 16, 32),
    depths=(1, 1, 1),
    stem_channels=4,
    towers=1,
    fc_hidden=8,
    decoder_high_level=False,
    decoder_low_level=False,
    input_size=(32, 48),
)
