"""A stop signal is recorded where it lands and raised only where stopping is safe: one that
arrives in the middle of a storage write lets the write finish (an exception thrown inside
SQLAlchemy can leave a lock held and the command hung; CI saw a retrain hang so)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import event

from experiments.study.interrupts import Interrupted, raise_if_interrupted, stop_on_signals


def test_a_signal_during_a_storage_write_lets_the_write_finish(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/studies.db")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    sent: list[str] = []

    def signal_mid_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Inside the write's transaction, before its statement runs: the worst moment.
        if not sent and "trial_user_attributes" in statement and "INSERT" in statement:
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGINT)

    event.listen(storage.engine, "before_cursor_execute", signal_mid_write)
    with stop_on_signals():
        trial.set_user_attr("written", True)  # the signal lands in here, and does not raise
        assert sent
        with pytest.raises(Interrupted, match="interrupted by SIGINT") as stop:
            raise_if_interrupted()
        assert stop.value.exit_code == 130
        os.kill(os.getpid(), signal.SIGINT)  # a second one is ignored: the cleanup goes on
    raise_if_interrupted()  # out of the context, nothing is pending
    event.remove(storage.engine, "before_cursor_execute", signal_mid_write)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/studies.db")
    assert stored.trials[0].user_attrs == {"written": True}
