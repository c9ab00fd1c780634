"""`python -m experiments.benchmarks.training_speed`: its settings, arguments and a run end to
end on a CPU; no timing asserted (the step it measures: tests/test_training_step.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from experiments.benchmarks.training_speed import all_settings, main, parse_args
from tests.support import SMALL, exit_code

CPU = torch.device("cpu")


def test_all_settings_on_each_device() -> None:
    cpu = [s.name for s in all_settings(CPU) if s.unsupported(CPU) is None]
    eager = ["fp32", "fp32+cl", "bf16", "bf16+cl"]
    assert cpu == eager + [f"{name}+compile" for name in eager]
    cuda = [s.name for s in all_settings(torch.device("cuda"))]
    assert len(cuda) == len(set(cuda)) == 24
    assert {"fp16+cl", "fp32+bench", "bf16+cl+bench+graph", "fp16+bench+compile"} <= set(cuda)


# ---------------------------------------------------------------------------------- command
def test_defaults() -> None:
    args = parse_args([])
    assert (args.arch, args.recipe, args.device, args.settings) == ("dfanet_a", "demo", "auto",
                                                                    "all")  # fmt: skip
    assert (args.batch_size, args.input_size, args.loader_workers) == (None, None, None)
    assert args.processes == (1, 2, 4, 8)
    assert args.trainer_settings == "recipe"


def test_arguments() -> None:
    args = parse_args(["trainer=cityscapes", "--settings", "fp32,bf16+cl+bench+graph",
                       "processes=4,1", "input_size=512x1024", "trainer.lr=0.05"])  # fmt: skip
    assert args.recipe == "cityscapes"
    assert [s.name for s in args.settings] == ["fp32", "bf16+cl+bench+graph"]
    assert args.processes == (1, 4)
    assert args.input_size == (512, 1024)
    assert args.overrides == ["trainer.lr=0.05"]
    assert parse_args(["settings=none"]).settings == "none"
    trainer_settings = parse_args(["trainer_settings=fp32+bench,fp32+bench+graph"]).trainer_settings
    assert [s.name for s in trainer_settings] == ["fp32+bench", "fp32+bench+graph"]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("settings=fp32+turbo", "cannot read the step setting 'fp32+turbo'"),
        ("processes=0", "expected a positive integer, got '0'"),
        ("recipe=fast", "--recipe/--trainer: invalid choice: 'fast'"),
        ("arch=dfanet_c", "--arch: invalid choice: 'dfanet_c'"),
        ("study.name=x", "expected trainer.KEY=VALUE or dataset.KEY=VALUE"),
        ("trainer_settings=all", "expected recipe or step settings, got 'all'"),
    ],
)
def test_bad_arguments(argument: str, message: str, capsys: pytest.CaptureFixture) -> None:
    assert exit_code(main, [argument]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["trainer.batch_size=0"], "trainer.batch_size must be >= 1"),
        (["trainer_settings=fp32+graph"], "--trainer-settings fp32+graph on cpu: CUDA graphs"),
        (["trainer_settings=fp32+cl"], "trainer.cpu.channels_last must be false"),
    ],
)
def test_a_wrong_override_fails_before_any_work(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert exit_code(main, ["device=cpu", "settings=none", *arguments]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_run_on_a_cpu(
    synthetic_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The real command at 32x64, batch 2, 3 timed steps: a line per measurement as it goes
    (the measuring processes' too), then the table, saved as CSV and Markdown."""
    dataset = [f"dataset.root={synthetic_root}", *(f"dataset.{k}={v}" for k, v in SMALL.items())]
    code = main(["arch=xception_b", "device=cpu", "input_size=32x64", "batch_size=2", "steps=3",
                 "settings=fp32,bf16+cl,fp16,fp32+graph", "processes=1,2", "loader_workers=0",
                 f"out={tmp_path}", "trainer.eval_batch_size=2", *dataset])  # fmt: skip
    assert code == 0
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert "skipped fp16: fp16 with loss scaling runs on CUDA only" in lines
    assert "skipped fp32+graph: CUDA graphs need CUDA" in lines
    done = [line.split(":")[0] for line in lines if ": first step " in line]
    loaders = [f"loader, {read}, 0 workers, augment on {where}"
               for read in ("PNG", "cached") for where in ("loader", "device")]  # fmt: skip
    assert done == ["step fp32", "step bf16+cl", "Trainer fp32", *loaders, "Trainer x2"]
    assert "| measurement | processes | first step s |" in out
    (csv_path,) = tmp_path.glob("training_speed_cpu1t_xception_b_32x64_b2_*.csv")
    with csv_path.open() as handle:
        records = list(csv.DictReader(handle))
    assert [(r["what"], r["processes"]) for r in records] == [
        ("step fp32", "1"), ("step bf16+cl", "1"), ("Trainer fp32", "1"),
        *((loader, "1") for loader in loaders), ("Trainer x2", "2"),
    ]  # fmt: skip
    assert all(float(r["images_per_s"]) > 0 and r["note"] == "" for r in records)
    assert float(records[0]["of_best_bare_step"]) <= 1 and records[-1]["of_one_process"]
    assert all(float(r["final_loss"]) > 0 for r in records if r["what"].startswith(("step", "T")))
    assert "| Trainer x2 | 2 |" in csv_path.with_suffix(".md").read_text()
