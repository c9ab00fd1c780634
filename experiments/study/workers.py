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
from pathlib import Path
from typing import Any

import optuna
import torch

from experiments.study.interrupts import (
    Interrupted,
    forwarding,
    raise_if_interrupted,
    stop_on_signals,
)
from experiments.study.lifecycle import open_study, start_study
from experiments.study.progress import count_trials, study_progress_line
from experiments.study.schedule import Schedule
from experiments.study.setup import SearchSetup, prepare
from experiments.study.tracking import make_tracker
from experiments.study.trial import TrialContext, run_trial
from experiments.training.runtime import Runtime, resolve_device
from search_space.deploy import retain_freed_memory


class StudyAborted(RuntimeError):
    """Too many trials failed: something is wrong with every trial, not with one."""


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


def _not_an_interruption(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial with its traceback; an interrupted one needs none (its
    reason is recorded, and the command says what happened in one line)."""
    return not (record.exc_info and isinstance(record.exc_info[1], Interrupted))
