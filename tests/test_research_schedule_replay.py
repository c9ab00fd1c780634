"""`experiments.research.schedule_replay` on a full run stored in a real SQLite storage, with
hand-set curves whose replay is worked out below by the schedule's rule. (That a replay is the
schedule run it stands for, on real training: `test_research_schedule`.)"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from experiments.config import compose_option
from experiments.research import schedule_replay
from experiments.research.schedule_replay import (
    BracketRanking,
    bracket_rankings,
    load_full_run,
    ran,
    replay,
    replay_rule,
    settled_step,
    trials_per_rung,
)
from experiments.study.schedule import Schedule
from workbench.record import StudyKey, TrialKey

# Architecture: (GMAdds, mIoU at 25, 100 and 400 steps).
ARCHITECTURES = [
    (1.0, 10, 20, 30), (2.0, 12, 22, 35), (0.5, 5, 15, 28), (3.0, 8, 18, 25),
    (1.5, 9, 19, 29), (0.8, 11, 16, 27), (2.5, 6, 14, 24), (4.0, 13, 25, 40),
]  # fmt: skip
STEPS = (25, 100, 400)
DIRECTIONS = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)


def store_full_run(
    path: Path,
    schedule: bool = False,
    enqueued: int = 0,
    n_trials: int = 8,
    architectures: Sequence[tuple[float, ...]] = ARCHITECTURES,
    steps: Sequence[int] = STEPS,
    heads: Sequence[str] | None = None,
    infeasible_before: int | None = None,
) -> optuna.Study:
    """`heads`: each architecture's head, in a study of the heads space bracketed by head
    (else every one is DFA, and there are no brackets); `infeasible_before`: the architecture
    an infeasible one (never trained) was met before."""
    study = optuna.create_study(
        study_name="full", storage=f"sqlite:///{path}", directions=["maximize", "minimize"]
    )
    stratify = "head" if heads else None
    config: dict[str, Any] = {
        "study": {"n_trials": n_trials, "schedule": {"enabled": schedule, "stratify": stratify}}
    }
    if heads:
        config["space"] = compose_option("space", "heads")
    study.set_user_attr(StudyKey.CONFIG, config)
    distributions = {"x": CategoricalDistribution(list(range(len(architectures))))}
    for index, (gmadds, *mious) in enumerate(architectures):
        if index == infeasible_before:
            study.add_trial(create_trial(
                values=[0.0, 9.0], params={"x": index}, distributions=distributions,
                user_attrs={TrialKey.SPEC: {"head": "dfa"}, TrialKey.INFEASIBLE: True},
            ))  # fmt: skip
        attrs = {
            TrialKey.SPEC: {"head": heads[index] if heads else "dfa", "index": index},
            TrialKey.CURVE: [[step, miou] for step, miou in zip(steps, mious, strict=True)],
            TrialKey.STEPS: steps[-1],
            **({TrialKey.REFERENCE: f"design {index}"} if index < enqueued else {}),
        }
        study.add_trial(create_trial(
            values=[mious[-1], gmadds], params={"x": index}, distributions=distributions,
            user_attrs=attrs,
        ))  # fmt: skip
    return study


def test_the_rule_replayed_on_stored_curves(tmp_path: Path) -> None:
    run = load_full_run(store_full_run(tmp_path / "full.db"))
    assert run.top == 400 and run.first_trials == [] and run.target == 8
    # At 400 steps: #7 (40 at 4.0), #1 (35 at 2.0), #0 (30 at 1.0), #2 (28 at 0.5).
    assert run.front() == {0, 1, 2, 7}
    outcome = replay(run, reduction=4, min_steps=25)
    assert outcome.schedule.rungs == STEPS
    # Rung 0, open: the 4th arrival gives a quota of 1, #1 (an end of the front {0, 1, 2},
    # the older end). Closed (8 arrived): its front {7, 1, 5, 2} (#5 dominates #0 at 25 steps),
    # so #2, #7, #5. Rung 1 closes with {1, 2, 7, 5}, all non-dominated at 100: all promoted.
    assert outcome.counts == [8, 4, 4]
    assert outcome.steps == 8 * 25 + 4 * 75 + 4 * 300
    assert outcome.share == pytest.approx(1700 / 3200)
    # #5 is dominated by #2 at 400; #0 never left the first rung.
    assert (outcome.kept, outcome.front) == (3, 4)
    # Hypervolume against (0, 1.1 * 4.0): 128 against the full front's 130.
    assert outcome.hypervolume_ratio == pytest.approx(128 / 130)


def rungs_in_order(outcome: schedule_replay.Outcome) -> list[int]:
    return [rung for _, rung in outcome.lineage]


def test_enqueued_first_trials_all_run_before_any_promotion(tmp_path: Path) -> None:
    assert rungs_in_order(replay(load_full_run(store_full_run(tmp_path / "a.db")), 4, 25))[:5] == [
        0,
        0,
        0,
        0,
        1,
    ]  # #1 promoted once 4 have arrived
    held = load_full_run(store_full_run(tmp_path / "b.db", enqueued=6))
    assert held.first_trials == [{TrialKey.REFERENCE: f"design {i}"} for i in range(6)]
    assert rungs_in_order(replay(held, 4, 25))[:7] == [0] * 6 + [1]  # after the 6 have run
    # The target reached with a first trial still waiting: it runs whatever the target, and
    # the rule chooses #1 on the 6 results.
    early = load_full_run(
        store_full_run(tmp_path / "c.db", enqueued=6, n_trials=5, architectures=ARCHITECTURES[:6])
    )
    assert early.target == 5
    assert replay(early, 4, 25).lineage[:7] == [(i, 0) for i in range(6)] + [(1, 1)]
    # An infeasible architecture met before the target counted toward it: the study reached
    # it on 4 of the replayed ones, and chose its first promotion on their results.
    infeasible = load_full_run(store_full_run(
        tmp_path / "d.db", enqueued=6, n_trials=5, architectures=ARCHITECTURES[:6],
        infeasible_before=2,
    ))  # fmt: skip
    assert len(infeasible.genes) == 6 and infeasible.target == 4


# The heads, each trial's mIoU at rungs 0, 1 and 2 (the costs are alike: mIoU alone ranks).
CLIMB = Schedule((25, 100, 400), 3, "head", DIRECTIONS, references_to_top=True, probes=2)


def climb(
    first: Sequence[dict[str, Any]], heads: Sequence[str], mious: Sequence[float], n_trials: int
) -> optuna.Study:
    """The rule replayed on architectures whose mIoU at rung k is `mious[i] + 10 k`."""
    genes = [{"head": head} for head in heads]
    return replay_rule(
        CLIMB, genes, lambda i, rung: (mious[i] + 10 * rung, 1.0), n_trials=n_trials,
        first_trials=first,
    )  # fmt: skip


def at_top(study: optuna.Study) -> dict[int, optuna.trial.FrozenTrial]:
    """Architecture index -> its trial at the top rung."""
    return {
        int(t.params["architecture"]): t for t in ran(study) if t.user_attrs[TrialKey.RUNG] == 2
    }


def test_a_beaten_reference_reaches_the_top_beside_its_heads_best() -> None:
    # DFA: a reference beaten by every other DFA trial at every rung, then six draws; ASPP: two.
    heads = ["dfa"] * 7 + ["aspp"] * 2
    mious = [1.0, 30.0, 20.0, 21.0, 22.0, 23.0, 24.0, 5.0, 6.0]
    study = climb([{TrialKey.REFERENCE: "dfanet_a"}], heads, mious, n_trials=9)
    top = at_top(study)
    # Each head's best by its quota, and the reference on top of it, for its mark.
    assert {1, 8, 0} <= set(top)
    assert top[1].user_attrs[TrialKey.PROMOTED_FOR] == "quota"
    lineage = [t for t in ran(study) if t.params["architecture"] == 0]
    assert [t.user_attrs.get(TrialKey.PROMOTED_FOR) for t in lineage] == [
        None, "reference", "reference",
    ]  # fmt: skip
    assert all(t.user_attrs[TrialKey.REFERENCE] == "dfanet_a" for t in lineage)
    # Without references to the top it stops where it is beaten, and the same heads' bests
    # reach the top.
    ranked = replay_rule(
        replace(CLIMB, references_to_top=False), [{"head": h} for h in heads],
        lambda i, rung: (mious[i] + 10 * rung, 1.0), n_trials=9,
        first_trials=[{TrialKey.REFERENCE: "dfanet_a"}],
    )  # fmt: skip
    assert 0 not in at_top(ranked) and {1, 8} <= set(at_top(ranked))


def test_a_target_below_its_first_trials_runs_them_and_promotes_to_the_top() -> None:
    """`+study=demo study.n_trials=6` with more first trials: the rule runs every one of them
    (none is left waiting to hold the first rung open), then promotes each rung's front and
    each head's best to the top rung."""
    heads = ["dfa", "dfa", "aspp", "aspp", "icnet", "icnet", "bisenet", "bisenet"]
    mious = [10.0, 12.0, 8.0, 9.0, 14.0, 3.0, 7.0, 6.0]
    first = [{TrialKey.FIRST_DRAW: f"{head}/{i}"} for i, head in enumerate(heads)]
    study = climb(first, heads, mious, n_trials=6)
    assert not study.get_trials(states=(TrialState.WAITING,))
    rungs = trials_per_rung(CLIMB, study)
    assert rungs[0] == 8 and rungs[2] >= 4
    # Each head's best (#1, #3, #4, #6) at the top: #4 dominates every other (equal costs).
    assert {1, 3, 4, 6} <= set(at_top(study))


