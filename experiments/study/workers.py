"""The study's workers: `run_worker` runs trials until the target is reached (under a
multi-fidelity schedule the promotions come on top, and the study ends when nothing is left to
promote); `run_parallel` starts N worker processes on the storage."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import replace
from typing import Any, assert_never

import optuna
import torch

from experiments.study.interrupts import (
    Interrupted,
    forwarding,
    raise_if_interrupted,
    stop_on_signals,
)
from experiments.study.lifecycle import open_study, start_study
from experiments.study.placement import (
    Placement,
    not_started_note,
    place_workers,
    room_for_a_trial,
)
from experiments.study.progress import count_trials, study_progress_line
from experiments.study.rule import Abort, RunEnqueued, StartNew, Stop, Wait, decide
from experiments.study.schedule import Promotion
from experiments.study.settings import SearchSettings
from experiments.study.setup import SearchSetup, prepare, set_up
from experiments.study.tracking import make_tracker
from experiments.study.trial import TrialContext, release_device_memory, run_trial
from experiments.training.runtime import Runtime, device_name, host_name, resolve_device
from search_space.deploy import retain_freed_memory


class StudyAborted(RuntimeError):
    """Too many trials failed, or the space looks exhausted: something is wrong with every
    trial, not with one."""


def run_worker(
    setup: SearchSetup,
    worker: int,
    placement: Placement,
    report_progress: bool,
    study: optuna.Study | None = None,
) -> None:
    """Run trials until the study has `n_trials` finished architectures, exactly, however many
    workers and hosts share it (see `trial._refuse_beyond_the_target`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").addFilter(_not_an_interruption)  # once
    search, settings = setup.search, setup.settings
    study = study or open_study(setup, worker)
    device = placement.device
    torch.set_num_threads(placement.threads)
    if settings.measures_latency and device.type == "cpu":
        retain_freed_memory()  # else page faults make CPU latencies vary from run to run
    context = TrialContext(
        settings=settings,
        proposer=setup.proposer,
        trainer_config=replace(search.trainer, num_workers=placement.loader_workers),
        train_set=setup.train_set,
        val_set=setup.val_set,
        num_classes=setup.num_classes,
        runtime=Runtime(device),
        tracker=make_tracker(search.tracking),
        output_dir=search.output_dir / "studies",
        dataset=search.dataset,
        schedule=setup.schedule,
        device_sharers=placement.sharers,
        latency_table=setup.latency_table,
    )
    host, name = host_name(), device_name(device)
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0
    started, at_start = time.monotonic(), count_trials(study)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if report_progress:
            line = study_progress_line(study, settings.n_trials, started, at_start, setup.schedule)
            print(line, flush=True)

    repeats, heartbeats = 0, search.storage.heartbeats
    while True:
        raise_if_interrupted()  # a signal between trials stops the worker here
        trials = study.get_trials(deepcopy=False)
        counts = count_trials(study, trials)
        decision = decide(
            trials,
            n_trials=settings.n_trials,
            schedule=setup.schedule,
            heartbeats=heartbeats,
            failed_since_start=counts.failed - at_start.failed,
            max_failed_trials=settings.max_failed_trials,
            repeats=repeats,
        )
        match decision:
            case Promotion():
                # Enqueued one at a time, each chosen as late as possible, on every result
                # finished by then; the next decision runs it.
                study.enqueue_trial(decision.parent.params, user_attrs=decision.user_attrs())
            case Wait():
                _wait_for_other_workers(study)
            case Stop():
                return
            case Abort(reason=reason):
                raise StudyAborted(reason)
            case RunEnqueued() | StartNew() if not room_for_a_trial(
                trials, host=host, placement=placement, device_name=name, device_memory=memory
            ):
                _wait_for_other_workers(study)  # the GPU's sharers leave it no memory for one
            case RunEnqueued() | StartNew():
                study.optimize(
                    lambda trial: run_trial(trial, context),
                    n_trials=1,
                    catch=(Exception,),
                    callbacks=[after_trial],
                )
                repeats = repeats + 1 if count_trials(study).duplicates > counts.duplicates else 0
                release_device_memory(device)
            case _:
                assert_never(decision)


def _wait_for_other_workers(study: optuna.Study) -> None:
    """A pause while other workers train, failing (and retrying) those whose process died."""
    time.sleep(_POLL_SECONDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


_POLL_SECONDS = 2.0


def _worker_process(
    search: SearchSettings,
    composed: dict[str, Any],
    worker: int,
    placement: Placement,
    created: bool,
    resumed_at: int,
) -> None:
    try:
        with stop_on_signals():
            setup = replace(set_up(search, composed), created=created, resumed_at=resumed_at)
            run_worker(setup, worker, placement, report_progress=False)
    except Interrupted as stop:
        sys.exit(stop.exit_code)


def run_parallel(
    setup: SearchSetup, study: optuna.Study, placements: tuple[Placement, ...]
) -> None:
    """A worker process per placement on the storage; this process reports progress and passes
    a stop signal on to them, then waits for them to fail their running trials and exit."""
    settings = setup.settings
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker_process,
            args=(setup.search, setup.composed, index, placement, setup.created, setup.resumed_at),
            daemon=False,
        )
        for index, placement in enumerate(placements)
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


def run_study(setup: SearchSetup, study: optuna.Study) -> None:
    counts = count_trials(study)
    print(
        f"study '{setup.settings.name}': {counts.finished} finished trials stored, target "
        f"{setup.settings.n_trials}, {setup.settings.n_workers} worker(s)",
        flush=True,
    )
    placements = host_placements(setup)
    if len(placements) == 1:
        run_worker(setup, 0, placements[0], report_progress=True, study=study)
    else:
        run_parallel(setup, study, placements)


def host_placements(setup: SearchSetup) -> tuple[Placement, ...]:
    """This host's workers placed on its GPUs and cores (`placement.place_workers`)."""
    settings, device = setup.settings, resolve_device(setup.search.device)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    placements = place_workers(
        n_workers=settings.n_workers,
        device=device,
        gpus=gpus,
        workers_per_gpu=settings.workers_per_gpu,
        cores=len(os.sched_getaffinity(0)),  # the cores this process may run on
        threads_per_worker=settings.threads_per_worker,
        loader_workers=setup.search.trainer.num_workers,
    )
    if len(placements) < settings.n_workers:
        used = len({placement.device for placement in placements})
        note = not_started_note(settings.n_workers, settings.workers_per_gpu, len(placements), used)
        print(note, flush=True)
    return placements


def search(config: dict[str, Any]) -> optuna.Study:
    """Prepare, start and run a study to its target (what the command does, without its exit
    codes and report)."""
    setup = prepare(config)
    study = start_study(setup)
    run_study(setup, study)
    return study


def _not_an_interruption(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial with its traceback; an interrupted one needs none (its
    reason is recorded, and the command says what happened in one line)."""
    return not (record.exc_info and isinstance(record.exc_info[1], Interrupted))
