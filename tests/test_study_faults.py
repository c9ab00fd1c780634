"""Nothing lost, nothing mixed, nothing leaked: a study under signals, changed settings, two
commands at once, bad storages and secrets. Real processes and signals, real SQLite files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import event
from sqlalchemy.engine import Engine

from experiments.config import compose_config
from experiments.study.identity import StudyMismatchError
from experiments.study.interrupts import Interrupted, stop_on_signals
from experiments.study.lifecycle import sampler_seed, start_study
from experiments.study.setup import SearchSetup, prepare
from experiments.study.workers import search
from tests.support import (
    command_group,
    merged,
    run_command,
    tiny_budget,
    trial_running,
    wait_until,
)
from workbench.record import StudyKey, TrialKey
from workbench.secrets import mask_secrets
from workbench.storage import RdbStorageSettings, StorageError, make_storage


def tiny_config(root: Path, tmp_path: Path, *overrides: str) -> dict:
    return compose_config(
        "search",
        merged("+study=demo", *tiny_budget(root, tmp_path), "study.name=tiny", "study.n_trials=2",
               "study.latency.measure=false", "study.first_trials_per_head=0", *overrides),
    )  # fmt: skip


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/studies.db")


def group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------------------- signals
@pytest.mark.slow
# Ctrl-C to a one-worker command, a scheduler's SIGTERM to a command with two workers.
@pytest.mark.parametrize(
    ("signum", "code", "workers"), [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 2)]
)
def test_a_stop_signal_fails_the_running_trial_and_enqueues_it_again(
    synthetic_root: Path, tmp_path: Path, signum: int, code: int, workers: int
) -> None:
    arguments = merged(
        "+study=demo", *tiny_budget(synthetic_root, tmp_path), "study.name=tiny",
        "study.n_trials=3", "study.latency.measure=false", f"study.n_workers={workers}",
        "study.reference_designs=[xception_b]", "study.first_trials_per_head=0",
        "trainer.steps=20000",
    )  # fmt: skip
    with command_group("experiments.search", *arguments) as process:
        # Mid-trial: its architecture chosen, so it is enqueued again as it was.
        chosen = lambda: trial_running(tmp_path / "studies.db", TrialKey.SPEC)  # noqa: E731
        wait_until(chosen, timeout=120, what="a trial to choose its architecture")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
        # No orphaned worker trains on (the group also holds multiprocessing's resource
        # tracker, which leaves a moment after the command).
        wait_until(lambda: group_gone(process.pid), timeout=10, what="the group to end")
    assert process.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr and "Traceback" not in stdout
    assert f"interrupted by {signal.Signals(signum).name}" in stderr
    trials = load(tmp_path).get_trials()
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(
        t.user_attrs[TrialKey.FAIL_REASON] == f"interrupted by {signal.Signals(signum).name}"
        for t in interrupted
    )
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    retries = {t.user_attrs.get(TrialKey.RETRY_OF) for t in trials if t.state == TrialState.WAITING}
    # Those that had chosen their architecture run again as they were; one stopped before (a
    # second worker's, just started) is simply sampled anew.
    chosen = {t.number for t in interrupted if TrialKey.SPEC in t.user_attrs}
    assert chosen and chosen <= retries


def test_a_signal_inside_a_trials_storage_write_lets_it_finish_then_stops_the_trial(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """The signal lands while the trial stores its genes: the write completes (so the trial
    is retried as the architecture it chose), and the trial stops before training."""
    config = tiny_config(synthetic_root, tmp_path, "study.reference_designs=[xception_b]")
    sent: list[str] = []

    def signal_mid_write(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if (
            not sent
            and "trial_user_attributes" in statement
            and f"'{TrialKey.SPEC}'" in str(parameters)
        ):
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGINT)

    event.listen(Engine, "before_cursor_execute", signal_mid_write)
    try:
        with stop_on_signals(), pytest.raises(Interrupted, match="interrupted by SIGINT"):
            search(config)
    finally:
        event.remove(Engine, "before_cursor_execute", signal_mid_write)
    assert sent
    trials = load(tmp_path).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs[TrialKey.FAIL_REASON] == (
        "interrupted by SIGINT"
    )
    assert TrialKey.SPEC in failed[0].user_attrs  # the write the signal landed in
    assert TrialKey.CURVE not in failed[0].user_attrs  # stopped before training
    (retry,) = [t for t in trials if t.state == TrialState.WAITING]
    assert retry.user_attrs[TrialKey.RETRY_OF] == failed[0].number
    assert retry.user_attrs[TrialKey.REFERENCE] == "xception_b"


@pytest.fixture
def one_reference(synthetic_root: Path, tmp_path: Path) -> tuple[dict, SearchSetup, optuna.Study]:
    """A started tiny study whose only first trial is Xception B: (config, setup, study)."""
    config = tiny_config(synthetic_root, tmp_path, "study.reference_designs=[xception_b]")
    setup = prepare(config)
    return config, setup, start_study(setup)


@pytest.mark.slow
def test_an_interrupted_reference_design_is_measured_once_in_the_end(
    one_reference: tuple[dict, SearchSetup, optuna.Study], tmp_path: Path
) -> None:
    config, _, study = one_reference
    (reference,) = study.get_trials(states=(TrialState.WAITING,))
    # What an interrupted first trial leaves: the reference failed, no retry enqueued yet.
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() outside optimize(), on purpose
        trial = study.ask()
    assert trial.number == reference.number
    study.tell(trial, state=TrialState.FAIL)
    search(config)
    trials = load(tmp_path).get_trials()
    measured = [
        t for t in trials
        if t.state == TrialState.COMPLETE and t.user_attrs.get(TrialKey.REFERENCE) == "xception_b"
    ]  # fmt: skip
    assert len(measured) == 1


# ------------------------------------------------------------------------- what defines it
def test_a_resume_with_changed_settings_is_refused_before_any_work(
    synthetic_root: Path, tmp_path: Path
) -> None:
    start_study(prepare(tiny_config(synthetic_root, tmp_path)))
    changed = tiny_config(
        synthetic_root, tmp_path, "space=dfanet", "trainer.steps=5", "sampler=random"
    )
    with pytest.raises(StudyMismatchError) as error:
        start_study(prepare(changed))
    message = str(error.value)
    assert "trainer.steps: stored 4, now 5" in message
    assert "space.name: stored 'heads', now 'dfanet'" in message
    assert "sampler.name: stored 'tpe', now 'random'" in message
    assert "study.name=NEW_NAME" in message
    assert len(load(tmp_path).get_trials()) == 6  # the 6 enqueued reference designs, untouched
    # What may change does not count: more trials, more workers, another output folder.
    allowed = tiny_config(
        synthetic_root, tmp_path, "study.n_trials=5", "study.n_workers=2", "tracking=wandb"
    )
    start_study(prepare(allowed))


def test_the_stored_config_masks_passwords(synthetic_root: Path, tmp_path: Path) -> None:
    url = "postgresql://ann:s3cret@db:5432/x"
    # A URL in a free-text setting and in a defining section (the space's): all copies masked.
    config = tiny_config(
        synthetic_root, tmp_path, f"tracking.project={url}", f"+space.origin={url}"
    )
    study = start_study(prepare(config))
    stored = str(study.user_attrs[StudyKey.CONFIG]) + str(study.user_attrs[StudyKey.DEFINITION])
    assert "s3cret" not in stored
    assert stored.count("postgresql://ann:***@db:5432/x") == 3  # config: 2; definition: space


# ----------------------------------------------------------------- two commands, one study
def test_sampler_seeds_never_replay_a_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    creator = [sampler_seed(7, worker, created=True, resumed_at=0) for worker in (0, 1)]
    assert creator == [7, 8]  # a study run by one command is repeatable
    # Every other command: by worker, by trials stored, by process (commands started together
    # on one host, or on several, store the same count).
    others = {sampler_seed(7, w, created=False, resumed_at=r) for w in range(4) for r in (0, 9)}
    assert len(others) == 8 and not others & set(creator)
    monkeypatch.setattr(os, "getpid", lambda: os.getppid())
    assert sampler_seed(7, 0, created=False, resumed_at=0) not in others


@pytest.mark.slow
def test_an_architecture_proposed_twice_is_trained_once(
    one_reference: tuple[dict, SearchSetup, optuna.Study], tmp_path: Path
) -> None:
    config, setup, study = one_reference
    ((params, _),) = setup.proposer.initial_trials()
    study.enqueue_trial(params)  # the same architecture, as a second command would propose it
    search(config)
    first, second = load(tmp_path).get_trials()[:2]
    assert second.user_attrs[TrialKey.DUPLICATE_OF] == first.number
    assert second.values == first.values
    assert second.user_attrs[TrialKey.CURVE] == first.user_attrs[TrialKey.CURVE]


def _open(url: str) -> None:
    make_storage(
        RdbStorageSettings(kind="rdb", url=url, heartbeat_interval=10, grace_period=30, max_retry=1)
    )


def _open_together(url: str, barrier: threading.Barrier) -> None:
    barrier.wait(timeout=60)  # every process reaches the creation at the same moment
    _open(url)


@pytest.mark.slow
def test_storage_creation_is_safe_when_raced(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for attempt in range(2):
        url = f"sqlite:///{tmp_path}/race{attempt}.db"
        barrier = context.Barrier(4)
        processes = [context.Process(target=_open_together, args=(url, barrier)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0, 0, 0, 0]
        assert optuna.get_all_study_names(url) == []


# ---------------------------------------------------------------- bad storages and secrets
@pytest.mark.parametrize(
    ("url", "message"),
    [
        # pg8000 is a driver this project never installs (the postgres extra is psycopg).
        ("postgresql+pg8000://ann:s3cret@127.0.0.1:9/db", "needs the database driver"),
        ("postgres://ann:s3cret@127.0.0.1:9/db", "SQLAlchemy knows no database 'postgres'"),
        ("not a url", "is not a database URL"),
    ],
)
def test_a_bad_storage_url_is_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(StorageError) as error:
        _open(url)
    assert message in str(error.value) and "s3cret" not in str(error.value)


def test_a_corrupt_sqlite_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "studies.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="is it an Optuna database"):
        _open(f"sqlite:///{path}")


@pytest.mark.slow
def test_the_command_masks_the_password_and_exits_2(synthetic_root: Path, tmp_path: Path) -> None:
    result = run_command(
        "experiments.search",
        *merged("+study=demo", *tiny_budget(synthetic_root, tmp_path), "storage=postgres",
                "storage.url=postgresql://ann:s3cret@127.0.0.1:9/db"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and result.stderr.count("\n") <= 3


@pytest.mark.slow
def test_an_unwritable_report_folder_fails_at_start(synthetic_root: Path, tmp_path: Path) -> None:
    # A file where the reports folder should be: as unwritable as a read-only folder, even to
    # root (who may write into a read-only one).
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "reports").write_text("")
    result = run_command(
        "experiments.search", "+study=demo", *tiny_budget(synthetic_root, tmp_path)
    )
    assert result.returncode == 2
    assert "cannot write the report" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "studies.db").exists()


def test_mask_secrets_in_any_text() -> None:
    text = "could not open postgresql+psycopg://u:pa%40ss@h:5432/d; sqlite:///a.db"
    assert (
        mask_secrets(text) == "could not open postgresql+psycopg://u:***@h:5432/d; sqlite:///a.db"
    )
