"""One trial of a study: sample -> count MAdds -> (infeasible: stop) -> train -> evaluate -> record.

Everything a trial knows goes into its user attributes (the contract `analysis` reads): the
spec, parameters, both MAdds figures, times, throughput, the validation curve, host, device,
versions, commit, seed, and the reason when it failed or was stopped.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from experiments.data import CityscapesDataset
from experiments.data.from_config import DatasetSettings
from experiments.study.early_stopping import MultiObjectiveStopper
from experiments.study.interrupts import Interrupted, raise_if_interrupted
from experiments.study.progress import is_finished_architecture, is_new_architecture
from experiments.study.proposers import Proposer
from experiments.study.schedule import LIVE_STATES, Schedule
from experiments.study.settings import LatencyMeasurement, StudySettings
from experiments.study.tracking import TrialTracker
from experiments.training.runtime import Runtime, device_name, environment_facts, host_name
from experiments.training.trainer import Trainer, TrainerConfig, TrainResult
from search_space.cost import count_madds, fvcore_default_total
from search_space.latency import CHEAP, measure_latency, predict_latency
from search_space.latency_table import LatencyTable
from search_space.latency_table.table import device_description
from search_space.model import build
from search_space.spec import ArchSpec
from workbench.record import GMADDS, MEASURED, MIOU, PREDICTED, Constraint, TrialKey

log = logging.getLogger(__name__)


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
    dataset: DatasetSettings  # recorded in each trial's checkpoint
    schedule: Schedule | None  # the multi-fidelity schedule, when the study has one
    device_sharers: int = 1  # the host's workers training on the same device
    latency_table: LatencyTable | None = None  # study.latency.source=table: predicted, not timed


def run_trial(trial: optuna.Trial, context: TrialContext) -> tuple[float, ...]:
    """The objective. Any error is recorded on the trial (`fail_reason`) before Optuna
    stores it as FAIL and the study goes on; an interrupted trial is also enqueued again, as
    Optuna's heartbeat retry does for a trial whose process died."""
    try:
        raise_if_interrupted()
        return _run_trial(trial, context)
    except optuna.TrialPruned:
        raise
    except Interrupted as stop:
        trial.set_user_attr(TrialKey.FAIL_REASON, str(stop))
        # Its architecture was chosen (every parameter suggested): run it again. Stopped
        # earlier, it has nothing to repeat: a first trial is enqueued again on the next start
        # (`enqueue_missing_initial_trials`), a sampled one is sampled anew.
        if TrialKey.SPEC in trial.user_attrs or TrialKey.PROMOTED_FROM in trial.user_attrs:
            kept = {k: v for k, v in trial.user_attrs.items() if k in _RETRIED}
            retry = {**kept, TrialKey.RETRY_OF: trial.number}
            trial.study.enqueue_trial(trial.params, user_attrs=retry)
        raise
    except Exception as error:
        trial.set_user_attr(TrialKey.FAIL_REASON, failure_reason(error, context))
        raise


def failure_reason(error: Exception, context: TrialContext) -> str:
    """`<ExceptionType>: <message>`; out of device memory, also which device, how many of the
    host's workers share it and what to lower."""
    reason = f"{type(error).__name__}: {error}"
    if not isinstance(error, torch.OutOfMemoryError):
        return reason
    device = context.runtime.device
    return (
        f"out of memory on {device} ({device_name(device)}), shared by "
        f"{context.device_sharers} worker(s) of this host: lower study.workers_per_gpu (now "
        f"{context.settings.workers_per_gpu}) or trainer.batch_size (now "
        f"{context.trainer_config.batch_size}). {reason}"
    )


