"""The trial record: every name a study writes into its storage and `analysis` reads back.

`experiments.study` writes these names and `analysis` reads them; both import them from here, so
the two sides cannot drift apart. A stored study is a contract with every later reader (a report
rebuilt a year from now reads the same keys), so a name here is renamed only with a migration.

- Objectives: the study's metric names (`study.set_metric_names`), in this order.
- `TrialKey`: the user attributes of one trial; `Constraint`: its constraints' names.
- `StudyKey`: the user attributes of the study; `AblationKey`, `ScheduleKey` and
  `RetrainKey`: the keys of three of them.
- `TrialStatus`: what `analysis` calls a trial, from its Optuna state and its feasibility.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# --------------------------------------------------------------------------------- objectives
MIOU: Final = "mIoU"  # maximised: validation mIoU in percent
GMADDS: Final = "GMAdds"  # minimised: multiply-adds in the paper's convention, in G
LATENCY: Final = "latency_ms"  # minimised when the study makes latency a third objective


def objective_names(*, latency: bool) -> list[str]:
    """What a trial returns, in order: mIoU, GMAdds and, when asked for, latency_ms."""
    return [MIOU, GMADDS, *([LATENCY] if latency else [])]


def objective_directions(names: list[str]) -> list[str]:
    return ["maximize" if name == MIOU else "minimize" for name in names]


# ------------------------------------------------------------------------ trial attributes
class TrialKey:
    """User attributes of a trial. Everything a trial knows is stored before it can be lost."""

    # The architecture and its cost (set before training, so a failed trial keeps them).
    SPEC: Final = "spec"  # ArchSpec.to_dict(): the genes
    N_PARAMS: Final = "n_params"
    MADDS: Final = "madds"  # paper convention, multiply-adds
    GMADDS: Final = "gmadds"  # the same in G: the cost even where GMAdds is not an objective
    FVCORE_TOTAL: Final = "fvcore_total"  # fvcore's default total (BN, upsampling, pooling too)
    LATENCY_RESULT: Final = "latency"  # the whole measurement (search_space.latency)
    LATENCY_MS: Final = LATENCY  # its median, under the objective's name
    # "measured" (timed on the trial's device) or "predicted" (from a latency table), and the
    # device the figure is for, in words (search_space.latency_table.table.device_description)
    LATENCY_SOURCE: Final = "latency_source"
    LATENCY_DEVICE: Final = "latency_device"
    SEED: Final = "seed"  # the training seed
    REFERENCE: Final = "reference"  # the registered name of an enqueued paper design
    VARIANT: Final = "variant"  # the label of an ablation's variant
    FIRST_DRAW: Final = "first_draw"  # "<head>/<index>": a random member enqueued for its head
    # "<bracket>/<index>": a seeded random member enqueued before any result is known and
    # trained to the top rung whatever its rank, so the schedule's fidelity is measured on a
    # sample its results did not choose (experiments.study.schedule, analysis.probe_fidelity)
    PROBE: Final = "probe"
    INFEASIBLE: Final = "infeasible"  # over a budget: never trained, its mIoU is a placeholder
    # Where it ran: the host first (so that every trial of a several-host study, even one that
    # fails at once, says whose it was), then experiments.training.runtime.environment_facts.
    HOST: Final = "host"
    DEVICE: Final = "device"
    DEVICE_NAME: Final = "device_name"
    # Training (set as it goes: the curve after every evaluation).
    CURVE: Final = "curve"  # [[step, validation mIoU], ...]
    STEPS: Final = "steps"
    FINAL_LOSS: Final = "final_loss"
    TRAIN_SECONDS: Final = "train_seconds"  # training steps only
    WALL_SECONDS: Final = "wall_seconds"  # the whole trial, evaluations included
    IMAGES_PER_SECOND: Final = "images_per_second"
    # Bytes, `torch.cuda.max_memory_allocated` over the training (CUDA only): what a worker
    # reads before starting another trial on a GPU it shares (experiments.study.placement).
    PEAK_DEVICE_MEMORY: Final = "peak_device_memory"
    PER_CLASS_IOU: Final = "per_class_iou"  # percent, None where a class never occurred
    # Why it did not finish, and what stands in for what.
    FAIL_REASON: Final = "fail_reason"  # "<ExceptionType>: <message>" or "interrupted by SIGINT"
    PRUNE_REASON: Final = "prune_reason"
    RETRY_OF: Final = "retry_of"  # the number of the interrupted trial this one runs again
    DUPLICATE_OF: Final = "duplicate_of"  # the finished trial whose result this one reuses
    # A study with a multi-fidelity schedule (experiments.study.schedule): an architecture is
    # a lineage of trials, one per rung it reached, each continuing the checkpoint of the one
    # below; only the lineage's last trial is its result.
    RUNG: Final = "rung"  # the rung this trial trained to (0: the first)
    RUNG_RESULTS: Final = "rung_results"  # [[rung, steps, mIoU], ...]: the lineage's, so far
    PROMOTED_FROM: Final = "promoted_from"  # the trial below whose training it continued
    PROMOTED_FOR: Final = "promoted_for"  # why: one of PROMOTED_FOR_REASONS
    RESUMED_FROM_STEP: Final = "resumed_from_step"  # the step its training started from
    CHECKPOINT: Final = "checkpoint"  # where its weights were written (a later rung reads them)


# Why a promotion was made: its bracket's quota, a closed rung's front, or always (a reference
# design, a probe), whatever its rank.
PROMOTED_FOR_REASONS: Final = ("quota", "front", "reference", "probe")

# The values of `latency_source`: timed on the trial's own device, or predicted from a latency
# table measured on the device the network will run on.
MEASURED: Final = "measured"
PREDICTED: Final = "predicted"


class Constraint:
    """Names of a trial's constraints (`trial.set_constraint`; feasible when <= 0)."""

    GMADDS: Final = "gmadds_budget"  # GMAdds minus study.gmadds_budget
    LATENCY: Final = "latency_budget"  # latency_ms minus study.latency_budget_ms


