"""The Pareto front against its definition, on arrays and on whole studies."""

from __future__ import annotations

import random

import numpy as np
import optuna
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from analysis.load import load_trials
from analysis.pareto import non_dominated, pareto_front
from workbench.record import KIND_SEARCH, Constraint, StudyKey, TrialKey

# Few distinct values make ties and duplicates common, which is where fronts go wrong.
VALUES = st.integers(min_value=0, max_value=4).map(float)


def brute_force_front(points: list[tuple[float, ...]], maximize: list[bool]) -> list[bool]:
    def better_or_equal(a: float, b: float, up: bool) -> bool:
        return a >= b if up else a <= b

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        no_worse = all(better_or_equal(x, y, up) for x, y, up in zip(a, b, maximize, strict=True))
        return no_worse and a != b

    return [not any(dominates(other, point) for other in points) for point in points]


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[list[tuple[float, ...]], list[bool]]:
    dims = draw(st.integers(min_value=1, max_value=4))
    maximize = draw(st.lists(st.booleans(), min_size=dims, max_size=dims))
    points = draw(st.lists(st.tuples(*[VALUES] * dims), min_size=0, max_size=25))
    return points, maximize


@settings(deadline=None)
@given(point_sets())
def test_non_dominated_matches_the_definition(case: tuple[list, list[bool]]) -> None:
    points, maximize = case
    mask = non_dominated(np.array(points, dtype=float).reshape(-1, len(maximize)), maximize)
    assert mask.tolist() == brute_force_front(points, maximize)


@settings(deadline=None)
@given(point_sets(), st.randoms(use_true_random=False))
def test_front_is_order_free_and_keeps_duplicates(
    case: tuple[list, list[bool]], rnd: random.Random
) -> None:
    points, maximize = case
    array = np.array(points, dtype=float).reshape(-1, len(maximize))
    order = list(range(len(points)))
    rnd.shuffle(order)
    mask = non_dominated(array, maximize)
    assert non_dominated(array[order], maximize).tolist() == mask[order].tolist()
    if len(points):
        assert mask.any()
        doubled = non_dominated(np.vstack([array, array]), maximize)
        assert doubled.tolist() == mask.tolist() * 2


@st.composite
def trials(draw: st.DrawFn) -> list[tuple[str, tuple[float, float] | None]]:
    kinds = st.sampled_from(["feasible", "infeasible", "pruned", "failed", "running"])
    values = st.tuples(VALUES, VALUES)
    return draw(st.lists(st.tuples(kinds, values), min_size=0, max_size=15))


@settings(max_examples=60, deadline=None)
@given(trials())
def test_study_front_uses_only_feasible_finished_trials(cases: list) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(StudyKey.KIND, KIND_SEARCH)
    for kind, (miou, gmadds) in cases:
        if kind in ("feasible", "infeasible"):
            over = kind == "infeasible"
            study.add_trial(
                optuna.create_trial(
                    values=[0.0 if over else miou, gmadds],
                    user_attrs={TrialKey.INFEASIBLE: over},
                    constraints={Constraint.GMADDS: 1.0 if over else -1.0},
                )
            )
        else:
            state = {"pruned": TrialState.PRUNED, "failed": TrialState.FAIL}.get(kind)
            study.add_trial(optuna.create_trial(state=state or TrialState.RUNNING))
    df = load_trials(study)
    feasible = [(n, v) for n, (k, v) in enumerate(cases) if k == "feasible"]
    expected = [
        n
        for (n, _), on in zip(
            feasible, brute_force_front([v for _, v in feasible], [True, False]), strict=True
        )
        if on
    ]
    assert sorted(pareto_front(df)["number"]) == expected