def test_probes_climb_to_the_top_carry_their_name_and_count_toward_the_target() -> None:
    heads = ["dfa"] * 6
    mious = [1.0, 2.0, 30.0, 20.0, 25.0, 22.0]  # the probes are the worst at every rung
    first = [{TrialKey.PROBE: "dfa/0"}, {TrialKey.PROBE: "dfa/1"}]
    study = climb(first, heads, mious, n_trials=6)
    new = [t for t in ran(study) if TrialKey.PROMOTED_FROM not in t.user_attrs]
    assert len(new) == 6  # the probes are two of the target's six architectures
    top = at_top(study)
    assert {0, 1, 2} <= set(top)
    for index in (0, 1):
        lineage = [t for t in ran(study) if t.params["architecture"] == index]
        assert [t.user_attrs[TrialKey.PROBE] for t in lineage] == [f"dfa/{index}"] * 3
        assert [t.user_attrs.get(TrialKey.PROMOTED_FOR) for t in lineage] == [
            None, "probe", "probe",
        ]  # fmt: skip


def test_a_study_that_stopped_or_added_first_trials_late_is_refused(tmp_path: Path) -> None:
    stopped = store_full_run(tmp_path / "stopped.db")
    stopped.add_trial(create_trial(
        state=TrialState.PRUNED, params={"x": 0},
        distributions={"x": CategoricalDistribution(list(range(len(ARCHITECTURES))))},
        user_attrs={TrialKey.SPEC: {"head": "dfa"}, TrialKey.CURVE: [[25, 3.0]]},
    ))  # fmt: skip
    with pytest.raises(ValueError, match=r"trials \[8\] were stopped early"):
        load_full_run(stopped)
    late = store_full_run(tmp_path / "late.db")
    late.add_trial(create_trial(
        values=[30.0, 1.0], params={"x": 0},
        distributions={"x": CategoricalDistribution(list(range(len(ARCHITECTURES))))},
        user_attrs={TrialKey.SPEC: {"head": "dfa"}, TrialKey.CURVE: [[25, 1.0], [400, 30.0]],
                    TrialKey.STEPS: 400, TrialKey.REFERENCE: "dfanet_a"},
    ))  # fmt: skip
    with pytest.raises(ValueError, match="an enqueued first trial ran after sampled ones"):
        load_full_run(late)
    failed = store_full_run(tmp_path / "failed.db")
    failed.add_trial(create_trial(state=TrialState.FAIL))
    assert load_full_run(failed).failed == 1 and len(load_full_run(failed).genes) == 8


