"""Train, evaluate, export and score with the official evaluator; and a 2-process gloo run.

All through the real commands, on the small synthetic set in Cityscapes layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import SMALL, run_command, run_process

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def dataset_overrides(root: Path) -> list[str]:
    return [f"dataset.root={root}", *(f"dataset.{k}={v}" for k, v in SMALL.items())]


def train_arguments(root: Path, run_dir: Path) -> list[str]:
    return [
        "+arch=backbone_b", *dataset_overrides(root),
        "input_size=64x128", "trainer.steps=8", "trainer.batch_size=4",
        "trainer.eval_every=4", "trainer.num_workers=0", "trainer.warmup_steps=1",
        "trainer.progress=false", f"run_dir={run_dir}",
    ]  # fmt: skip


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("train")
    succeeded(run_command("experiments.train", *train_arguments(synthetic_root, run_dir)))
    return run_dir


def test_train_command_writes_metrics_and_checkpoint(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert (trained / "checkpoint.pt").is_file()
    assert [step for step, _ in metrics["curve"]] == [4, 8]
    assert metrics["curve"][-1][1] == pytest.approx(metrics["miou"])
    assert metrics["spec"]["input_size"] == [64, 128]
    assert len(metrics["per_class_iou"]) == 19
    for key in ("gmadds", "params", "fvcore_total", "images_per_second", "torch", "git_commit"):
        assert key in metrics


def test_a_checkpoint_is_scored_on_the_data_it_was_trained_on(
    trained: Path, synthetic_root: Path
) -> None:
    """No dataset on the command line: the checkpoint's own (here the small set at its root),
    not the default built-in set, which would print a plausible but meaningless mIoU."""
    result = succeeded(
        run_command("experiments.evaluate", f"checkpoint={trained / 'checkpoint.pt'}")
    )
    summary = json.loads((trained / "evaluation_val.json").read_text())
    assert summary["dataset"] == {"name": "synthetic", "root": str(synthetic_root)}
    assert summary["images"] == SMALL["n_val"]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert summary["miou"] == pytest.approx(metrics["miou"], abs=1e-12)
    assert metrics["dataset"]["root"] == str(synthetic_root)
    assert f"of synthetic ({synthetic_root})" in result.stdout


def test_official_evaluator_agrees(
    trained: Path,
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    export = tmp_path / "results"
    succeeded(
        run_command(
            "experiments.evaluate", f"checkpoint={trained / 'checkpoint.pt'}",
            *dataset_overrides(synthetic_root), f"export_dir={export}", "num_workers=0",
        )
    )  # fmt: skip
    ours = json.loads((trained / "evaluation_val.json").read_text())
    assert ours["miou"] == pytest.approx(
        json.loads((trained / "metrics.json").read_text())["miou"], abs=1e-12
    )
    assert len(list(export.glob("*/*_pred_labelIds.png"))) == SMALL["n_val"]
    official_dir = tmp_path / "official"
    official_dir.mkdir()
    # The official command as installed (pyproject bounds numpy to the versions it runs on).
    official_env = {
        "CITYSCAPES_DATASET": str(synthetic_root),
        "CITYSCAPES_RESULTS": str(export),
        "CITYSCAPES_EXPORT_DIR": str(official_dir),
    }
    succeeded(run_process([str(BIN / "csEvalPixelLevelSemanticLabeling")], env=official_env))
    official = json.loads((official_dir / "resultPixelLevelSemanticLabeling.json").read_text())
    assert official["averageScoreClasses"] == pytest.approx(ours["miou"], abs=1e-9)


def test_two_process_gloo_run_gives_the_single_process_miou(
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "ddp"
    torchrun = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m"]
    train = train_arguments(synthetic_root, run_dir)
    succeeded(run_process([*torchrun, "experiments.train", *train]))
    distributed = json.loads((run_dir / "metrics.json").read_text())
    assert distributed["world_size"] == 2
    succeeded(
        run_command(
            "experiments.evaluate", f"checkpoint={run_dir / 'checkpoint.pt'}",
            *dataset_overrides(synthetic_root), "num_workers=0",
        )
    )  # fmt: skip
    single = json.loads((run_dir / "evaluation_val.json").read_text())
    assert single["world_size"] == 1
    assert single["miou"] == pytest.approx(distributed["miou"], abs=1e-12)
