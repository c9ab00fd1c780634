"""The study command, run for real in subprocesses on a temporary storage and tiny budgets;
its configuration errors in-process, through the same `prepare` the command calls."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from experiments.config import compose_config
from experiments.data import DatasetError
from experiments.study.setup import prepare
from tests.support import (
    REPO,
    command,
    command_env,
    run_command,
    tiny_search_arguments,
    trial_running,
    wait_until,
)
from workbench.record import GMADDS, LATENCY, MIOU, Constraint, TrialKey

pytestmark = pytest.mark.slow


def run_search(root: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run_command("experiments.search", *tiny_search_arguments(root, tmp_path, *overrides))


def load(tmp_path: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies.db")


def test_study_completes_and_resumes(synthetic_root: Path, tmp_path: Path) -> None:
    result = run_search(synthetic_root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert study.metric_names == [MIOU, GMADDS]
    first = complete[0]
    assert first.user_attrs[TrialKey.REFERENCE] == "xception_b"
    for trial in complete:
        miou, gmadds = trial.values
        assert 0 < miou <= 100 and gmadds == pytest.approx(trial.user_attrs[TrialKey.GMADDS])
        assert trial.user_attrs[TrialKey.SPEC]["input_size"] == [64, 128]
        assert [step for step, _ in trial.user_attrs[TrialKey.CURVE]] == [2, 4]
        for key in (
            TrialKey.N_PARAMS,
            TrialKey.MADDS,
            TrialKey.FVCORE_TOTAL,
            TrialKey.TRAIN_SECONDS,
            TrialKey.IMAGES_PER_SECOND,
            TrialKey.DEVICE,
            "torch",
            "optuna",
            TrialKey.SEED,
            "git_commit",
            TrialKey.LATENCY_MS,  # the demo records latency without making it an objective
        ):
            assert key in trial.user_attrs, key
    assert "finished 3/3" in result.stdout
    assert "report:" in result.stdout

    result = run_search(synthetic_root, tmp_path, "study.n_trials=5")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 5
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers)))
    # The reference design, finished in the first run, is not enqueued again on resume; the
    # resumed run's sampler proposes new architectures, not the first run's again.
    assert sum(t.user_attrs.get(TrialKey.REFERENCE) == "xception_b" for t in trials) == 1
    assert not [t for t in trials if TrialKey.DUPLICATE_OF in t.user_attrs]


def test_failed_trial_is_recorded_and_the_study_goes_on(
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    study = optuna.create_study(
        study_name="tiny",
        storage=f"sqlite:///{tmp_path}/studies.db",
        directions=["maximize", "minimize"],
    )
    # A user's bad enqueue: outside every valid spec. With its head: `towers` is no gene of an
    # ICNet head, which a sampler seeded by the process may otherwise draw for this trial.
    study.enqueue_trial({"head": "dfa", "towers": 9})
    result = run_search(synthetic_root, tmp_path, "study.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    reasons = [(t.number, t.state, t.user_attrs.get(TrialKey.FAIL_REASON)) for t in trials]
    assert len(failed) == 1, reasons
    assert "gene 'towers'" in failed[0].user_attrs[TrialKey.FAIL_REASON]
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2


@pytest.mark.parametrize(
    ("budget", "constraint"),
    [
        ("study.gmadds_budget=0.0001", Constraint.GMADDS),
        ("study.latency_budget_ms=0.001", Constraint.LATENCY),
    ],
)
def test_infeasible_trials_are_not_trained(
    synthetic_root: Path,
    tmp_path: Path,
    budget: str,
    constraint: str,
) -> None:
    result = run_search(synthetic_root, tmp_path, "study.n_trials=2", budget)
    assert result.returncode == 0, result.stderr[-3000:]
    for trial in load(tmp_path).get_trials():
        assert trial.user_attrs[TrialKey.INFEASIBLE] is True
        assert list(trial.constraints) == [constraint]
        assert trial.constraints[constraint] > 0
        assert TrialKey.CURVE not in trial.user_attrs


def test_latency_as_a_third_objective(synthetic_root: Path, tmp_path: Path) -> None:
    result = run_search(
        synthetic_root, tmp_path, "study.n_trials=2", "study.latency_objective=true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    assert study.metric_names == [MIOU, GMADDS, LATENCY]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        latency = trial.user_attrs[TrialKey.LATENCY_RESULT]
        assert trial.values[2] == trial.user_attrs[TrialKey.LATENCY_MS] == latency["median_ms"]
        assert 0 < latency["p10_ms"] <= latency["median_ms"] <= latency["p90_ms"]
        assert latency["repeats"] >= 5 and latency["threads"] == 1
        assert latency["input_size"] == [64, 128] and latency["path"] != "eager"
    report = (tmp_path / "outputs" / "reports" / "tiny" / "report.md").read_text()
    assert "## Latency" in report and "latency.png" in report

    # The stored study keeps its objectives: asking for two fails before any trial runs.
    result = run_search(synthetic_root, tmp_path, "study.n_trials=3")
    assert result.returncode == 2
    assert "['mIoU', 'GMAdds', 'latency_ms']" in result.stderr
    assert len(load(tmp_path).get_trials()) == 2


def test_bad_dataset_root_fails_before_any_work(tmp_path: Path) -> None:
    config = compose_config(
        "search",
        ["+study=cityscapes", f"dataset.root={tmp_path}/no-such-dir", f"output_dir={tmp_path}"],
    )
    with pytest.raises(DatasetError) as error:
        prepare(config)
    assert f"{tmp_path}/no-such-dir" in str(error.value)
    assert "+study=demo" in str(error.value)
    assert not (tmp_path / "studies.db").exists()


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    result = run_command(
        "experiments.search", "+study=demo", "trainer.steps=4", "trainer.steps=200",
        f"output_dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "trainer.steps given more than once" in result.stderr
    assert not (tmp_path / "studies.db").exists()


def test_missing_study_explains_the_choices() -> None:
    with pytest.raises(ValueError) as error:
        prepare(compose_config("search"))
    assert "+study=demo" in str(error.value) and "+study=cityscapes" in str(error.value)


def test_two_workers_share_one_storage(synthetic_root: Path, tmp_path: Path) -> None:
    result = run_search(synthetic_root, tmp_path, "study.n_trials=4", "study.n_workers=2")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 4 <= len(finished) <= 5
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_killed_worker_trial_is_failed_and_retried(synthetic_root: Path, tmp_path: Path) -> None:
    heartbeat = ("storage.heartbeat_interval=1", "storage.grace_period=3")
    # Trials of a few seconds (latency, then 40 steps): killed mid-trial, retried quickly.
    overrides = ("study.n_trials=2", "study.reference_designs=[]", "trainer.steps=40", *heartbeat)
    process = subprocess.Popen(
        command(
            "experiments.search",
            *tiny_search_arguments(synthetic_root, tmp_path, *overrides),
        ),
        cwd=REPO,
        env=command_env(),
        stdout=subprocess.DEVNULL,
        stderr=(log := (tmp_path / "search.log").open("w")),
        start_new_session=True,
    )
    try:
        wait_until(
            # Its architecture chosen (every parameter suggested), so the retry can be compared.
            lambda: (
                trial_running(tmp_path / "studies.db", TrialKey.SPEC) or process.poll() is not None
            ),
            timeout=120,
            what="a trial to start",
        )
        assert process.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
    finally:
        process.kill()
        process.wait()
        log.close()
    (killed,) = running(tmp_path)
    # Staleness is measured in time: the grace period must pass without a heartbeat.
    time.sleep(4)
    result = run_search(synthetic_root, tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry and retry[0].params == killed.params
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2


def running(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return load(tmp_path).get_trials(states=(TrialState.RUNNING,))


def test_offline_wandb_writes_one_run_per_trial(synthetic_root: Path, tmp_path: Path) -> None:
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "outputs"), "WANDB_API_KEY": ""}
    result = run_command(
        "experiments.search",
        *tiny_search_arguments(synthetic_root, tmp_path, "study.n_trials=1", "tracking=wandb"),
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the run wrote no history"
