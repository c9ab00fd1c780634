"""A latency table: what each part of a space costs on one device, as plain JSON.

The file holds the device and how it was measured (threads, dtype, batch, the deployed path or
runtime, the timing protocol, software versions), one row per part (its kind, constructor
arguments, input shapes and median time), and per input size the correction fitted on whole
networks (`Correction`). Rows are written one per line, sorted by key, so two tables diff line
by line. Its `digest` (SHA-256 of the content) is what a study stores: the file may move, but a
study refuses a table with other content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space.parts import Part, part_from_key_fields
from workbench.files import write_text

FORMAT = "dfanet-workbench latency table, version 1"


class TableError(ValueError):
    """A table file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Entry:
    """One part's measured time (milliseconds per call, the table's batch)."""

    part: Part
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.part.key,
            "kind": self.part.kind,
            "arguments": {name: _plain(value) for name, value in self.part.arguments},
            "inputs": [list(shape) for shape in self.part.inputs],
            "median_ms": round(self.median_ms, 6),
            "p10_ms": round(self.p10_ms, 6),
            "p90_ms": round(self.p90_ms, 6),
            "repeats": self.repeats,
        }


@dataclass(frozen=True)
class CalibrationNetwork:
    """A whole network measured beside its parts: what the correction is fitted on."""

    genes: dict[str, Any]
    measured_ms: float
    parts_ms: float  # the sum of its parts' table times
    part_calls: int


@dataclass(frozen=True)
class Correction:
    """whole ≈ `per_parts_ms` x (sum of the parts) + `per_call_ms` x (part calls).

    Timed alone, a part runs with its weights and inputs hot in cache, again and again; inside
    the network each part finds the cache holding the previous part's data, and on a GPU each
    call also waits for its launch. The first term scales what the parts measure; the second is
    a cost per call the parts alone never show. Fitted by least squares on relative errors over
    `networks`, seeded members of the space measured whole on the same device.
    """

    per_parts_ms: float
    per_call_ms: float
    networks: tuple[CalibrationNetwork, ...]

    def apply(self, parts_ms: float, calls: int) -> float:
        return self.per_parts_ms * parts_ms + self.per_call_ms * calls

    def relative_errors(self, *, corrected: bool) -> list[float]:
        """(predicted - measured) / measured over the calibration networks."""
        return [
            (self.apply(n.parts_ms, n.part_calls) if corrected else n.parts_ms) / n.measured_ms - 1
            for n in self.networks
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_parts_ms": self.per_parts_ms,
            "per_call_ms": self.per_call_ms,
            "networks": [
                {
                    "genes": n.genes,
                    "measured_ms": round(n.measured_ms, 6),
                    "parts_ms": round(n.parts_ms, 6),
                    "part_calls": n.part_calls,
                }
                for n in self.networks
            ],
        }


@dataclass(frozen=True)
class LatencyTable:
    device: str  # "cpu", "cuda", or the name a vendor tool's device was given on import
    device_name: str  # the CPU's or GPU's model, or the vendor device's name
    threads: int | None  # CPU threads the parts ran with (None: the runtime's choice, a GPU)
    dtype: str
    batch: int
    path: str  # the deployed path ("folded+channels_last"), "onnxruntime", or a vendor tool
    num_classes: int
    space: str
    input_sizes: tuple[tuple[int, int], ...]
    coverage: str  # which parts the table holds, in words (every part of the space, ...)
    software: Mapping[str, str]
    protocol: Mapping[str, Any]
    entries: Mapping[Part, Entry]
    corrections: Mapping[tuple[int, int], Correction]
    notes: tuple[str, ...] = field(default=())  # what was done where parts did not add up

    def content(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "dtype": self.dtype,
            "batch": self.batch,
            "path": self.path,
            "num_classes": self.num_classes,
            "space": self.space,
            "input_sizes": [list(size) for size in self.input_sizes],
            "coverage": self.coverage,
            "software": dict(self.software),
            "protocol": dict(self.protocol),
            "notes": list(self.notes),
            "corrections": {
                size_text(size): correction.to_dict()
                for size, correction in sorted(self.corrections.items())
            },
            "parts": [entry.to_dict() for _, entry in sorted(self.entries.items())],
        }

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe_device(self) -> str:
        """What a figure from this table is a figure of (`device_description`)."""
        return device_description(
            self.device_name,
            device=self.device,
            threads=self.threads,
            dtype=self.dtype,
            path=self.path,
            batch=self.batch,
        )

    def save(self, path: Path) -> None:
        """Written whole or not at all; one part per line."""
        content = self.content()
        parts = content.pop("parts")
        head = json.dumps(content, indent=1)[:-2]  # without the closing "\n}"
        rows = ",\n".join("  " + json.dumps(row, sort_keys=True) for row in parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, f'{head},\n "parts": [\n{rows}\n ]\n}}\n')


