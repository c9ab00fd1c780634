"""Studies that train chosen architectures over seeds: an ablation, a retraining of a search's
trials, and, in a search's own report, what its retrainings found."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure

from analysis import document as doc
from analysis import plots
from analysis.ablation import ablation_figure, ablation_table
from analysis.load import load_trials, recipe_steps
from analysis.retrain_verdict import linked_retrainings, retrain_table, verdict
from analysis.sections.common import dataset_text, figure_block
from workbench.files import write_csv
from workbench.record import GMADDS, AblationKey, RetrainKey, StudyKey


def ablation_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    ablation = attrs[StudyKey.ABLATION]
    table = ablation_table(df, ablation)
    return _table_section(
        heading="Ablation",
        text=f"Baseline: {ablation[AblationKey.BASELINE]}; seeds {ablation[AblationKey.SEEDS]}. "
        "mIoU is the mean over seeds with a 95% Student-t interval; the difference to the "
        "baseline is paired by seed (its interval and a two-sided paired t-test). The "
        "paper's figures are its Cityscapes val results at 1024x1024, beside ours for "
        f"reference ({dataset_text(attrs)}).",
        table=table,
        figure=ablation_figure(table, df, title=f"Ablation {ablation[AblationKey.NAME]}"),
        caption="mIoU per variant: mean, 95% CI and every seed",
        out_dir=out_dir,
        name="ablation",
        described="the ablation table",
    )


def retrain_section(df: pd.DataFrame, attrs: Mapping[str, Any], out_dir: Path) -> list[doc.Block]:
    retrain_of = attrs[StudyKey.RETRAIN_OF]
    search = retrain_of[RetrainKey.STUDY]
    table = retrain_table(df, retrain_of)
    steps = recipe_steps(attrs)
    seeds = attrs[StudyKey.ABLATION][AblationKey.SEEDS]
    return _table_section(
        heading=f"Retraining of `{search}`",
        text=f"Trials of the search `{search}` retrained with the full recipe ({steps} steps) "
        f"over seeds {seeds}: {verdict(table)} The proxy mIoU "
        "is the search's (after its proxy steps); the retrained one is the mean over seeds "
        "with a 95% Student-t interval; non-dominated: no other retrained trial has a "
        "higher mean mIoU for no more GMAdds. The search's report: "
        f"`../{search}/report.md`.",
        table=table,
        figure=plots.retrain_figure(
            table,
            title=f"{search}: proxy against {steps}-step retraining",
            proxy_label="proxy mIoU",
        ),
        caption="proxy mIoU (hollow) and retrained mean (filled)",
        out_dir=out_dir,
        name="retrain",
        described="the retraining table",
    )


def retrained_section(study: optuna.Study) -> list[doc.Block]:
    """Where the search's trials were retrained (`experiments.retrain`), what each found."""
    blocks: list[doc.Block] = []
    columns = ["trial", GMADDS, "proxy mIoU", "seeds", "retrained mIoU", "CI low", "CI high",
               "non-dominated retrained"]  # fmt: skip
    for linked in linked_retrainings(study):
        table = retrain_table(load_trials(linked), linked.user_attrs[StudyKey.RETRAIN_OF])
        if not (table["seeds"] > 0).any():
            continue
        steps = recipe_steps(linked.user_attrs)
        blocks += [
            doc.Paragraph(
                f"`{linked.study_name}` retrained trials of this search for {steps} steps over "
                f"seeds: {verdict(table)} Its report: `../{linked.study_name}/report.md`."
            ),
            doc.Table(table[columns].pipe(_rounded)),
        ]
    return [doc.Heading("Retrained with the full recipe"), *blocks] if blocks else []


def _table_section(
    *,
    heading: str,
    text: str,
    table: pd.DataFrame,
    figure: Figure,
    caption: str,
    out_dir: Path,
    name: str,
    described: str,
) -> list[doc.Block]:
    """A section around one table: what it shows, the table, its figure, and the table written
    beside the report as `<name>.csv`."""
    write_csv(table, out_dir / f"{name}.csv")
    return [
        doc.Heading(heading),
        doc.Paragraph(text),
        doc.Table(table.pipe(_rounded)),
        figure_block(figure, out_dir, name, caption),
        doc.Attachment(out_dir / f"{name}.csv", described),
    ]


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round(3)
