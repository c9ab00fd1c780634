"""The study on a real PostgreSQL server (workbench/postgres_server.py, one a
session), run by the real commands as several hosts run it: created on one host and resumed on
another, three hosts started together, a host killed mid-trial, two Slurm jobs through
submitit's local executor; its report rebuilt from the URL, the URL's password found in nothing
they write, and a wrong URL refused at once with a message that names the fault."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url

from tests.support import TEST_USER, command_group, run_command, tiny_search_arguments, wait_until
from workbench.postgres_server import PostgresServer, free_port
from workbench.record import TrialKey

pytestmark = pytest.mark.slow

STUDY = "two-hosts"
FIRST_HOST, SECOND_HOST = "host-a", "host-b"


@dataclass(frozen=True)
class TwoHostStudy:
    url: str
    folder: Path  # everything the commands wrote: each host's outputs and wandb files, the report
    commands: tuple[subprocess.CompletedProcess[str], ...]  # the two searches, then the report


def host_command(
    host: str, url: str, root: Path, folder: Path, *overrides: str
) -> tuple[list[str], dict[str, str]]:
    """The study command's arguments and environment as `host` runs it: its own output folder
    (its own disk), tracked by wandb offline with every file wandb writes, its home folders
    too, under that folder."""
    home = folder / host
    wandb_homes = ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
    env = {
        "DFANET_HOST": host,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(home / "outputs"),
        "WANDB_API_KEY": "",
        **{variable: str(home / "wandb-home") for variable in wandb_homes},
    }
    arguments = tiny_search_arguments(
        root, home, "storage=postgres", f"storage.url={url}", f"study.name={STUDY}",
        "tracking=wandb", *overrides,
    )  # fmt: skip
    return arguments, env


def search_on(
    host: str, url: str, root: Path, folder: Path, *overrides: str
) -> subprocess.CompletedProcess[str]:
    arguments, env = host_command(host, url, root, folder, *overrides)
    return run_command("experiments.search", *arguments, env=env)


@pytest.fixture(scope="module")
def two_host_study(
    postgres_url: str, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> TwoHostStudy:
    """Two trials on one host, a third on another resuming the study, then the report."""
    folder = tmp_path_factory.mktemp("postgres-study")
    first = search_on(FIRST_HOST, postgres_url, synthetic_root, folder, "study.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = search_on(SECOND_HOST, postgres_url, synthetic_root, folder, "study.n_trials=3")
    assert second.returncode == 0, second.stderr[-3000:]
    report = run_command(
        "analysis.report", f"study={STUDY}", f"storage={postgres_url}", f"out={folder / 'report'}"
    )
    return TwoHostStudy(postgres_url, folder, (first, second, report))


def test_a_study_resumed_on_another_host_records_each_trials_host(
    two_host_study: TwoHostStudy,
) -> None:
    first, second, _ = two_host_study.commands
    assert "finished 2/2" in first.stdout
    assert "2 finished trials stored" in second.stdout and "finished 3/3" in second.stdout
    trials = stored_trials(two_host_study.url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.user_attrs[TrialKey.HOST] for t in trials] == [FIRST_HOST, FIRST_HOST, SECOND_HOST]


def test_the_report_is_rebuilt_from_the_url(two_host_study: TwoHostStudy) -> None:
    *_, report = two_host_study.commands
    assert report.returncode == 0, report.stderr[-3000:]
    folder = two_host_study.folder / "report"
    assert "report:" in report.stdout and (folder / "report.md").is_file()
    trials = pd.read_csv(folder / "trials.csv")
    assert sorted(trials[TrialKey.HOST]) == [FIRST_HOST, FIRST_HOST, SECOND_HOST]


def test_the_password_appears_nowhere(
    two_host_study: TwoHostStudy, postgres_server: PostgresServer
) -> None:
    """Not in the commands' output, any file they wrote (Hydra's run folder and log, the
    reports, wandb's runs, configs and logs), nor any row of the storage: every study and trial
    attribute, user and system."""
    password = postgres_server.password.encode()
    files = [path for path in two_host_study.folder.rglob("*") if path.is_file()]
    assert any(path.suffix == ".wandb" for path in files), "no wandb run was written"
    assert any("hydra" in path.parts for path in files), "no Hydra run folder was written"
    for path in files:
        assert password not in path.read_bytes(), path
    for command in two_host_study.commands:
        assert password.decode() not in command.stdout + command.stderr, command.args
    tables = stored_rows(two_host_study.url)
    for table in ("study_user_attributes", "study_system_attributes", "trial_user_attributes",
                  "trial_system_attributes"):  # fmt: skip
        assert tables[table], f"{table} is empty: nothing to check"
    for table, rows in tables.items():
        assert password.decode() not in rows, table
    # The URL is stored where the study describes itself, with its password masked.
    assert f"{postgres_server.user}:***@" in tables["study_user_attributes"]


# ------------------------------------------------------------ hosts together, a host killed
HOSTS = ("host-a", "host-b", "host-c")
TARGET = 6


def test_three_hosts_started_together_reach_the_target_exactly(
    postgres_database_url: str, synthetic_root: Path, tmp_path: Path
) -> None:
    """Three commands started at once, each its own host (name, output folder, sampler seed):
    each enqueues the study's paper design, each checks the target before its trials."""
    with contextlib.ExitStack() as stack:
        processes = {}
        for host in HOSTS:
            arguments, env = host_command(
                host, postgres_database_url, synthetic_root, tmp_path,
                f"study.n_trials={TARGET}", "tracking=none",
            )  # fmt: skip
            command = command_group("experiments.search", *arguments, env=env)
            processes[host] = stack.enter_context(command)
        outputs = {host: process.communicate(timeout=600) for host, process in processes.items()}
    for host, process in processes.items():
        assert process.returncode == 0, (host, outputs[host][1][-3000:])
    trials = stored_trials(postgres_database_url)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    by_host = Counter(t.user_attrs[TrialKey.HOST] for t in complete)
    refused = len(trials) - len(complete)
    print(f"\n{len(trials)} trials: {dict(by_host)} complete, {refused} refused")
    assert len(complete) == TARGET, [(t.number, t.state, t.user_attrs) for t in trials]
    assert architectures(complete) == TARGET  # none trained twice, none reused as a duplicate
    assert sum(TrialKey.REFERENCE in t.user_attrs for t in complete) == 1
    assert {t.user_attrs[TrialKey.HOST] for t in complete} <= set(HOSTS)
    # What did not run was refused before choosing anything, saying why.
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            assert trial.state == TrialState.PRUNED, (trial.number, trial.state)
            assert trial.user_attrs[TrialKey.PRUNE_REASON].startswith("not started: ")
            assert TrialKey.SPEC not in trial.user_attrs


