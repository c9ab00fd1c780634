"""The multi-fidelity schedule: who is promoted (hand-set rung results on a real SQLite
storage), and real studies in subprocesses whose promoted trials continue their checkpoints,
with several workers and after an interrupted rung."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from experiments.config import compose_config, compose_option
from experiments.research import schedule_sizing
from experiments.study.progress import count_trials, progress_line
from experiments.study.proposers import SpaceProposer
from experiments.study.schedule import (
    Schedule,
    ScheduleConfig,
    crowding_distance,
    top_ranked,
)
from experiments.study.setup import prepare
from search_space.cost import count_madds
from search_space.space import load_space
from search_space.spec import HEADS
from tests.support import (
    command_group,
    merged,
    run_command,
    tiny_budget,
    trial_running,
    wait_until,
)
from workbench.record import ScheduleKey, StudyKey, TrialKey

DIRECTIONS = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)


def schedule(stratify: str | None = None) -> Schedule:
    return Schedule((25, 100, 400), 3, stratify, DIRECTIONS)


def stored_study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path}/hand.db", directions=["maximize", "minimize"]
    )


def add(
    study: optuna.Study,
    miou: float,
    gmadds: float,
    *,
    rung: int = 0,
    head: str = "dfa",
    state: TrialState = TrialState.COMPLETE,
    **attrs: object,
) -> int:
    """A trial as the study stores one: its values at its rung, its genes, its rung."""
    study.add_trial(
        create_trial(
            state=state,
            values=[miou, gmadds] if state == TrialState.COMPLETE else None,
            params={"head": head},
            distributions={"head": CategoricalDistribution(["dfa", "aspp", "icnet"])},
            user_attrs={TrialKey.SPEC: {"head": head}, TrialKey.RUNG: rung, **attrs},
        )
    )
    return len(study.get_trials()) - 1


def test_rungs_divide_the_recipe_down_to_the_first_budget() -> None:
    assert ScheduleConfig(True, 4, 25, None, True, 0).rungs(400) == (25, 100, 400)
    assert ScheduleConfig(True, 3, 20, "head", True, 0).rungs(180) == (20, 60, 180)
    assert ScheduleConfig(True, 4, 2500, None, True, 0).rungs(40000) == (2500, 10000, 40000)
    assert ScheduleConfig(True, 3, 500, None, True, 0).rungs(500) == (500,)
    with pytest.raises(ValueError, match=r"min_steps=50 is above trainer\.steps=40"):
        ScheduleConfig(True, 3, 50, None, True, 0).rungs(40)
    with pytest.raises(ValueError, match=r"study\.schedule\.reduction must be >= 2"):
        ScheduleConfig(True, 1, 25, None, True, 0)
    with pytest.raises(ValueError, match=r"study\.schedule\.probes must be >= 0, got -1"):
        ScheduleConfig(True, 3, 25, None, True, -1)


def test_the_top_third_of_a_rung_is_promoted_by_non_dominated_sorting(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    # Six trials at rung 0, a third of them promoted: two places.
    for m, g in [(30, 0.2), (25, 0.1), (20, 0.3), (24, 0.15), (10, 0.05), (5, 0.4)]:
        add(study, m, g)
    trials = study.get_trials()
    # #0 (best), #1 and #4 (cheapest) are non-dominated: three for two places, and crowding
    # keeps the two ends of the front, not the middle one.
    assert {p.parent.number for p in schedule().promotable(trials, 0, closed=False)} == {0, 4}
    first = schedule().next_promotion(trials, sampling_done=False)
    assert first is not None and first.rung == 1 and first.parent.number in (0, 4)
    assert first.user_attrs()[TrialKey.PROMOTED_FROM] == first.parent.number


def test_a_promotion_is_taken_once(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    for m, g in [(30, 0.2), (25, 0.1), (20, 0.3)]:
        add(study, m, g)
    # Three at rung 0: one place. #1 and #0 tie on the front (two points: both extremes);
    # the older one wins.
    assert schedule().next_promotion(study.get_trials(), sampling_done=False).parent.number == 0
    add(study, 0, 0, rung=1, state=TrialState.RUNNING, **{TrialKey.PROMOTED_FROM: 0})
    # Nothing else earns a place.
    assert schedule().next_promotion(study.get_trials(), sampling_done=False) is None
    # Asynchronous: three more arrive, a second place opens at once, no rung waits to fill.
    best = add(study, 40, 0.05)  # dominates every other
    add(study, 1, 1.0)
    add(study, 2, 1.0)
    promotion = schedule().next_promotion(study.get_trials(), sampling_done=False)
    assert promotion is not None and promotion.parent.number == best


def test_the_steps_left_count_each_rungs_floor_less_the_promotions_made(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    heads3 = Schedule((20, 60, 180), 3, "head", DIRECTIONS)
    # Five architectures of two heads at rung 0, five more to come: the first rung will hold
    # 10, so rung 1 takes at least max(2 heads, 10 // 3) = 3 and rung 2 max(2, 3 // 3) = 2.
    for m, head in [(10, "dfa"), (12, "dfa"), (9, "icnet"), (11, "icnet"), (8, "icnet")]:
        add(study, m, 0.1, head=head)
    # A duplicate and an infeasible trial trained nothing and hold no rung.
    add(study, 12, 0.1, **{TrialKey.DUPLICATE_OF: 1})
    add(study, 0, 0.0, **{TrialKey.INFEASIBLE: True})
    assert heads3.least_steps_left(study.get_trials(), 5) == 5 * 20 + 3 * 40 + 2 * 120
    # One promotion to rung 1 made; a running one is not made yet.
    add(study, 20, 0.1, rung=1, head="dfa", **{TrialKey.PROMOTED_FROM: 1})
    add(study, 0, 0.1, rung=1, state=TrialState.RUNNING, **{TrialKey.PROMOTED_FROM: 3})
    assert heads3.least_steps_left(study.get_trials(), 5) == 5 * 20 + 2 * 40 + 2 * 120
    # With no architecture to come, the first rung holds its 5: rung 1 takes max(2, 5 // 3).
    assert heads3.least_steps_left(study.get_trials(), 0) == 1 * 40 + 2 * 120
    # More promotions than the floor (a closed rung's front): the rung above counts from them,
    # and the one still running counts whole beside them.
    for number in (0, 2, 4):
        add(study, 15, 0.1, rung=1, head="icnet", **{TrialKey.PROMOTED_FROM: number})
    assert heads3.least_steps_left(study.get_trials(), 5) == 5 * 20 + 40 + max(2, 5 // 3) * 120
    # Without brackets the floor is the top third alone, and at least one.
    one = Schedule((20, 60, 180), 3, None, DIRECTIONS)
    assert one.least_steps_left([], 2) == 2 * 20 + 1 * 40 + 1 * 120


def test_the_steps_left_count_a_closed_rungs_front_not_promoted_yet(tmp_path: Path) -> None:
    """Six architectures done at rung 0, its quota of two promoted and done: the front's third
    member is promotable but not taken yet, so the ETA counts its rung (and the top rung's
    floor), not 0, between the promotions."""
    study = stored_study(tmp_path)
    heads3 = Schedule((20, 60, 180), 3, "head", DIRECTIONS)
    for m, g in [(30, 0.3), (20, 0.2), (10, 0.1), (5, 0.3), (4, 0.3), (3, 0.3)]:
        add(study, m, g)
    assert {p.parent.number for p in heads3.promotable(study.get_trials(), 0, closed=True)} == {
        0,
        1,
        2,
    }
    add(study, 31, 0.3, rung=1, **{TrialKey.PROMOTED_FROM: 0})
    add(study, 11, 0.1, rung=1, **{TrialKey.PROMOTED_FROM: 2})
    assert heads3.least_steps_left(study.get_trials(), 0) == 40 + 120


def test_the_steps_left_count_the_promotions_to_run_and_the_climb_of_references_and_probes(
    tmp_path: Path,
) -> None:
    study = stored_study(tmp_path)
    climbing = Schedule((20, 60, 180), 3, "head", DIRECTIONS, references_to_top=True)
    # Every architecture measured: three DFA at rung 0, the best of them promoted and done.
    for m in (30, 20, 10):
        add(study, m, 0.1)
    add(study, 35, 0.1, rung=1, **{TrialKey.PROMOTED_FROM: 0})
    best = add(study, 40, 0.1, rung=2, **{TrialKey.PROMOTED_FROM: 3})
    assert climbing.least_steps_left(study.get_trials(), 0) == 0  # nothing is left to run
    # A promotion still to run, wider than any floor (a closed rung's front): its rung whole,
    # so the ETA does not read 0 while it trains.
    add(study, 0, 0.1, rung=1, state=TrialState.RUNNING, **{TrialKey.PROMOTED_FROM: 1})
    assert climbing.least_steps_left(study.get_trials(), 0) == 40
    study.tell(best + 1, [25, 0.1])
    # A reference beaten at rung 0 and a probe at rung 1 still climb to the top rung.
    add(study, 5, 0.1, **{TrialKey.REFERENCE: "dfanet_a"})
    add(study, 5, 0.1, rung=1, **{TrialKey.PROBE: "dfa/0", TrialKey.PROMOTED_FROM: 2})
    assert climbing.least_steps_left(study.get_trials(), 0) == (40 + 120) + 120
    # A waiting probe (enqueued, not run yet): its first rung and its whole climb.
    study.enqueue_trial({"head": "aspp"}, user_attrs={TrialKey.PROBE: "aspp/2"})
    assert climbing.least_steps_left(study.get_trials(), 0) == 20 + 2 * (40 + 120) + 120
    # Without references to the top, the reference stops at its rung, as ranked.
    ranked = Schedule((20, 60, 180), 3, "head", DIRECTIONS)
    assert ranked.least_steps_left(study.get_trials(), 0) == 20 + (40 + 120) + 120


def test_a_scheduled_studys_eta_is_in_steps_at_this_commands_rate(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    at_start = count_trials(study)
    # 4 architectures: rung 0 of 20 steps, one promoted on to 60 (it resumed at step 20).
    for m in (10, 12, 9, 11):
        add(study, m, 0.1, **{TrialKey.STEPS: 20, TrialKey.RESUMED_FROM_STEP: 0})
    add(study, 20, 0.1, rung=1, **{TrialKey.PROMOTED_FROM: 1, TrialKey.STEPS: 60,
                                   TrialKey.RESUMED_FROM_STEP: 20})  # fmt: skip
    counts = count_trials(study)
    assert counts.trained_steps == 4 * 20 + 40
    started = time.monotonic() - 60.0  # 120 steps in 60 s: 0.5 s a step
    line = progress_line(counts, 4, started, at_start, steps_left=300)
    assert line.endswith("ETA ~150s")
    # The target's architectures are done, so an ETA in architectures would say 0s.
    assert progress_line(counts, 4, started, at_start).endswith("ETA 0s")
    # Nothing trained by this command yet: no rate to go by.
    assert progress_line(counts, 4, started, counts, steps_left=300).endswith("ETA ?")


def test_a_failed_promotion_is_not_chosen_again(tmp_path: Path) -> None:
    """Training is deterministic: a promotion that raised would raise again. (An interrupted
    or killed one is retried as itself, see the drills below.)"""
    study = stored_study(tmp_path)
    for m, g in [(30, 0.2), (25, 0.3), (20, 0.3)]:
        add(study, m, g)
    assert schedule().next_promotion(study.get_trials(), sampling_done=False).parent.number == 0
    add(study, 0, 0, rung=1, state=TrialState.FAIL, **{TrialKey.PROMOTED_FROM: 0})
    assert schedule().next_promotion(study.get_trials(), sampling_done=False) is None


def test_a_closed_rung_promotes_its_whole_front(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    # Three on the front (#0 best, #1, #4 cheapest), two places by the quota.
    for m, g in [(30, 0.2), (25, 0.1), (20, 0.3), (24, 0.15), (10, 0.05), (5, 0.4)]:
        add(study, m, g)
    trials = study.get_trials()
    assert {p.parent.number for p in schedule().promotable(trials, 0, closed=False)} == {0, 4}
    assert {p.parent.number for p in schedule().promotable(trials, 0, closed=True)} == {0, 1, 4}


def test_first_arrivals_wait_for_their_rung_to_fill_or_close(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    add(study, 30, 0.2)
    add(study, 20, 0.1)
    # Two trials under a reduction of 3: nothing yet while architectures may still arrive.
    assert schedule("head").next_promotion(study.get_trials(), sampling_done=False) is None
    closed = schedule("head").next_promotion(study.get_trials(), sampling_done=True)
    assert closed is not None and closed.parent.number == 0


def test_a_rung_closes_when_every_promotion_into_it_has_run(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    for m, g in [(30, 0.2), (25, 0.3), (20, 0.4)]:  # #0 dominates: the whole front
        add(study, m, g)
    assert schedule().closed_rungs(study.get_trials(), sampling_done=False) == 0
    assert schedule().closed_rungs(study.get_trials(), sampling_done=True) == 1
    add(study, 0, 0, rung=1, state=TrialState.RUNNING, **{TrialKey.PROMOTED_FROM: 0})
    assert schedule().closed_rungs(study.get_trials(), sampling_done=True) == 1
    study.tell(3, [40, 0.2])
    # Rung 1 closed on its one trial: its front (that trial) goes to the top; a failed
    # promotion closes its rung as well, since it is not run again.
    trials = study.get_trials()
    assert schedule().closed_rungs(trials, sampling_done=True) == 2
    promotion = schedule().next_promotion(trials, sampling_done=True)
    assert promotion is not None and (promotion.rung, promotion.parent.number) == (2, 3)
    add(study, 0, 0, rung=2, state=TrialState.FAIL, **{TrialKey.PROMOTED_FROM: 3})
    assert schedule().closed_rungs(study.get_trials(), sampling_done=True) == 3
    assert schedule().next_promotion(study.get_trials(), sampling_done=True) is None


def test_the_highest_rung_is_promoted_first_and_the_top_rung_never(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    for m, g in [(30, 0.2), (25, 0.3), (20, 0.4)]:
        add(study, m, g, rung=0)
    for m, g in [(50, 0.2), (45, 0.3), (40, 0.4)]:
        add(study, m, g, rung=1)
    for m, g in [(70, 0.2), (65, 0.3), (60, 0.4)]:
        add(study, m, g, rung=2)
    promotion = schedule().next_promotion(study.get_trials(), sampling_done=False)
    assert promotion is not None and (promotion.rung, promotion.parent.number) == (2, 3)


def test_stratified_promotion_carries_every_heads_best(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    for m, g in [(30, 0.2), (28, 0.25), (26, 0.3), (24, 0.35), (22, 0.4)]:
        add(study, m, g, head="dfa")
    weak_aspp = add(study, 5, 0.5, head="aspp")
    # Six at rung 0 give two places; DFA holds them. Stratified by head, each head is a bracket:
    # DFA's five give it one place (its best), and ASPP's best (its only trial, dominated by
    # every DFA one) is promoted too, so that the heads meet at the top.
    trials = study.get_trials()
    assert {p.parent.number for p in schedule().promotable(trials, 0, closed=False)} == {0, 1}
    stratified = {p.parent.number for p in schedule("head").promotable(trials, 0, closed=True)}
    assert stratified == {0, weak_aspp}
    # While the rung is open, ASPP's one trial is under its bracket's quota: not carried up
    # for being early.
    assert {p.parent.number for p in schedule("head").promotable(trials, 0, closed=False)} == {0}


def test_infeasible_and_duplicate_trials_never_compete(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    add(study, 99, 0.01, **{TrialKey.INFEASIBLE: True})
    add(study, 99, 0.01, **{TrialKey.DUPLICATE_OF: 5})
    for m, g in [(30, 0.2), (25, 0.3), (20, 0.4)]:
        add(study, m, g)
    promotable = schedule().promotable(study.get_trials(), 0, closed=False)
    assert [p.parent.number for p in promotable] == [2]


def test_crowding_distance_keeps_the_ends_and_measures_the_gaps() -> None:
    losses = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    distance = crowding_distance(losses)
    assert np.isinf(distance[[0, 3]]).all()
    # #1: its neighbours are 3 apart on x and 3 apart on y (spans 4); #2: 3 on x, 2 on y.
    assert distance[1] == pytest.approx(3 / 4 + 3 / 4)
    assert distance[2] == pytest.approx(3 / 4 + 2 / 4)


def test_top_ranked_takes_whole_fronts_first(tmp_path: Path) -> None:
    study = stored_study(tmp_path)
    for m, g in [(30, 0.3), (20, 0.1), (25, 0.35), (15, 0.2), (10, 0.5)]:
        add(study, m, g)
    ranked = [t.number for t in top_ranked(study.get_trials(), 4, DIRECTIONS)]
    assert sorted(ranked[:2]) == [0, 1]  # the first front, whole
    assert sorted(ranked[2:]) == [2, 3]  # then the second


def test_a_schedule_and_early_stopping_are_not_both_allowed(
    synthetic_root: Path, tmp_path: Path
) -> None:
    config = compose_config(
        "search",
        merged("+study=demo", *tiny_budget(synthetic_root, tmp_path),
               "study.schedule.enabled=true", "study.early_stopping.enabled=true"),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"study\.schedule\.enabled and study\.early_stopping"):
        prepare(config)


# ------------------------------------------------------------------------ real studies
def scheduled_arguments(root: Path, tmp_path: Path, *overrides: str) -> list[str]:
    """A tiny scheduled study: rungs of 2, 4 and 8 steps, promotion of the top half."""
    return merged(
        "+study=demo", *tiny_budget(root, tmp_path), "study.name=tiny", "study.n_trials=5",
        "study.reference_designs=[xception_b]", "study.first_trials_per_head=0",
        "study.latency.measure=false", "space=dfanet", "sampler=random", "trainer.steps=8",
        "trainer.eval_every=0", "study.schedule.enabled=true", "study.schedule.min_steps=2",
        "study.schedule.reduction=2", "study.schedule.probes=0", "study.n_workers=1",
        *overrides,
    )  # fmt: skip


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/studies.db")


def check_lineages(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Every complete promotion continued its parent's training: it started at the parent's
    step, its curve extends the parent's, its rung results extend the parent's; no parent was
    promoted twice. Returns the promotions."""
    trials = study.get_trials()
    promotions = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and TrialKey.PROMOTED_FROM in t.user_attrs
    ]
    parents = [t.user_attrs[TrialKey.PROMOTED_FROM] for t in promotions]
    assert len(parents) == len(set(parents)), "a trial was promoted twice"
    rungs = study.user_attrs[StudyKey.SCHEDULE]["rungs"]
    for child in promotions:
        parent = trials[child.user_attrs[TrialKey.PROMOTED_FROM]].user_attrs
        mine = child.user_attrs
        assert mine[TrialKey.RUNG] == parent[TrialKey.RUNG] + 1
        assert mine[TrialKey.RESUMED_FROM_STEP] == parent[TrialKey.STEPS]
        assert mine[TrialKey.STEPS] == rungs[mine[TrialKey.RUNG]]
        assert mine[TrialKey.CURVE][:-1] == parent[TrialKey.CURVE]
        assert mine[TrialKey.RUNG_RESULTS][:-1] == parent[TrialKey.RUNG_RESULTS]
        assert mine[TrialKey.SPEC] == parent[TrialKey.SPEC]
        # Its costs are its parent's: latency is measured once per architecture.
        assert child.values[1:] == trials[child.user_attrs[TrialKey.PROMOTED_FROM]].values[1:]
    return promotions


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["study.n_workers=2"],
        # Latency as a third objective (measured once per architecture) and a GMAdds budget.
        ["study.latency_objective=true", "study.latency.measure=true", "study.gmadds_budget=0.02"],
    ],
    ids=["two workers", "latency objective and budget"],
)
def test_a_scheduled_study_promotes_and_continues_checkpoints(
    synthetic_root: Path, tmp_path: Path, overrides: list[str]
) -> None:
    result = run_command(
        "experiments.search", *scheduled_arguments(synthetic_root, tmp_path, *overrides)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(TrialKey.INFEASIBLE):  # never trained, never promoted
            assert TrialKey.STEPS not in trial.user_attrs
            assert trial.user_attrs[TrialKey.GMADDS] > 0.02
    # The DFA space has one head: no brackets by head (each would be the whole study).
    assert study.user_attrs[StudyKey.SCHEDULE] == {
        "rungs": [2, 4, 8], "reduction": 2, "stratify": None, "references_to_top": True,
        "probes": 0,
    }  # fmt: skip
    promotions = check_lineages(study)
    assert promotions, "nothing was promoted"
    new = [t for t in study.get_trials() if TrialKey.PROMOTED_FROM not in t.user_attrs]
    assert len([t for t in new if t.state == TrialState.COMPLETE]) >= 5
    # The study ended with every rung settled: nothing left to promote.
    setup = prepare(
        compose_config("search", scheduled_arguments(synthetic_root, tmp_path, *overrides))
    )
    assert setup.schedule is not None
    assert setup.schedule.next_promotion(study.get_trials(), sampling_done=True) is None
    assert (
        "Multi-fidelity schedule"
        in (tmp_path / "outputs" / "reports" / "tiny" / "report.md").read_text()
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_rung_is_retried_from_the_checkpoint_below(
    synthetic_root: Path, tmp_path: Path, signum: int
) -> None:
    """Ctrl-C fails the promotion and enqueues it again; a SIGKILL leaves it to the heartbeat,
    which fails it and retries it on the next start. Either way the retry is the same
    promotion, and it resumes the checkpoint below."""
    # Rungs of 2 and 400 steps; in the heads space the one architecture is its head's best,
    # promoted, and caught on its long rung.
    arguments = scheduled_arguments(
        synthetic_root, tmp_path, "space=heads", "trainer.steps=400",
        "study.schedule.reduction=200", "study.n_trials=1", "storage.heartbeat_interval=1",
        "storage.grace_period=3",
    )  # fmt: skip
    with command_group("experiments.search", *arguments) as process:
        database = tmp_path / "studies.db"
        promoted = lambda: trial_running(database, TrialKey.RESUMED_FROM_STEP)  # noqa: E731
        wait_until(promoted, timeout=120, what="a promoted trial to train")
        process.send_signal(signum)
        process.communicate(timeout=120)
    assert process.returncode == (130 if signum == signal.SIGINT else -signal.SIGKILL)
    trials = load(tmp_path).get_trials()
    interrupted = [t for t in trials if TrialKey.PROMOTED_FROM in t.user_attrs]
    assert [t.state for t in interrupted] == (
        [TrialState.FAIL, TrialState.WAITING] if signum == signal.SIGINT else [TrialState.RUNNING]
    )
    # The schedule defines the study: a resume that changes it is refused, naming it.
    changed = run_command("experiments.search", *merged(*arguments, "study.schedule.reduction=4"))
    assert changed.returncode == 2 and "study.schedule.reduction" in changed.stderr
    time.sleep(4)  # the grace period passes without a heartbeat
    result = run_command("experiments.search", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    assert study.get_trials()[interrupted[0].number].state == TrialState.FAIL
    (retry,) = check_lineages(study)
    assert retry.user_attrs[TrialKey.PROMOTED_FROM] == 0
    assert retry.user_attrs[TrialKey.RESUMED_FROM_STEP] == 2
    assert retry.user_attrs[TrialKey.STEPS] == 400


def test_the_sizing_replay_carries_every_heads_best_to_the_top() -> None:
    counts = schedule_sizing.simulate(schedule("head"), architectures=12, seed=0).counts
    assert counts[0] == 12  # every architecture measured at the first rung
    assert counts[0] > counts[1] >= counts[2] >= len(HEADS)  # fewer each rung; a head's best


def test_the_sizing_counts_what_the_studys_references_and_probes_cost() -> None:
    config = compose_config("search", ["+study=cityscapes"])
    climbing = Schedule((20, 60, 180), 3, "head", DIRECTIONS, references_to_top=True, probes=4)
    first = schedule_sizing.study_first_trials(config, climbing)
    marks = [next(iter(attrs)) for _, attrs in first]
    assert marks.count(TrialKey.REFERENCE) == len(config["study"]["reference_designs"])
    assert marks.count(TrialKey.PROBE) == 4
    spent = schedule_sizing.simulate(climbing, architectures=40, seed=0, first_trials=first)
    assert spent.counts[0] == 40
    # Every reference and probe climbs the three rungs: 180 steps each.
    assert spent.references == 6 * 180 and spent.probes == 4 * 180
    assert spent.steps == 40 * 20 + 40 * spent.counts[1] + 120 * spent.counts[2]
    # Ranked like any trial, on the same results, fewer of them climb: the study trains less.
    unmarked, plain_first = schedule_sizing.without_marks(climbing, first)
    plain = schedule_sizing.simulate(unmarked, architectures=40, seed=0, first_trials=plain_first)
    assert plain.probes == 0 and plain.references < spent.references
    assert plain.counts[0] == 40 and plain.steps < spent.steps


def test_probes_are_seeded_pairs_per_bracket_apart_from_every_other_first_trial() -> None:
    space = load_space(compose_option("space", "heads"))

    def proposer(**changes: Any) -> SpaceProposer:
        settings: dict[str, Any] = {
            "seed": 0,
            "reference_designs": ("dfanet_a", "aspp_backbone_a"),
            "first_trials_per_head": 2,
            "probes": 10,
            "bracket_gene": "head",
        }
        return SpaceProposer(space, **{**settings, **changes})

    def probes(first: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
        return [(params, attrs) for params, attrs in first if TrialKey.PROBE in attrs]

    first = proposer().initial_trials()
    drawn = probes(first)
    # Probes 2k and 2k + 1 in bracket k mod 4: pairs within a head, the heads in turn.
    labels = [attrs[TrialKey.PROBE] for _, attrs in drawn]
    assert labels == ["dfa/0", "dfa/1", "aspp/2", "aspp/3", "icnet/4", "icnet/5",
                      "bisenet/6", "bisenet/7", "dfa/8", "dfa/9"]  # fmt: skip
    assert [params["head"] for params, _ in drawn] == [label.split("/")[0] for label in labels]
    every = [params for params, _ in first]
    assert all(every.count(params) == 1 for params in every)  # distinct architectures
    # Seeded by the study's seed alone: the same whatever else is enqueued before them (and
    # no result is read), other for another seed.
    assert probes(proposer(reference_designs=(), first_trials_per_head=0).initial_trials()) == drawn
    assert probes(proposer(seed=1).initial_trials()) != drawn

    # Under a GMAdds budget every first draw and probe is within it (drawn again otherwise),
    # where the unbounded draws were not: none is lost as infeasible.
    def gmadds(params: dict[str, Any]) -> float:
        return count_madds(space.suggest(optuna.trial.FixedTrial(params))).gmadds

    budget = 4.0  # at the space's 1024x1024: these draws span 1.1-7.2 GMAdds
    assert any(gmadds(params) > budget for params, _ in drawn)
    bounded = proposer(gmadds_budget=budget).initial_trials()
    assert [attrs for _, attrs in bounded] == [attrs for _, attrs in first]
    within = [params for params, attrs in bounded if TrialKey.REFERENCE not in attrs]
    assert all(gmadds(params) <= budget for params in within)
    # Without brackets, one bracket; with no head varied, the probes are drawn all the same.
    single = probes(proposer(bracket_gene=None, probes=2).initial_trials())
    assert [attrs[TrialKey.PROBE] for _, attrs in single] == ["all/0", "all/1"]
    with pytest.raises(ValueError, match=r"study\.schedule\.stratify='widths'"):
        proposer(bracket_gene="widths").initial_trials()


def test_a_target_below_the_first_trials_is_raised_saying_so(
    synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = compose_config(
        "search",
        merged("+study=demo", *tiny_budget(synthetic_root, tmp_path), "study.n_trials=4",
               "study.schedule.enabled=true", "study.schedule.min_steps=2"),
    )  # fmt: skip
    setup = prepare(config)
    # The demo's 6 references, a draw for each of 3 heads and 2 probes.
    assert setup.settings.n_trials == 11 == len(setup.proposer.initial_trials())
    assert setup.schedule is not None and setup.schedule.describe()[ScheduleKey.PROBES] == 2
    assert (
        "study.n_trials=4 is below the 11 first trials (6 reference designs, 3 first draws per "
        "head, 2 probes): raised to 11"
    ) in caplog.text
