"""The study driver: everything between a composed config and a finished study.

`prepare` checks all that can be checked before the first trial; `open_study` and
`initialise_study` open (or create) the Optuna study and enqueue its first trials; `run_worker`
runs trials until the target is reached and `run_parallel` starts N worker processes on the
storage. Re-running the same command resumes: `study.n_trials` is the number of finished
(COMPLETE or PRUNED) architectures to reach, not a number to add; under a multi-fidelity
schedule (`experiments.study.schedule`) the promotions come on top, and the study ends when
nothing is left to promote.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import socket
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from optuna.study import StudyDirection
from optuna.trial import TrialState

from analysis import document as doc
from analysis.ablation import ablation_table, format_ablation
from analysis.load import load_trials
from analysis.record import KIND_ABLATION, StudyKey
from analysis.report import NoFinishedTrialsError, format_front, write_report
from analysis.retrain import retrain_table, verdict
from analysis.secrets import mask_secrets, masked_config
from experiments.config import CONFIG_ERRORS, refuse_repeated_overrides
from experiments.data import CityscapesDataset
from experiments.data.from_config import build_datasets
from experiments.study.identity import StudyMismatchError, check_definition, study_definition
from experiments.study.interrupts import (
    Interrupted,
    forwarding,
    raise_if_interrupted,
    stop_on_signals,
)
from experiments.study.progress import count_trials, study_progress_line
from experiments.study.proposers import AblationProposer, Proposer, SpaceProposer
from experiments.study.samplers import make_sampler
from experiments.study.schedule import Schedule
from experiments.study.settings import StudySettings
from experiments.study.storage import make_storage
from experiments.study.tracking import make_tracker
from experiments.study.trial import TrialContext, run_trial
from experiments.training.runtime import Runtime, environment_facts, resolve_device
from experiments.training.trainer import TrainerConfig
from search_space.arch_source import parse_size
from search_space.deploy import retain_freed_memory
from search_space.registry import get_arch
from search_space.space import load_space
from search_space.spec import gene_names

log = logging.getLogger("experiments.search")


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
    schedule: Schedule | None
    # Set by `start_study`, for `sampler_seed`: whether this command created the study; how
    # many trials it held when this command started.
    created: bool = False
    resumed_at: int = 0


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
    trainer_config = TrainerConfig.from_dict(dict(config["trainer"]))
    schedule = None
    if settings.schedule.enabled:
        if "ablation" in config:
            raise ValueError(
                "study.schedule.enabled: an ablation trains every variant and seed to the "
                "same budget; turn the schedule off"
            )
        schedule = Schedule(
            settings.schedule.rungs(trainer_config.steps),
            settings.schedule.reduction,
            varied_gene(config, settings.schedule.stratify),
            tuple(StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
                  for d in settings.directions),
        )  # fmt: skip
    if "ablation" in config:
        # An ablation is a grid of (variant, seed): every cell is enqueued, the grid sampler
        # serves whatever an extra worker or a failed cell's retry asks for beyond them.
        proposer = AblationProposer.from_config(config["ablation"], input_size)
        settings = replace(settings, n_trials=proposer.n_trials)
        sampler_config = {"name": "grid", "cells": [p for p, _ in proposer.initial_trials()]}
    else:
        space = load_space(config["space"], name=config["space"].get("name"))
        proposer = SpaceProposer(
            space.with_fixed({"input_size": list(input_size)}),
            settings.seed,
            settings.reference_designs,
            settings.first_trials_per_head,
        )
        for name in settings.reference_designs:
            get_arch(name)  # an unknown name fails here, listing the registry
        sampler_config = dict(config["sampler"])
    datasets = build_datasets(  # indexes and checks every file of the dataset
        config["dataset"], input_size=input_size, scale_range=trainer_config.scale_range
    )
    make_sampler(sampler_config, settings.seed)
    return SearchSetup(
        dict(config),
        settings,
        proposer,
        trainer_config,
        input_size,
        sampler_config,
        *datasets,
        schedule=schedule,
    )


def varied_gene(config: Mapping[str, Any], gene: str | None) -> str | None:
    """`gene` if the study's space varies it, else None: brackets of a gene that every
    architecture shares would be one bracket with the floor of one promotion a rung."""
    if gene is None or "space" not in config:
        return None
    if gene not in gene_names():
        raise ValueError(f"study.schedule.stratify={gene!r} is not a gene ({gene_names()})")
    space = load_space(config["space"], name=config["space"].get("name"))
    values = {v for d in space.dimensions if d.gene == gene for v in d.candidate_values()}
    return gene if len(values) > 1 else None


def open_study(setup: SearchSetup, worker: int = 0) -> optuna.Study:
    """The study, created if new, with this worker's sampler (see `sampler_seed`)."""
    return _create_or_load(setup, worker)[0]