def device_description(
    name: str, *, device: str, threads: int | None, dtype: str, path: str, batch: int
) -> str:
    """`AMD EPYC (cpu, 2 thread(s), fp32, folded+channels_last, batch 1)`: the device and how a
    latency was taken there, for a table's figures and a trial's measured ones alike."""
    threads_text = [] if threads is None else [f"{threads} thread(s)"]
    details = ", ".join([device, *threads_text, dtype, path, f"batch {batch}"])
    return f"{name} ({details})"


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def load_table(path: Path) -> LatencyTable:
    """Read a table written by `LatencyTable.save`; a clear error naming the file and field."""
    try:
        content = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TableError(
            f"{path}: no such latency table; build one with `python -m search_space.latency_table`"
        ) from None
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: not a latency table (invalid JSON: {error})") from None
    reader = _Reader(path, content)
    if reader.field("format", str) != FORMAT:
        raise TableError(f"{path}: field 'format': expected {FORMAT!r}")
    entries = {}
    for index, row in enumerate(reader.field("parts", list)):
        row_reader = _Reader(path, row, f"parts[{index}].")
        try:
            part = part_from_key_fields(
                row_reader.field("kind", str),
                row_reader.field("arguments", dict),
                row_reader.field("inputs", list),
            )
        except (ValueError, TypeError) as error:
            raise TableError(f"{path}: parts[{index}]: {error}") from None
        entries[part] = Entry(
            part,
            median_ms=row_reader.number("median_ms"),
            p10_ms=row_reader.number("p10_ms"),
            p90_ms=row_reader.number("p90_ms"),
            repeats=int(row_reader.number("repeats")),
        )
    corrections = {
        _size(path, text): _correction(path, text, value)
        for text, value in reader.field("corrections", dict).items()
    }
    threads = content.get("threads")
    return LatencyTable(
        device=reader.field("device", str),
        device_name=reader.field("device_name", str),
        threads=None if threads is None else int(threads),
        dtype=reader.field("dtype", str),
        batch=int(reader.number("batch")),
        path=reader.field("path", str),
        num_classes=int(reader.number("num_classes")),
        space=reader.field("space", str),
        input_sizes=tuple(_size(path, size_text(s)) for s in reader.field("input_sizes", list)),
        coverage=reader.field("coverage", str),
        software=reader.field("software", dict),
        protocol=reader.field("protocol", dict),
        entries=entries,
        corrections=corrections,
        notes=tuple(reader.field("notes", list)),
    )


class _Reader:
    def __init__(self, path: Path, content: Any, prefix: str = "") -> None:
        if not isinstance(content, dict):
            raise TableError(f"{path}: {prefix or 'the file'}: expected a JSON object")
        self.path, self.content, self.prefix = path, content, prefix

    def field(self, name: str, kind: type) -> Any:
        if name not in self.content:
            raise TableError(f"{self.path}: missing field '{self.prefix}{name}'")
        value = self.content[name]
        if not isinstance(value, kind):
            expected = getattr(kind, "__name__", "a number")
            raise TableError(
                f"{self.path}: field '{self.prefix}{name}': expected {expected}, got {value!r}"
            )
        return value

    def number(self, name: str) -> float:
        value = self.field(name, int | float)
        if isinstance(value, bool) or value < 0:
            raise TableError(
                f"{self.path}: field '{self.prefix}{name}': expected a number >= 0, got {value!r}"
            )
        return float(value)


def _size(path: Path, text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    if not (height.isdigit() and width.isdigit()):
        raise TableError(f"{path}: input size {text!r}: expected HxW")
    return int(height), int(width)


def _correction(path: Path, size: str, value: Any) -> Correction:
    reader = _Reader(path, value, f"corrections.{size}.")
    networks = []
    for index, row in enumerate(reader.field("networks", list)):
        row_reader = _Reader(path, row, f"corrections.{size}.networks[{index}].")
        networks.append(
            CalibrationNetwork(
                genes=row_reader.field("genes", dict),
                measured_ms=row_reader.number("measured_ms"),
                parts_ms=row_reader.number("parts_ms"),
                part_calls=int(row_reader.number("part_calls")),
            )
        )
    return Correction(
        per_parts_ms=float(reader.field("per_parts_ms", int | float)),
        per_call_ms=float(reader.field("per_call_ms", int | float)),
        networks=tuple(networks),
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
