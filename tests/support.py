"""What many tests share: the tiny architecture and data sizes, the tiny-budget overrides, and
one way to run a real command in a subprocess (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.config import compose_option
from experiments.training.trainer import TrainerConfig
from search_space.spec import ArchSpec

REPO = Path(__file__).parents[1]

# The small synthetic set the tests that train share (generated once a session, conftest.py).
SMALL = {"n_train": 24, "n_val": 6, "height": 64, "width": 128, "seed": 0}
INPUT_SIZE = (64, 128)

# The smallest architecture worth timing or deploying in a test: one narrow, shallow tower.
TINY = ArchSpec(
    widths=(8, 16, 32),
    depths=(1, 1, 1),
    stem_channels=4,
    towers=1,
    fc_hidden=8,
    decoder_high_level=False,
    decoder_low_level=False,
    input_size=(32, 48),
)

# The PostgreSQL test role: a distinctive password, so that a test can look for it everywhere.
TEST_USER, TEST_PASSWORD = "dfanet", "S3cret-pw-7731"


def tiny_budget(root: Path, tmp_path: Path) -> list[str]:
    """Hydra overrides that make a study or an ablation run in seconds on the small set, with
    everything it writes under `tmp_path` (storage `tmp_path/studies.db`)."""
    return [
        f"dataset.root={root}", *(f"dataset.{key}={value}" for key, value in SMALL.items()),
        f"dataset.input_size={INPUT_SIZE[0]}x{INPUT_SIZE[1]}",
        "trainer.steps=4", "trainer.eval_every=2", "trainer.batch_size=2",
        "trainer.eval_batch_size=6", "trainer.num_workers=0", "trainer.warmup_steps=1",
        "trainer.progress=false", f"storage.url=sqlite:///{tmp_path}/studies.db",
        f"output_dir={tmp_path}/outputs", "tracking=none", "study.threads_per_worker=1",
        "study.n_workers=1",  # the demo runs two workers; a test runs one unless it says
        # Every trial trains the whole budget; tests/test_study_schedule.py runs the schedule.
        "study.schedule.enabled=false",
    ]  # fmt: skip


def tiny_search_arguments(root: Path, tmp_path: Path, *overrides: str) -> list[str]:
    """A three-trial demo study `tiny` on the tiny budget (a paper design, then the sampler)."""
    return merged(
        "+study=demo", *tiny_budget(root, tmp_path), "study.name=tiny", "study.n_trials=3",
        "study.reference_designs=[xception_b]", "study.first_trials_per_head=0",
        "sampler.n_startup_trials=2", *overrides,
    )  # fmt: skip


def merged(*overrides: str) -> list[str]:
    """Hydra overrides with each key once, the last value winning: the commands refuse a key
    given twice, as a user's typo would be."""
    by_key = {override.split("=", 1)[0]: override for override in overrides}
    return list(by_key.values())


def command(module: str, *arguments: str) -> list[str]:
    return [sys.executable, "-m", module, *arguments]


def run_command(
    module: str, *arguments: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m module arguments...` from the repository root, as a user types it; wandb
    disabled and one thread unless `env` says otherwise. The caller checks the exit code."""
    return run_process(command(module, *arguments), timeout=timeout, env=env)


def run_process(
    argv: list[str], *, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Any program (torchrun, `python -c`) the way `run_command` runs a module."""
    return subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=command_env(env),
    )


@contextlib.contextmanager
def command_group(
    module: str, *arguments: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`python -m module arguments...` in a process group of its own (the group holds its
    workers, so a test can signal the command and check that none outlives it); whatever the
    test's outcome, the group is killed on exit: a failed test leaves nothing running."""
    with subprocess.Popen(
        command(module, *arguments),
        cwd=REPO,
        env=command_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def command_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **(extra or {})}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 0.2 s until it holds; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def trainer_config(**overrides: Any) -> TrainerConfig:
    """The demo recipe (`conf/trainer/demo.yaml`) with `overrides`: the defaults in conf/."""
    return TrainerConfig.from_dict({**compose_option("trainer", "demo"), **overrides})


def exit_code(main: Callable[[list[str]], int], arguments: list[str]) -> int:
    """A command's exit status, run in-process: its return value, or argparse's `SystemExit`."""
    try:
        return main(arguments)
    except SystemExit as stop:
        return int(stop.code or 0)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_main(main: Callable[[list[str]], int], arguments: list[str]) -> Outcome:
    """A command's `main` run in-process, with what it printed: its error paths without the
    cost of a new interpreter."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = exit_code(main, arguments)
    return Outcome(code, out.getvalue(), err.getvalue())


def trial_running(database: Path, with_attribute: str | None = None) -> bool:
    """Whether a trial is RUNNING in an SQLite study database (and has set `with_attribute`).
    Read with sqlite3 itself, read-only: opening an Optuna storage would create its tables, and
    race the command creating them."""
    query = "SELECT count(*) FROM trials t WHERE t.state = 'RUNNING'"
    arguments: tuple[str, ...] = ()
    if with_attribute is not None:
        query += (
            " AND EXISTS (SELECT 1 FROM trial_user_attributes a"
            " WHERE a.trial_id = t.trial_id AND a.key = ?)"
        )
        arguments = (with_attribute,)
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            return connection.execute(query, arguments).fetchone()[0] > 0
    except sqlite3.OperationalError:  # no file or no table yet
        return False


# A search space small enough to time every part in seconds: the four heads on one narrow tower
# (two for DFA and BiSeNet), at 64x64.
TINY_SPACE: dict[str, Any] = {
    "name": "tiny",
    "base": "dfa_backbone_a",
    "genes": {
        "head": {"choices": ["dfa", "aspp", "icnet", "bisenet"]},
        "towers": {"choices": [1, 2], "when": {"head": ["dfa", "bisenet"]}},
        "widths": [{"choices": [8]}, {"choices": [16]}, {"choices": [16, 32]}],
        "depths": [{"low": 1, "high": 2}, {"value": 1}, {"value": 1}],
        "stem_channels": {"choices": [4]},
        "fc_hidden": {"value": 8},
        "decoder_low_level": {"choices": [True, False], "when": {"head": ["dfa"]}},
        "decoder_channels": {"choices": [8], "when": {"head": ["dfa"]}},
        "aspp_channels": {"choices": [8], "when": {"head": ["aspp"]}},
        "aspp_rates": {"choices": [[2, 4]], "when": {"head": ["aspp"]}},
        "icnet_scales": {"choices": [[4, 1], [2, 1]], "when": {"head": ["icnet"]}},
        "icnet_channels": {"choices": [8], "when": {"head": ["icnet"]}},
        "icnet_branch_channels": {"choices": [8], "when": {"head": ["icnet"]}},
        "icnet_branch_depth": {"choices": [2], "when": {"head": ["icnet"]}},
        "bisenet_spatial_channels": {"choices": [8], "when": {"head": ["bisenet"]}},
        "bisenet_channels": {"choices": [8], "when": {"head": ["bisenet"]}},
        "input_size": {"value": [64, 64]},
    },
}