def test_a_host_killed_mid_trial_is_retried_by_another(
    postgres_database_url: str, synthetic_root: Path, tmp_path: Path
) -> None:
    """SIGKILL, as an out-of-memory kill or a lost node ends a job, while another host trains
    too: nothing of the dead process runs again; its trial's heartbeat stops, and the other
    host, its own trial done, waits for it, fails it and runs it again."""
    # Trials long enough to overlap and to be killed before their end; heartbeats 1 s apart.
    overrides = ("study.n_trials=2", "tracking=none", "trainer.steps=60", "trainer.eval_every=60",
                 "storage.heartbeat_interval=1", "storage.grace_period=3")  # fmt: skip
    commands = [
        host_command(host, postgres_database_url, synthetic_root, tmp_path, *overrides)
        for host in ("host-a", "host-b")
    ]
    with contextlib.ExitStack() as stack:
        doomed, survivor = (
            stack.enter_context(command_group("experiments.search", *arguments, env=env))
            for arguments, env in commands
        )
        wait_until(
            lambda: set(running_trials(postgres_database_url).values()) == {"host-a", "host-b"},
            180, "a trial running on each host",
        )  # fmt: skip
        (killed,) = [n for n, h in running_trials(postgres_database_url).items() if h == "host-a"]
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        _, errors = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, errors[-3000:]
    trials = {t.number: t for t in stored_trials(postgres_database_url)}
    assert trials[killed].state == TrialState.FAIL
    (retry,) = [t for t in trials.values() if retried_from(t) == killed]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[TrialKey.HOST] == "host-b"
    assert retry.params == trials[killed].params
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and {t.user_attrs[TrialKey.HOST] for t in complete} == {"host-b"}


