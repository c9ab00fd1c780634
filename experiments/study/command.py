"""The body of the study commands (`experiments.search`, `experiments.ablate`,
`experiments.retrain`): prepare, start and run a study, then print its front or table and write
its report, with the command's exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from analysis import document as doc
from analysis.ablation import ablation_table, format_ablation
from analysis.load import load_trials
from analysis.probe_fidelity import fidelity_sentence, rung_fidelity
from analysis.report import NoFinishedTrialsError, format_front, write_report
from analysis.retrain_verdict import retrain_table, verdict
from experiments.config import CONFIG_ERRORS, refuse_repeated_overrides
from experiments.study.interrupts import (
    Interrupted,
    raise_if_interrupted,
    stop_on_signals,
)
from experiments.study.lifecycle import start_study
from experiments.study.setup import prepare
from experiments.study.workers import StudyAborted, run_study
from workbench.record import KIND_ABLATION, StudyKey
from workbench.secrets import mask_secrets

log = logging.getLogger("experiments.search")


def summarise(study: optuna.Study, output_dir: Path) -> None:
    """Print the Pareto front (under a schedule, with whether its first rung ranked like the top
    one, or the warning that it did not) and write the study's report (`analysis.report`)."""
    try:
        report = write_report(study, output_dir / "reports" / study.study_name)
    except NoFinishedTrialsError as error:
        print(f"no report: {error}", file=sys.stderr)
        return
    frame = load_trials(study)
    if StudyKey.RETRAIN_OF in study.user_attrs:
        table = retrain_table(frame, study.user_attrs[StudyKey.RETRAIN_OF])
        print(doc.text_table(table.round(2)))
        print(verdict(table))
    elif study.user_attrs.get(StudyKey.KIND) == KIND_ABLATION:
        print(format_ablation(ablation_table(frame, study.user_attrs[StudyKey.ABLATION])))
    else:
        print(format_front(frame))
        if study.user_attrs.get(StudyKey.SCHEDULE):
            print(fidelity_sentence(rung_fidelity(frame)))
    print(f"report: {report}")


def run_command(cfg: DictConfig) -> None:
    """The body of `experiments.search` and `experiments.ablate`: run, then report (see
    `run_and_report`)."""
    try:
        refuse_repeated_overrides(HydraConfig.get().overrides.task)
    except CONFIG_ERRORS as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        sys.exit(2)
    run_and_report(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def run_and_report(config: dict[str, Any]) -> None:
    """Run a composed config's study to its target, then print its front or table and write
    its report. Exit codes: 0 done, 1 stopped by failing trials, 2 a configuration error
    (nothing ran), 128 + the signal's number when interrupted (the report of what finished is
    written)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The command line is read; libraries that record it (wandb's run metadata, in every
    # trial's run) must find no storage password in it, nor must spawned workers.
    sys.argv[:] = [mask_secrets(argument) for argument in sys.argv]
    with stop_on_signals():
        try:
            _run_and_report(config)
        except Interrupted as stop:
            sys.exit(stop.exit_code)


def _run_and_report(config: dict[str, Any]) -> None:
    try:
        setup = prepare(config)  # the config read, once, into typed settings
        check_writable(setup.search.output_dir / "reports" / setup.settings.name)
        raise_if_interrupted()  # stopped while indexing the data: no study touched
        study = start_study(setup)
    except CONFIG_ERRORS as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as stop:
        print(f"interrupted by {stop.signal_name} before any trial", file=sys.stderr)
        raise
    output_dir = setup.search.output_dir
    try:
        run_study(setup, study)
    except Interrupted as stop:
        print(
            f"\ninterrupted by {stop.signal_name}: the running trial is failed and enqueued "
            "again; run the same command to resume",
            file=sys.stderr,
            flush=True,
        )
        summarise(study, output_dir)
        sys.exit(stop.exit_code)
    except StudyAborted as error:
        print(f"study stopped: {error}", file=sys.stderr)
        summarise(study, output_dir)
        sys.exit(1)
    summarise(study, output_dir)


def check_writable(folder: Path) -> None:
    """Fail now, not after the whole study, when the report could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write the report to {folder}: {error.strerror}") from None
