"""Where a study's workers on one host run: the device each trains on, the CPU threads and
data-loader workers each gets, and whether a GPU it shares has room for one more trial.

Pure functions of counts and stored trials: the workers call them with the host's GPUs and
cores, the tests with any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from optuna.trial import FrozenTrial, TrialState

from workbench.record import TrialKey

# The share of a GPU's memory that trials sharing it may fill: the caching allocator's
# fragmentation and each process's CUDA context take the rest.
MEMORY_HEADROOM = 0.9


@dataclass(frozen=True)
class Placement:
    """One worker's share of the host."""

    device: torch.device
    sharers: int  # the host's workers on this device, this one included
    threads: int  # torch's intra-op threads
    loader_workers: int  # data-loader processes (trainer.num_workers, capped at the share)


def place_workers(
    *,
    n_workers: int,
    device: torch.device,
    gpus: int,
    workers_per_gpu: int,
    cores: int,
    threads_per_worker: int | None,
    loader_workers: int,
) -> tuple[Placement, ...]:
    """The placement of each worker, at most `workers_per_gpu` on each GPU: workers cycle over
    the `gpus` visible GPUs (worker i on GPU i mod gpus), or all share the one GPU `device`
    names (`cuda:1`). Beyond what fits, workers are not started (the caller says so): a GPU
    given more trials than were measured to fit slows them all or runs out of memory. The
    cores are divided among the workers that run, at least one each; `threads_per_worker`,
    when set, wins; a recipe's data-loader workers are capped at the same share (0, loading in
    the training process, stays 0)."""
    if device.type != "cuda":
        count, devices = n_workers, [device] * n_workers
    elif device.index is not None:
        count = min(n_workers, workers_per_gpu)
        devices = [device] * count
    else:
        if gpus < 1:
            raise ValueError(f"device={device} was asked for, but no GPU is visible")
        count = min(n_workers, gpus * workers_per_gpu)
        devices = [torch.device("cuda", worker % gpus) for worker in range(count)]
    share = max(1, cores // count)
    threads = threads_per_worker or share
    return tuple(
        Placement(
            device=each,
            sharers=devices.count(each),
            threads=threads,
            loader_workers=min(loader_workers, share),
        )
        for each in devices
    )


def not_started_note(n_workers: int, workers_per_gpu: int, started: int, gpus: int) -> str:
    """Why fewer workers run than `study.n_workers` asks for, and how to run them all."""
    return (
        f"[study] study.n_workers={n_workers} is more than {gpus} GPU(s) x "
        f"study.workers_per_gpu={workers_per_gpu}: starting {started} worker(s); raise "
        "study.workers_per_gpu to run more (if their trials fit in a GPU's memory together)"
    )


def room_for_a_trial(
    trials: Sequence[FrozenTrial],
    *,
    host: str,
    placement: Placement,
    device_name: str,
    device_memory: int,
) -> bool:
    """Whether a worker may start a trial on its GPU now: when it has the GPU to itself, when
    no trial on this kind of GPU has recorded its peak yet (the first trials are the
    measurement), or when the trials running on the GPU plus this one, each taken at the
    largest peak recorded on this kind of GPU, fit in `MEMORY_HEADROOM` of its memory. The
    largest peak, not each trial's own: a running trial's peak is known only when it ends,
    and the next architecture may be the study's largest."""
    if placement.device.type != "cuda" or placement.sharers == 1:
        return True
    running = sum(
        t.state == TrialState.RUNNING
        and t.user_attrs.get(TrialKey.HOST) == host
        and t.user_attrs.get(TrialKey.DEVICE) == str(placement.device)
        for t in trials
    )
    peak = largest_peak(trials, device_name)
    return running == 0 or peak is None or (running + 1) * peak <= MEMORY_HEADROOM * device_memory


def largest_peak(trials: Sequence[FrozenTrial], device_name: str) -> int | None:
    """The largest peak device memory recorded by a trial on a GPU of this name."""
    peaks = [
        int(t.user_attrs[TrialKey.PEAK_DEVICE_MEMORY])
        for t in trials
        if TrialKey.PEAK_DEVICE_MEMORY in t.user_attrs
        and t.user_attrs.get(TrialKey.DEVICE_NAME) == device_name
    ]
    return max(peaks, default=None)
