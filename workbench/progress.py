"""A progress line for long loops: done/total, rate and ETA, printed every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressLine:
    """`advance()` after each item; a line at most every `every_s` seconds, and at `finish()`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "items",
        every_s: float = 10.0,
        write: Callable[[str], None] | None = print,
    ) -> None:
        self.label, self.total, self.unit, self.every_s, self.write = (
            label, total, unit, every_s, write,
        )  # fmt: skip
        self.done = 0
        self.started = self.last_written = time.perf_counter()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last_written >= self.every_s:
            self.last_written = now
            self._write(now)

    def finish(self) -> None:
        self._write(time.perf_counter())

    def _write(self, now: float) -> None:
        if self.write is None:
            return
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        self.write(
            f"{self.label}: {self.done}/{self.total} {self.unit} "
            f"({self.done / max(self.total, 1):.0%}), {rate:.1f}/s, {elapsed:.0f}s elapsed, "
            f"ETA {eta}"
        )
