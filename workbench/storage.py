"""An Optuna RDB storage (SQLite, PostgreSQL, MySQL) opened safely, by the study commands and
by every reader (`analysis.report`, `analysis.export`, `experiments.retrain`) alike.

- Creation is safe when raced: two commands started together on a new database both try to
  create its tables; the loser retries and finds them.
- Errors are one line that names the problem (a malformed URL, a missing driver, an unreachable
  server, a refused login, a file that is not a database), in seconds, with the URL's password
  masked: a storage URL is never printed or stored with its password (`workbench.secrets`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url

from workbench.secrets import mask_secrets

_CREATION_ATTEMPTS = 5


class StorageError(ValueError):
    """The storage cannot be opened; the message says why, without the password."""


def open_rdb_storage(url: str, **options: Any) -> RDBStorage:
    """`RDBStorage(url, **options)` (heartbeats, for a study that runs trials), with the
    engine settings and errors above."""
    shown = mask_secrets(url)
    try:
        backend = make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"the storage URL {shown!r} is not a database URL (expected e.g. "
            "sqlite:///outputs/studies.db or postgresql://USER:PASSWORD@HOST:5432/DB)"
        ) from None
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = make_url(url).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Several worker processes share one file: wait for the lock instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        # An unreachable server fails in seconds, not after the driver's default minutes.
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
    for attempt in range(_CREATION_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, **options)
        except sqlalchemy.exc.NoSuchModuleError:
            raise StorageError(
                f"the storage URL {shown!r}: SQLAlchemy knows no database {backend!r} (PostgreSQL "
                "is postgresql://USER:PASSWORD@HOST:5432/DB)"
            ) from None
        except ImportError as error:  # Optuna wraps the driver's ModuleNotFoundError
            missing = getattr(error.__cause__, "name", None) or backend
            raise StorageError(
                f"the storage URL {shown!r} needs the database driver {missing!r}: "
                "pip install -e '.[postgres]' (PostgreSQL) or the driver of your database"
            ) from None
        except (
            sqlalchemy.exc.OperationalError,  # SQLite: "table ... already exists"
            sqlalchemy.exc.IntegrityError,  # SQLite: the schema version stamped twice
            sqlalchemy.exc.ProgrammingError,  # PostgreSQL: DuplicateTable
        ) as error:
            if _creation_race(error) and attempt + 1 < _CREATION_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))  # the other process is creating the tables
                continue
            raise StorageError(
                f"cannot open the storage {shown}: {mask_secrets(_first_line(error))}"
            ) from None
        except sqlalchemy.exc.DatabaseError as error:
            raise StorageError(
                f"cannot open the storage {shown}: {mask_secrets(_first_line(error))} "
                "(is it an Optuna database?)"
            ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _creation_race(error: sqlalchemy.exc.DBAPIError) -> bool:
    text = str(error.orig)
    return "already exists" in text or "UNIQUE constraint failed: alembic_version" in text


def _first_line(error: sqlalchemy.exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error).splitlines()[0]


@dataclass(frozen=True)
class RdbStorageSettings:
    """`storage=sqlite|postgres` (`conf/storage/`): an SQLAlchemy URL, with heartbeats."""

    kind: Literal["rdb"]
    url: str
    heartbeat_interval: int  # seconds between a running trial's heartbeats
    grace_period: int  # seconds without one after which the trial is failed
    max_retry: int  # times a failed trial is retried
    # A trial whose process died is noticed (failed, then retried).
    heartbeats: ClassVar[bool] = True


@dataclass(frozen=True)
class JournalStorageSettings:
    """`storage=journal`: a journal file, for several processes on one machine."""

    kind: Literal["journal"]
    path: Path
    heartbeats: ClassVar[bool] = False  # Optuna gives journal storages none


StorageSettings = RdbStorageSettings | JournalStorageSettings


def make_storage(settings: StorageSettings) -> optuna.storages.BaseStorage:
    """RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats: a trial whose process died is
    failed after `grace_period` seconds and retried up to `max_retry` times. Journal files have
    no heartbeats (Optuna's limitation): a crashed trial stays RUNNING there."""
    if isinstance(settings, JournalStorageSettings):
        settings.path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(settings.path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry)
    return open_rdb_storage(
        settings.url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        heartbeat_stale_trial_callback=retry,
    )
