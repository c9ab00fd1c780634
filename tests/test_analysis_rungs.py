"""A study under a multi-fidelity schedule, read back from a real SQLite storage: statuses of
lineages, the front drawn from the top rung, the rungs' tables, agreement and the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import scipy.stats
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from analysis.heads import heads_verdict
from analysis.load import HEAD, RUNG, load_study, load_trials
from analysis.pareto import non_dominated, pareto_front
from analysis.report import format_front, write_report
from analysis.rungs import (
    RHO,
    TAU,
    lineages,
    miou_column,
    rung_agreement,
    rung_counts,
    steps_spent,
)
from search_space.spec import ArchSpec
from tests.test_analysis_report import BUDGET, INPUT_SIZE, _create_study, build_study
from workbench.record import (
    GMADDS,
    MIOU,
    Constraint,
    ScheduleKey,
    StudyKey,
    TrialKey,
    TrialStatus,
)

RUNGS = [25, 100, 400]
SCHEDULE = {ScheduleKey.RUNGS: RUNGS, ScheduleKey.REDUCTION: 2, ScheduleKey.STRATIFY: "head"}
HEAD_PARAM = {"head": CategoricalDistribution(["dfa", "aspp", "icnet", "bisenet"])}

# Eight architectures: (head, GMAdds, mIoU at each rung it completed). The first three reach
# the top rung; #3 is promoted to rung 1, where it looks best of all (it would dominate the
# front), but its promotion to rung 2 fails; #4's promotion to rung 1 fails; the rest stop.
ARCHITECTURES: list[tuple[str, float, list[float]]] = [
    ("dfa", 0.10, [20.0, 30.0, 40.0]),
    ("aspp", 0.07, [22.0, 28.0, 36.0]),
    ("icnet", 0.15, [18.0, 27.0, 33.0]),
    ("bisenet", 0.12, [21.0, 60.0]),
    ("dfa", 0.30, [15.0]),
    ("aspp", 0.25, [10.0]),
    ("icnet", 0.05, [12.0]),
    ("bisenet", 0.08, [11.0]),
]


def _attrs(head: str, gmadds: float) -> dict[str, Any]:
    spec = ArchSpec(towers=1, input_size=INPUT_SIZE).replace(head=head)
    return {TrialKey.SPEC: spec.to_dict(), TrialKey.GMADDS: gmadds, TrialKey.INFEASIBLE: False}


def _add(
    study: optuna.Study,
    architecture: int,
    rung: int,
    *,
    parent: int | None = None,
    state: TrialState = TrialState.COMPLETE,
    **extra: Any,
) -> int:
    """One trial of a lineage, recorded as the study driver records it; returns its number."""
    head, gmadds, mious = ARCHITECTURES[architecture]
    attrs = {**_attrs(head, gmadds), TrialKey.RUNG: rung, **extra}
    if parent is not None:
        attrs.update({TrialKey.PROMOTED_FROM: parent, TrialKey.RESUMED_FROM_STEP: RUNGS[rung - 1]})
    values = None
    if state == TrialState.COMPLETE:
        results = [[r, RUNGS[r], mious[r]] for r in range(rung + 1)]
        attrs.update(
            {
                TrialKey.STEPS: RUNGS[rung],
                TrialKey.RUNG_RESULTS: results,
                TrialKey.CURVE: [[steps, miou] for _, steps, miou in results],
                TrialKey.CHECKPOINT: f"outputs/checkpoints/{architecture}-{rung}.pt",
            }
        )
        values = [mious[rung], gmadds]
    else:
        attrs[TrialKey.FAIL_REASON] = "RuntimeError: CUDA out of memory"
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            values=values,
            params={"head": head},
            distributions=HEAD_PARAM,
            user_attrs=attrs,
            constraints={Constraint.GMADDS: gmadds - BUDGET},
        )
    )
    return len(study.trials) - 1


def _scheduled(storage: str, name: str, *, top: int) -> optuna.Study:
    """The eight architectures through the rungs up to `top`, with failed promotions, one
    infeasible trial and one duplicate."""
    study = _create_study(storage, name, latency=False, dataset="synthetic")
    study.set_user_attr(StudyKey.SCHEDULE, SCHEDULE)
    roots = [_add(study, index, 0) for index in range(len(ARCHITECTURES))]
    second = {index: _add(study, index, 1, parent=roots[index]) for index in range(4)}
    _add(study, 4, 1, parent=roots[4], state=TrialState.FAIL)
    if top == 2:
        for index in range(3):
            _add(study, index, 2, parent=second[index])
        _add(study, 3, 2, parent=second[3], state=TrialState.FAIL)
    over = {**_attrs("dfa", 0.9), TrialKey.INFEASIBLE: True, TrialKey.RUNG: 0}
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.0, 0.9],
            params={"head": "dfa"},
            distributions=HEAD_PARAM,
            user_attrs=over,
            constraints={Constraint.GMADDS: 0.9 - BUDGET},
        )
    )
    duplicate = {**_attrs("dfa", 0.10), TrialKey.RUNG: 0, TrialKey.DUPLICATE_OF: roots[0]}
    study.add_trial(
        optuna.trial.create_trial(
            values=[20.0, 0.10],
            params={"head": "dfa"},
            distributions=HEAD_PARAM,
            user_attrs=duplicate,
            constraints={Constraint.GMADDS: 0.10 - BUDGET},
        )
    )
    return study


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('rungs') / 's.db'}"
    _scheduled(url, "scheduled", top=2)
    _scheduled(url, "partial", top=1)
    return url


@pytest.fixture(scope="module")
def df(storage: str) -> pd.DataFrame:
    return load_trials(load_study("scheduled", storage))


@pytest.fixture(scope="module")
def report(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(load_study("scheduled", storage), tmp_path_factory.mktemp("report"))


def test_statuses_come_from_the_lineages(df: pd.DataFrame) -> None:
    status = dict(zip(df["number"], df["status"], strict=True))
    # Trials 0-7: rung 0; 8-11: rung 1 (of architectures 0-3); 12: #4's failed promotion;
    # 13-15: rung 2; 16: #11's failed promotion; 17: over budget; 18: a duplicate of #0.
    promoted, stopped = TrialStatus.PROMOTED, TrialStatus.STOPPED
    assert [status[n] for n in range(8)] == [promoted] * 4 + [stopped] * 4
    assert [status[n] for n in range(8, 12)] == [promoted] * 3 + [stopped]
    assert status[12] == status[16] == TrialStatus.FAILED
    assert [status[n] for n in (13, 14, 15)] == [TrialStatus.FINISHED] * 3
    assert (status[17], status[18]) == (TrialStatus.INFEASIBLE, TrialStatus.DUPLICATE)
    assert df.loc[df["number"] == 9, TrialKey.PROMOTED_FROM].item() == 1
    assert df.set_index("number").loc[[0, 8, 13, 12], RUNG].tolist() == [0.0, 1.0, 2.0, 1.0]


def test_a_study_without_schedule_keeps_its_statuses(tmp_path: Path) -> None:
    df = load_trials(build_study(f"sqlite:///{tmp_path}/s.db", "plain", n=12))
    assert RUNG in df and df[RUNG].isna().all()
    outcomes = {
        TrialStatus.FINISHED,
        TrialStatus.INFEASIBLE,
        TrialStatus.PRUNED,
        TrialStatus.FAILED,
    }
    assert set(df["status"]) <= outcomes
    assert TrialStatus.FINISHED in set(df["status"])


def test_the_front_is_drawn_from_the_top_rung(df: pd.DataFrame) -> None:
    front = pareto_front(df)
    assert set(front["number"]) <= {13, 14, 15} and len(front) >= 1
    # Read as if every complete trial were a result, #11 (60 mIoU at 0.12 G) would be on it.
    complete = df[df["feasible"] & df["status"].ne(TrialStatus.DUPLICATE)]
    flags = non_dominated(complete[[MIOU, GMADDS]].to_numpy(), [True, False])
    assert 11 in set(complete["number"][flags])


def test_lineages(df: pd.DataFrame) -> None:
    table = lineages(df).set_index("root")
    assert list(table.index) == list(range(8))
    assert table.loc[0, ["last", RUNG, "steps", "status", HEAD]].tolist() == [
        13,
        2,
        400,
        TrialStatus.FINISHED,
        "dfa",
    ]
    assert table.loc[0, [miou_column(r) for r in range(3)]].tolist() == [20.0, 30.0, 40.0]
    assert table.loc[0, GMADDS] == pytest.approx(0.10)
    # A failed promotion leaves the parent as the lineage's last trial.
    assert table.loc[3, ["last", RUNG, "steps", "status", MIOU]].tolist() == [
        11,
        1,
        100,
        TrialStatus.STOPPED,
        60.0,
    ]
    assert math.isnan(table.loc[3, miou_column(2)])
    assert table.loc[4, ["last", RUNG, "steps"]].tolist() == [4, 0, 25]
    assert steps_spent(df) == (3 * 400 + 100 + 4 * 25, 8 * 400)


def test_rung_counts(df: pd.DataFrame) -> None:
    counts = rung_counts(df)
    assert counts.to_dict("list") == {
        "rung": [0, 1, 2],
        "steps": [25, 100, 400],
        "completed": [8, 4, 3],
        "promoted": [4, 3, 0],
    }


def test_rung_agreement_matches_scipy(df: pd.DataFrame) -> None:
    agreement = rung_agreement(df)
    pairs = list(zip(agreement["from rung"], agreement["to rung"], strict=True))
    assert pairs == [(0, 1), (1, 2), (0, 2)]
    mious = [m for _, _, m in ARCHITECTURES]
    for (low, high), (_, row) in zip(pairs, agreement.iterrows(), strict=True):
        both = [m for m in mious if len(m) > high]
        x, y = [m[low] for m in both], [m[high] for m in both]
        assert row["architectures"] == len(both)
        assert row[TAU] == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
        assert row[RHO] == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
        assert row["note"] == ""
    assert agreement[["from steps", "to steps"]].iloc[2].tolist() == [25, 400]


def test_too_few_architectures_give_no_agreement(storage: str) -> None:
    partial = load_trials(load_study("partial", storage))
    agreement = rung_agreement(partial)
    assert len(agreement) == 1 and agreement["architectures"].item() == 4
    # Two at rung 1 only: the table has one pair, from the four architectures that completed it.
    two = partial[~partial["number"].isin([10, 11])]
    agreement = rung_agreement(two)
    assert agreement["architectures"].item() == 2
    assert math.isnan(agreement[TAU].item()) and math.isnan(agreement[RHO].item())
    assert "fewer than 3" in agreement["note"].item()


def test_heads_are_judged_at_the_top_rung(storage: str) -> None:
    study = load_study("partial", storage)
    partial = load_trials(study)
    # The trainer's 200 steps are not what the finished trials trained: rung 1 is 100 steps.
    text = heads_verdict(partial, [], study.user_attrs, None)
    assert "compared at the top rung reached (rung 1, 100 steps)" in text
    assert "each head's best trials were promoted" in text
    assert "100 steps are known not to rank the heads" in text
    tau = scipy.stats.kendalltau([20, 22, 18, 21], [30, 28, 27, 60]).statistic
    assert f"Kendall's tau {tau:.2f} against their ranking at 100 steps" in text


def test_report_has_the_schedule_section(report: Path, df: pd.DataFrame) -> None:
    text = report.read_text()
    section = text.split("## Multi-fidelity schedule", 1)[1].split("\n## ", 1)[0]
    assert text.index("## Pareto front") < text.index("## Multi-fidelity schedule")
    assert "rungs of 25, 100 and 400 steps" in section
    assert "reduction factor 2" in section and "each head a bracket of its own" in section
    assert "rung 2 (400 steps): 3 of the 8 architectures reached it" in section
    assert "1,400 training steps were spent: 44% of the 3,200" in section
    tau = scipy.stats.kendalltau([20, 22, 18], [40, 36, 33]).statistic
    assert (
        "between rung 0 (25 steps) and the top rung (400 steps), over the 3 architectures "
        f"that reached both: Kendall's tau {tau:.2f}"
    ) in section
    assert "Biased: these architectures were chosen by their results" in section
    # A study from before probes: no estimate, and the setting that gives one.
    assert "This study has no probes" in section and "`study.schedule.probes=N`" in section
    assert "| 0 → 2 | 25 → 400 | 3 |" in section
    out = report.parent
    assert (out / "rungs.png").stat().st_size > 1000
    assert (out / "rungs.svg").read_text().lstrip().startswith("<?xml")
    assert len(pd.read_csv(out / "lineages.csv")) == 8
    # The heads are compared at 400 steps, which rank the heads on this data.
    assert "rung 2, 400 steps" in text and "known not to rank" not in text
    assert "from 175 steps on (RESULTS.md), so 400 steps rank them" in text
    assert f"| {TrialStatus.PROMOTED} | 7 |" in text and f"| {TrialStatus.STOPPED} | 5 |" in text


def test_front_tables_show_the_steps_reached(report: Path, df: pd.DataFrame) -> None:
    header = format_front(df).splitlines()[0]
    assert header.split()[-1] == "steps"
    front = report.read_text().split("## Pareto front", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in front.splitlines() if line.startswith("| #")]
    assert rows and all(line.rstrip(" |").endswith("400") for line in rows)


def test_report_without_schedule_has_no_such_section(tmp_path: Path) -> None:
    study = _create_study(f"sqlite:///{tmp_path}/s.db", "plain", latency=False, dataset="x")
    for index in range(4):
        head, gmadds, mious = ARCHITECTURES[index]
        study.add_trial(
            optuna.trial.create_trial(
                values=[mious[0], gmadds],
                params={"head": head},
                distributions=HEAD_PARAM,
                user_attrs=_attrs(head, gmadds),
            )
        )
    text = write_report(study, tmp_path / "report").read_text()
    assert "Multi-fidelity" not in text
    assert f"| {TrialStatus.PROMOTED} |" not in text and f"| {TrialStatus.STOPPED} |" not in text
    assert not (tmp_path / "report" / "rungs.png").exists()
    assert "steps" not in format_front(load_trials(study)).splitlines()[0]
