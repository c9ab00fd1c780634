"""The study on a real PostgreSQL server (tests/postgres_server.py, one a session), run by the
real commands as several hosts run it: created on one host and resumed on another, its report
rebuilt from the URL, the URL's password found in nothing they write, and a wrong URL refused
at once with a message that names the fault."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url

from analysis.record import TrialKey
from tests.postgres_server import TEST_USER, PostgresServer, free_port
from tests.support import run_command, tiny_search_arguments

pytestmark = pytest.mark.slow

STUDY = "two-hosts"
FIRST_HOST, SECOND_HOST = "host-a", "host-b"


@dataclass(frozen=True)
class TwoHostStudy:
    url: str
    folder: Path  # everything the commands wrote: each host's outputs and wandb files, the report
    commands: tuple[subprocess.CompletedProcess[str], ...]  # the two searches, then the report


def search_on(
    host: str, url: str, root: Path, folder: Path, *overrides: str
) -> subprocess.CompletedProcess[str]:
    """The study command as `host` runs it: its own output folder (its own disk), tracked by
    wandb offline with every file wandb writes, its home folders too, under that folder."""
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