def test_a_rung_off_the_curve_and_a_scheduled_study_are_refused(tmp_path: Path) -> None:
    run = load_full_run(store_full_run(tmp_path / "full.db"))
    with pytest.raises(ValueError, match=r"trial 0: no evaluation at step 50 .*eval_every"):
        replay(run, reduction=2, min_steps=50)  # rungs 50, 100, 200, 400
    with pytest.raises(ValueError, match="ran under a schedule"):
        load_full_run(store_full_run(tmp_path / "scheduled.db", schedule=True))


def test_the_command_prints_a_row_per_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_full_run(tmp_path / "full.db")
    arguments = ["--storage", str(tmp_path / "full.db"), "--study-name", "full",
                 "--reduction", "4", "2", "--min-steps", "25"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["schedule_replay", *arguments])
    schedule_replay.main()
    out = capsys.readouterr().out
    assert "| 4 | 25 | 25/100/400 | 8 / 4 / 4 | 1700 (53%) | 3 of 4 | -1.5% |" in out
    assert "| 2 | 25 | " in out and "no evaluation at step 50" in out  # 400/2/2/2 = 50: off


# Three heads, one architecture each: (GMAdds, mIoU at 25, 100, 200 and 400 steps). At 25 steps
# they rank as at 400 (b > a > c) by chance: at 100, c leads and b trails (tau -1).
HEADS_CURVES = [(1.0, 10, 20, 28, 30), (2.0, 12, 18, 30, 35), (0.5, 8, 22, 24, 25)]


