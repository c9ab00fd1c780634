"""A study's life cycle in its storage: created or loaded (exactly one of several commands started
together creates it), its definition stored or checked, its first trials enqueued, its sampler
seeded so that no two commands replay one draw. Re-running the same command resumes:
`study.n_trials` is the number of finished (COMPLETE or PRUNED) architectures to reach, not a
number to add."""

from __future__ import annotations

import hashlib
import os
import socket
import warnings

import optuna
import torch
from optuna.trial import TrialState

from experiments.study.identity import StudyMismatchError, check_definition, study_definition
from experiments.study.proposers import Proposer
from experiments.study.samplers import make_sampler
from experiments.study.setup import SearchSetup
from experiments.training.runtime import environment_facts, resolve_device
from workbench.record import StudyKey
from workbench.secrets import masked_config
from workbench.storage import make_storage


def open_study(setup: SearchSetup, worker: int = 0) -> optuna.Study:
    """The study, created if new, with this worker's sampler (see `sampler_seed`)."""
    return _create_or_load(setup, worker)[0]


def _create_or_load(setup: SearchSetup, worker: int) -> tuple[optuna.Study, bool]:
    """The study and whether this call created it: of several commands started together on
    several hosts, exactly one does (the storage refuses a second study of the same name)."""
    settings = setup.settings
    storage = make_storage(setup.search.storage)
    sampler = make_sampler(
        setup.sampler,
        sampler_seed(settings.seed, worker, setup.created, setup.resumed_at),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.create_study(
                study_name=settings.name,
                storage=storage,
                sampler=sampler,
                directions=settings.directions,
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
            created = False
        # Read once: the property reads the storage, where a host that created the study a
        # moment ago may name its objectives between two reads (a stale "unnamed", then names).
        names = study.metric_names
        stored = names or [f"{len(study.directions)} unnamed"]
        if stored != settings.objective_names:
            if names is not None or len(study.directions) != len(settings.directions):
                raise StudyMismatchError(
                    f"study '{study.study_name}' is stored with the objectives {stored}; this "
                    f"configuration asks for {settings.objective_names} (see "
                    "study.latency_objective): choose another study.name"
                )
            study.set_metric_names(settings.objective_names)
    return study, created


def sampler_seed(study_seed: int, worker: int, created: bool, resumed_at: int) -> int:
    """Seeds that never replay a draw. The command that creates a study, and its workers,
    take `study.seed + worker`, so a study run by one command is repeatable on one machine.
    Any other command (one resuming the study, one joining it, one started at the same moment
    on another host: only one of them creates it) seeds from its host, its process and the
    trials stored when it started, so that no two commands propose the same architectures in
    the same order."""
    if created:
        return study_seed + worker
    identity = f"{study_seed}/{worker}/{socket.gethostname()}/{os.getpid()}/{resumed_at}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "little")


def start_study(setup: SearchSetup) -> optuna.Study:
    """Open or create the study and make it ready to run: the trials of dead processes failed
    (and retried) first, its definition stored (or checked against this command's), its first
    trials enqueued where they have no result, its sampler seeded for this command."""
    study, setup.created = _create_or_load(setup, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    definition = study_definition(
        setup.composed,
        setup.input_size,
        setup.settings.objective_names,
        resolve_device(setup.search.device).type,
        setup.latency_table.digest if setup.latency_table is not None else None,
    )
    stored = study.user_attrs.get(StudyKey.DEFINITION)
    if stored is None:
        study.set_user_attr(StudyKey.DEFINITION, masked_config(definition))
    else:
        check_definition(stored, masked_config(definition), study.study_name)
    trials = study.get_trials(deepcopy=False)
    setup.resumed_at = sum(t.state != TrialState.WAITING for t in trials)
    study.sampler = make_sampler(
        setup.sampler,
        sampler_seed(setup.settings.seed, 0, setup.created, setup.resumed_at),
    )
    initialise_study(study, setup)
    enqueue_missing_initial_trials(study, setup.proposer)
    return study


def initialise_study(study: optuna.Study, setup: SearchSetup) -> None:
    """Describe a new study (what it is, for the report)."""
    if study.user_attrs.get(StudyKey.INITIALISED):
        return
    search, settings = setup.search, setup.settings
    facts = environment_facts(torch.device("cpu"))
    for key, value in {
        **setup.proposer.study_attrs(),
        StudyKey.DATASET: search.dataset.name,
        StudyKey.SPLIT: search.dataset.val_split,
        StudyKey.INPUT_SIZE: list(setup.input_size),
        StudyKey.SAMPLER: setup.sampler.name,
        StudyKey.SEED: settings.seed,
        StudyKey.GMADDS_BUDGET: settings.gmadds_budget,
        # As composed (the record's format): the recipe, and the whole config, masked.
        StudyKey.TRAINER: setup.composed["trainer"],
        StudyKey.VERSIONS: {k: facts[k] for k in ("python", "torch", "optuna", "git_commit")},
        StudyKey.CONFIG: masked_config(setup.composed),
        **({StudyKey.SCHEDULE: setup.schedule.describe()} if setup.schedule else {}),
    }.items():
        study.set_user_attr(key, value)
    study.set_user_attr(StudyKey.INITIALISED, True)


def enqueue_missing_initial_trials(study: optuna.Study, proposer: Proposer) -> None:
    """Enqueue each of the proposer's first trials (a paper design, a cell of an ablation's
    grid) that has no finished, waiting or running trial: one interrupted or failed is run
    again on resume, one already measured is not measured twice."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    present = [t.user_attrs for t in study.get_trials(deepcopy=False, states=live)]
    for params, user_attrs in proposer.initial_trials():
        if not any(user_attrs.items() <= attrs.items() for attrs in present):
            study.enqueue_trial(params, user_attrs=user_attrs)
