"""The heads comparison in words: which head leads within each budget of MAdds (or latency), by
how much, and whether that is more than the seed-to-seed spread and the training budget allow
one to say."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd

from analysis.ablation import ablation_table
from analysis.costs import MADDS_COST, Cost
from analysis.load import HEAD, finished, load_trials, recipe_steps
from analysis.rungs import TAU, first_to_top, rung_steps, top_rung
from workbench.record import KIND_ABLATION, MIOU, AblationKey, ScheduleKey, StudyKey

# What is known of the proxy's fidelity across heads on the built-in data: 80 training steps
# rank the four heads' references on Backbone A unlike 400 steps (Kendall's tau 0.33; RESULTS.md,
# "Heads and the training budget"), and in a full 400-step run of 16 architectures the heads'
# best rank as at 400 steps from step 175 on (RESULTS.md, "Replaying the rule"). Below this many
# steps a report says that its budget does not rank the heads.
SYNTHETIC_STEPS_THAT_RANK_HEADS = 175


def heads_ablation_spread(study: optuna.Study) -> tuple[str, float] | None:
    """The mean seed-to-seed standard deviation of mIoU over the variants of a heads ablation
    stored beside `study` (`experiments.ablate +ablation=heads [+profile=demo]`), with its name:
    one measured on the same data, input size and training steps, or none."""
    storage = study._storage  # Optuna gives no public accessor to a study's storage
    mine = study.user_attrs
    for summary in optuna.get_all_study_summaries(storage=storage):
        attrs = summary.user_attrs
        ablation = attrs.get(StudyKey.ABLATION) or {}
        if attrs.get(StudyKey.KIND) != KIND_ABLATION or ablation.get(AblationKey.NAME) != "heads":
            continue
        if not _same_measurement(attrs, mine):
            continue
        frame = load_trials(optuna.load_study(study_name=summary.study_name, storage=storage))
        stds = ablation_table(frame, ablation)["mIoU std"].dropna()
        if len(stds):
            return summary.study_name, float(stds.mean())
    return None


def _same_measurement(theirs: Mapping[str, Any], mine: Mapping[str, Any]) -> bool:
    return (
        theirs.get(StudyKey.DATASET) == mine.get(StudyKey.DATASET)
        and theirs.get(StudyKey.INPUT_SIZE) == mine.get(StudyKey.INPUT_SIZE)
        and recipe_steps(theirs) == recipe_steps(mine)
    )


def heads_leaders(df: pd.DataFrame, budgets: Sequence[float], cost: Cost = MADDS_COST) -> str:
    """Which head leads within each budget of `cost` and at any cost, and by how much."""
    trials = finished(df).dropna(subset=[MIOU, cost.column, HEAD])
    sentences = []
    for budget in [*budgets, math.inf]:
        best = (
            trials[trials[cost.column] <= budget]
            .sort_values([MIOU, cost.column], ascending=[False, True])
            .drop_duplicates(HEAD)
        )
        where = "at any cost" if math.isinf(budget) else f"within {cost.budget_text(budget)}"
        if len(best) == 0:
            continue
        leader = best.iloc[0]
        if len(best) == 1:
            sentences.append(f"{where}, only {leader[HEAD]} has a trial ({leader[MIOU]:.1f})")
            continue
        second = best.iloc[1]
        sentences.append(
            f"{where}, {leader[HEAD]} leads with {leader[MIOU]:.1f} mIoU, "
            f"{leader[MIOU] - second[MIOU]:.1f} points above {second[HEAD]}"
        )
    joined = "; ".join(sentences)
    return joined[:1].upper() + joined[1:] + "." if sentences else "No head has a trial."


def heads_verdict(
    df: pd.DataFrame,
    budgets: Sequence[float],
    attrs: Mapping[str, Any],
    spread: tuple[str, float] | None,
) -> str:
    """The leaders at equal MAdds, weighed against the seed-to-seed spread and the training
    budget."""
    text = heads_leaders(df, budgets)
    if spread is None:
        text += (
            " No heads ablation on the same data, input size and training steps is stored beside "
            "this study, so the seed-to-seed spread is not measured here (`python -m "
            "experiments.ablate +ablation=heads +profile=demo` measures it for the demo)."
        )
    else:
        name, std = spread
        text += (
            f" The heads ablation `{name}` measures a seed-to-seed standard deviation of "
            f"{std:.1f} mIoU points: a lead under about {2 * std:.1f} points is not evidence."
        )
    return text + _budget_caveat(df, attrs)


def _budget_caveat(df: pd.DataFrame, attrs: Mapping[str, Any]) -> str:
    steps, text = _budget_text(df, attrs)
    if steps is None:
        return ""
    caveat = text + (
        " Heads learn at different speeds, so a short budget ranks how fast a head learns, not "
        "how good it gets"
    )
    if attrs.get(StudyKey.DATASET) != "synthetic":
        return caveat + "; check the ranking at a longer budget before concluding."
    if steps < SYNTHETIC_STEPS_THAT_RANK_HEADS:
        return caveat + (
            f": **on this data, {steps} steps are known not to rank the heads** (the heads' best "
            f"rank as at 400 steps only from {SYNTHETIC_STEPS_THAT_RANK_HEADS} steps on; their "
            "references at 80 and 400 steps: Kendall's tau 0.33, RESULTS.md). Read this table as "
            "the heads' speed of learning."
        )
    return caveat + (
        f". On this data the heads' best rank as at 400 steps from "
        f"{SYNTHETIC_STEPS_THAT_RANK_HEADS} steps on (RESULTS.md), so {steps} steps rank them; "
        "a lead inside the seed spread is still a tie."
    )


def _budget_text(df: pd.DataFrame, attrs: Mapping[str, Any]) -> tuple[int | None, str]:
    """The steps the compared trials trained, and the sentences that say so. Under a schedule
    that is the top rung reached (the finished trials), not the trainer's setting."""
    schedule = attrs.get(StudyKey.SCHEDULE)
    top = top_rung(df) if schedule else None
    steps = rung_steps(df).get(top) if top is not None else None
    if top is None or steps is None:
        steps = recipe_steps(attrs)
        return steps, f" Each trial trained {steps} steps."
    text = f" The heads are compared at the top rung reached (rung {top}, {steps} steps)"
    text += (
        ", to which each head's best trials were promoted."
        if schedule.get(ScheduleKey.STRATIFY) == HEAD
        else "."
    )
    agreement = first_to_top(df)
    if agreement is not None and not math.isnan(agreement[TAU]):
        text += (
            f" In this study, rung 0 ({agreement['from steps']} steps) ranks the "
            f"{agreement['architectures']} architectures that reached the top rung with "
            f"Kendall's tau {agreement[TAU]:.2f} against their ranking at {steps} steps "
            "(promoted trials only, so biased towards the ones that did well early; the "
            "probes' estimate, in the multi-fidelity section, is not)."
        )
    return int(steps), text
