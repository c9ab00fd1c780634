from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import RDBStorage

from experiments.benchmarks.storage_scaling import PHASES, WorkerRun, throughput
from tests.support import run_command


def _run(trials: int, seconds_each: float, start: float) -> WorkerRun:
    phases = {phase: [seconds_each / len(PHASES)] * trials for phase in PHASES}
    return WorkerRun(phases, start, start + 60, cpu_seconds=0.5 * seconds_each * trials)


def test_throughput_is_against_k_times_one_workers_rate() -> None:
    one = throughput("sqlite", [_run(30, 0.2, 0.0)], None)
    assert one.trials_per_minute == pytest.approx(30) and one.ratio == pytest.approx(1.0)
    # Two workers, each as fast as one alone, the second starting 20 s late: 60 trials in 80 s.
    two = throughput("sqlite", [_run(30, 0.2, 0.0), _run(30, 0.4, 20.0)], 30.0)
    assert two.trials_per_minute == pytest.approx(45) and two.ratio == pytest.approx(0.75)
    assert two.storage_ms == pytest.approx(300) and two.on_cpu_ms == pytest.approx(150)
    assert two.longest_wait_ms == pytest.approx(400)


@pytest.mark.slow
def test_the_benchmark_runs_real_trials_on_a_journal_and_on_postgresql(
    postgres_database_url: str, tmp_path: Path
) -> None:
    result = run_command(
        "experiments.benchmarks.storage_scaling", "--storages", "journal", "postgres",
        "--trials", "3", "--workers", "1", "2",
        "--work-ms", "1", "--postgres-url", postgres_database_url, "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "throughput.csv")
    assert list(zip(table["storage"], table["workers"], table["trials"], strict=True)) == [
        ("journal", 1, 3), ("journal", 2, 6), ("postgres", 1, 3), ("postgres", 2, 6),
    ]  # fmt: skip
    assert (tmp_path / "throughput.png").is_file()
    overhead = [line for line in result.stdout.splitlines() if line.startswith("| postgres |")]
    assert len(overhead) == 3  # the overhead row, then one a worker count
    # The trials were real ones, on the real server: every attribute a trial records.
    storage = RDBStorage(postgres_database_url)
    try:
        studies = optuna.get_all_study_names(storage)
        assert len(studies) == 2
        for name in studies:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
            assert all(len(t.user_attrs) >= 20 and len(t.params) >= 10 for t in trials)
    finally:
        storage.engine.dispose()  # its pooled connections would be closed only when collected