def _create_or_load(setup: SearchSetup, worker: int) -> tuple[optuna.Study, bool]:
    """The study and whether this call created it: of several commands started together on
    several hosts, exactly one does (the storage refuses a second study of the same name)."""
    config, settings = setup.config, setup.settings
    storage = make_storage(config["storage"])
    sampler = make_sampler(
        setup.sampler_config,
        sampler_seed(settings.seed, worker, setup.created, setup.resumed_at),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.create_study(
                study_name=settings.name,
                storage=storage,
                sampler=sampler,
                directions=settings.directions,
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
            created = False
        stored = study.metric_names or [f"{len(study.directions)} unnamed"]
        if stored != settings.objective_names:
            if study.metric_names is not None or len(study.directions) != len(settings.directions):
                raise StudyMismatchError(
                    f"study '{study.study_name}' is stored with the objectives {stored}; this "
                    f"configuration asks for {settings.objective_names} (see "
                    "study.latency_objective): choose another study.name"
                )
            study.set_metric_names(settings.objective_names)
    return study, created


def sampler_seed(study_seed: int, worker: int, created: bool, resumed_at: int) -> int:
    """Seeds that never replay a draw. The command that creates a study, and its workers,
    take `study.seed + worker`, so a study run by one command is repeatable on one machine.
    Any other command (one resuming the study, one joining it, one started at the same moment
    on another host: only one of them creates it) seeds from its host, its process and the
    trials stored when it started, so that no two commands propose the same architectures in
    the same order."""
    if created:
        return study_seed + worker
    identity = f"{study_seed}/{worker}/{socket.gethostname()}/{os.getpid()}/{resumed_at}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "little")


def start_study(setup: SearchSetup) -> optuna.Study:
    """Open or create the study and make it ready to run: the trials of dead processes failed
    (and retried) first, its definition stored (or checked against this command's), its first
    trials enqueued where they have no result, its sampler seeded for this command."""
    study, setup.created = _create_or_load(setup, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    definition = study_definition(
        setup.config,
        setup.input_size,
        setup.settings.objective_names,
        resolve_device(setup.config["device"]).type,
    )
    stored = study.user_attrs.get(StudyKey.DEFINITION)
    if stored is None:
        study.set_user_attr(StudyKey.DEFINITION, masked_config(definition))
    else:
        check_definition(stored, masked_config(definition), study.study_name)
    trials = study.get_trials(deepcopy=False)
    setup.resumed_at = sum(t.state != TrialState.WAITING for t in trials)
    study.sampler = make_sampler(
        setup.sampler_config,
        sampler_seed(setup.settings.seed, 0, setup.created, setup.resumed_at),
    )
    initialise_study(study, setup)
    enqueue_missing_initial_trials(study, setup.proposer)
    return study


def initialise_study(study: optuna.Study, setup: SearchSetup) -> None:
    """Describe a new study (what it is, for the report)."""
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
        StudyKey.CONFIG: masked_config(config),
        **({StudyKey.SCHEDULE: setup.schedule.describe()} if setup.schedule else {}),
    }.items():
        study.set_user_attr(key, value)
    study.set_user_attr(StudyKey.INITIALISED, True)


def enqueue_missing_initial_trials(study: optuna.Study, proposer: Proposer) -> None:
    """Enqueue each of the proposer's first trials (a paper design, a cell of an ablation's
    grid) that has no finished, waiting or running trial: one interrupted or failed is run
    again on resume, one already measured is not measured twice."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    present = [t.user_attrs for t in study.get_trials(deepcopy=False, states=live)]
    for params, user_attrs in proposer.initial_trials():
        if not any(user_attrs.items() <= attrs.items() for attrs in present):
            study.enqueue_trial(params, user_attrs=user_attrs)


# -------------------------------------------------------------------------------- workers
def run_worker(
    setup: SearchSetup, worker: int, report_progress: bool, study: optuna.Study | None = None
) -> None:
    """Run trials until the study has `n_trials` finished architectures, exactly, however many
    workers and hosts share it (see `trial._refuse_beyond_the_target`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").addFilter(_not_an_interruption)  # once
    config, settings = setup.config, setup.settings
    study = study or open_study(setup, worker)
    device = resolve_device(config["device"])
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
        dataset=config["dataset"],
        schedule=setup.schedule,
    )
    started, at_start = time.monotonic(), count_trials(study)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if report_progress:
            line = study_progress_line(study, settings.n_trials, started, at_start, setup.schedule)
            print(line, flush=True)

    repeats, heartbeats = 0, config["storage"]["kind"] == "rdb"
    while True:
        raise_if_interrupted()  # a signal between trials stops the worker here
        counts = count_trials(study)
        # A promotion comes before a new architecture, and after the target is reached: the
        # study ends with every rung's best trials trained on. Before the target it is chosen
        # once the enqueued first trials have run (on their results too); one waiting (just
        # enqueued, or the retry of an interrupted one) runs whatever the target.
        may_choose = not counts.waiting or counts.finished >= settings.n_trials
        running_architectures = counts.running - counts.running_promotions
        sampling_done = (
            counts.finished >= settings.n_trials
            and running_architectures == 0
            and counts.waiting == counts.waiting_promotions
        )
        promoting = counts.waiting_promotions > 0 or (
            may_choose and _enqueue_promotion(study, setup.schedule, sampling_done)
        )
        if not promoting:
            # Past the target, or the rest of it running elsewhere. Where a dead worker is
            # noticed (heartbeats; a journal file has none), wait for the running trials: one
            # may earn a promotion (the top rungs are the longest), and one whose host died is
            # failed and retried here, so the study ends complete.
            enough = counts.finished + running_architectures >= settings.n_trials
            others_may_promote = setup.schedule is not None
            others_may_die = counts.finished < settings.n_trials and not counts.waiting
            if heartbeats and counts.running and enough and (others_may_promote or others_may_die):
                _wait_for_other_workers(study)
                continue
            if counts.finished >= settings.n_trials or (enough and not counts.waiting):
                return
        if repeats >= _MAX_REPEATS:
            raise StudyAborted(
                f"the sampler proposed {repeats} architectures in a row that were already "
                "measured: the space looks exhausted (raise its ranges or lower study.n_trials)"
            )
        # Failures of this command: a resumed study is not refused for old ones.
        if counts.failed - at_start.failed >= settings.max_failed_trials:
            raise StudyAborted(
                f"{counts.failed - at_start.failed} trials failed since this command started "
                f"(study.max_failed_trials={settings.max_failed_trials}); see their "
                "fail_reason in the report"
            )
        study.optimize(
            lambda trial: run_trial(trial, context),
            n_trials=1,
            catch=(Exception,),
            callbacks=[after_trial],
        )
        repeats = repeats + 1 if count_trials(study).duplicates > counts.duplicates else 0


_MAX_REPEATS = 20  # duplicates in a row after which a worker stops: the space is exhausted


def _wait_for_other_workers(study: optuna.Study) -> None:
    """A pause while other workers train, failing (and retrying) those whose process died."""
    time.sleep(_POLL_SECONDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


_POLL_SECONDS = 2.0


def _enqueue_promotion(study: optuna.Study, schedule: Schedule | None, sampling_done: bool) -> bool:
    """Enqueue the schedule's next promotion, if it has one; the next trial asked runs it (at
    most one waits at a time, so that each is chosen as late as possible, on every result
    finished by then)."""
    if schedule is None:
        return False
    promotion = schedule.next_promotion(study.get_trials(deepcopy=False), sampling_done)
    if promotion is None:
        return False
    study.enqueue_trial(promotion.parent.params, user_attrs=promotion.user_attrs())
    return True


def _worker_process(config: dict[str, Any], worker: int, created: bool, resumed_at: int) -> None:
    try:
        with stop_on_signals():
            setup = replace(prepare(config), created=created, resumed_at=resumed_at)
            run_worker(setup, worker, report_progress=False)
    except Interrupted as stop:
        sys.exit(stop.exit_code)


def run_parallel(setup: SearchSetup, study: optuna.Study) -> None:
    """N worker processes on the storage; this process reports progress and passes a stop
    signal on to them, then waits for them to fail their running trials and exit."""
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
        context.Process(
            target=_worker_process,
            args=(config, index, setup.created, setup.resumed_at),
            daemon=False,
        )
        for index in range(settings.n_workers)
    ]

    def forward(signum: int) -> None:
        for process in workers:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it has just exited
                    os.kill(process.pid, signum)

    started, at_start, last = time.monotonic(), count_trials(study), None
    for process in workers:
        process.start()
    # Entered once every worker has a pid: a signal during the starts is passed on here.
    with forwarding(forward):
        while any(process.is_alive() for process in workers):
            time.sleep(1.0)
            line = study_progress_line(study, settings.n_trials, started, at_start, setup.schedule)
            if line.split("|")[:9] != (last or "").split("|")[:9]:  # counts, not times
                print(line, flush=True)
                last = line
    raise_if_interrupted()  # the workers have failed their trials and exited
    codes = [process.exitcode for process in workers]
    if any(codes):
        # A worker killed mid-trial leaves it RUNNING: its heartbeat goes stale and the next
        # start fails and retries it. The study stands or falls by its target, not by that.
        print(f"[study] worker processes exited with codes {codes}", file=sys.stderr)
        if count_trials(study).finished < settings.n_trials:
            raise StudyAborted(f"worker processes exited with codes {codes} before the target")


# ----------------------------------------------------------------------------------- main
def run_study(setup: SearchSetup, study: optuna.Study) -> None:
    counts = count_trials(study)
    print(
        f"study '{setup.settings.name}': {counts.finished} finished trials stored, target "
        f"{setup.settings.n_trials}, {setup.settings.n_workers} worker(s)",
        flush=True,
    )
    if setup.settings.n_workers == 1:
        run_worker(setup, 0, report_progress=True, study=study)
    else:
        run_parallel(setup, study)


def search(config: dict[str, Any]) -> optuna.Study:
    """Prepare, start and run a study to its target (what the command does, without its exit
    codes and report)."""
    setup = prepare(config)
    study = start_study(setup)
    run_study(setup, study)
    return study


def summarise(study: optuna.Study, output_dir: Path) -> None:
    """Print the Pareto front and write the study's report (`analysis.report`)."""
    try:
        report = write_report(study, output_dir / "reports" / study.study_name)
    except NoFinishedTrialsError as error:
        print(f"no report: {error}", file=sys.stderr)
        return
    frame = load_trials(study)
    if StudyKey.RETRAIN_OF in study.user_attrs:
        table = retrain_table(frame, study.user_attrs[StudyKey.RETRAIN_OF])
        print(doc.text_table(table.round(2)))
        print(verdict(table))
    elif study.user_attrs.get(StudyKey.KIND) == KIND_ABLATION:
        print(format_ablation(ablation_table(frame, study.user_attrs[StudyKey.ABLATION])))
    else:
        print(format_front(frame))
    print(f"report: {report}")


def run_command(cfg: DictConfig) -> None:
    """The body of `experiments.search` and `experiments.ablate`: run, then report (see
    `run_and_report`)."""
    try:
        refuse_repeated_overrides(HydraConfig.get().overrides.task)
    except CONFIG_ERRORS as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        sys.exit(2)
    run_and_report(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def run_and_report(config: dict[str, Any]) -> None:
    """Run a composed config's study to its target, then print its front or table and write
    its report. Exit codes: 0 done, 1 stopped by failing trials, 2 a configuration error
    (nothing ran), 128 + the signal's number when interrupted (the report of what finished is
    written)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The command line is read; libraries that record it (wandb's run metadata, in every
    # trial's run) must find no storage password in it, nor must spawned workers.
    sys.argv[:] = [mask_secrets(argument) for argument in sys.argv]
    with stop_on_signals():
        try:
            _run_and_report(config)
        except Interrupted as stop:
            sys.exit(stop.exit_code)


def _run_and_report(config: dict[str, Any]) -> None:
    try:
        setup = prepare(config)
        check_writable(Path(config["output_dir"]) / "reports" / setup.settings.name)
        raise_if_interrupted()  # stopped while indexing the data: no study touched
        study = start_study(setup)
    except CONFIG_ERRORS as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as stop:
        print(f"interrupted by {stop.signal_name} before any trial", file=sys.stderr)
        raise
    output_dir = Path(config["output_dir"])
    try:
        run_study(setup, study)
    except Interrupted as stop:
        print(
            f"\ninterrupted by {stop.signal_name}: the running trial is failed and enqueued "
            "again; run the same command to resume",
            file=sys.stderr,
            flush=True,
        )
        summarise(study, output_dir)
        sys.exit(stop.exit_code)
    except StudyAborted as error:
        print(f"study stopped: {error}", file=sys.stderr)
        summarise(study, output_dir)
        sys.exit(1)
    summarise(study, output_dir)


def check_writable(folder: Path) -> None:
    """Fail now, not after the whole study, when the report could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write the report to {folder}: {error.strerror}") from None


def _not_an_interruption(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial with its traceback; an interrupted one needs none (its
    reason is recorded, and the command says what happened in one line)."""
    return not (record.exc_info and isinstance(record.exc_info[1], Interrupted))