def test_a_multirun_of_two_submitit_jobs_runs_the_study_to_its_target(
    postgres_database_url: str, postgres_server: PostgresServer, synthetic_root: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The Slurm command with submitit's local executor: the same launcher plugin, jobs as
    processes on this machine. The URL comes from the environment, as docs/several-hosts.md says,
    so that neither Hydra's saved multirun config nor submitit's pickled jobs hold the password."""
    overrides = tiny_search_arguments(
        synthetic_root, tmp_path, "storage=postgres", f"study.name={STUDY}",
        f"study.n_trials={TARGET}", "tracking=none",
    )  # fmt: skip
    arguments = [argument for argument in overrides if not argument.startswith("storage.url=")]
    result = run_command(
        "experiments.search", "-m", "hydra/launcher=submitit_local", "job=0,1", *arguments,
        env={"DFANET_STORAGE_URL": postgres_database_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    complete = [t for t in stored_trials(postgres_database_url) if t.state == TrialState.COMPLETE]
    assert len(complete) == TARGET
    assert architectures(complete) == TARGET
    logs = sorted(tmp_path.glob("outputs/hydra/search/multirun-*/.submitit/*/*_log.out"))
    assert len(logs) == 2
    for log in logs:  # each job ran trials of the study, and ended well
        text = log.read_text()
        assert "[study] finished" in text and "Job completed successfully" in text, log
    password = postgres_server.password
    assert password not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def architectures(trials: list[FrozenTrial]) -> int:
    """How many different architectures the trials trained."""
    return len({json.dumps(t.user_attrs[TrialKey.SPEC], sort_keys=True) for t in trials})


def retried_from(trial: FrozenTrial) -> int | None:
    """The trial a heartbeat's retry stands for (Optuna records it; its reader is
    experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def running_trials(url: str) -> dict[int, str]:
    """The RUNNING trials that have chosen their architecture, by number, with their host;
    read with SQL (an Optuna storage opened here would race the command creating the tables)."""
    engine = sqlalchemy.create_engine(url)
    query = sqlalchemy.text(
        "SELECT t.number, host.value_json FROM trials t JOIN trial_user_attributes host"
        f" ON host.trial_id = t.trial_id AND host.key = '{TrialKey.HOST}'"
        " WHERE t.state = 'RUNNING' AND EXISTS (SELECT 1 FROM trial_user_attributes a"
        f" WHERE a.trial_id = t.trial_id AND a.key = '{TrialKey.SPEC}')"
    )
    try:
        with engine.connect() as connection:
            return {row[0]: json.loads(row[1]) for row in connection.execute(query)}
    except sqlalchemy.exc.ProgrammingError:  # no tables yet
        return {}
    finally:
        engine.dispose()


def stored_trials(url: str) -> list[FrozenTrial]:
    storage = RDBStorage(url)
    try:
        return optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    finally:
        storage.engine.dispose()  # its pooled connections would be closed only when collected


def stored_rows(url: str) -> dict[str, str]:
    """Every row of every table of the database, as text, by table."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: "\n".join(
                    str(tuple(row))
                    for row in connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))
                )
                for table in sqlalchemy.inspect(connection).get_table_names()
            }
    finally:
        engine.dispose()


WRONG_PASSWORD = "Wr0ng-pw-4419"
FAULTS: dict[str, tuple[Callable[[URL], URL], str]] = {
    "wrong password": (
        lambda url: url.set(password=WRONG_PASSWORD),
        f'password authentication failed for user "{TEST_USER}"',
    ),
    # Nothing listens there: the port a host behind a firewall or a stopped server leaves.
    "closed port": (lambda url: url.set(port=free_port()), "Connection refused"),
    "wrong database": (
        lambda url: url.set(database="no_such_db"),
        'database "no_such_db" does not exist',
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_wrong_url_fails_at_once_naming_the_fault(
    fault: str,
    postgres_database_url: str,
    postgres_server: PostgresServer,
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    change, message = FAULTS[fault]
    url = change(make_url(postgres_database_url)).render_as_string(hide_password=False)
    search = run_command(
        "experiments.search",
        *tiny_search_arguments(synthetic_root, tmp_path, "storage=postgres", f"storage.url={url}"),
    )
    report = run_command("analysis.report", "study=tiny", f"storage={url}")
    for result, code in ((search, 2), (report, 1)):
        assert result.returncode == code, result.stderr[-3000:]
        assert message in result.stderr and "Traceback" not in result.stderr
        assert f"{postgres_server.user}:***@" in result.stderr  # the URL, masked
        for secret in (postgres_server.password, WRONG_PASSWORD):
            assert secret not in result.stdout + result.stderr
    # Refused before writing anything: the database is as it was created.
    assert stored_rows(postgres_database_url) == {}
