"""Parameter importance per objective, or a note saying why there is none.

Optuna's evaluators read every COMPLETE trial, and an over-budget trial is COMPLETE with a
placeholder mIoU: it would rank as the worst architecture without ever being trained. So the
importances are computed on a copy of the study in memory that holds only the trials given
(the feasible finished ones).

The evaluator is PED-ANOVA, named rather than left to the default: it needs neither scikit-learn
(fANOVA does) nor scipy, and it reads conditional parameters (the head-specific genes). It
treats lower targets as better, so maximised objectives are negated.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from analysis.load import study_objectives

# Fewer finished trials than this give importances that reflect noise more than the space.
MIN_TRIALS = 8
# PED-ANOVA compares the best trials against all of them; the default top decile is one or two
# trials in a study of a few dozen, the top quartile a steadier sample.
TARGET_QUANTILE = 0.25


@dataclass(frozen=True)
class Importance:
    objective: str
    values: dict[str, float] = field(default_factory=dict)
    note: str | None = None


def param_importances(study: optuna.Study, trial_numbers: Collection[int]) -> list[Importance]:
    """One entry per objective: normalised importances (largest first), or a note."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in trial_numbers]
    objectives = study_objectives(study)
    varied = {name for name in {n for t in trials for n in t.params} if _distinct(trials, name) > 1}
    note = None
    if len(trials) < MIN_TRIALS:
        note = f"needs at least {MIN_TRIALS} feasible finished trials; the study has {len(trials)}"
    elif not varied:
        note = "every parameter took a single value in the finished trials"
    if note is not None:
        return [Importance(objective.name, note=note) for objective in objectives]
    with _quiet_optuna():
        judged = optuna.create_study(directions=study.directions)
        judged.add_trials(trials)
    return [
        _importance(judged, index, objective.name, objective.maximize, sorted(varied))
        for index, objective in enumerate(objectives)
    ]


def _importance(
    study: optuna.Study, index: int, name: str, maximize: bool, params: list[str]
) -> Importance:
    sign = -1.0 if maximize else 1.0
    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns that it minimises the target (we negate) and when its quantiles
            # select the same trials (the result is then all zeros, reported below).
            warnings.simplefilter("ignore")
            values = get_param_importances(
                study,
                evaluator=PedAnovaImportanceEvaluator(target_quantile=TARGET_QUANTILE),
                params=params,
                target=lambda trial: sign * trial.values[index],
            )
    except (RuntimeError, ValueError) as error:
        return Importance(name, note=f"could not be computed: {error}")
    if not any(values.values()):
        return Importance(name, note="no parameter separates the best trials from the rest")
    return Importance(name, values=dict(values))


def _distinct(trials: Collection[optuna.trial.FrozenTrial], name: str) -> int:
    return len({repr(t.params[name]) for t in trials if name in t.params})


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Creating the in-memory copy logs at INFO; the caller's verbosity is restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
