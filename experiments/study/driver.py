"""The study driver: everything between a composed config and a finished study.

`prepare` checks all that can be checked before the first trial; `open_study` and
`initialise_study` open (or create) the Optuna study and enqueue its first trials; `run_worker`
runs trials until the target is reached and `run_parallel` starts N worker processes on the
storage. Re-running the same command resumes: `study.n_trials` is the number of finished
(COMPLETE or PRUNED) trials to reach, not a number to add.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from analysis.ablation import ablation_table, format_ablation
from analysis.load import load_trials
from analysis.record import KIND_ABLATION, StudyKey, TrialKey
from analysis.report import NoFinishedTrialsError, format_front, write_report
from experiments.data import CityscapesDataset, DatasetError
from experiments.data.from_config import build_datasets
from experiments.study.proposers import AblationProposer, Proposer, SpaceProposer
from experiments.study.samplers import make_sampler
from experiments.study.settings import StudySettings
from experiments.study.storage import make_storage
from experiments.study.tracking import make_tracker
from experiments.study.trial import TrialContext, run_trial
from experiments.training.runtime import Runtime, environment_facts, resolve_device
from experiments.training.trainer import TrainerConfig
from search_space.arch_source import parse_size
from search_space.deploy import retain_freed_memory
from search_space.registry import get_arch
from search_space.space import SpaceError, load_space
from search_space.spec import SpecError

log = logging.getLogger("experiments.search")
CONFIG_ERRORS = (
    ValueError,
    KeyError,
    SpecError,
    SpaceError,
    DatasetError,
    FileNotFoundError,
    OmegaConfBaseException,
)


class StudyAborted(RuntimeError):
    """Too many trials failed: something is wrong with every trial, not with one."""


# --------------------------------------------------------------------------- configuration
@dataclass
class SearchSetup:
    config: dict[str, Any]
    settings: StudySettings
    proposer: Proposer
    trainer_config: TrainerConfig
    input_size: tuple[int, int]
    sampler_config: dict[str, Any]
    train_set: CityscapesDataset
    val_set: CityscapesDataset
    num_classes: int


def prepare(config: Mapping[str, Any]) -> SearchSetup:
    """Check everything that can be checked before the first trial; raise on any error."""
    if "study" not in config:
        raise ValueError(
            "choose a study: python -m experiments.search +study=demo (built-in data, a few "
            "minutes on a CPU) or +study=cityscapes (dataset.root=/path/to/cityscapes)"
        )
    settings = StudySettings.from_dict(config["study"])
    input_size = settings.input_size or parse_size(config["dataset"]["input_size"])
    proposer: Proposer
    if "ablation" in config:
        # An ablation is a grid of (variant, seed): every trial is enqueued, brute force
        # serves whatever a restart or an extra worker asks for beyond them.
        proposer = AblationProposer.from_config(config["ablation"], input_size)
        settings = replace(settings, n_trials=proposer.n_trials)
        sampler_config = {"name": "bruteforce"}
    else:
        space = load_space(config["space"], name=config["space"].get("name"))
        proposer = SpaceProposer(
            space.with_fixed({"input_size": list(input_size)}),
            settings.seed,
            settings.reference_designs,
        )
        for name in settings.reference_designs:
            get_arch(name)  # an unknown name fails here, listing the registry
        sampler_config = dict(config["sampler"])
    trainer_config = TrainerConfig.from_dict(dict(config["trainer"]))
    datasets = build_datasets(  # indexes and checks every file of the dataset
        config["dataset"], input_size=input_size, scale_range=trainer_config.scale_range
    )
    make_sampler(sampler_config, settings.seed)
    return SearchSetup(
        dict(config), settings, proposer, trainer_config, input_size, sampler_config, *datasets
    )


def open_study(setup: SearchSetup, worker: int = 0) -> optuna.Study:
    config, settings = setup.config, setup.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=settings.name,
            storage=make_storage(config["storage"]),
            sampler=make_sampler(setup.sampler_config, settings.seed + worker),
            directions=settings.directions,
            load_if_exists=True,
        )
        stored = study.metric_names or [f"{len(study.directions)} unnamed"]
        if stored != settings.objective_names:
            if study.metric_names is not None or len(study.directions) != len(settings.directions):
                raise ValueError(
                    f"study '{study.study_name}' is stored with the objectives {stored}; this "
                    f"configuration asks for {settings.objective_names} (see "
                    "study.latency_objective): choose another study.name"
                )
            study.set_metric_names(settings.objective_names)
    return study


def initialise_study(study: optuna.Study, setup: SearchSetup) -> None:
    """Describe a new study and enqueue its first trials (the paper's designs, or the
    ablation's whole grid)."""
    if study.user_attrs.get(StudyKey.INITIALISED):
        return
    config, settings = setup.config, setup.settings
    facts = environment_facts(torch.device("cpu"))
    for key, value in {
        **setup.proposer.study_attrs(),
        StudyKey.DATASET: config["dataset"]["name"],
        StudyKey.SPLIT: config["dataset"]["val_split"],
        StudyKey.INPUT_SIZE: list(setup.input_size),
        StudyKey.SAMPLER: setup.sampler_config["name"],
        StudyKey.SEED: settings.seed,
        StudyKey.GMADDS_BUDGET: settings.gmadds_budget,
        StudyKey.TRAINER: dict(config["trainer"]),
        StudyKey.VERSIONS: {k: facts[k] for k in ("python", "torch", "optuna", "git_commit")},
        StudyKey.CONFIG: config,
    }.items():
        study.set_user_attr(key, value)
    for params, user_attrs in setup.proposer.initial_trials():
        study.enqueue_trial(params, user_attrs=user_attrs)
    study.set_user_attr(StudyKey.INITIALISED, True)


# ------------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class Counts:
    complete: int
    infeasible: int
    pruned: int
    failed: int
    running: int
    front: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def count_trials(study: optuna.Study) -> Counts:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    infeasible = sum(
        t.state == TrialState.COMPLETE and bool(t.user_attrs.get(TrialKey.INFEASIBLE))
        for t in trials
    )
    complete = states.count(TrialState.COMPLETE)
    return Counts(
        complete=complete,
        infeasible=infeasible,
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        running=states.count(TrialState.RUNNING),
        front=len(study.best_trials) if complete else 0,
    )


def progress_line(counts: Counts, target: int, started: float, finished_at_start: int) -> str:
    elapsed = time.monotonic() - started
    done_here = counts.finished - finished_at_start
    remaining = max(0, target - counts.finished)
    eta = f"{elapsed / done_here * remaining:.0f}s" if done_here else "?"
    return (
        f"[study] finished {counts.finished}/{target} | feasible "
        f"{counts.complete - counts.infeasible} | infeasible {counts.infeasible} | pruned "
        f"{counts.pruned} | failed {counts.failed} | running {counts.running} | front "
        f"{counts.front} | {elapsed:.0f}s elapsed, ETA {eta}"
    )


# -------------------------------------------------------------------------------- workers
def run_worker(setup: SearchSetup, worker: int, report_progress: bool) -> None:
    """Run trials until the study has `n_trials` finished ones (checked before each trial, so
    N workers overshoot by at most N - 1)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config, settings = setup.config, setup.settings
    study = open_study(setup, worker)
    device = resolve_device(config.get("device", "auto"))
    if device.type == "cuda" and torch.cuda.device_count() > 1 and device.index is None:
        device = torch.device("cuda", worker % torch.cuda.device_count())
    if settings.threads_per_worker:
        torch.set_num_threads(settings.threads_per_worker)
    if settings.measures_latency and device.type == "cpu":
        retain_freed_memory()  # else page faults make CPU latencies vary from run to run
    context = TrialContext(
        settings=settings,
        proposer=setup.proposer,
        trainer_config=setup.trainer_config,
        train_set=setup.train_set,
        val_set=setup.val_set,
        num_classes=setup.num_classes,
        runtime=Runtime(device),
        tracker=make_tracker(config["tracking"]),
        output_dir=Path(config["output_dir"]) / "studies",
    )
    started, at_start = time.monotonic(), count_trials(study).finished

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if report_progress:
            print(
                progress_line(count_trials(study), settings.n_trials, started, at_start), flush=True
            )

    while True:
        counts = count_trials(study)
        if counts.finished >= settings.n_trials:
            return
        if counts.failed >= settings.max_failed_trials:
            raise StudyAborted(
                f"{counts.failed} trials failed (study.max_failed_trials="
                f"{settings.max_failed_trials}); see their fail_reason attributes"
            )
        study.optimize(
            lambda trial: run_trial(trial, context),
            n_trials=1,
            catch=(Exception,),
            callbacks=[after_trial],
        )


def _worker_process(config: dict[str, Any], worker: int) -> None:
    run_worker(prepare(config), worker, report_progress=False)


def run_parallel(setup: SearchSetup, study: optuna.Study) -> None:
    """N worker processes on the storage; this process only reports progress."""
    settings = setup.settings
    context = multiprocessing.get_context("spawn")
    config = dict(setup.config)
    # Share the cores: N processes each using every core would thrash.
    config["study"] = {
        **config["study"],
        "threads_per_worker": settings.threads_per_worker
        or max(1, (os.cpu_count() or 1) // settings.n_workers),
    }
    workers = [
        context.Process(target=_worker_process, args=(config, index), daemon=False)
        for index in range(settings.n_workers)
    ]
    for process in workers:
        process.start()
    started, at_start, last = time.monotonic(), count_trials(study).finished, None
    while any(process.is_alive() for process in workers):
        time.sleep(2.0)
        line = progress_line(count_trials(study), settings.n_trials, started, at_start)
        if line.split("|")[:6] != (last or "").split("|")[:6]:
            print(line, flush=True)
            last = line
    codes = [process.exitcode for process in workers]
    if any(codes):
        raise StudyAborted(f"worker processes exited with codes {codes}")


# ----------------------------------------------------------------------------------- main
def search(config: dict[str, Any]) -> optuna.Study:
    setup = prepare(config)
    study = open_study(setup)
    initialise_study(study, setup)
    counts = count_trials(study)
    print(
        f"study '{setup.settings.name}': {counts.finished} finished trials stored, target "
        f"{setup.settings.n_trials}, {setup.settings.n_workers} worker(s)",
        flush=True,
    )
    if setup.settings.n_workers == 1:
        run_worker(setup, 0, report_progress=True)
    else:
        run_parallel(setup, study)
    return study


def summarise(study: optuna.Study, output_dir: Path) -> None:
    """Print the Pareto front and write the study's report (`analysis.report`)."""
    try:
        report = write_report(study, output_dir / "reports" / study.study_name)
    except NoFinishedTrialsError as error:
        print(f"no report: {error}", file=sys.stderr)
        return
    frame = load_trials(study)
    if study.user_attrs.get(StudyKey.KIND) == KIND_ABLATION:
        print(format_ablation(ablation_table(frame, study.user_attrs[StudyKey.ABLATION])))
    else:
        print(format_front(frame))
    print(f"report: {report}")


def run_command(cfg: DictConfig) -> None:
    """The body of `experiments.search` and `experiments.ablate`: run, then report."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        study = search(config)
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except StudyAborted as error:
        print(f"study stopped: {error}", file=sys.stderr)
        sys.exit(1)
    summarise(study, Path(config["output_dir"]))
