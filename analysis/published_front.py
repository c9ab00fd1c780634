"""The published numbers that a study on Cityscapes can be compared with, and their fronts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.pareto import non_dominated
from search_space.published import PublishedResult, published_results


def comparable_published() -> tuple[PublishedResult, ...]:
    """Published Cityscapes rows with both a compute figure and an mIoU."""
    return tuple(
        row
        for row in published_results()
        if row.dataset == "cityscapes" and row.gmadds is not None and row.miou is not None
    )


def published_front(rows: Sequence[PublishedResult]) -> list[bool]:
    """For each published row: is it on the front (max mIoU, min GMAdds) of the rows of its own
    split? Val and test numbers are different measurements and never share a front."""
    flags = [False] * len(rows)
    for split in {row.split for row in rows}:
        indices = [i for i, row in enumerate(rows) if row.split == split]
        points = np.array([[rows[i].miou, rows[i].gmadds] for i in indices], dtype=float)
        for index, flag in zip(indices, non_dominated(points, [True, False]), strict=True):
            flags[index] = bool(flag)
    return flags
