"""The study command, run for real in subprocesses on a temporary storage and tiny budgets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.synthetic_fixture import SMALL, synthetic_root  # noqa: F401

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[1]


def search_command(root: Path, tmp_path: Path, *overrides: str) -> list[str]:
    dataset = [f"dataset.{key}={value}" for key, value in SMALL.items()]
    return [
        sys.executable, "-m", "experiments.search", "+study=demo",
        f"dataset.root={root}", *dataset, "dataset.input_size=[64,128]",
        "study.name=tiny", "study.n_trials=3", "study.reference_designs=[xception_b]",
        "trainer.steps=4", "trainer.eval_every=2", "trainer.batch_size=2",
        "trainer.eval_batch_size=6", "trainer.num_workers=0", "trainer.warmup_steps=1",
        "trainer.progress=false", "sampler.n_startup_trials=2",
        f"storage.url=sqlite:///{tmp_path}/studies.db", f"output_dir={tmp_path}/outputs",
        "tracking=none", "study.threads_per_worker=1", *overrides,
    ]  # fmt: skip


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def load(tmp_path: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies.db")


def test_study_completes_and_resumes(synthetic_root: Path, tmp_path: Path) -> None:  # noqa: F811
    result = run(search_command(synthetic_root, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert study.metric_names == ["mIoU", "GMAdds"]
    first = complete[0]
    assert first.user_attrs["reference"] == "xception_b"
    for trial in complete:
        miou, gmadds = trial.values
        assert 0 < miou <= 100 and gmadds == pytest.approx(trial.user_attrs["gmadds"])
        assert trial.user_attrs["spec"]["input_size"] == [64, 128]
        assert [step for step, _ in trial.user_attrs["curve"]] == [2, 4]
        for key in (
            "n_params",
            "madds",
            "fvcore_total",
            "train_seconds",
            "images_per_second",
            "device",
            "torch",
            "optuna",
            "seed",
            "git_commit",
            "latency_ms",  # the demo records latency without making it an objective
        ):
            assert key in trial.user_attrs, key
    assert "finished 3/3" in result.stdout
    assert "report:" in result.stdout

    result = run(search_command(synthetic_root, tmp_path, "study.n_trials=5"))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 5
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers)))
    # The reference design is enqueued once, when the study is new.
    assert sum(t.user_attrs.get("reference") == "xception_b" for t in trials) == 1


def test_failed_trial_is_recorded_and_the_study_goes_on(
    synthetic_root: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    study = optuna.create_study(
        study_name="tiny",
        storage=f"sqlite:///{tmp_path}/studies.db",
        directions=["maximize", "minimize"],
    )
    study.enqueue_trial({"towers": 9})  # a user's bad enqueue: outside every valid spec
    result = run(search_command(synthetic_root, tmp_path, "study.n_trials=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert "gene 'towers'" in failed[0].user_attrs["fail_reason"]
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2


@pytest.mark.parametrize(
    ("budget", "constraint"),
    [
        ("study.gmadds_budget=0.0001", "gmadds_budget"),
        ("study.latency_budget_ms=0.001", "latency_budget"),
    ],
)
def test_infeasible_trials_are_not_trained(
    synthetic_root: Path,  # noqa: F811
    tmp_path: Path,
    budget: str,
    constraint: str,
) -> None:
    result = run(search_command(synthetic_root, tmp_path, "study.n_trials=2", budget))
    assert result.returncode == 0, result.stderr[-3000:]
    for trial in load(tmp_path).get_trials():
        assert trial.user_attrs["infeasible"] is True
        assert list(trial.constraints) == [constraint]
        assert trial.constraints[constraint] > 0
        assert "curve" not in trial.user_attrs


def test_latency_as_a_third_objective(synthetic_root: Path, tmp_path: Path) -> None:  # noqa: F811
    result = run(
        search_command(synthetic_root, tmp_path, "study.n_trials=2", "study.latency_objective=true")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path)
    assert study.metric_names == ["mIoU", "GMAdds", "latency_ms"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        latency = trial.user_attrs["latency"]
        assert trial.values[2] == trial.user_attrs["latency_ms"] == latency["median_ms"]
        assert 0 < latency["p10_ms"] <= latency["median_ms"] <= latency["p90_ms"]
        assert latency["repeats"] >= 5 and latency["threads"] == 1
        assert latency["input_size"] == [64, 128] and latency["path"] != "eager"
    report = (tmp_path / "outputs" / "reports" / "tiny" / "report.md").read_text()
    assert "## Latency" in report and "latency.png" in report

    # The stored study keeps its objectives: asking for two fails before any trial runs.
    result = run(search_command(synthetic_root, tmp_path, "study.n_trials=3"))
    assert result.returncode == 2
    assert "['mIoU', 'GMAdds', 'latency_ms']" in result.stderr
    assert len(load(tmp_path).get_trials()) == 2


def test_bad_dataset_root_fails_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(
        [
            sys.executable,
            "-m",
            "experiments.search",
            "+study=cityscapes",
            f"dataset.root={tmp_path}/no-such-dir",
            f"storage.url=sqlite:///{tmp_path}/studies.db",
        ],
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{tmp_path}/no-such-dir" in result.stderr
    assert "+study=demo" in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "studies.db").exists() or not optuna.get_all_study_names(
        f"sqlite:///{tmp_path}/studies.db"
    )


def test_missing_study_explains_the_choices(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "experiments.search"], timeout=60)
    assert result.returncode == 2
    assert "+study=demo" in result.stderr and "+study=cityscapes" in result.stderr


def test_two_workers_share_one_storage(synthetic_root: Path, tmp_path: Path) -> None:  # noqa: F811
    result = run(search_command(synthetic_root, tmp_path, "study.n_trials=4", "study.n_workers=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 4 <= len(finished) <= 5
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_killed_worker_trial_is_failed_and_retried(
    synthetic_root: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    command = search_command(
        synthetic_root, tmp_path, "study.n_trials=2", "trainer.steps=200",
        "trainer.eval_every=100", "storage.heartbeat_interval=1", "storage.grace_period=3",
        "study.reference_designs=[]",
    )  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                if any(t.state == TrialState.RUNNING for t in load(tmp_path).get_trials()):
                    break
            except KeyError:
                continue
        else:
            pytest.fail("no trial started")
        time.sleep(2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = next(t for t in load(tmp_path).get_trials() if t.state == TrialState.RUNNING)
    time.sleep(4)  # past the grace period: the heartbeat is stale
    result = run(
        search_command(
            synthetic_root,
            tmp_path,
            "study.n_trials=2",
            "storage.heartbeat_interval=1",
            "storage.grace_period=3",
            "study.reference_designs=[]",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path).get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry and retry[0].params == killed.params
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2


def test_offline_wandb_writes_one_run_per_trial(synthetic_root: Path, tmp_path: Path) -> None:  # noqa: F811
    command = search_command(synthetic_root, tmp_path, "study.n_trials=1", "tracking=wandb",
                             f"tracking.dir={tmp_path}/outputs")  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "outputs")}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240,
                            env=env, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the run wrote no history"
