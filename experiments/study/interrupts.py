"""Ctrl-C, `kill`, `timeout` and a scheduler's SIGTERM, turned into an orderly stop.

Inside `stop_on_signals()`, the first SIGINT or SIGTERM is recorded, and later ones are ignored
until the context ends, so the cleanup is not itself cut short. The handler itself never
raises: an exception thrown wherever the signal lands can land inside a storage write, between
a lock's acquire and its release (SQLAlchemy's pool, the heartbeat thread's session), and leave
the process hung on that lock for good. `raise_if_interrupted()` raises `Interrupted` where
stopping cuts nothing in half, and it is called often enough that a stop takes about a
training step (at most a cost count, a latency measurement or a batch):
- in a trial, at its start, once its costs are measured, and before every training step and
  every evaluation batch: the trial records why it failed ("interrupted by SIGTERM"), is
  enqueued again (`trial.run_trial`) and Optuna stores it as FAIL; one that is past its last
  evaluation batch finishes and is stored as it is;
- in the worker loop between trials, and while a worker waits for others.
The command then writes the report of what finished and exits with 128 + the signal's number
(130, 143), as shells expect.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so that Optuna fails the running trial
    and re-raises it instead of catching it as a trial's error and going on."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    received: int | None = None  # the first stop signal
    forward: Callable[[int], None] | None = None  # passes the signal on to worker processes


def _handler(signum: int, frame: FrameType | None) -> None:
    for each in STOP_SIGNALS:
        signal.signal(each, signal.SIG_IGN)  # until exit: the cleanup must finish
    _State.received = signum
    if _State.forward is not None:
        _State.forward(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Record the first SIGINT or SIGTERM and ignore the ones after it."""
    _State.received = None
    previous = {each: signal.signal(each, _handler) for each in STOP_SIGNALS}
    try:
        yield  # the cleanup after a signal runs in here, with the signals still ignored
    finally:
        _State.received = None
        for each, old in previous.items():
            signal.signal(each, old)


@contextmanager
def forwarding(forward: Callable[[int], None]) -> Iterator[None]:
    """For a process that watches workers: a stop signal is passed on with `forward(signum)`
    (also one that arrived before the workers existed, on entry)."""
    _State.forward = forward
    if _State.received is not None:
        forward(_State.received)
    try:
        yield
    finally:
        _State.forward = None


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a stop signal has arrived: call it where stopping is safe."""
    if _State.received is not None:
        raise Interrupted(_State.received)
