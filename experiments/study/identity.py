"""What defines a study: stored when it is created, compared on every resume.

Trials of one study must be comparable: the same space, input size, data, training budget,
objectives and sampler. A command that resumes a study with any of these changed would mix
incompatible trials (or, for a changed space, fail every trial), so it is refused before any
work, naming each difference. Everything else may change on resume (`MAY_CHANGE`): how many
trials, how many workers, where the data lies, where things are written.

A defining setting added after studies were stored is absent from their definitions; it is read
there as the value it had before it existed (`ADDED_LATER`), so those studies still resume; one
renamed is read under its new name (`RENAMED`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from experiments.training.step import precision_of_amp

# Config keys (dotted prefixes) that do not change what a trial measures.
MAY_CHANGE = (
    "study.name",
    "study.n_trials",
    "study.n_workers",
    "study.workers_per_gpu",
    "study.threads_per_worker",
    "study.max_failed_trials",
    "study.keep_checkpoints",
    # Which architectures are enqueued first, never how a trial is measured: a design added on
    # resume runs and climbs to the top rung like the others (the schedule reads each trial's
    # own `reference` mark, not this list), and one removed keeps its trials and their climb.
    "study.reference_designs",
    "study.first_trials_per_head",
    "study.early_stopping",
    "study.latency.measure",
    # The table's file may move: its content (`latency_table_digest`, below) defines the study.
    "study.latency.table",
    "dataset.root",  # each host has its own copy
    "dataset.cache",
    "trainer.progress",
    "trainer.num_workers",
    "trainer.eval_batch_size",
    "trainer.checkpoint_every",
    "trainer.loss_fetch_every",  # when the losses are read, not what they are
    # Where the crops are resampled: the same crops, flips and labels, image values within one
    # uint8 unit (the resampling's rounding), as the step's speed settings below.
    "trainer.augment_on",
    # The step's speed settings other than its precision: the same arithmetic in another
    # memory layout, cuDNN algorithm or kernel launch (fp32 rounding apart). The precision
    # changes the numerics: it defines the study.
    "trainer.cuda.channels_last",
    "trainer.cuda.cudnn_benchmark",
    "trainer.cuda.step_mode",
    "trainer.cpu.channels_last",
    "trainer.cpu.cudnn_benchmark",
    "trainer.cpu.step_mode",
    "trainer.channels_last",  # the former name of trainer.cuda.channels_last
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
    # References ranked like any trial, and no probes. Any value now: a stored scheduled study
    # resumed with them carries its references and probes to the top rung from then on, and
    # every trial measures what it measured before.
    "study.schedule.references_to_top": UNUSED,
    "study.schedule.probes": UNUSED,
    # Latency measured on the study's device: before tables, there was no other source.
    "study.latency.source": "measure",
    # Ablation keys that had a default in code before conf/ablate.yaml held them all: an
    # ablation was no retraining, and a variant without `arch` changed DFANet A.
    "ablation.retrain_of": None,
    "ablation.base": "dfanet_a",
    # A CPU trained in fp32 before the per-device speed settings.
    "trainer.cpu.precision": "fp32",
}
# Defining keys renamed, each with its new name and how its value reads there: a stored
# definition's former key is read as the new one, and so is the former key set today (a
# deprecated alias, which wins over the new key as it does in the Trainer).
RENAMED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "trainer.amp": ("trainer.cuda.precision", precision_of_amp),
}


class StudyMismatchError(ValueError):
    """A resumed study would mix trials measured under different settings."""


def study_definition(
    config: Mapping[str, Any],
    input_size: tuple[int, int],
    objectives: list[str],
    device: str,
    latency_table_digest: str | None = None,
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
    # CPU or CUDA: each has its own speed settings (its precision defines the study), and
    # latencies of the two are not comparable.
    flat["device_type"] = device
    if latency_table_digest is not None:  # predicted latencies: the table's content counts
        flat["latency_table_digest"] = latency_table_digest
    return _as_named_now(flat)


def check_definition(stored: Mapping[str, Any], current: Mapping[str, Any], study: str) -> None:
    """Refuse (`StudyMismatchError`, naming each difference) a study whose stored definition
    differs from this command's; a key added later (`ADDED_LATER`) and absent from the stored
    one holds its old value there."""
    before = {
        key: current[key] if value is UNUSED else value
        for key, value in ADDED_LATER.items()
        if key in current
    }
    stored = {**before, **_as_named_now(stored)}
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


def _as_named_now(definition: Mapping[str, Any]) -> dict[str, Any]:
    """`definition` as today's definitions are: former keys renamed (`RENAMED`; null: not set),
    keys that may change now left out, and the speed settings of the other device kind left
    out: a study on a CPU never reads `trainer.cuda` (nor one on CUDA `trainer.cpu`), so a
    change of those defaults must not refuse it, and a stored key that defined it then (the
    former `trainer.amp` on a CPU) meant nothing there."""
    flat = dict(definition)
    for former, (name, read) in RENAMED.items():
        value = flat.pop(former, None)
        if value is not None:
            flat[name] = read(value)
    unused = "trainer.cpu." if flat.get("device_type") == "cuda" else "trainer.cuda."
    return {k: v for k, v in flat.items() if not _may_change(k) and not k.startswith(unused)}


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
