"""Take an architecture out of a study: its genes as a YAML file, and its network as ONNX.

    python -m analysis.export study=NAME trial=N|front [storage=URL] [out=DIR] [onnx=true]
    python -m analysis.export checkpoint=PATH onnx=true [out=DIR] [input=HxW]
    python -m analysis.export arch=NAME_OR_YAML onnx=true [out=DIR] [input=HxW]

A trial's genes file (`<out>/trial_<N>.yaml`, `out` defaulting to `outputs/exports/NAME`) is
what `python -m experiments.train +arch=PATH` and `python -m search_space.cost PATH` read: the
same architecture, so the same MAdds as the stored trial. Its comment lines say what the trial
measured and, for a trial with a latency, `latency_ms`, `latency_source` (`measured` on the
trial's own device, or `predicted` from a latency table) and `latency_device` (for a prediction,
the table's: the device deployed to). `trial=front` writes one per trial of the study's front
(drawn as the report draws it: at the highest rung reached).

`onnx=true` also writes the network as ONNX at a fixed input size (`input=HxW`, default the
architecture's own), checks it with `onnx.checker`, runs it in onnxruntime and prints the
largest logit difference to the eager model, with the tolerance. A trial's network carries the
weights of its checkpoint (the one its rung wrote) when the file is still there; a checkpoint's
carries its own; a named architecture's is freshly initialised (for deployment latency, not
predictions). ONNX needs the optional group: `pip install -e '.[onnx]'`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from analysis.load import (
    DEFAULT_STORAGE,
    StorageNotFoundError,
    StudyNotFoundError,
    latency_provenance,
    load_study,
    load_trials,
)
from analysis.pareto import pareto_front
from search_space.arch_source import resolve_arch
from search_space.checkpoint import load_checkpoint
from search_space.model import SegmentationNet, build
from search_space.spec import ArchSpec
from workbench.cli import CommandParser, boolean, size
from workbench.record import GMADDS, MIOU, TrialKey
from workbench.secrets import mask_secrets

FRONT = "front"


class ExportError(ValueError):
    """A trial that cannot be exported, with what is wrong."""


@dataclass(frozen=True)
class ExportedTrial:
    number: int
    genes_file: Path
    spec: ArchSpec


def trial_spec(trial: FrozenTrial) -> ArchSpec:
    """The architecture a trial measured, from the genes it stored."""
    genes = trial.user_attrs.get(TrialKey.SPEC)
    if not isinstance(genes, dict):
        raise ExportError(f"trial #{trial.number} stored no architecture ({trial.state.name})")
    return ArchSpec.from_dict(genes)


def chosen_trials(study: optuna.Study, which: str) -> list[FrozenTrial]:
    """`front` (the study's front, cheapest first) or one trial number."""
    trials = study.get_trials(deepcopy=False)
    if which == FRONT:
        numbers = [int(n) for n in pareto_front(load_trials(study))["number"]]
        if not numbers:
            raise ExportError(f"study '{study.study_name}' has no finished feasible trial")
        return [trials[n] for n in numbers]
    if not which.isdigit() or int(which) >= len(trials):
        raise ExportError(
            f"trial={which!r}: expected '{FRONT}' or a trial number of study "
            f"'{study.study_name}' (0 to {len(trials) - 1})"
        )
    trial = trials[int(which)]
    if trial.state != TrialState.COMPLETE:
        raise ExportError(f"trial #{trial.number} is {trial.state.name}, not COMPLETE")
    return [trial]


def write_genes(spec: ArchSpec, path: Path, header: Sequence[str]) -> Path:
    """`spec`'s genes as YAML, after `header` as comment lines; every gene is written, so the
    file does not depend on the defaults of a later version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    genes = json.loads(json.dumps(spec.to_dict()))  # nested tuples as lists, for YAML
    comments = "".join(f"# {line}\n" for line in header)
    path.write_text(comments + yaml.safe_dump(genes, sort_keys=False))
    return path


def trial_header(study: optuna.Study, trial: FrozenTrial, path: Path) -> list[str]:
    attrs = trial.user_attrs
    measured = dict(zip(study.metric_names or [], trial.values or [], strict=False))
    miou = measured.get(MIOU)
    gmadds = attrs.get(TrialKey.GMADDS, measured.get(GMADDS))
    return [
        f"study '{study.study_name}', trial #{trial.number}: "
        + (f"mIoU {miou:.2f} after {attrs.get(TrialKey.STEPS)} steps, " if miou is not None else "")
        + (f"{gmadds:.3f} GMAdds" if gmadds is not None else "GMAdds not recorded"),
        *_latency_lines(attrs),
        f"python -m experiments.train +arch={path}",
        f"python -m search_space.cost {path}",
    ]


def _latency_lines(attrs: Mapping[str, Any]) -> list[str]:
    """`key: value` lines of the trial's latency and where it comes from, none without one."""
    latency = attrs.get(TrialKey.LATENCY_MS)
    if latency is None:
        return []
    provenance = latency_provenance(attrs)
    return [
        f"{TrialKey.LATENCY_MS}: {latency:.3f}",
        *(
            f"{key}: {provenance[key]}"
            for key in (TrialKey.LATENCY_SOURCE, TrialKey.LATENCY_DEVICE)
        ),
    ]


def export_trials(study: optuna.Study, which: str, out: Path) -> list[ExportedTrial]:
    """Write the genes file of each chosen trial into `out`."""
    exported = []
    for trial in chosen_trials(study, which):
        path = out / f"trial_{trial.number}.yaml"
        spec = trial_spec(trial)
        write_genes(spec, path, trial_header(study, trial, path))
        exported.append(ExportedTrial(trial.number, path, spec))
    return exported


def trial_network(trial: FrozenTrial, spec: ArchSpec) -> tuple[SegmentationNet, str]:
    """The trial's trained network when its checkpoint is still there, else a fresh one."""
    stored = trial.user_attrs.get(TrialKey.CHECKPOINT)
    if stored and Path(stored).is_file():
        return load_checkpoint(Path(stored)).model, f"weights of {stored}"
    gone = f" ({stored} is gone)" if stored else ""
    return build(spec), f"freshly initialised weights{gone}"


def write_onnx(model: SegmentationNet, input_size: tuple[int, int], path: Path) -> str:
    from search_space.onnx_export import export_onnx

    return export_onnx(model, input_size, path).describe()


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analysis.export", description=__doc__)
    parser.add_argument("--study", help="the study's name")
    parser.add_argument("--trial", help="a trial number, or 'front'")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="SQLAlchemy URL or journal file")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of experiments.train")
    parser.add_argument("--arch", help="a registered architecture or a genes YAML file")
    parser.add_argument("--out", type=Path, help="default: outputs/exports/<study or name>")
    parser.add_argument("--onnx", type=boolean, default=False, help="also write ONNX")
    parser.add_argument("--input", type=size, help="the ONNX input size HxW")
    args = parser.parse_args(argv)
    sources = [name for name in ("study", "checkpoint", "arch") if getattr(args, name)]
    if len(sources) != 1:
        parser.error("name one of study=NAME (with trial=N|front), checkpoint=PATH or arch=NAME")
    if args.study is None and not args.onnx:
        parser.error("a checkpoint or an architecture is exported as ONNX: add onnx=true")
    if (args.study is None) != (args.trial is None):
        parser.error("trial= goes with study=: trial=N or trial=front")
    try:
        if args.study is not None:
            export_from_study(args)
        else:
            export_network(args)
    except (StorageNotFoundError, StudyNotFoundError, FileNotFoundError, ValueError) as error:
        print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
        return 1
    return 0


def export_from_study(args: argparse.Namespace) -> None:
    study = load_study(args.study, args.storage)
    out = args.out or Path("outputs/exports") / study.study_name
    for exported in export_trials(study, args.trial, out):
        print(f"trial #{exported.number}: {exported.genes_file}")
        if args.onnx:
            trial = study.get_trials(deepcopy=False)[exported.number]
            model, weights = trial_network(trial, exported.spec)
            input_size = args.input or exported.spec.input_size
            path = exported.genes_file.with_suffix(".onnx")
            print(f"  {write_onnx(model, input_size, path)}; {weights}")


def export_network(args: argparse.Namespace) -> None:
    if args.checkpoint is not None:
        model = load_checkpoint(args.checkpoint).model
        name = args.checkpoint.stem
    else:
        model, name = build(resolve_arch(args.arch)), Path(args.arch).stem
    out = args.out or Path("outputs/exports") / name
    input_size = args.input or model.spec.input_size
    print(write_onnx(model, input_size, out / f"{name}.onnx"))


if __name__ == "__main__":
    sys.exit(main())
