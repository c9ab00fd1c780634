"""The scheduling rule (`experiments.study.rule.decide`) on hand-set trials in a real Optuna
study: each decision a free worker can take, and what it takes it on. (The rule driving real
studies: `test_study_schedule`, `test_study_faults`, `test_postgres`; replayed on a real
schedule run, trial by trial: `test_research_schedule`.)"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from experiments.study.rule import (
    MAX_REPEATS,
    Abort,
    Decision,
    RunEnqueued,
    StartNew,
    Stop,
    Wait,
    decide,
)
from experiments.study.schedule import Promotion, Schedule
from workbench.record import TrialKey

DIRECTIONS = (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)
SCHEDULE = Schedule((25, 100, 400), 3, None, DIRECTIONS)  # the top third promoted


def new_study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"])


def add(
    study: optuna.Study,
    miou: float = 10.0,
    gmadds: float = 1.0,
    *,
    state: TrialState = TrialState.COMPLETE,
    rung: int = 0,
    **attrs: object,
) -> int:
    """An architecture as the study stores one (its genes, its rung), or a promotion of one."""
    study.add_trial(
        create_trial(
            state=state,
            values=[miou, gmadds] if state == TrialState.COMPLETE else None,
            params={"x": 0},
            distributions={"x": CategoricalDistribution([0, 1])},
            user_attrs={TrialKey.SPEC: {"head": "dfa"}, TrialKey.RUNG: rung, **attrs},
        )
    )
    return len(study.get_trials()) - 1


def enqueue(study: optuna.Study, **attrs: object) -> int:
    """A waiting trial, as the study enqueues a first trial, a promotion or a retry."""
    study.enqueue_trial({"x": 0}, user_attrs=attrs)
    return len(study.get_trials()) - 1


def run_waiting(study: optuna.Study, miou: float, gmadds: float) -> None:
    """The oldest waiting trial run to its first rung, as a worker runs it."""
    trial = study.ask()
    trial.set_user_attr(TrialKey.SPEC, {"head": "dfa"})
    trial.set_user_attr(TrialKey.RUNG, 0)
    study.tell(trial, [miou, gmadds])


def decision(
    study: optuna.Study,
    n_trials: int,
    schedule: Schedule | None = SCHEDULE,
    *,
    heartbeats: bool = True,
    failed_since_start: int = 0,
    repeats: int = 0,
) -> Decision:
    return decide(
        study.get_trials(),
        n_trials=n_trials,
        schedule=schedule,
        heartbeats=heartbeats,
        failed_since_start=failed_since_start,
        max_failed_trials=3,
        repeats=repeats,
    )


def test_a_promotion_comes_before_a_new_architecture() -> None:
    study = new_study()
    add(study, 30, 0.2)
    add(study, 25, 0.3)
    assert decision(study, n_trials=10) == StartNew()  # two under a reduction of 3: none yet
    add(study, 20, 0.4)
    assert decision(study, n_trials=10) == Promotion(study.get_trials()[0], 1, "quota")
    # Without a schedule there is nothing to promote.
    assert decision(study, n_trials=10, schedule=None) == StartNew()


def test_the_first_rung_closes_once_every_architecture_is_sampled() -> None:
    study = new_study()
    add(study, 30, 0.2)
    add(study, 20, 0.1)
    # Two trials: while more may arrive, nothing; at the target their whole front goes up.
    assert decision(study, n_trials=3) == StartNew()
    assert decision(study, n_trials=2) == Promotion(study.get_trials()[0], 1, "front")
    # Not while an architecture still trains to the first rung (beyond the target, a retry).
    add(study, state=TrialState.RUNNING, **{TrialKey.RETRY_OF: 0})
    assert decision(study, n_trials=2) == Wait()


def test_enqueued_first_trials_run_before_any_promotion_is_chosen() -> None:
    study = new_study()
    for miou, gmadds in [(30, 0.2), (25, 0.3), (20, 0.4)]:
        add(study, miou, gmadds)
    first = enqueue(study, **{TrialKey.REFERENCE: "dfanet_a"})
    enqueue(study, **{TrialKey.REFERENCE: "dfanet_b"})
    assert decision(study, n_trials=10) == RunEnqueued(first)  # the oldest one waiting
    # At the target too: an enqueued trial runs whatever the target, so none is left waiting
    # and the rung closes on every result.
    assert decision(study, n_trials=3) == RunEnqueued(first)
    run_waiting(study, 35, 0.3)
    run_waiting(study, 5, 0.5)
    # #0 and the first reference (35 at 0.3) share the front: one place, the older end.
    assert decision(study, n_trials=3) == Promotion(study.get_trials()[0], 1, "quota")
    assert {p.parent.number for p in SCHEDULE.promotable(study.get_trials(), 0, closed=True)} == {
        0,
        first,
    }


def test_a_target_below_the_first_trials_runs_them_and_closes_the_first_rung() -> None:
    """`+study=demo study.n_trials=6` with 8 first trials: the 2 beyond the target ran (none
    waits to hold the first rung open), and the closed rung promotes its front."""
    study = new_study()
    for miou, gmadds in [(30, 0.2), (25, 0.1), (20, 0.3), (24, 0.15), (10, 0.05), (5, 0.4)]:
        add(study, miou, gmadds)
    last = [enqueue(study, **{TrialKey.FIRST_DRAW: f"dfa/{i}"}) for i in range(2)]
    assert decision(study, n_trials=6) == RunEnqueued(last[0])
    for _ in last:
        run_waiting(study, 1, 0.9)
    # Closed: the quota of 8 (#0 and #4, the ends of the front), then the rest of the front.
    assert decision(study, n_trials=6) == Promotion(study.get_trials()[0], 1, "quota")
    for parent in (0, 4):
        add(study, 40, 0.1, rung=1, **{TrialKey.PROMOTED_FROM: parent})
    assert decision(study, n_trials=6) == Promotion(study.get_trials()[1], 1, "front")


def test_a_waiting_promotion_or_retry_runs_whatever_the_target() -> None:
    study = new_study()
    for miou in (30, 25, 20):
        add(study, miou)
    retry = enqueue(study, **{TrialKey.PROMOTED_FROM: 0, TrialKey.RUNG: 1, TrialKey.RETRY_OF: 2})
    assert decision(study, n_trials=3) == RunEnqueued(retry)
    assert decision(study, n_trials=3, schedule=None, heartbeats=False) == RunEnqueued(retry)


def test_a_worker_waits_for_trials_running_elsewhere_where_heartbeats_notice_a_dead_one() -> None:
    study = new_study()
    add(study, 30, 0.2)
    add(study, 25, 0.3)
    add(study, state=TrialState.RUNNING)
    # The rest of the target runs elsewhere: its host may die, and the retry runs here.
    assert decision(study, n_trials=3, schedule=None) == Wait()
    # A journal file notices no dead host: nothing to wait for.
    assert decision(study, n_trials=3, schedule=None, heartbeats=False) == Stop()
    # Past the target a running trial may earn a promotion: with a schedule, wait for it.
    assert decision(study, n_trials=2, schedule=None) == Stop()
    assert decision(study, n_trials=2) == Wait()
    assert decision(study, n_trials=2, heartbeats=False) == Stop()


def test_a_worker_stops_at_the_target_with_nothing_to_promote() -> None:
    study = new_study()
    add(study, 30, 0.2)
    add(study, state=TrialState.PRUNED)  # stopped early: it counts
    add(study, state=TrialState.COMPLETE, **{TrialKey.DUPLICATE_OF: 0})  # it does not
    assert decision(study, n_trials=3, schedule=None) == StartNew()
    add(study, 25, 0.3)
    assert decision(study, n_trials=3, schedule=None) == Stop()
    # Under a schedule the study ends when its rungs are settled: #0 went up, and failed.
    assert decision(study, n_trials=3) == Promotion(study.get_trials()[0], 1, "front")
    add(study, state=TrialState.FAIL, rung=1, **{TrialKey.PROMOTED_FROM: 0})
    assert decision(study, n_trials=3) == Stop()


def test_a_worker_aborts_instead_of_running_a_trial_after_too_many_failures_or_repeats() -> None:
    study = new_study()
    add(study, 30, 0.2)
    assert decision(study, n_trials=3, failed_since_start=2) == StartNew()
    failed = decision(study, n_trials=3, failed_since_start=3)
    assert failed == Abort(
        "3 trials failed since this command started (study.max_failed_trials=3); see their "
        "fail_reason in the report"
    )
    assert decision(study, n_trials=3, repeats=MAX_REPEATS - 1) == StartNew()
    exhausted = decision(study, n_trials=3, repeats=MAX_REPEATS)
    assert isinstance(exhausted, Abort) and "the space looks exhausted" in exhausted.reason
    # A worker with nothing left to run just stops; a waiting trial (it runs whatever the
    # target) is refused.
    assert decision(study, n_trials=1, schedule=None, failed_since_start=3) == Stop()
    enqueue(study, **{TrialKey.REFERENCE: "dfanet_a"})
    assert isinstance(decision(study, n_trials=1, failed_since_start=3), Abort)
