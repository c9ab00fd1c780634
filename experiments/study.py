"""One trial of a study: sample -> count MAdds -> (infeasible: stop) -> train -> evaluate -> record.

Everything a trial knows goes into its user attributes (the contract `analysis` reads): the
spec, parameters, both MAdds figures, times, throughput, the validation curve, device, versions,
commit, seed, and the reason when it failed or was stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from experiments.data import CityscapesDataset
from experiments.early_stopping import EarlyStoppingConfig, MultiObjectiveStopper
from experiments.runtime import Runtime, environment_facts
from experiments.tracking import TrialTracker
from experiments.trainer import Trainer, TrainerConfig
from search_space.cost import count_madds, fvcore_default_total
from search_space.deploy import DTYPES
from search_space.latency import CHEAP, LatencyResult, measure_latency
from search_space.model import build
from search_space.registry import get_arch
from search_space.space import SearchSpace, SpaceError
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)

LATENCY_OBJECTIVE = "latency_ms"


@dataclass(frozen=True)
class LatencySettings:
    """Measured latency in a study: a third objective, a budget, or only a recorded figure.

    It is measured on the trial's device before training (`search_space.latency`, the CHEAP
    protocol: a few seconds), with the worker's threads, on the deployed path by default: the
    figure a deployment would see.
    """

    objective: bool = False  # study.latency_objective: minimise latency_ms as a third objective
    budget_ms: float | None = None  # study.latency_budget_ms: above it, infeasible, not trained
    measure: bool = False  # study.latency.measure: record it even when neither of the above
    batch: int = 1
    fast_path: bool = True
    dtype: str = "fp32"

    @property
    def enabled(self) -> bool:
        return self.objective or self.budget_ms is not None or self.measure

    @classmethod
    def from_study(cls, values: Mapping[str, Any]) -> LatencySettings:
        how = dict(values.get("latency") or {})
        unknown = set(how) - {"measure", "batch", "fast_path", "dtype"}
        if unknown:
            raise ValueError(
                f"study.latency has unknown keys {sorted(unknown)}; expected measure, batch, "
                "fast_path, dtype"
            )
        budget = values.get("latency_budget_ms")
        settings = cls(
            objective=bool(values.get("latency_objective", False)),
            budget_ms=None if budget is None else float(budget),
            measure=bool(how.get("measure", False)),
            batch=int(how.get("batch", 1)),
            fast_path=bool(how.get("fast_path", True)),
            dtype=str(how.get("dtype", "fp32")),
        )
        if settings.budget_ms is not None and settings.budget_ms <= 0:
            raise ValueError(f"study.latency_budget_ms must be > 0, got {settings.budget_ms}")
        if settings.batch < 1:
            raise ValueError(f"study.latency.batch must be >= 1, got {settings.batch}")
        if settings.dtype not in DTYPES:
            raise ValueError(
                f"study.latency.dtype must be one of {list(DTYPES)}, got {settings.dtype!r}"
            )
        return settings


@dataclass(frozen=True)
class StudySettings:
    name: str
    n_trials: int
    n_workers: int
    seed: int
    gmadds_budget: float | None
    reference_designs: tuple[str, ...]
    early_stopping: EarlyStoppingConfig
    max_failed_trials: int
    keep_checkpoints: bool
    latency: LatencySettings = LatencySettings()

    @property
    def objective_names(self) -> list[str]:
        """What a trial returns, in order: mIoU, GMAdds and, when asked for, latency_ms."""
        return ["mIoU", "GMAdds", *([LATENCY_OBJECTIVE] if self.latency.objective else [])]

    @property
    def directions(self) -> list[str]:
        return ["maximize", *["minimize"] * (len(self.objective_names) - 1)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> StudySettings:
        settings = cls(
            name=str(values["name"]),
            n_trials=int(values["n_trials"]),
            n_workers=int(values.get("n_workers", 1)),
            seed=int(values.get("seed", 0)),
            gmadds_budget=(
                None if values.get("gmadds_budget") is None else float(values["gmadds_budget"])
            ),
            reference_designs=tuple(values.get("reference_designs", ())),
            early_stopping=EarlyStoppingConfig.from_dict(values.get("early_stopping", {})),
            max_failed_trials=int(values.get("max_failed_trials", 10)),
            keep_checkpoints=bool(values.get("keep_checkpoints", True)),
            latency=LatencySettings.from_study(values),
        )
        for field in ("n_trials", "n_workers", "max_failed_trials"):
            if getattr(settings, field) < 1:
                raise ValueError(f"study.{field} must be >= 1, got {getattr(settings, field)}")
        return settings


class Proposer(Protocol):
    """Where a study's architectures come from: a search space, or an ablation's grid."""

    def propose(self, trial: optuna.Trial) -> tuple[ArchSpec, int]:
        """The trial's architecture and training seed."""
        ...

    def initial_trials(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(params, user attrs) to enqueue when the study is new."""
        ...

    def study_attrs(self) -> dict[str, Any]:
        """What describes this kind of study in its user attributes."""
        ...


@dataclass(frozen=True)
class SpaceProposer:
    """A search: the sampler explores the space; the paper's designs come first."""

    space: SearchSpace
    seed: int
    reference_designs: tuple[str, ...]

    def propose(self, trial: optuna.Trial) -> tuple[ArchSpec, int]:
        return self.space.suggest(trial), self.seed

    def initial_trials(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        trials = []
        for name in self.reference_designs:
            spec = get_arch(name).replace(input_size=self.space.base.input_size)
            try:
                trials.append((self.space.params_for(spec), {"reference": name}))
            except SpaceError as error:
                log.warning("%s is not enqueued: %s", name, error)
        return trials

    def study_attrs(self) -> dict[str, Any]:
        return {"kind": "search", "space": self.space.name}


@dataclass
class TrialContext:
    """What every trial of one worker shares: built once, before the first trial."""

    settings: StudySettings
    proposer: Proposer
    trainer_config: TrainerConfig
    train_set: CityscapesDataset
    val_set: CityscapesDataset
    num_classes: int
    runtime: Runtime
    tracker: TrialTracker
    output_dir: Path


def run_trial(trial: optuna.Trial, context: TrialContext) -> tuple[float, ...]:
    """The objective. Any error is recorded on the trial (`fail_reason`) before Optuna
    stores it as FAIL and the study goes on."""
    try:
        return _run_trial(trial, context)
    except optuna.TrialPruned:
        raise
    except Exception as error:
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
        raise


def _run_trial(trial: optuna.Trial, context: TrialContext) -> tuple[float, ...]:
    settings = context.settings
    spec, seed = context.proposer.propose(trial)
    cost = count_madds(spec, context.num_classes)
    attrs: dict[str, Any] = {
        "spec": spec.to_dict(),
        "n_params": cost.params,
        "madds": cost.madds,
        "gmadds": cost.gmadds,
        "seed": seed,
        **environment_facts(context.runtime.device),
    }
    costs = {"gmadds": cost.gmadds}
    if settings.latency.enabled:
        latency = _measure_latency(spec, settings.latency, context)
        attrs["latency"] = latency.to_dict()
        costs[LATENCY_OBJECTIVE] = attrs[LATENCY_OBJECTIVE] = latency.median_ms
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    values = (cost.gmadds, *([costs[LATENCY_OBJECTIVE]] if settings.latency.objective else []))
    if _breaks_a_budget(trial, settings, costs):
        # Never trained: 0.0 is a placeholder the analysis never reads as a measurement.
        return 0.0, *values

    tracker = context.tracker
    tracker.start(settings.name, trial.number, {**attrs, "params": trial.params})
    state = "FAIL"
    try:
        trial.set_user_attr("fvcore_total", fvcore_default_total(spec, context.num_classes))
        result = _train(trial, spec, seed, costs, context)
        state = "COMPLETE"
    except optuna.TrialPruned:
        state = "PRUNED"
        raise
    finally:
        tracker.finish(costs, state)
        if context.runtime.device.type == "cuda":
            torch.cuda.empty_cache()
    miou = 100.0 * result.scores.miou
    for key, value in {
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "per_class_iou": [None if v != v else 100.0 * v for v in result.scores.per_class_iou],
    }.items():
        trial.set_user_attr(key, value)
    tracker.log({"mIoU": miou, "GMAdds": cost.gmadds})
    return miou, *values


def _measure_latency(spec: ArchSpec, how: LatencySettings, context: TrialContext) -> LatencyResult:
    # Random weights: they do not change the time. measure_latency leaves the RNG alone, so
    # the trial's training seed means the same with or without latency.
    return measure_latency(
        spec,
        device=context.runtime.device,
        batch=how.batch,
        dtype=how.dtype,
        fast=how.fast_path,
        num_classes=context.num_classes,
        protocol=CHEAP,
    )


def _breaks_a_budget(trial: optuna.Trial, settings: StudySettings, costs: dict[str, float]) -> bool:
    """Set the study's constraints (feasible when <= 0) and say whether any is broken."""
    budgets = {
        "gmadds_budget": (costs["gmadds"], settings.gmadds_budget),
        "latency_budget": (costs.get(LATENCY_OBJECTIVE), settings.latency.budget_ms),
    }
    infeasible = False
    for name, (value, budget) in budgets.items():
        if budget is not None and value is not None:
            trial.set_constraint(name, value - budget)
            infeasible |= value > budget
    trial.set_user_attr("infeasible", infeasible)
    return infeasible


def _train(
    trial: optuna.Trial, spec: ArchSpec, seed: int, costs: dict[str, float], context: TrialContext
) -> Any:
    settings, config = context.settings, context.trainer_config
    # The costs a trial that stops this one must not exceed: its objectives besides mIoU.
    stopper = MultiObjectiveStopper(
        settings.early_stopping,
        trial.study,
        costs if settings.latency.objective else {"gmadds": costs["gmadds"]},
    )
    curve: list[list[float]] = []

    def on_evaluation(step: int, miou: float) -> None:
        curve.append([step, 100.0 * miou])
        trial.set_user_attr("curve", curve)
        context.tracker.log({"val/mIoU": 100.0 * miou}, step=step)
        if step >= config.steps:
            return  # the final evaluation is the result, not a reason to stop
        reason = stopper.reason_to_stop(step, 100.0 * miou)
        if reason is not None:
            trial.set_user_attr("prune_reason", reason)
            trial.set_user_attr("steps", step)
            raise optuna.TrialPruned(reason)

    run_dir = context.output_dir / settings.name / f"trial_{trial.number:04d}"
    torch.manual_seed(seed)
    started = time.perf_counter()
    trainer = Trainer(
        build(spec, context.num_classes),
        context.train_set,
        context.val_set,
        config,
        context.runtime,
        num_classes=context.num_classes,
        run_dir=run_dir if settings.keep_checkpoints else None,
        on_evaluation=on_evaluation,
        seed=seed,
    )
    try:
        return trainer.fit()
    finally:
        trial.set_user_attr("wall_seconds", time.perf_counter() - started)
