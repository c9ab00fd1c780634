"""`analysis.export`: a trial of a real tiny study taken out as genes that `search_space.cost`
and `experiments.train` read unchanged (the same MAdds), the front as one file a trial, ONNX
from the trial's own checkpoint, the report's commands, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import optuna
import pytest
import yaml

from analysis import export
from analysis.load import load_trials
from analysis.pareto import pareto_front
from search_space.cost.__main__ import main as cost_main
from search_space.spec import ArchSpec
from tests.support import INPUT_SIZE, SMALL, run_command, run_main
from workbench.record import GMADDS, LATENCY, MIOU, TrialKey

pytestmark = pytest.mark.slow


def storage(folder: Path) -> str:
    return f"sqlite:///{folder}/studies.db"


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=storage(folder))


def test_a_trial_goes_from_export_to_cost_to_training(
    tiny_search: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    study = load(tiny_search)
    trial = study.get_trials()[1]
    outcome = run_main(
        export.main,
        ["study=tiny", "trial=1", f"storage={storage(tiny_search)}", f"out={tmp_path}"],
    )
    assert outcome.returncode == 0, outcome.stderr
    genes_file = tmp_path / "trial_1.yaml"
    assert str(genes_file) in outcome.stdout
    assert f"python -m experiments.train +arch={genes_file}" in genes_file.read_text()

    cost = run_main(cost_main, [str(genes_file), "--json"])
    assert cost.returncode == 0, cost.stderr
    measured = json.loads(cost.stdout)
    assert measured["madds"] == trial.user_attrs[TrialKey.MADDS]
    assert measured["spec"] == trial.user_attrs[TrialKey.SPEC]

    run_dir = tmp_path / "run"
    data = [f"dataset.{key}={value}" for key, value in SMALL.items()]
    result = run_command(
        "experiments.train", f"+arch={genes_file}", f"dataset.root={synthetic_root}", *data,
        f"input_size={INPUT_SIZE[0]}x{INPUT_SIZE[1]}", "trainer.steps=2", "trainer.batch_size=2",
        "trainer.eval_batch_size=6", "trainer.num_workers=0", "trainer.warmup_steps=1",
        "trainer.progress=false", f"run_dir={run_dir}", f"output_dir={tmp_path}/outputs",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["madds"] == trial.user_attrs[TrialKey.MADDS]


def test_the_front_is_one_file_a_trial_and_onnx_carries_the_trials_weights(
    tiny_search: Path, tmp_path: Path
) -> None:
    study = load(tiny_search)
    front = [int(n) for n in pareto_front(load_trials(study))["number"]]
    outcome = run_main(
        export.main, ["study=tiny", "trial=front", f"storage={storage(tiny_search)}",
                      f"out={tmp_path}"],
    )  # fmt: skip
    assert outcome.returncode == 0, outcome.stderr
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == sorted(
        f"trial_{n}.yaml" for n in front
    )
    chosen = front[0]
    outcome = run_main(
        export.main, ["study=tiny", f"trial={chosen}", f"storage={storage(tiny_search)}",
                      f"out={tmp_path}", "onnx=true"],
    )  # fmt: skip
    assert outcome.returncode == 0, outcome.stderr
    onnx_file = tmp_path / f"trial_{chosen}.onnx"
    onnx.checker.check_model(str(onnx_file))
    checkpoint = study.get_trials()[chosen].user_attrs[TrialKey.CHECKPOINT]
    assert f"weights of {checkpoint}" in outcome.stdout
    assert "largest logit difference" in outcome.stdout


def test_the_report_lists_the_command_that_exports_each_front_trial(tiny_search: Path) -> None:
    report = (tiny_search / "outputs" / "reports" / "tiny" / "report.md").read_text()
    where = f"storage={storage(tiny_search)}"  # not the default storage: named
    for number in pareto_front(load_trials(load(tiny_search)))["number"]:
        assert f"python -m analysis.export study=tiny trial={number} {where}" in report
    assert f"python -m experiments.retrain study=tiny {where}" in report


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["trial=99"], "trial='99': expected 'front' or a trial number of study 'tiny' (0 to 2)"),
        (["trial=two"], "expected 'front' or a trial number"),
    ],
)
def test_a_wrong_trial_is_named(
    tiny_search: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    outcome = run_main(
        export.main, ["study=tiny", f"storage={storage(tiny_search)}", f"out={tmp_path}",
                      *arguments],
    )  # fmt: skip
    assert outcome.returncode == 1 and message in outcome.stderr
    assert not list(tmp_path.iterdir())


def test_a_network_is_exported_as_onnx_only(tmp_path: Path) -> None:
    no_onnx = run_main(export.main, ["arch=dfanet_b"])
    assert no_onnx.returncode == 2 and "add onnx=true" in no_onnx.stderr
    both = run_main(export.main, ["arch=dfanet_b", "study=tiny", "onnx=true"])
    assert both.returncode == 2 and "name one of" in both.stderr
    outcome = run_main(
        export.main, ["arch=dfanet_b", "onnx=true", "input=64x128", f"out={tmp_path}"]
    )
    assert outcome.returncode == 0, outcome.stderr
    onnx.checker.check_model(str(tmp_path / "dfanet_b.onnx"))


def test_the_genes_file_carries_the_latency_and_the_device_it_is_for(tmp_path: Path) -> None:
    """A predicted latency is for the latency table's device; a study stored before trials said
    where their latency came from measured it on the trial's own device."""
    table_device = "AMD EPYC (cpu, 2 thread(s), fp32, folded+channels_last, batch 1)"
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names([MIOU, GMADDS, LATENCY])
    spec = ArchSpec(input_size=INPUT_SIZE)
    attrs = {
        TrialKey.SPEC: spec.to_dict(),
        TrialKey.GMADDS: 0.3,
        TrialKey.DEVICE_NAME: "NVIDIA H100",
    }
    predicted = {
        TrialKey.LATENCY_MS: 12.3456,
        TrialKey.LATENCY_SOURCE: "predicted",
        TrialKey.LATENCY_DEVICE: table_device,
    }
    study.add_trial(optuna.create_trial(values=[40.0, 0.3, 12.3456], user_attrs=attrs | predicted))
    older = {TrialKey.LATENCY_MS: 2.5}
    study.add_trial(optuna.create_trial(values=[40.0, 0.3, 2.5], user_attrs=attrs | older))

    def latency_fields(which: str) -> dict[str, str]:
        [exported] = export.export_trials(study, which, tmp_path)
        text = exported.genes_file.read_text()
        assert ArchSpec.from_dict(yaml.safe_load(text)) == spec  # still a plain genes file
        lines = [line.removeprefix("# ") for line in text.splitlines()]
        return dict(line.split(": ", 1) for line in lines if line.startswith("latency"))

    assert latency_fields("0") == {
        "latency_ms": "12.346",
        "latency_source": "predicted",
        "latency_device": table_device,
    }
    assert latency_fields("1") == {
        "latency_ms": "2.500",
        "latency_source": "measured",
        "latency_device": "NVIDIA H100",
    }
