"""The Optuna storage a config names (`conf/storage/*.yaml`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend


def make_storage(config: Mapping[str, Any]) -> optuna.storages.BaseStorage:
    """RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats: a trial whose process died is
    failed after `grace_period` seconds and retried up to `max_retry` times. Journal files have
    no heartbeats (Optuna's limitation): a crashed trial stays RUNNING there."""
    kind = config.get("kind")
    if kind == "journal":
        path = Path(config["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if kind != "rdb":
        raise ValueError(f"storage.kind must be 'rdb' or 'journal', got {kind!r}")
    url = str(config["url"])
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Several worker processes share one file: wait for the lock instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=int(config["heartbeat_interval"]),
            grace_period=int(config["grace_period"]),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                max_retry=int(config["max_retry"])
            ),
        )
