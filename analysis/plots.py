"""The figures. Each builder returns a matplotlib `Figure` made without pyplot (no global state,
no GUI backend: saving renders with Agg), and `save_figure` writes it as PNG and SVG.

Conventions shared by every figure: one marker and colour per head; this study's trials are
filled markers; published numbers are hollow, grey or black, and say "published" with their
split and input size, so the two are never confused.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullLocator
from matplotlib.transforms import Bbox

from analysis.costs import LATENCY_COST, MADDS_COST, Cost, latency_details, latency_label
from analysis.hypervolume import ReferencePoint
from analysis.importance import Importance
from analysis.load import HEAD, Objective, finished
from analysis.pareto import non_dominated
from analysis.published_front import published_front
from analysis.rungs import RESULTS, lineages, rung_steps, top_rung
from analysis.stats import madds_latency_agreement
from search_space.published import PublishedResult
from workbench.files import write_atomically
from workbench.record import (
    GMADDS,
    LATENCY,
    MIOU,
    TrialKey,
    TrialStatus,
)

HEAD_STYLES: dict[str, tuple[str, str]] = {
    "dfa": ("o", "tab:blue"),
    "aspp": ("s", "tab:orange"),
    "icnet": ("^", "tab:green"),
    "bisenet": ("D", "tab:red"),
}
UNKNOWN_HEAD_STYLE = ("P", "tab:purple")
# Published numbers: hollow and grey or black, never a head's colour.
PUBLISHED_STYLES: dict[str, tuple[str, str]] = {"test": ("*", "black"), "val": ("v", "dimgray")}
FADED = 0.25
GMADDS_LABEL = "GMAdds (conv + linear multiply-adds, log scale)"
MAX_IMPORTANCE_BARS = 12
TITLE_WIDTH = 80  # characters of a wrapped title line at 10 points on a 7-inch figure


def save_figure(figure: Figure, out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    write_atomically(png, lambda temporary: figure.savefig(temporary, dpi=150))
    # No date and fixed element ids: rebuilding a report from the same study gives the same SVG.
    with matplotlib.rc_context({"svg.hashsalt": "analysis"}):
        write_atomically(svg, lambda temporary: figure.savefig(temporary, metadata={"Date": None}))
    return png, svg


def front_figure(
    df: pd.DataFrame,
    *,
    title: str,
    miou_label: str,
    cost: Cost = MADDS_COST,
    budget: float | None = None,
    published: Sequence[PublishedResult] = (),
) -> Figure:
    """mIoU against `cost`: every head its marker, dominated trials faded, the front (of these
    two objectives, whatever else the study optimised) as a step line, paper designs named,
    over-budget trials as ticks on the axis (their mIoU was never measured), `budget` (of
    `cost`) as a dashed line."""
    figure, ax = _figure(8.0, 5.5)
    trials = finished(df).dropna(subset=[MIOU, cost.column])
    on_front = non_dominated(trials[[MIOU, cost.column]].to_numpy(), [True, False])
    handles = _draw_heads(ax, trials, on_front, cost)
    front = trials[on_front].sort_values(cost.column)
    (step,) = ax.step(
        front[cost.column],
        front[MIOU],
        where="post",
        color="black",
        lw=1.2,
        zorder=2,
        label=f"Pareto front ({len(front)} trials)",
    )
    handles.append(step)
    labels = _reference_labels(trials, cost)
    infeasible = df[df["status"] == TrialStatus.INFEASIBLE][cost.column].dropna()
    if len(infeasible):
        (ticks,) = ax.plot(
            infeasible,
            np.full(len(infeasible), 0.0),
            "|",
            color="tab:red",
            ms=12,
            mew=1.5,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label=f"over budget, not trained ({len(infeasible)})",
        )
        handles.append(ticks)
    if budget is not None:
        label = f"budget {cost.budget_text(budget)}"
        handles.append(ax.axvline(budget, ls="--", color="gray", label=label))
    if published:
        published_handles, published_labels = _draw_published(ax, published)
        handles += published_handles
        labels += published_labels
    _decorate_miou_vs_cost(ax, df, cost, title=title, miou_label=miou_label, handles=handles)
    _place_labels(figure, ax, labels)
    return figure


def head_fronts_figure(
    df: pd.DataFrame, *, title: str, miou_label: str, cost: Cost = MADDS_COST
) -> Figure:
    """One front per head at equal `cost`: DFA against the comparison heads."""
    figure, ax = _figure(8.0, 5.5)
    trials = finished(df).dropna(subset=[MIOU, cost.column, HEAD])
    handles = []
    for head, group in _by_head(trials):
        marker, colour = _head_style(head)
        ax.scatter(group[cost.column], group[MIOU], marker=marker, color=colour, alpha=FADED, s=20)
        front = group[non_dominated(group[[MIOU, cost.column]].to_numpy(), [True, False])]
        front = front.sort_values(cost.column)
        (line,) = ax.step(
            front[cost.column],
            front[MIOU],
            where="post",
            color=colour,
            marker=marker,
            lw=1.5,
            label=f"{head} ({len(group)} trials, {len(front)} on its front)",
        )
        handles.append(line)
    _decorate_miou_vs_cost(ax, df, cost, title=title, miou_label=miou_label, handles=handles)
    return figure


def rung_curves_figure(df: pd.DataFrame, *, title: str, miou_label: str) -> Figure:
    """mIoU by training steps under a multi-fidelity schedule: one line per architecture through
    the rungs it completed, coloured by head; the architectures at the top rung (the front's
    candidates) solid, the ones stopped below it faded."""
    figure, ax = _figure(8.0, 5.0)
    table = lineages(df)
    top = top_rung(df)
    handles: list[Line2D] = []
    for head, group in _by_head(table):
        marker, colour = _head_style(head)
        for _, lineage in group.iterrows():
            _, steps, miou = zip(*lineage[RESULTS], strict=True)
            reached = lineage["status"] == TrialStatus.FINISHED
            ax.plot(
                steps,
                miou,
                marker=marker,
                color=colour,
                alpha=1.0 if reached else FADED,
                lw=1.4 if reached else 1.0,
                ms=6 if reached else 4,
                zorder=3 if reached else 2,
            )
        handles.append(Line2D([], [], marker=marker, color=colour, label=f"{head} ({len(group)})"))
    at_top = int((table["status"] == TrialStatus.FINISHED).sum())
    handles += [
        Line2D([], [], color="black", label=f"reached the top rung, rung {top} ({at_top})"),
        Line2D([], [], color="black", alpha=FADED, label=f"stopped ({len(table) - at_top})"),
    ]
    # The rungs' steps are the only places a point can be: they are the ticks.
    ticks = list(rung_steps(df).values())
    ax.set_xscale("log")
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training steps (the schedule's rungs, log scale)")
    ax.set_ylabel(miou_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="best")
    return figure


def hypervolume_figure(
    history: pd.Series, reference: ReferencePoint, objectives: Sequence[Objective], title: str
) -> Figure:
    figure, ax = _figure(7.0, 4.0)
    ax.step(history.index, history.to_numpy(), where="post", color="tab:blue")
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (" + r" $\times$ ".join(o.name for o in objectives) + ")")
    ax.set_title(title)
    ax.text(
        0.99,
        0.03,
        "reference: "
        + ", ".join(f"{o.name} {v:.3g}" for o, v in zip(objectives, reference.values, strict=True)),
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="dimgray",
    )
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    return figure


def importance_figure(importances: Sequence[Importance], title: str) -> Figure:
    """One panel per objective; a panel whose importances could not be computed says why."""
    # Panels that only hold a note need no room for bars.
    height = 4.5 if any(importance.values for importance in importances) else 1.8
    figure = Figure(figsize=(4.2 * len(importances), height), layout="constrained")
    axes = figure.subplots(1, len(importances), squeeze=False)[0]
    for ax, importance in zip(axes, importances, strict=True):
        ax.set_title(importance.objective)
        if importance.note is not None:
            ax.text(
                0.5,
                0.5,
                importance.note,
                ha="center",
                va="center",
                wrap=True,
                fontsize=9,
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        shown = list(importance.values.items())[:MAX_IMPORTANCE_BARS][::-1]
        ax.barh([name for name, _ in shown], [value for _, value in shown], color="tab:blue")
        ax.set_xlabel("importance (PED-ANOVA, normalised)")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    figure.suptitle(title)
    return figure


def latency_figure(df: pd.DataFrame) -> Figure:
    """Latency against MAdds, with Spearman's rank correlation: how well MAdds ranks
    architectures by speed on the device the latency is for, measured there or predicted."""
    figure, ax = _figure(7.0, 4.8)
    trials = finished(df).dropna(subset=[LATENCY, GMADDS])
    handles = []
    for head, group in _by_head(trials):
        marker, colour = _head_style(head)
        handles.append(
            ax.scatter(group[GMADDS], group[LATENCY], marker=marker, color=colour, label=head)
        )
    rho, _ = madds_latency_agreement(df)
    rho_text = "n/a" if math.isnan(rho) else f"{rho:.2f}"
    # The devices' descriptions run long: wrapped under the title, not on the axis.
    origin = textwrap.fill(latency_details(df), TITLE_WIDTH)
    ax.set_title(
        f"{latency_label(df)} against MAdds\n{origin}\n"
        f"Spearman $\\rho$ = {rho_text} over {len(trials)} trials",
        fontsize=10,
    )
    _log_scale(ax, "x")
    _log_scale(ax, "y")
    ax.set_xlabel(GMADDS_LABEL)
    ax.set_ylabel(_cost_label(df, LATENCY_COST))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=8)
    return figure


def published_figure(rows: Sequence[PublishedResult]) -> Figure:
    """The papers' accuracy against compute, one panel per split (the val ablations and the test
    comparison are different measurements), each with the published methods' own front."""
    splits = sorted({row.split for row in rows}, key=lambda s: (s != "test", s))
    figure = Figure(figsize=(7.5 * len(splits), 6.0), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        chosen = [row for row in rows if row.split == split]
        handles, labels = _draw_published(ax, chosen)
        front = sorted(
            (row for row, flag in zip(chosen, published_front(chosen), strict=True) if flag),
            key=lambda row: row.gmadds or 0.0,
        )
        (line,) = ax.step(
            [r.gmadds for r in front],
            [r.miou for r in front],
            where="post",
            color="black",
            lw=1.0,
            ls=":",
            label=f"published front ({len(front)} of {len(chosen)})",
        )
        _log_scale(ax, "x")
        ax.set_xlabel("GFLOPs as published (multiply-adds, log scale)")
        ax.set_ylabel(f"mIoU (%), Cityscapes {split}")
        ax.set_title(f"Published: Cityscapes {split}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles=[*handles, line], fontsize=8, loc="best")
        _place_labels(figure, ax, labels)
    return figure


def retrain_figure(table: pd.DataFrame, *, title: str, proxy_label: str) -> Figure:
    """A retraining (`analysis.retrain_verdict.retrain_table`): each trial's proxy mIoU (hollow)
    joined to its retrained mean (filled, 95% interval over seeds), against GMAdds; the retrained
    front as a step line. Two axes: the proxy and the full recipe differ in scale, so each is
    read against its own."""
    figure = Figure(figsize=(8.0, 5.5), layout="constrained")
    retrained_ax = figure.add_subplot()
    proxy_ax = retrained_ax.twinx()
    trained = table[table["seeds"] > 0]
    low = (trained["retrained mIoU"] - trained["CI low"]).fillna(0)
    high = (trained["CI high"] - trained["retrained mIoU"]).fillna(0)
    retrained_ax.errorbar(trained[GMADDS], trained["retrained mIoU"], yerr=[low, high],
                          fmt="o", color="tab:blue", capsize=4, zorder=3,
                          label="retrained: mean and 95% CI over seeds")  # fmt: skip
    proxy_ax.scatter(table[GMADDS], table["proxy mIoU"], marker="o", facecolors="none",
                     edgecolors="0.4", zorder=2, label=proxy_label)  # fmt: skip
    front = trained[trained["non-dominated retrained"]].sort_values(GMADDS)
    retrained_ax.step(front[GMADDS], front["retrained mIoU"], where="post", color="black",
                      lw=1.2, label=f"retrained front ({len(front)} trials)")  # fmt: skip
    for _, row in table.iterrows():
        retrained_ax.annotate(row["trial"], (row[GMADDS], row["retrained mIoU"]),
                              xytext=(5, 4), textcoords="offset points", fontsize=8)  # fmt: skip
    _log_scale(retrained_ax, "x")
    retrained_ax.set_xlabel(GMADDS_LABEL)
    retrained_ax.set_ylabel("retrained validation mIoU (%)")
    proxy_ax.set_ylabel(f"{proxy_label} (%)", color="0.4")
    retrained_ax.set_title(title)
    retrained_ax.grid(True, which="both", alpha=0.3)
    handles = [
        *retrained_ax.get_legend_handles_labels()[0],
        *proxy_ax.get_legend_handles_labels()[0],
    ]
    retrained_ax.legend(handles=handles, fontsize=8, loc="best")
    return figure


def _decorate_miou_vs_cost(
    ax: Axes, df: pd.DataFrame, cost: Cost, *, title: str, miou_label: str, handles: list[Line2D]
) -> None:
    _log_scale(ax, "x")
    ax.set_xlabel(_cost_label(df, cost))
    ax.set_ylabel(miou_label)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="best")


def _cost_label(df: pd.DataFrame, cost: Cost) -> str:
    """An axis of `cost`; a latency axis says whether it was measured or predicted (the devices
    are in the title or the caption)."""
    return f"{latency_label(df)} (ms, log scale)" if cost == LATENCY_COST else GMADDS_LABEL


def _log_scale(ax: Axes, which: str) -> None:
    """A log scale labelled with plain numbers ('0.5', not '5x10^-1'): at 1-2-5 ticks, or at
    every tick when the axis spans less than a decade (else it may show a single label)."""
    axis = ax.xaxis if which == "x" else ax.yaxis

    def label(value: float, _position: float) -> str:
        if value <= 0:
            return ""
        low, high = sorted(axis.get_view_interval())
        narrow = low > 0 and high / low < 10
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return f"{value:g}" if narrow or mantissa in (1, 2, 5) else ""

    ax.set(**{f"{which}scale": "log"})
    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def _head_style(head: object) -> tuple[str, str]:
    return HEAD_STYLES.get(str(head), UNKNOWN_HEAD_STYLE)


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def _by_head(trials: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Trials grouped by head, in the order of HEAD_STYLES; trials without a recorded head (a
    study whose trials carry no spec) form one group."""
    recorded = trials[HEAD] if HEAD in trials else pd.Series(None, index=trials.index)
    heads = recorded.astype(object).where(recorded.notna(), "head not recorded").astype(str)
    order = [h for h in HEAD_STYLES if h in set(heads)] + sorted(set(heads) - set(HEAD_STYLES))
    return [(head, trials[heads == head]) for head in order]


def _draw_heads(ax: Axes, trials: pd.DataFrame, on_front: np.ndarray, cost: Cost) -> list[Line2D]:
    """Front members solid with a black edge, dominated ones faded; one legend entry per head."""
    flags = pd.Series(on_front, index=trials.index)
    handles = []
    for head, group in _by_head(trials):
        marker, colour = _head_style(head)
        best = flags[group.index]
        for subset, alpha, edge in ((group[~best], FADED, "none"), (group[best], 1.0, "black")):
            ax.scatter(
                subset[cost.column],
                subset[MIOU],
                marker=marker,
                color=colour,
                alpha=alpha,
                edgecolors=edge,
                s=36,
                zorder=3,
            )
        handles.append(
            Line2D([], [], marker=marker, color=colour, ls="none", label=f"{head} ({len(group)})")
        )
    return handles


@dataclass(frozen=True)
class _Label:
    """A point's name, placed by `_place_labels`; lower `rank` is placed first."""

    x: float
    y: float
    text: str
    colour: str
    rank: int
    bold: bool = False


# Where a label may sit around its point (offset in points, alignment), in order of preference.
_OFFSETS = (
    ((5, 2), "left", "bottom"),
    ((5, -2), "left", "top"),
    ((-5, 2), "right", "bottom"),
    ((-5, -2), "right", "top"),
    ((0, 7), "center", "bottom"),
    ((0, -7), "center", "top"),
    ((8, 9), "left", "bottom"),
    ((8, -9), "left", "top"),
    ((-8, 9), "right", "bottom"),
    ((-8, -9), "right", "top"),
)


def _reference_labels(trials: pd.DataFrame, cost: Cost) -> list[_Label]:
    if TrialKey.REFERENCE not in trials:
        return []
    named = trials[trials[TrialKey.REFERENCE].notna()]
    return [
        _Label(x, y, str(name), "black", rank=0, bold=True)
        for x, y, name in zip(
            named[cost.column], named[MIOU], named[TrialKey.REFERENCE], strict=True
        )
    ]


def _draw_published(ax: Axes, rows: Sequence[PublishedResult]) -> tuple[list[Line2D], list[_Label]]:
    """Hollow markers, one series per split. The legend names the split, and the input size
    when the whole split shares one; otherwise each label carries its size."""
    handles: list[Line2D] = []
    labels: list[_Label] = []
    on_front = dict(zip(map(id, rows), published_front(rows), strict=True))
    for split in sorted({row.split for row in rows}, key=lambda s: (s != "test", s)):
        group = [row for row in rows if row.split == split]
        marker, colour = PUBLISHED_STYLES.get(split, ("o", "gray"))
        sizes = {row.input_size for row in group}
        shared = _size_text(next(iter(sizes))) if len(sizes) == 1 else "input size in labels"
        sources = sorted({row.source.split()[0] for row in group})
        (handle,) = ax.plot(
            [r.gmadds for r in group],
            [r.miou for r in group],
            marker=marker,
            ls="none",
            mfc="none",
            mec=colour,
            ms=9,
            mew=1.2,
            zorder=4,
            label=f"published ({', '.join(sources)}): Cityscapes {split}, {shared}",
        )
        handles.append(handle)
        for row in group:
            text = row.model if len(sizes) == 1 else f"{row.model} {_size_text(row.input_size)}"
            # The published front and the DFANet designs first: they are what a trial is
            # compared with, and a crowded plot drops the labels placed last.
            rank = 1 if on_front[id(row)] else 2 if row.model.startswith("DFANet") else 3
            labels.append(_Label(row.gmadds or math.nan, row.miou or math.nan, text, colour, rank))
    return handles, labels


def _size_text(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else "size not given"


def _place_labels(figure: Figure, ax: Axes, labels: Sequence[_Label]) -> None:
    """Greedy placement: each label takes the first offset where it overlaps no marker, no
    placed label and no legend, and stays inside the axes. A label that fits nowhere is left
    out; its point is still drawn (and listed in the CSV beside the figure)."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()  # the final layout, so display coordinates hold
    inside = ax.get_window_extent(renderer)
    taken = [Bbox.from_bounds(x - 4, y - 4, 8, 8) for x, y in _marker_positions(ax)]
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    for label in sorted(labels, key=lambda label: label.rank):
        for attempt, (offset, ha, va) in enumerate(_OFFSETS):
            text = ax.annotate(
                label.text,
                (label.x, label.y),
                xytext=offset,
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=7,
                color=label.colour,
                fontweight="bold" if label.bold else "normal",
            )
            text.set_in_layout(False)
            box = text.get_window_extent(renderer)
            fits = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            last = attempt == len(_OFFSETS) - 1
            # Bold labels (this study's paper designs) are always shown, at the last resort
            # over a marker.
            if (fits and not any(box.overlaps(other) for other in taken)) or (last and label.bold):
                taken.append(box)
                break
            text.remove()


def _marker_positions(ax: Axes) -> np.ndarray:
    """Display coordinates of every marker drawn (scatter points and marker-only lines)."""
    points = [collection.get_offsets() for collection in ax.collections]
    points += [
        line.get_xydata()
        for line in ax.lines
        # Lines in other coordinates (the over-budget ticks on the axis) are not data points.
        if line.get_linestyle() == "None" and line.get_transform() is ax.transData
    ]
    data = [np.asarray(p, dtype=float) for p in points if len(p)]
    if not data:
        return np.empty((0, 2))
    return ax.transData.transform(np.vstack(data))
