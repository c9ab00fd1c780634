"""The Optuna storage a config names (`conf/storage/*.yaml`), opened safely (`analysis.storage`:
raced creation, one-line errors without the password) and with heartbeats where it has them."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

from analysis.storage import StorageError, open_rdb_storage


def make_storage(config: Mapping[str, Any]) -> optuna.storages.BaseStorage:
    """RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats: a trial whose process died is
    failed after `grace_period` seconds and retried up to `max_retry` times. Journal files have
    no heartbeats (Optuna's limitation): a crashed trial stays RUNNING there."""
    kind = config["kind"]
    if kind == "journal":
        path = Path(config["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if kind != "rdb":
        raise StorageError(f"storage.kind must be 'rdb' or 'journal', got {kind!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=int(config["max_retry"]))
    return open_rdb_storage(
        str(config["url"]),
        heartbeat_interval=int(config["heartbeat_interval"]),
        grace_period=int(config["grace_period"]),
        heartbeat_stale_trial_callback=retry,
    )
