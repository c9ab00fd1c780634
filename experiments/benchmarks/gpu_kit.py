"""The project's pure-Python dependencies that a GPU machine's image lacks, in one folder to carry
there: `python -m experiments.benchmarks.gpu_kit [--out .gpukit]`

A GPU machine may have torch and the scientific stack but not the rest (optuna, hydra-core,
omegaconf, fvcore, ...), and no package index to install them from. This copies, from this
environment's installed distributions, every runtime dependency of the project (the
`dependencies` of pyproject.toml, and theirs, and pytest for the CUDA-only tests, for Linux and
the GPU image's Python) that the image does not have: the packages' files and their
`*.dist-info`, without compiled extension modules (a distribution that needs them is left out
and listed; SQLAlchemy runs without its optional ones) or byte code. Then, on the GPU machine:

    PYTHONPATH=.gpukit:. python -m experiments.search +study=demo device=cuda tracking=none

`KIT.txt` in the folder lists what was copied and what was left out, and why.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from workbench.cli import CommandParser

PROG = "python -m experiments.benchmarks.gpu_kit"
REPO = Path(__file__).parents[2]
MANIFEST = "KIT.txt"
# The GPU image's Python (../shared/reference/stack_notes.md): the requirements' markers are
# read for it, not for this environment's.
IMAGE_PYTHON = "3.12"
# What the GPU image has (torch, the scientific stack), and what torch, pandas and matplotlib
# bring with them there.
IMAGE_HAS = frozenset(
    canonicalize_name(name)
    for name in (
        "torch", "numpy", "pandas", "matplotlib", "scipy", "pyyaml", "tqdm", "pillow", "onnx",
        "onnxruntime", "typing-extensions", "packaging", "filelock", "fsspec", "jinja2",
        "markupsafe", "networkx", "sympy", "mpmath", "python-dateutil", "tzdata", "six",
        "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing",
    )
)  # fmt: skip
LEFT_OUT = {
    # Imported only with tracking=wandb (run with tracking=none there); compiled helpers.
    canonicalize_name("wandb"): "imported only with tracking=wandb: run with tracking=none",
    # cityscapesscripts asks for the PyPI `typing` backport, which would shadow the standard
    # library's module on every newer Python.
    canonicalize_name("typing"): "an old backport that would shadow the standard library",
}
# Beside the project's dependencies: the test runner, for the tests that run only on CUDA
# (gpu_check.sh's cuda_tests part).
TEST_RUNNER = (Requirement("pytest"),)
# Distributions whose compiled modules are optional speed-ups: copied without them.
RUN_WITHOUT_COMPILED = frozenset({canonicalize_name("sqlalchemy")})
COMPILED_SUFFIXES = (".so", ".pyd")


@dataclass(frozen=True)
class Kit:
    copied: tuple[metadata.Distribution, ...]
    left_out: tuple[tuple[str, str], ...]  # (distribution, why)


def project_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def plan_kit(roots: Iterable[Requirement]) -> Kit:
    """Walk the requirements' installed distributions, stopping at what the image has."""
    environment = {**default_environment(), "python_version": IMAGE_PYTHON, "extra": ""}
    copied: dict[str, metadata.Distribution] = {}
    left_out: dict[str, str] = {}
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        if name in IMAGE_HAS or name in copied or name in left_out:
            continue
        if name in LEFT_OUT:
            left_out[name] = LEFT_OUT[name]
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            left_out[name] = "not installed here"
            continue
        if _compiled_files(distribution) and name not in RUN_WITHOUT_COMPILED:
            left_out[name] = "has compiled modules: it needs a build for the GPU image's Python"
            continue
        copied[name] = distribution
        pending += [Requirement(text) for text in distribution.requires or ()]
    return Kit(
        copied=tuple(copied[name] for name in sorted(copied)),
        left_out=tuple(sorted(left_out.items())),
    )


def build_kit(kit: Kit, out: Path) -> int:
    """Copy the kit into `out` (replacing a kit there); the bytes written."""
    if out.exists():
        if any(out.iterdir()) and not (out / MANIFEST).is_file():
            raise ValueError(f"{out} exists and is no kit (no {MANIFEST}): choose another --out")
        shutil.rmtree(out)
    written = 0
    for distribution in kit.copied:
        for file in _kept_files(distribution):
            target = out / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(distribution.locate_file(file), target)
            written += target.stat().st_size
    lines = [f"{d.metadata['Name']} {d.version}" for d in kit.copied]
    lines += [f"left out: {name} ({why})" for name, why in kit.left_out]
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text("\n".join(lines) + "\n")
    return written


def _kept_files(distribution: metadata.Distribution) -> list[Path]:
    """Its files inside site-packages, without byte code and compiled modules (scripts in
    `bin/` lie outside: `../../../bin/...`)."""
    return [
        Path(file)
        for file in distribution.files or ()
        if ".." not in file.parts
        and "__pycache__" not in file.parts
        and file.suffix not in (".pyc", *COMPILED_SUFFIXES)
    ]


def _compiled_files(distribution: metadata.Distribution) -> list[str]:
    return [str(file) for file in distribution.files or () if file.suffix in COMPILED_SUFFIXES]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CommandParser(prog=PROG, description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / ".gpukit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kit = plan_kit([*project_requirements(), *TEST_RUNNER])
    try:
        written = build_kit(kit, args.out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for distribution in kit.copied:
        print(f"copied {distribution.metadata['Name']} {distribution.version}")
    for name, why in kit.left_out:
        print(f"left out {name}: {why}")
    print(
        f"{len(kit.copied)} distributions, {written / 2**20:.1f} MiB in {args.out}: carry it to "
        f"the GPU machine and run with PYTHONPATH={args.out}:."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