def release_device_memory(device: torch.device) -> None:
    """Between a worker's trials on a GPU. A failed or pruned trial's exception, which Optuna
    keeps, holds its frames (the model, the optimiser, a graph's memory pool) in a reference
    cycle until a collection: emptying the cache before it would leave them allocated, and the
    next trial would allocate on top of them."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


# What makes an enqueued trial the one it stands for (a paper design, an ablation's cell). Not
# why a promotion was made: two workers that chose the same promotion for two reasons (a
# probe that is also its bracket's best) chose the same trial.
_IDENTIFYING = (
    TrialKey.REFERENCE, TrialKey.VARIANT, TrialKey.SEED, TrialKey.FIRST_DRAW, TrialKey.PROBE,
    TrialKey.PROMOTED_FROM, TrialKey.RUNG,
)  # fmt: skip
# What the retry of an interrupted trial carries on.
_RETRIED = (*_IDENTIFYING, TrialKey.PROMOTED_FOR)
# What an enqueued trial carries from the start (a heartbeat's retry copies every attribute).
_ENQUEUED = (*_RETRIED, TrialKey.RETRY_OF, TrialKey.SPEC)
_NOT_REUSED = (
    TrialKey.HOST, TrialKey.REFERENCE, TrialKey.VARIANT, TrialKey.FIRST_DRAW, TrialKey.PROBE,
    TrialKey.PROMOTED_FOR, TrialKey.RETRY_OF,
    TrialKey.WALL_SECONDS, TrialKey.TRAIN_SECONDS, TrialKey.PEAK_DEVICE_MEMORY,
    TrialKey.FAIL_REASON, TrialKey.PROMOTED_FROM, TrialKey.RESUMED_FROM_STEP, TrialKey.CHECKPOINT,
)  # fmt: skip
# Measured once per architecture: a promotion keeps its parent's figures (latency varies from
# one measurement to the next, and a lineage's objectives must not; fvcore's trace is slow).
_INHERITED = (
    TrialKey.LATENCY_RESULT, TrialKey.LATENCY_MS, TrialKey.LATENCY_SOURCE, TrialKey.LATENCY_DEVICE,
    TrialKey.FVCORE_TOTAL,
)  # fmt: skip


def _run_trial(trial: optuna.Trial, context: TrialContext) -> tuple[float, ...]:
    settings = context.settings
    trial.set_user_attr(TrialKey.HOST, host_name())  # before anything can fail
    # At once, not with the other facts after the cost count and the latency: the GPU's other
    # sharers count this trial's memory from here (`placement.room_for_a_trial`).
    trial.set_user_attr(TrialKey.DEVICE, str(context.runtime.device))
    _refuse_beyond_the_target(trial, context)
    _refuse_a_second_copy(trial)
    spec, seed = context.proposer.propose(trial)
    parent = _parent(trial)
    if context.schedule is not None and parent is None:
        trial.set_user_attr(TrialKey.RUNG, 0)
    twin = _finished_twin(trial, spec, seed)
    if twin is not None:
        return _reuse(trial, twin)
    cost = count_madds(spec, context.num_classes)
    attrs: dict[str, Any] = {
        TrialKey.SPEC: spec.to_dict(),
        TrialKey.N_PARAMS: cost.params,
        TrialKey.MADDS: cost.madds,
        TrialKey.GMADDS: cost.gmadds,
        TrialKey.SEED: seed,
        **environment_facts(context.runtime.device),
    }
    costs = {TrialKey.GMADDS: cost.gmadds}
    if parent is not None:
        attrs.update({k: parent.user_attrs[k] for k in _INHERITED if k in parent.user_attrs})
    elif settings.wants_latency:
        attrs.update(_latency(spec, settings.latency, context))
    if TrialKey.LATENCY_MS in attrs:
        costs[TrialKey.LATENCY_MS] = attrs[TrialKey.LATENCY_MS]
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    raise_if_interrupted()  # after the costs (seconds at full size), before any training
    values = (cost.gmadds, *([costs[TrialKey.LATENCY_MS]] if settings.latency_objective else []))
    if _breaks_a_budget(trial, settings, costs):
        # Never trained: 0.0 is a placeholder the analysis never reads as a measurement.
        return 0.0, *values

    tracker = context.tracker
    tracker.start(settings.name, trial.number, {**attrs, "params": trial.params})
    state = "FAIL"
    try:
        if TrialKey.FVCORE_TOTAL not in attrs:  # a promotion has its parent's
            total = fvcore_default_total(spec, context.num_classes)
            trial.set_user_attr(TrialKey.FVCORE_TOTAL, total)
            raise_if_interrupted()  # fvcore's trace takes seconds
        result = _train(trial, spec, seed, costs, context, parent)
        state = "COMPLETE"
    except optuna.TrialPruned:
        state = "PRUNED"
        raise
    finally:
        tracker.finish(costs, state)
    miou = 100.0 * result.scores.miou
    for key, value in {
        TrialKey.TRAIN_SECONDS: result.train_seconds,
        TrialKey.IMAGES_PER_SECOND: result.images_per_second,
        TrialKey.STEPS: result.steps,
        TrialKey.FINAL_LOSS: result.final_loss,
        TrialKey.PER_CLASS_IOU: [
            None if v != v else 100.0 * v for v in result.scores.per_class_iou
        ],
    }.items():
        trial.set_user_attr(key, value)
    if context.schedule is not None:
        below = parent.user_attrs.get(TrialKey.RUNG_RESULTS, []) if parent is not None else []
        rung = trial.user_attrs[TrialKey.RUNG]
        trial.set_user_attr(TrialKey.RUNG_RESULTS, [*below, [rung, result.steps, miou]])
    tracker.log({MIOU: miou, GMADDS: cost.gmadds})
    return miou, *values


def _parent(trial: optuna.Trial) -> FrozenTrial | None:
    """The trial at the rung below whose training a promoted trial continues."""
    number = trial.user_attrs.get(TrialKey.PROMOTED_FROM)
    if number is None:
        return None
    return trial.study.get_trials(deepcopy=False)[number]


def _refuse_beyond_the_target(trial: optuna.Trial, context: TrialContext) -> None:
    """Workers on several hosts each check the target before asking for a trial, and two may
    ask at once; the storage numbers trials in one order, so a new architecture runs only if
    fewer than `n_trials` architectures are finished or running ahead of it, and the target is
    reached exactly. (Under a schedule, workers go on after the target to run promotions: one
    that asked for the promotion another has just taken stops here too.) Refused, it stops
    before choosing anything (PRUNED, counted nowhere)."""
    if any(key in trial.user_attrs for key in _ENQUEUED):
        return  # a promotion, a retry, a paper design, a head's draw, an ablation's cell
    ahead = sum(
        other.number < trial.number
        and (
            is_finished_architecture(other)
            or (other.state == TrialState.RUNNING and is_new_architecture(other))
        )
        for other in trial.study.get_trials(deepcopy=False)
    )
    if ahead >= context.settings.n_trials:
        reason = (
            f"not started: the study has its {context.settings.n_trials} architectures, "
            "finished or running"
        )
        trial.set_user_attr(TrialKey.PRUNE_REASON, reason)
        raise optuna.TrialPruned(reason)


def _refuse_a_second_copy(trial: optuna.Trial) -> None:
    """An enqueued trial enqueued twice: hosts that start a study together each enqueue its
    first trials, and two workers may choose the same promotion at once. The oldest copy runs;
    this one stops at once (PRUNED, counted nowhere)."""
    identity = {key: trial.user_attrs[key] for key in _IDENTIFYING if key in trial.user_attrs}
    if not identity.keys() - {TrialKey.RUNG, TrialKey.SEED}:
        return  # a sampled architecture (a rung alone names no trial)
    retried = trial.user_attrs.get(TrialKey.RETRY_OF)  # still RUNNING while it is failed
    for other in trial.study.get_trials(deepcopy=False, states=LIVE_STATES):
        if (
            other.number < trial.number
            and other.number != retried
            and all(other.user_attrs.get(key) == value for key, value in identity.items())
        ):
            reason = f"not started: trial {other.number} is the same trial ({identity})"
            trial.set_user_attr(TrialKey.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)


def _finished_twin(trial: optuna.Trial, spec: ArchSpec, seed: int) -> FrozenTrial | None:
    """A finished trial of the same architecture, training seed and rung: its result stands,
    and training it again would only spend the budget twice (samplers do propose a point
    twice, and two commands started together may propose the same one)."""
    genes, rung = spec.to_dict(), trial.user_attrs.get(TrialKey.RUNG)
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = other.user_attrs
        if (
            attrs.get(TrialKey.SPEC) == genes
            and attrs.get(TrialKey.SEED) == seed
            and attrs.get(TrialKey.RUNG) == rung
        ):
            return other
    return None


def _reuse(trial: optuna.Trial, twin: FrozenTrial) -> tuple[float, ...]:
    """The twin's measurements, not what belongs to the twin's own run (its identity, its
    times, what it retried)."""
    for key, value in twin.user_attrs.items():
        if key not in _NOT_REUSED:
            trial.set_user_attr(key, value)
    for name, value in twin.constraints.items():
        trial.set_constraint(name, value)
    trial.set_user_attr(TrialKey.DUPLICATE_OF, twin.number)
    assert twin.values is not None  # COMPLETE
    return tuple(twin.values)


def _latency(spec: ArchSpec, how: LatencyMeasurement, context: TrialContext) -> dict[str, Any]:
    """The trial's latency attributes: predicted from the study's table, or measured here."""
    table = context.latency_table
    if table is not None:
        predicted = predict_latency(spec, table, table_file=how.table or "the table")
        return {
            TrialKey.LATENCY_RESULT: predicted.to_dict(),
            TrialKey.LATENCY_MS: predicted.median_ms,
            TrialKey.LATENCY_SOURCE: PREDICTED,
            TrialKey.LATENCY_DEVICE: predicted.device,
        }
    # Random weights: they do not change the time. measure_latency leaves the RNG alone, so
    # the trial's training seed means the same with or without latency.
    measured = measure_latency(
        spec,
        device=context.runtime.device,
        batch=how.batch,
        dtype=how.dtype,
        fast=how.fast_path,
        num_classes=context.num_classes,
        protocol=CHEAP,
    )
    return {
        TrialKey.LATENCY_RESULT: measured.to_dict(),
        TrialKey.LATENCY_MS: measured.median_ms,
        TrialKey.LATENCY_SOURCE: MEASURED,
        TrialKey.LATENCY_DEVICE: device_description(
            device_name(context.runtime.device),
            device=context.runtime.device.type,
            threads=measured.threads if context.runtime.device.type == "cpu" else None,
            dtype=measured.dtype,
            path=measured.path,
            batch=measured.batch,
        ),
    }


def _breaks_a_budget(trial: optuna.Trial, settings: StudySettings, costs: dict[str, float]) -> bool:
    """Set the study's constraints (feasible when <= 0) and say whether any is broken."""
    budgets = {
        Constraint.GMADDS: (costs[TrialKey.GMADDS], settings.gmadds_budget),
        Constraint.LATENCY: (costs.get(TrialKey.LATENCY_MS), settings.latency_budget_ms),
    }
    infeasible = False
    for name, (value, budget) in budgets.items():
        if budget is not None and value is not None:
            trial.set_constraint(name, value - budget)
            infeasible |= value > budget
    trial.set_user_attr(TrialKey.INFEASIBLE, infeasible)
    return infeasible