# ------------------------------------------------------------------------ study attributes
class StudyKey:
    """User attributes of the study: what it is, so a report describes it without the config."""

    KIND: Final = "kind"  # KIND_SEARCH or KIND_ABLATION
    SPACE: Final = "space"  # the search space's name
    ABLATION: Final = "ablation"  # the ablation, under `AblationKey`'s names
    DATASET: Final = "dataset"
    SPLIT: Final = "split"  # the split trials are scored on
    INPUT_SIZE: Final = "input_size"
    SAMPLER: Final = "sampler"
    SEED: Final = "seed"
    GMADDS_BUDGET: Final = "gmadds_budget"
    TRAINER: Final = "trainer"  # the per-trial training recipe
    VERSIONS: Final = "versions"  # python, torch, optuna, git commit at creation
    CONFIG: Final = "config"  # the whole composed configuration, passwords masked
    DEFINITION: Final = "definition"  # the settings a resume must not change (flat, dotted)
    INITIALISED: Final = "initialised"  # set once the study is described
    SCHEDULE: Final = "schedule"  # the multi-fidelity schedule, under `ScheduleKey`'s names
    RETRAIN_OF: Final = "retrain_of"  # a retraining (experiments.retrain): see `RetrainKey`


class AblationKey:
    """An ablation study's grid (`StudyKey.ABLATION`): NAME, BASELINE (a variant's label), SEEDS
    and VARIANTS, per variant's label its SPEC and, where the paper has its row, the row's name
    and figures (Cityscapes val, 1024x1024)."""

    NAME: Final = "name"
    BASELINE: Final = "baseline"
    SEEDS: Final = "seeds"
    VARIANTS: Final = "variants"
    SPEC: Final = "spec"  # ArchSpec.to_dict()
    PAPER_ROW: Final = "paper_row"  # "<table>: <model>"
    PAPER_MIOU: Final = "paper_miou"
    PAPER_GMADDS: Final = "paper_gmadds"


class ScheduleKey:
    """The study's multi-fidelity schedule (`StudyKey.SCHEDULE`)."""

    RUNGS: Final = "rungs"  # the training steps of each rung, lowest first
    REDUCTION: Final = "reduction"  # the top 1/reduction of a rung's trials are promoted
    STRATIFY: Final = "stratify"  # the gene each of whose values is a bracket of its own, or None
    PROBES: Final = "probes"  # the number of probes enqueued (TrialKey.PROBE)
    REFERENCES_TO_TOP: Final = "references_to_top"  # reference designs always promoted to the top


class RetrainKey:
    """What a retraining stores of its search (`StudyKey.RETRAIN_OF`): the search's name under
    STUDY, and under TRIALS, per retrained trial (`"#N"`), what the search measured of it."""

    STUDY: Final = "study"
    TRIALS: Final = "trials"
    NUMBER: Final = "number"  # the trial's number in the search
    MIOU: Final = "miou"  # its proxy mIoU
    GMADDS: Final = "gmadds"
    STEPS: Final = "steps"  # the proxy training steps it reached
    ON_FRONT: Final = "on_front"  # whether it was on the search's Pareto front


KIND_SEARCH: Final = "search"
KIND_ABLATION: Final = "ablation"


# ------------------------------------------------------------------------------- status
class TrialStatus(StrEnum):
    """What `analysis` calls a trial, from its Optuna state, its feasibility and its schedule;
    derived when a study is read, never stored in it. Members in the order a report counts them."""

    FINISHED = "finished"  # complete and feasible: it may be on the front
    PROMOTED = "promoted"  # complete at a rung, continued at the next: superseded
    STOPPED = "stopped"  # complete at a rung below the study's highest, not promoted
    INFEASIBLE = "infeasible"  # complete but over a budget: never trained
    DUPLICATE = "duplicate"  # complete, reusing an earlier trial's result: no new point
    PRUNED = "pruned"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"
