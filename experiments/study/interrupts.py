"""Ctrl-C, `kill`, `timeout` and a scheduler's SIGTERM, turned into an orderly stop.

Inside `stop_on_signals()`, SIGINT and SIGTERM raise `Interrupted` in the main thread: the
running trial records why it failed ("interrupted by SIGTERM") and is enqueued again, Optuna
stores it as FAIL, and the command writes the report of what finished and exits with
128 + the signal's number (130, 143), as shells expect. Later signals are ignored while that
happens, so the cleanup is not itself interrupted.
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


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise `Interrupted` on the first SIGINT or SIGTERM; ignore the ones after it."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()
        raise Interrupted(signum)

    with _handling(handler):
        yield


@contextmanager
def pass_on_signals(forward: Callable[[int], None]) -> Iterator[list[int]]:
    """For a process that only watches workers: on the first SIGINT or SIGTERM, `forward(signum)`
    and record it in the yielded list; nothing is raised, so no database access of this
    process is cut in half (a transaction left open would lock the workers out)."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()
        received.append(signum)
        forward(signum)

    with _handling(handler):
        yield received


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {each: signal.signal(each, handler) for each in STOP_SIGNALS}
    try:
        yield
    finally:
        for each, old in previous.items():
            signal.signal(each, old)


def _ignore_stop_signals() -> None:
    for each in STOP_SIGNALS:
        signal.signal(each, signal.SIG_IGN)