def _train(
    trial: optuna.Trial,
    spec: ArchSpec,
    seed: int,
    costs: dict[str, float],
    context: TrialContext,
    parent: FrozenTrial | None,
) -> TrainResult:
    settings, config, schedule = context.settings, context.trainer_config, context.schedule
    until = config.steps if schedule is None else schedule.rungs[trial.user_attrs[TrialKey.RUNG]]
    # The costs a trial that stops this one must not exceed: its objectives besides mIoU.
    stopper = MultiObjectiveStopper(
        settings.early_stopping,
        trial.study,
        costs if settings.latency_objective else {TrialKey.GMADDS: costs[TrialKey.GMADDS]},
    )
    curve: list[list[float]] = []

    def on_evaluation(step: int, miou: float) -> None:
        curve.append([step, 100.0 * miou])
        trial.set_user_attr(TrialKey.CURVE, curve)
        context.tracker.log({"val/mIoU": 100.0 * miou}, step=step)
        if step >= until:
            return  # the final evaluation is the result, not a reason to stop
        reason = stopper.reason_to_stop(step, 100.0 * miou)
        if reason is not None:
            trial.set_user_attr(TrialKey.PRUNE_REASON, reason)
            trial.set_user_attr(TrialKey.STEPS, step)
            raise optuna.TrialPruned(reason)

    # A scheduled trial always keeps its checkpoint: the next rung continues from it.
    keep = settings.keep_checkpoints or schedule is not None
    run_dir = context.output_dir / settings.name / f"trial_{trial.number:04d}"
    torch.manual_seed(seed)
    device = context.runtime.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the latency measurement's is not training's
    started = time.perf_counter()
    trainer = Trainer(
        build(spec, context.num_classes),
        context.train_set,
        context.val_set,
        config,
        context.runtime,
        num_classes=context.num_classes,
        run_dir=run_dir if keep else None,
        on_evaluation=on_evaluation,
        between_steps=raise_if_interrupted,  # a stop signal ends the trial at the next step
        seed=seed,
        dataset=context.dataset.record(),
    )
    if parent is not None:
        _continue(trainer, parent, trial)
        curve.extend([step, 100.0 * miou] for step, miou in trainer.curve)
    if trainer.checkpoint_path is not None:
        trial.set_user_attr(TrialKey.CHECKPOINT, str(trainer.checkpoint_path.resolve()))
    try:
        return trainer.fit(until=until)
    finally:
        trial.set_user_attr(TrialKey.WALL_SECONDS, time.perf_counter() - started)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device)
            trial.set_user_attr(TrialKey.PEAK_DEVICE_MEMORY, peak)


def _continue(trainer: Trainer, parent: FrozenTrial, trial: optuna.Trial) -> None:
    """Resume the parent's checkpoint. Training is a function of the seed and the step
    (`experiments.training.stream`), so where the file is missing (another host's disk, a
    cleaned folder) training from scratch reaches the same network, only later."""
    path = parent.user_attrs.get(TrialKey.CHECKPOINT)
    if path is None or not trainer.resume(Path(path)):
        log.warning(
            "trial %d: the checkpoint of trial %d (%s) is missing; training from step 0",
            trial.number, parent.number, path,
        )  # fmt: skip
    elif trainer.step != parent.user_attrs.get(TrialKey.STEPS):
        raise ValueError(
            f"{path} is at step {trainer.step}, but trial {parent.number} ended at step "
            f"{parent.user_attrs.get(TrialKey.STEPS)}: another run wrote it (a study of the same "
            "name in another output_dir?)"
        )
    trial.set_user_attr(TrialKey.RESUMED_FROM_STEP, trainer.step)