def test_the_heads_rank_as_at_the_top_budget_from_the_step_after_the_last_disagreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = store_full_run(
        tmp_path / "heads.db", n_trials=3, architectures=HEADS_CURVES,
        steps=(25, 100, 200, 400), heads=["dfa", "bisenet", "icnet"],
    )  # fmt: skip
    run = load_full_run(stored)
    assert run.stratify == "head"
    rankings = bracket_rankings(run)
    assert [r.step for r in rankings] == [25, 100, 200, 400]
    assert rankings[1].best == {"bisenet": 18.0, "dfa": 20.0, "icnet": 22.0}
    assert [r.tau for r in rankings] == pytest.approx([1.0, -1.0, 1.0, 1.0])
    assert settled_step(rankings) == 200
    monkeypatch.setattr(
        sys, "argv", ["schedule_replay", "--storage", str(tmp_path / "heads.db"),
                      "--study-name", "full", "--reduction", "2", "--min-steps", "100"],
    )  # fmt: skip
    schedule_replay.main()
    out = capsys.readouterr().out
    assert "| 100 | 18.0 | 20.0 | 22.0 | -1.00 |" in out
    assert "the heads rank as at 400 steps from step 200 on" in out


def test_no_brackets_or_too_few_give_no_ranking(tmp_path: Path) -> None:
    assert bracket_rankings(load_full_run(store_full_run(tmp_path / "one.db"))) == []
    two = store_full_run(
        tmp_path / "two.db", n_trials=2, architectures=HEADS_CURVES[:2],
        steps=(25, 100, 200, 400), heads=["dfa", "bisenet"],
    )  # fmt: skip
    assert settled_step(bracket_rankings(load_full_run(two))) is None  # 2 heads: no tau


def test_a_step_with_tied_heads_is_not_agreement() -> None:
    def at(step: int, tau: float) -> BracketRanking:
        return BracketRanking(step, {}, tau)

    assert settled_step([at(25, 1.0), at(50, float("nan")), at(100, 1.0)]) == 100
    assert settled_step([at(25, 1.0), at(50, 0.33), at(100, 1.0), at(400, 1.0)]) == 100
