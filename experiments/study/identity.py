"""What defines a study: stored when it is created, compared on every resume.

Trials of one study must be comparable: the same space, input size, data, training budget,
objectives and sampler. A command that resumes a study with any of these changed would mix
incompatible trials (or, for a changed space, fail every trial), so it is refused before any
work, naming each difference. Everything else may change on resume (`MAY_CHANGE`): how many
trials, how many workers, where the data lies, where things are written.

A defining setting added after studies were stored is absent from their definitions; it is read
there as the value it had before it existed (`ADDED_LATER`), so those studies still resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Config keys (dotted prefixes) that do not change what a trial measures.
MAY_CHANGE = (
    "study.name",
    "study.n_trials",
    "study.n_workers",
    "study.threads_per_worker",
    "study.max_failed_trials",
    "study.keep_checkpoints",
    "study.reference_designs",
    "study.first_trials_per_head",
    "study.early_stopping",
    "study.latency.measure",
    "dataset.root",  # each host has its own copy
    "dataset.cache",
    "trainer.progress",
    "trainer.num_workers",
    "trainer.eval_batch_size",
    "trainer.checkpoint_every",
    "storage",
    "tracking",
    "device",  # the device's kind (CPU or CUDA) is part of the definition, below
    "output_dir",
)
DEFINING_SECTIONS = ("study", "dataset", "trainer", "space", "sampler", "ablation")

# A key that changed nothing before it existed: what it tunes was off (and the key that turns
# it on is compared), so a stored definition without it matches any value it has now.
UNUSED = object()
# Defining keys added after studies were first stored, each with the value that a definition
# stored before it means: the behaviour of the code before the key existed. A new defining
# setting is added here with that value, or every stored study refuses to resume.
ADDED_LATER: dict[str, Any] = {
    # The multi-fidelity schedule: before it, none.
    "study.schedule.enabled": False,
    "study.schedule.reduction": UNUSED,
    "study.schedule.min_steps": UNUSED,
    "study.schedule.stratify": UNUSED,
    # Ablation keys that had a default in code before conf/ablate.yaml held them all: an
    # ablation was no retraining, and a variant without `arch` changed DFANet A.
    "ablation.retrain_of": None,
    "ablation.base": "dfanet_a",
}


class StudyMismatchError(ValueError):
    """A resumed study would mix trials measured under different settings."""


def study_definition(
    config: Mapping[str, Any], input_size: tuple[int, int], objectives: list[str], device: str
) -> dict[str, Any]:
    """The settings that define a study, flattened to dotted keys (`trainer.steps`)."""
    flat = {
        key: value
        for section in DEFINING_SECTIONS
        if section in config
        for key, value in _flatten(section, config[section]).items()
        if not _may_change(key) and key not in ("study.input_size", "dataset.input_size")
    }
    # The effective input size, whichever key set it and however it was spelled.
    flat["input_size"] = list(input_size)
    flat["objectives"] = list(objectives)
    # CPU or CUDA: AMP runs on CUDA only, and latencies of the two are not comparable.
    flat["device_type"] = device
    return flat


def check_definition(stored: Mapping[str, Any], current: Mapping[str, Any], study: str) -> None:
    """Refuse (`StudyMismatchError`, naming each difference) a study whose stored definition
    differs from this command's; a key added later (`ADDED_LATER`) and absent from the stored
    one holds its old value there."""
    before = {
        key: current[key] if value is UNUSED else value
        for key, value in ADDED_LATER.items()
        if key in current
    }
    stored = {**before, **stored}
    changed = [
        key
        for key in sorted(set(stored) | set(current))
        if stored.get(key, _ABSENT) != current.get(key, _ABSENT)
    ]
    if not changed:
        return
    lines = []
    for section in dict.fromkeys(key.split(".")[0] for key in changed):
        # Top-level keys first: `space.name` says more than the genes it changes.
        keys = sorted(
            (k for k in changed if k.split(".")[0] == section), key=lambda k: k.count(".")
        )
        lines += [f"  {key}: stored {_text(stored, key)}, now {_text(current, key)}"
                  for key in keys[:_SHOWN_PER_SECTION]]  # fmt: skip
        if len(keys) > _SHOWN_PER_SECTION:
            lines.append(f"  ... and {len(keys) - _SHOWN_PER_SECTION} more in {section}")
    raise StudyMismatchError(
        f"study '{study}' was created with other settings; resuming it would mix incompatible "
        "trials:\n" + "\n".join(lines) + "\nRun the command with the stored values, or start "
        f"a new study with study.name=NEW_NAME. What may change on resume: {', '.join(MAY_CHANGE)}."
    )


_SHOWN_PER_SECTION = 4
_ABSENT = object()


def _text(values: Mapping[str, Any], key: str) -> str:
    return repr(values[key]) if key in values else "(not set)"


def _may_change(key: str) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in MAY_CHANGE)


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(f"{prefix}.{key}", item))
        return flat
    if isinstance(value, Mapping):
        return {prefix: {}}  # an empty mapping (an ablation variant with no overrides) counts
    return {prefix: list(value) if isinstance(value, tuple) else value}
