"""A latency table: what each part of a space costs on one device, as plain JSON.

The file holds the device and how it was measured (threads, dtype, batch, the deployed path or
runtime, the timing protocol, software versions), one row per part (its kind, constructor
arguments, input shapes and median time), and per input size the correction fitted on whole
networks (`Correction`). Rows are written one per line, sorted by key, so two tables diff line
by line. Its `digest` (SHA-256 of the content) is what a study stores: the file may move, but a
study refuses a table with other content.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space.parts import Part, part_calls, part_from_key_fields
from workbench.files import write_text

FORMAT = "dfanet-workbench latency table, version 1"
BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "bf16": 2}


class TableError(ValueError):
    """A table file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Entry:
    """One part's measured time (milliseconds per call, the table's batch) and its weights."""

    part: Part
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    weights: int  # parameters of the deployed part (batch norms folded): bytes it must read

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
            "weights": self.weights,
        }


@dataclass(frozen=True)
class PartsSum:
    """A network's parts added up from a table: what the correction maps to the whole."""

    parts_ms: float  # the sum of its parts' times, each as often as it runs
    part_calls: int
    weight_mb: float  # the weights its parts read per forward pass, in MB of the table's dtype

    @classmethod
    def of(
        cls, parts: Counter[Part], entries: Mapping[Part, Entry], *, bytes_per_weight: int
    ) -> PartsSum:
        """`parts` (search_space.parts.network_parts) from `entries`; every part must be there."""
        return cls(
            parts_ms=sum(entries[part].median_ms * times for part, times in parts.items()),
            part_calls=part_calls(parts),
            weight_mb=sum(entries[part].weights * times for part, times in parts.items())
            * bytes_per_weight
            / 1e6,
        )

    def features(self) -> tuple[float, float, float]:
        return (self.parts_ms, float(self.part_calls), self.weight_mb)

    def to_dict(self) -> dict[str, Any]:
        return {
            "parts_ms": round(self.parts_ms, 6),
            "part_calls": self.part_calls,
            "weight_mb": round(self.weight_mb, 6),
        }


@dataclass(frozen=True)
class CalibrationNetwork:
    """A whole network measured beside its parts: what the correction is fitted on."""

    genes: dict[str, Any]
    measured_ms: float
    sums: PartsSum


@dataclass(frozen=True)
class Correction:
    """whole ≈ `scale` x (sum of the parts) + `per_call_ms` x (part calls)
    + `per_weight_mb_ms` x (MB of weights the parts read).

    Timed alone and again and again, a part runs with its weights hot in cache. Inside the
    network each part finds the cache holding other parts' data and reads its weights from
    further away: on a 2-core EPYC that was most of the gap (parts alone summed to 77-100% of
    the whole; the term in weights brought the error on held-out networks from 9% to 5%). On a
    GPU each call also waits for its launch: the term in calls. The coefficients are fitted,
    none negative, by least squares on relative errors over `networks`, seeded members of the
    space measured whole on the same device.
    """

    scale: float
    per_call_ms: float
    per_weight_mb_ms: float
    networks: tuple[CalibrationNetwork, ...]

    def apply(self, sums: PartsSum) -> float:
        parts_ms, calls, weight_mb = sums.features()
        return self.scale * parts_ms + self.per_call_ms * calls + self.per_weight_mb_ms * weight_mb

    def relative_errors(
        self, networks: Sequence[CalibrationNetwork], *, corrected: bool = True
    ) -> list[float]:
        """(predicted - measured) / measured over `networks` (the calibration networks, or
        held-out ones); `corrected=False`: of the plain sum of the parts."""
        return [
            (self.apply(n.sums) if corrected else n.sums.parts_ms) / n.measured_ms - 1
            for n in networks
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "per_call_ms": self.per_call_ms,
            "per_weight_mb_ms": self.per_weight_mb_ms,
            "networks": [
                {"genes": n.genes, "measured_ms": round(n.measured_ms, 6), **n.sums.to_dict()}
                for n in self.networks
            ],
        }


@dataclass(frozen=True)
class Validation:
    """The corrected prediction against whole networks it was not fitted on (seeded members
    drawn apart from the calibration networks): the error the table states for itself."""

    networks: int
    rmspe: float  # root mean square of (predicted - measured) / measured
    within_10: float  # the share of networks predicted within ±10%

    def to_dict(self) -> dict[str, Any]:
        return {"networks": self.networks, "rmspe": self.rmspe, "within_10": self.within_10}

    def describe(self) -> str:
        return (
            f"RMSPE {self.rmspe:.1%}, {self.within_10:.0%} within ±10% over {self.networks} "
            "held-out networks"
        )


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
    # Per input size; absent where no held-out network was measured (an import without them).
    validation: Mapping[tuple[int, int], Validation] = field(default_factory=dict)

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
            "validation": {
                size_text(size): result.to_dict()
                for size, result in sorted(self.validation.items())
            },
            "parts": [entry.to_dict() for _, entry in sorted(self.entries.items())],
        }

    @functools.cached_property
    def digest(self) -> str:
        # Cached: a study predicts every trial from one table, and this hashes all of it.
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def sums(self, parts: Counter[Part]) -> PartsSum:
        """A network's parts added up from this table (each part must be in it)."""
        return PartsSum.of(parts, self.entries, bytes_per_weight=BYTES_PER_WEIGHT[self.dtype])

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
            weights=int(row_reader.number("weights")),
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
        validation={
            _size(path, text): _validation(path, text, value)
            for text, value in reader.field("validation", dict).items()
        },
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
                sums=PartsSum(
                    parts_ms=row_reader.number("parts_ms"),
                    part_calls=int(row_reader.number("part_calls")),
                    weight_mb=row_reader.number("weight_mb"),
                ),
            )
        )
    return Correction(
        scale=reader.number("scale"),
        per_call_ms=reader.number("per_call_ms"),
        per_weight_mb_ms=reader.number("per_weight_mb_ms"),
        networks=tuple(networks),
    )


def _validation(path: Path, size: str, value: Any) -> Validation:
    reader = _Reader(path, value, f"validation.{size}.")
    return Validation(
        networks=int(reader.number("networks")),
        rmspe=reader.number("rmspe"),
        within_10=reader.number("within_10"),
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
