"""Reports built from a real SQLite storage holding every kind of trial a search writes."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.stats
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from analysis.costs import latency_text
from analysis.load import (
    CONSTRAINT_PREFIX,
    StorageNotFoundError,
    StudyNotFoundError,
    finished,
    load_study,
    load_trials,
)
from analysis.pareto import pareto_front
from analysis.report import NoFinishedTrialsError, format_front, main, write_report
from search_space.latency import PredictedLatency
from search_space.spec import ArchSpec
from tests.support import exit_code, run_command
from workbench.record import (
    GMADDS,
    KIND_ABLATION,
    KIND_SEARCH,
    LATENCY,
    MEASURED,
    MIOU,
    PREDICTED,
    Constraint,
    StudyKey,
    TrialKey,
    TrialStatus,
    objective_directions,
    objective_names,
)

BUDGET = 0.6
INPUT_SIZE = (256, 512)
HEAD_BONUS = {"dfa": 3.0, "aspp": 1.0, "icnet": 0.0, "bisenet": 2.0}
DISTRIBUTIONS = {
    "head": CategoricalDistribution(["dfa", "aspp", "icnet", "bisenet"]),
    "towers": IntDistribution(1, 3),
    "widths.0": CategoricalDistribution([32, 48]),
    "widths.1": CategoricalDistribution([64, 96]),
    "widths.2": CategoricalDistribution([128, 192]),
    "decoder_channels": CategoricalDistribution([16, 32, 64]),
    "aspp_channels": CategoricalDistribution([64, 128]),
}
VERSIONS = {"python": "3.11.9", "torch": "2.13.0", "optuna": "5.0.0", "git_commit": "e2f366f"}


def _create_study(storage: str, name: str, *, latency: bool, dataset: str) -> optuna.Study:
    objectives = objective_names(latency=latency)
    directions = objective_directions(objectives)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objectives)
    attrs = {
        StudyKey.KIND: KIND_SEARCH,
        StudyKey.DATASET: dataset,
        StudyKey.SPLIT: "val",
        StudyKey.INPUT_SIZE: list(INPUT_SIZE),
        StudyKey.SPACE: "dfanet",
        StudyKey.SAMPLER: "tpe",
        StudyKey.SEED: 0,
        StudyKey.GMADDS_BUDGET: BUDGET,
        StudyKey.TRAINER: {"steps": 200, "batch_size": 4, "lr": 0.01},
        StudyKey.VERSIONS: VERSIONS,
        StudyKey.CONFIG: {"study": {"n_trials": 40}, "trainer": {"steps": 200}},
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def _params(rng: np.random.Generator, index: int, head: str | None = None) -> dict[str, Any]:
    head = head or ["dfa", "aspp", "icnet", "bisenet"][index % 4]
    params: dict[str, Any] = {
        "head": head,
        "towers": 1 if head == "icnet" else int(rng.integers(1, 4)),
        "widths.0": int(rng.choice([32, 48])),
        "widths.1": int(rng.choice([64, 96])),
        "widths.2": int(rng.choice([128, 192])),
    }
    if head == "dfa":
        params["decoder_channels"] = int(rng.choice([16, 32, 64]))
    if head == "aspp":
        params["aspp_channels"] = int(rng.choice([64, 128]))
    return params


def _trial(
    rng: np.random.Generator, index: int, *, latency: bool, reference: str | None = None
) -> optuna.trial.FrozenTrial:
    params = _params(rng, index, "dfa" if reference else None)
    genes = {k: v for k, v in params.items() if "." not in k}
    genes["widths"] = (params["widths.0"], params["widths.1"], params["widths.2"])
    spec = ArchSpec(input_size=INPUT_SIZE).replace(**genes)
    gmadds = 0.08 * spec.towers * spec.widths[2] / 128 * spec.widths[0] / 32 + rng.uniform(0, 0.3)
    miou = 30 + 8 * math.log(gmadds) + HEAD_BONUS[spec.head] + rng.normal(0, 1.5)
    attrs: dict[str, Any] = {
        TrialKey.SPEC: spec.to_dict(),
        TrialKey.N_PARAMS: int(1e6 * gmadds * 3),
        TrialKey.MADDS: int(gmadds * 1e9),
        TrialKey.GMADDS: gmadds,
        TrialKey.FVCORE_TOTAL: int(gmadds * 1.1e9),
        TrialKey.DEVICE: "cpu",
        TrialKey.DEVICE_NAME: "CPU",
        TrialKey.SEED: 0,
        **VERSIONS,
    }
    if reference:
        attrs[TrialKey.REFERENCE] = reference
    state = TrialState.COMPLETE
    values: list[float] | None = [miou, gmadds]
    roll = rng.uniform()
    if gmadds > BUDGET:
        attrs[TrialKey.INFEASIBLE] = True
        values = [0.0, gmadds]
    elif roll < 0.1 and not reference:
        state, values = TrialState.FAIL, None
        attrs[TrialKey.FAIL_REASON] = "RuntimeError: CUDA out of memory"
    elif roll < 0.2 and not reference:
        state, values = TrialState.PRUNED, None
        attrs[TrialKey.PRUNE_REASON] = "mIoU 3.1% at step 50 below the running median"
    else:
        attrs.update(
            {
                TrialKey.INFEASIBLE: False,
                TrialKey.TRAIN_SECONDS: 60 * gmadds,
                TrialKey.IMAGES_PER_SECOND: 40 / gmadds,
                TrialKey.CURVE: [[50, miou / 2], [100, miou]],
                TrialKey.PER_CLASS_IOU: [miou, None, *([miou] * 17)],
            }
        )
        if latency:
            attrs[TrialKey.LATENCY_MS] = 4 + 30 * gmadds * rng.uniform(0.8, 1.2)
            values.append(attrs[TrialKey.LATENCY_MS])
    if values is not None and len(values) == 2 and latency:
        values.append(4 + 30 * gmadds)
    return optuna.create_trial(
        state=state,
        values=values,
        params=params,
        distributions={k: DISTRIBUTIONS[k] for k in params},
        user_attrs=attrs,
        constraints={Constraint.GMADDS: gmadds - BUDGET},
    )


def build_study(
    storage: str, name: str, *, n: int = 40, latency: bool = False, dataset: str = "synthetic"
) -> optuna.Study:
    study = _create_study(storage, name, latency=latency, dataset=dataset)
    rng = np.random.default_rng(0)
    study.add_trial(_trial(rng, 0, latency=latency, reference="dfanet_a"))
    study.add_trial(_trial(rng, 1, latency=latency, reference="dfanet_b"))
    for index in range(2, n):
        study.add_trial(_trial(rng, index, latency=latency))
    return study


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('studies') / 'studies.db'}"
    build_study(url, "demo")
    build_study(url, "latency", latency=True, dataset="cityscapes")
    failed = _create_study(url, "all_failed", latency=False, dataset="synthetic")
    failed.add_trial(
        optuna.create_trial(state=TrialState.FAIL, user_attrs={TrialKey.FAIL_REASON: "no data"})
    )
    return url


@pytest.fixture(scope="module")
def report(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(load_study("demo", storage), tmp_path_factory.mktemp("report"))


def test_frame_has_every_trial_and_masks_untrained_miou(storage: str) -> None:
    df = load_trials(load_study("demo", storage))
    assert len(df) == 40
    assert set(df["status"]) == {
        TrialStatus.FINISHED,
        TrialStatus.INFEASIBLE,
        TrialStatus.PRUNED,
        TrialStatus.FAILED,
    }
    infeasible = df[df["status"] == TrialStatus.INFEASIBLE]
    assert infeasible[MIOU].isna().all() and infeasible[GMADDS].gt(BUDGET).all()
    assert (infeasible[CONSTRAINT_PREFIX + Constraint.GMADDS] > 0).all()
    assert not df["feasible"][df["status"] != TrialStatus.FINISHED].any()
    assert {"widths.0", "widths.2", "substage_links.1", "head", "input_size.1"} <= set(df)
    assert df.loc[df["number"] == 0, TrialKey.REFERENCE].item() == "dfanet_a"


def test_front_holds_only_feasible_finished_trials(storage: str) -> None:
    df = load_trials(load_study("demo", storage))
    front = pareto_front(df)
    assert len(front) >= 2
    assert (front["status"] == TrialStatus.FINISHED).all()
    assert front[GMADDS].is_monotonic_increasing and front[MIOU].is_monotonic_increasing


def test_report_files(report: Path) -> None:
    out = report.parent
    for name in ("report.md", "report.html", "trials.csv", "pareto.csv"):
        assert (out / name).is_file()
    for figure in ("front", "hypervolume", "fronts_per_head", "importance"):
        assert (out / f"{figure}.png").stat().st_size > 1000
        assert (out / f"{figure}.svg").read_text().lstrip().startswith("<?xml")
    assert not (out / "latency.png").exists()  # the demo study measured no latency
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 40
    pareto = pd.read_csv(out / "pareto.csv")
    assert set(pareto["status"]) == {TrialStatus.FINISHED}


def test_report_says_what_was_run(report: Path) -> None:
    text = report.read_text()
    for expected in ("synthetic", "tpe", "dfanet", "steps 200", "git_commit e2f366f", "0.60"):
        assert expected in text
    assert "RuntimeError: CUDA out of memory" in text
    assert "below the running median" in text
    assert f"| {TrialStatus.INFEASIBLE} |" in text
    assert "Best mIoU per head" in text
    assert "dfanet_a" in text


def test_html_is_self_contained(report: Path) -> None:
    page = (report.parent / "report.html").read_text()
    targets = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert targets, "figures are embedded as images"
    assert all(t.startswith("data:") for t in targets), targets
    assert "<img" in page and "base64," in page


def test_latency_and_published_overlay(storage: str, tmp_path: Path) -> None:
    path = write_report(load_study("latency", storage), tmp_path)
    assert (tmp_path / "latency.png").is_file()
    text = path.read_text()
    assert "Spearman" in text and "published" in text
    df = load_trials(load_study("latency", storage))
    measured = finished(df).dropna(subset=[LATENCY])
    rho = scipy.stats.spearmanr(measured[GMADDS], measured[LATENCY]).statistic
    assert f"Spearman's rho = {rho:.2f} over {len(measured)} trials" in text
    two_objectives = pareto_front(df, df.attrs["objectives"][:2])
    assert LATENCY in df and len(pareto_front(df)) >= len(two_objectives)


def test_no_finished_trial_is_a_clear_error(storage: str, tmp_path: Path) -> None:
    with pytest.raises(NoFinishedTrialsError, match=r"(?s)no feasible finished trial.*no data"):
        write_report(load_study("all_failed", storage), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_study_lists_the_studies(storage: str) -> None:
    with pytest.raises(StudyNotFoundError, match="all_failed, demo, latency"):
        load_study("nope", storage)
    with pytest.raises(StorageNotFoundError):
        load_study("demo", "sqlite:///does/not/exist.db")


def test_format_front(storage: str) -> None:
    text = format_front(load_trials(load_study("demo", storage)))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["trial", "paper", "design"] or "trial" in lines[0]
    assert MIOU in lines[0] and GMADDS in lines[0]
    assert len(lines) == 2 + len(pareto_front(load_trials(load_study("demo", storage))))


def test_journal_storage_and_single_objective_study(tmp_path: Path) -> None:
    """An ablation-like study (mIoU only, in a journal file) still gets a report."""
    journal = tmp_path / "studies.journal"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.create_study(storage=storage, study_name="ablation", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([MIOU])
    study.set_user_attr(StudyKey.KIND, KIND_ABLATION)
    rng = np.random.default_rng(1)
    for index in range(6):
        trial = _trial(rng, index, latency=False)
        if (
            trial.state == TrialState.COMPLETE
            and trial.user_attrs.get(TrialKey.INFEASIBLE) is False
        ):
            study.add_trial(
                optuna.create_trial(
                    values=trial.values[:1],
                    params=trial.params,
                    distributions=trial.distributions,
                    user_attrs=trial.user_attrs,
                )
            )
    path = write_report(load_study("ablation", str(journal)), tmp_path / "report")
    assert "needs at least" in path.read_text()


def test_bare_study_without_attributes(tmp_path: Path) -> None:
    """A study whose trials recorded nothing but their values still gets a report."""
    storage = f"sqlite:///{tmp_path / 'bare.db'}"
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([MIOU, GMADDS])
    for miou, gmadds in ((40.0, 1.0), (50.0, 2.0), (45.0, 3.0)):
        study.add_trial(optuna.create_trial(values=[miou, gmadds]))
    path = write_report(study, tmp_path / "report", reference=[30.0, 2.5])
    text = path.read_text()
    assert "| #1 |" in text and (tmp_path / "report" / "front.png").is_file()
    assert "needs at least" in text
    # Boxes 10 x 1.5 and 20 x 0.5 overlapping in 10 x 0.5; (45%, 3 G) is beyond the reference.
    assert "Hypervolume of the front: 20," in text


@pytest.mark.slow
def test_cli(storage: str, tmp_path: Path) -> None:
    done = run_command("analysis.report", "study=demo", f"storage={storage}", f"out={tmp_path}")
    assert done.returncode == 0, done.stderr
    assert "report.md" in done.stdout and (tmp_path / "report.html").is_file()
    failed = run_command("analysis.report", "study=all_failed", f"storage={storage}")
    assert failed.returncode == 1
    assert "no feasible finished trial" in failed.stderr and "Traceback" not in failed.stderr


def test_cli_errors_without_subprocess(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study=nope", f"storage={storage}"]) == 1
    assert "studies there: all_failed, demo, latency" in capsys.readouterr().err
    assert exit_code(main, [f"storage={storage}"]) == 2
    assert "demo" in capsys.readouterr().err
    assert exit_code(main, ["colour=red"]) == 2
    arguments = ["study=demo", f"storage={storage}", f"out={tmp_path}", "reference=1,2,3"]
    assert exit_code(main, arguments) == 2
    assert "needs 2 values" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------- latency: predicted or measured
TABLE_DEVICE = "AMD EPYC (cpu, 2 thread(s), fp32, folded+channels_last, batch 1)"


def _predicted(
    trial: optuna.trial.FrozenTrial,
    *,
    objectives: int,
    rmspe: float | None,
    within_10: float | None,
) -> optuna.trial.FrozenTrial:
    """The same trial with its latency predicted from a latency table, stored as a study with
    `study.latency.source=table` stores it, and its first `objectives` values."""
    latency = trial.user_attrs.get(TrialKey.LATENCY_MS)
    attrs = dict(trial.user_attrs)
    if latency is not None:
        prediction = PredictedLatency(
            median_ms=latency,
            parts_ms=0.9 * latency,
            part_calls=40,
            weight_mb=1.0,
            input_size=INPUT_SIZE,
            table_digest="0123abcd",
            device=TABLE_DEVICE,
            table_rmspe=rmspe,
            table_within_10=within_10,
        )
        attrs[TrialKey.LATENCY_RESULT] = prediction.to_dict()
        attrs[TrialKey.LATENCY_SOURCE] = PREDICTED
        attrs[TrialKey.LATENCY_DEVICE] = TABLE_DEVICE
    return optuna.create_trial(
        state=trial.state,
        values=trial.values[:objectives] if trial.values else None,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=attrs,
        constraints=trial.constraints,
    )


def _predicted_study(
    storage: str,
    name: str,
    *,
    objective: bool = True,
    rmspe: float | None = 0.051,
    within_10: float | None = 0.93,
) -> optuna.Study:
    """16 trials whose latency was predicted from one table; latency an objective or not."""
    study = _create_study(storage, name, latency=objective, dataset="synthetic")
    objectives = len(study.directions)
    rng = np.random.default_rng(0)
    for index in range(16):
        trial = _trial(rng, index, latency=True)
        study.add_trial(_predicted(trial, objectives=objectives, rmspe=rmspe, within_10=within_10))
    return study


@pytest.fixture(scope="module")
def predicted_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predicted")
    study = _predicted_study(f"sqlite:///{folder / 'studies.db'}", "predicted")
    return write_report(study, folder / "report")


def test_a_predicted_latency_names_its_tables_device_and_error(predicted_report: Path) -> None:
    text = predicted_report.read_text()
    origin = f"Predicted latency (from a latency table: {TABLE_DEVICE})"
    assert f"## Latency\n\n{origin} against MAdds: Spearman's rho = " in text
    assert (
        f"Latency predicted from a latency table measured on {TABLE_DEVICE}; on held-out "
        "networks that table's predictions were within ±10% for 93% (RMSPE 5.1%)."
    ) in text
    assert "Measured latency" not in text


def test_the_heads_are_compared_at_equal_latency_as_at_equal_madds(predicted_report: Path) -> None:
    text = predicted_report.read_text()
    assert "## Heads at equal MAdds and at equal latency" in text
    assert (predicted_report.parent / "fronts_per_head_latency.png").stat().st_size > 1000
    # At equal MAdds, each head's best trial has its latency beside its GMAdds.
    assert re.search(r"\n\| ≤ [\d.]+ GMAdds \|.* \(\d+\.\d\d GMAdds, \d+\.\d\d ms, #\d+\)", text)
    # At equal latency, the same table by latency budgets, and who leads within each.
    assert "\n| latency budget | dfa | aspp | icnet | bisenet |\n" in text
    assert re.search(r"\n\| ≤ [\d.]+ ms \|.* \(\d+\.\d\d ms, \d+\.\d\d GMAdds, #\d+\)", text)
    assert re.search(r"\nWithin [\d.]+ ms, (only )?\w+ (leads|has)", text)


def test_the_front_is_drawn_against_latency_when_it_is_an_objective(
    predicted_report: Path,
) -> None:
    assert (predicted_report.parent / "front_latency.png").stat().st_size > 1000
    text = predicted_report.read_text()
    assert (
        f"*mIoU against latency. Predicted latency (from a latency table: {TABLE_DEVICE})." in text
    )


def test_a_table_of_unmeasured_error_says_so_and_no_objective_draws_no_latency_front(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = _predicted_study(url, "unvalidated", objective=False, rmspe=None, within_10=None)
    text = write_report(study, tmp_path / "report").read_text()
    assert (
        f"Latency predicted from a latency table measured on {TABLE_DEVICE}; that table's "
        "error on held-out networks was not measured."
    ) in text
    assert not (tmp_path / "report" / "front_latency.png").exists()
    assert (tmp_path / "report" / "fronts_per_head_latency.png").is_file()


def test_an_older_studys_latency_reads_as_measured_and_a_mix_says_so(
    storage: str, tmp_path: Path
) -> None:
    older = load_study("latency", storage)  # its trials stored no latency_source
    df = load_trials(older)
    timed = finished(df).dropna(subset=[LATENCY])
    assert set(timed[TrialKey.LATENCY_SOURCE]) == {MEASURED}
    assert set(timed[TrialKey.LATENCY_DEVICE]) == {"CPU"}  # the trials' device_name
    assert latency_text(df) == "Measured latency (on CPU)"

    mixed = optuna.create_study(directions=older.directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        mixed.set_metric_names(older.metric_names)
    for trial in older.get_trials():
        predict = trial.number % 3 == 0
        objectives = len(older.directions)
        mixed.add_trial(
            _predicted(trial, objectives=objectives, rmspe=0.05, within_10=0.9)
            if predict
            else trial
        )
    df = load_trials(mixed)
    counts = finished(df).dropna(subset=[LATENCY])[TrialKey.LATENCY_SOURCE].value_counts()
    total = counts.sum()
    assert latency_text(df) == (
        f"Measured and predicted latency (measured for {counts[MEASURED]} of the {total} trials "
        f"on CPU; predicted for {counts[PREDICTED]} of the {total} trials from a latency table: "
        f"{TABLE_DEVICE})"
    )
    assert counts[MEASURED] > counts[PREDICTED]  # the most common source first
