"""The hypervolume against an exact box union, against Optuna's private implementation, and its
history and default reference point on a study."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna._hypervolume import compute_hypervolume

from analysis.hypervolume import default_reference, hypervolume, hypervolume_history
from analysis.load import load_trials
from workbench.record import StudyKey, objective_names


def box_union_volume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact by brute force (minimisation): cut space along every coordinate any point or the
    reference has, and add up the grid cells below the reference that some point covers."""
    if len(points) == 0:
        return 0.0
    axes = [np.unique(np.append(points[:, d], reference[d])) for d in range(points.shape[1])]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        low = np.array([a[i] for a, i in zip(axes, cell, strict=True)])
        high = np.array([a[i + 1] for a, i in zip(axes, cell, strict=True)])
        if np.all(high <= reference) and np.any(np.all(points <= low, axis=1)):
            total += float(np.prod(high - low))
    return total


@st.composite
def fronts(draw: st.DrawFn, max_points: int = 8) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    dims = draw(st.integers(min_value=2, max_value=3))
    maximize = draw(st.lists(st.booleans(), min_size=dims, max_size=dims))
    coordinate = st.integers(min_value=0, max_value=10).map(float)
    points = draw(st.lists(st.tuples(*[coordinate] * dims), min_size=0, max_size=max_points))
    reference = draw(st.tuples(*[coordinate] * dims))
    return np.array(points).reshape(-1, dims), np.array(reference), maximize


@settings(deadline=None)
@given(fronts())
def test_matches_box_union(case: tuple[np.ndarray, np.ndarray, list[bool]]) -> None:
    points, reference, maximize = case
    signs = np.where(maximize, -1.0, 1.0)
    expected = box_union_volume(points * signs, reference * signs)
    assert hypervolume(points, reference, maximize) == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(fronts(max_points=30))
def test_matches_optunas_private_hypervolume(
    case: tuple[np.ndarray, np.ndarray, list[bool]],
) -> None:
    points, reference, maximize = case
    signs = np.where(maximize, -1.0, 1.0)
    losses, bound = points * signs, reference * signs
    inside = losses[np.all(losses <= bound, axis=1)]
    assert hypervolume(points, reference, maximize) == pytest.approx(
        compute_hypervolume(inside, bound)
    )


def test_random_float_fronts_against_optuna() -> None:
    rng = np.random.default_rng(0)
    for dims in (2, 3):
        points = rng.uniform(0, 1, size=(60, dims))
        reference = np.full(dims, 1.1)
        assert hypervolume(points, reference, [False] * dims) == pytest.approx(
            compute_hypervolume(points, reference)
        )


def test_known_values() -> None:
    # Two boxes 2x1 and 1x2 overlapping in a 1x1 square: 3.
    assert hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), [2.0, 2.0], [False, False]) == 3.0
    # mIoU up, GMAdds down: a single trial at 50% and 1 G against (0%, 2 G): 50 x 1.
    assert hypervolume(np.array([[50.0, 1.0]]), [0.0, 2.0], [True, False]) == 50.0
    assert hypervolume(np.empty((0, 3)), [1.0, 1.0, 1.0], [False] * 3) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        hypervolume(np.array([[1.0]]), [2.0], [False])


def _study(values: list[list[float] | None], budget: float | None) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objective_names(latency=True))
    study.set_user_attr(StudyKey.GMADDS_BUDGET, budget)
    for value in values:
        state = optuna.trial.TrialState.COMPLETE if value else optuna.trial.TrialState.PRUNED
        study.add_trial(optuna.create_trial(state=state, values=value))
    return study


def test_history_is_monotone_and_ends_at_the_front_volume() -> None:
    rng = np.random.default_rng(1)
    values = [
        None if i % 5 == 4 else [rng.uniform(20, 70), rng.uniform(0.2, 3), rng.uniform(5, 40)]
        for i in range(30)
    ]
    df = load_trials(_study(values, budget=3.0))
    reference = default_reference(df, {StudyKey.GMADDS_BUDGET: 3.0})
    assert reference.values[:2] == (0.0, 3.0)
    worst_latency = max(v[2] for v in values if v)
    assert reference.values[2] == pytest.approx(1.1 * worst_latency)
    history = hypervolume_history(df, reference.values)
    assert list(history.index) == list(range(30))
    assert (history.diff().dropna() >= -1e-9).all()
    finished = np.array([v for v in values if v])
    expected = hypervolume(finished, reference.values, [True, False, False])
    assert history.iloc[-1] == pytest.approx(expected)


def test_default_reference_without_budget() -> None:
    df = load_trials(_study([[40.0, 2.0, 10.0], [50.0, 4.0, 20.0]], budget=None))
    reference = default_reference(df, {})
    assert reference.values == pytest.approx((0.0, 4.4, 22.0))
    assert all(math.isfinite(v) for v in reference.values)
    assert "worst" in reference.reasons[1]
