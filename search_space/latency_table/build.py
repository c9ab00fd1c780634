"""Build a latency table on this machine: time every part of a space, then whole networks.

Each part is built with its real module class, given seeded random weights, deployed as the
network is (`search_space.deploy`: batch norms folded, channels-last, the dtype) and timed with
`search_space.latency`'s protocol on random inputs in the deployed network's layout. Then
seeded members of the space are timed whole at each input size, and `fit_correction` fits how
the whole relates to the sum of its parts (the `Correction` in the file).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

import numpy as np
import optuna
import scipy.optimize
import torch
from torch import nn

from search_space.deploy import DTYPES, deploy, deployed_path
from search_space.latency import (
    Protocol,
    device_name,
    measure_latency,
    median_and_spread,
    pinned_threads,
    time_calls,
)
from search_space.latency_table.table import (
    BYTES_PER_WEIGHT,
    CalibrationNetwork,
    Correction,
    Entry,
    LatencyTable,
    PartsSum,
    Validation,
    size_text,
)
from search_space.parts import Part, network_parts, space_parts
from search_space.space import SearchSpace
from search_space.spec import ArchSpec
from workbench.progress import ProgressLine

# A part takes 0.01-50 ms: enough calls for a settled median, within a fraction of a second
# for the small ones (the 1,551 parts of the heads space must fit in minutes).
PART_PROTOCOL = Protocol(warmup=3, min_repeats=20, max_repeats=200, budget_s=0.5, tolerance=0.02)
# The correction is fitted on whole networks: at 128x256 on two cores they take 2-15 ms, and
# ten calls (the default least) are a 30 ms window that one burst of other work can shift.
NETWORK_PROTOCOL = Protocol(warmup=5, min_repeats=30, max_repeats=300, budget_s=3.0)
# Three terms fitted on relative errors of noisy measurements: 16 networks left the per-call
# term unstable from run to run on the 2-core CPU (14 to 22 us at 128x256); 32 cost a minute.
CALIBRATION_NETWORKS = 32
VALIDATION_NETWORKS = 8  # measured after the fit, to state the table's own error
# A part whose median is this far above its 10th percentile is measured again, at most twice.
UNSETTLED_SPREAD = 1.5
UNSETTLED_RETRIES = 2
CALIBRATION_SEED = 1_000_003  # apart from the seeds a benchmark draws its held-out members with


def measure_part(
    part: Part,
    *,
    device: torch.device,
    dtype: str = "fp32",
    batch: int = 1,
    threads: int | None = None,
    protocol: Protocol = PART_PROTOCOL,
) -> Entry:
    """One part alone, deployed as in the network, on seeded random weights and inputs."""
    network = seeded_deployed(part.module, dtype=dtype, device=device)
    inputs = part.example_inputs(batch=batch, dtype=DTYPES[dtype], device=device)

    def call() -> object:
        with torch.inference_mode():
            return network(*inputs)

    with pinned_threads(threads):
        samples = time_calls(call, device, protocol)
    median_ms, p10_ms, p90_ms = median_and_spread(samples)
    return Entry(part, median_ms, p10_ms, p90_ms, len(samples), weights=weight_count(network))


def seeded_deployed(
    make: Callable[[], nn.Module], *, dtype: str, device: torch.device | str = "cpu"
) -> nn.Module:
    """`make()` on seeded weights, deployed as the network is (batch norms folded, the dtype,
    channels-last, eval mode). Weights do not change a time; the seed keeps values tame."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = make().eval().to(device)
    return deploy(module, dtype=dtype).network


def weight_count(deployed: nn.Module) -> int:
    """The parameters a deployed module reads per call (`Entry.weights`)."""
    return sum(parameter.numel() for parameter in deployed.parameters())


def draw_members(space: SearchSpace, count: int, *, seed: int) -> list[ArchSpec]:
    """`count` distinct seeded random members of `space` (its sampler: Optuna's random one)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn: list[ArchSpec] = []
    for _ in range(count * 20):
        spec = space.suggest(study.ask())
        if spec not in drawn:
            drawn.append(spec)
        if len(drawn) == count:
            return drawn
    raise ValueError(f"space '{space.name}' has fewer than {count} distinct members")


def fit_correction(networks: Sequence[CalibrationNetwork]) -> Correction:
    """Non-negative least squares on relative errors: min sum (prediction / measured - 1)^2
    over the correction's three terms (`Correction`).

    Relative, so that a 200 ms network does not outweigh ten 5 ms ones; non-negative, because
    neither a part, a call nor a weight makes a network faster. With fewer than four networks
    (fewer than the terms, plus one) only the scale is fitted.
    """
    if not networks:
        raise ValueError("the correction needs at least one whole network measured")
    measured = np.array([n.measured_ms for n in networks])
    features = np.array([n.sums.features() for n in networks])
    if len(networks) < 4:
        scale = float(np.mean(measured / features[:, 0]))
        return Correction(scale, 0.0, 0.0, tuple(networks))
    solution, _ = scipy.optimize.nnls(features / measured[:, None], np.ones(len(networks)))
    scale, per_call, per_weight = (float(value) for value in solution)
    return Correction(scale, per_call, per_weight, tuple(networks))


def build_table(
    space: SearchSpace,
    input_sizes: Sequence[tuple[int, int]],
    *,
    device: torch.device,
    threads: int | None,
    dtype: str = "fp32",
    batch: int = 1,
    num_classes: int = 19,
    calibration_networks: int = CALIBRATION_NETWORKS,
    validation_networks: int = VALIDATION_NETWORKS,
    part_protocol: Protocol = PART_PROTOCOL,
    network_protocol: Protocol = NETWORK_PROTOCOL,
    progress: Callable[[str], None] | None = print,
) -> LatencyTable:
    """Every part of `space` at each input size, timed alone, and the correction per size."""
    parts_by_size = {
        size: space_parts(space.with_fixed({"input_size": size}), num_classes)
        for size in input_sizes
    }
    parts = sorted({part for found in parts_by_size.values() for part in found})
    total = len(parts) + (calibration_networks + validation_networks) * len(input_sizes)
    line = ProgressLine("latency table", total, unit="measurements", write=progress)
    if progress is not None:
        counts = ", ".join(f"{len(found)} at {size_text(s)}" for s, found in parts_by_size.items())
        progress(
            f"latency table: {len(parts)} distinct parts in space '{space.name}' ({counts}), "
            f"then {calibration_networks} + {validation_networks} whole networks per input size "
            "(fit, then validation)"
        )
    entries = {}
    for part in parts:
        entry = measure_part(
            part, device=device, dtype=dtype, batch=batch, threads=threads, protocol=part_protocol
        )
        for _ in range(UNSETTLED_RETRIES):
            if entry.median_ms <= UNSETTLED_SPREAD * entry.p10_ms:
                break
            # Most calls slower than the fastest tenth: something else ran meanwhile (one such
            # part, used by many networks, skews them all). Measured again, the faster kept.
            again = measure_part(
                part, device=device, dtype=dtype, batch=batch, threads=threads,
                protocol=part_protocol,
            )  # fmt: skip
            entry = min(entry, again, key=lambda e: e.median_ms)
        entries[part] = entry
        line.advance()
    corrections, validation = {}, {}
    for size in input_sizes:
        members = table_members(
            space, size, calibration_networks + validation_networks, seed=CALIBRATION_SEED
        )
        networks = []
        for spec in members:
            measured = measure_latency(
                spec,
                device=device,
                batch=batch,
                dtype=dtype,
                threads=threads,
                num_classes=num_classes,
                protocol=network_protocol,
            )
            sums = PartsSum.of(
                network_parts(spec, num_classes), entries, bytes_per_weight=BYTES_PER_WEIGHT[dtype]
            )
            networks.append(CalibrationNetwork(spec.to_dict(), measured.median_ms, sums))
            line.advance()
        size = (int(size[0]), int(size[1]))
        corrections[size] = fit_correction(networks[:calibration_networks])
        if validation_networks:
            validation[size] = validate(corrections[size], networks[calibration_networks:])
    line.finish()
    return LatencyTable(
        device=device.type,
        device_name=device_name(device),
        threads=(threads or torch.get_num_threads()) if device.type == "cpu" else None,
        dtype=dtype,
        batch=batch,
        path=deployed_path(channels_last=True, dtype=dtype),
        num_classes=num_classes,
        space=space.name,
        input_sizes=tuple((int(h), int(w)) for h, w in input_sizes),
        coverage=coverage_text(space.name, len(parts)),
        software=software_versions(),
        protocol={"parts": asdict(part_protocol), "networks": asdict(network_protocol)},
        entries=entries,
        corrections=corrections,
        notes=table_notes(corrections, validation),
        validation=validation,
    )


def coverage_text(space: str, parts: int) -> str:
    return (
        f"every part of space '{space}' at each input size ({parts} parts, enumerated exactly: "
        "search_space.parts.space_parts)"
    )


def table_notes(
    corrections: Mapping[tuple[int, int], Correction],
    validation: Mapping[tuple[int, int], Validation],
) -> tuple[str, ...]:
    """What the sum of the parts missed, what the correction made of it, its held-out error."""
    return (
        correction_note(corrections),
        *(f"Held out at {size_text(s)}: {v.describe()}." for s, v in validation.items()),
    )


def table_members(
    space: SearchSpace, size: tuple[int, int], count: int, *, seed: int
) -> list[ArchSpec]:
    """The whole networks a table measures at `size`: calibration first, validation after."""
    return draw_members(space.with_fixed({"input_size": list(size)}), count, seed=seed)


def validate(correction: Correction, networks: Sequence[CalibrationNetwork]) -> Validation:
    errors = np.array(correction.relative_errors(networks))
    return Validation(
        networks=len(networks),
        rmspe=float(np.sqrt(np.mean(errors**2))),
        within_10=float(np.mean(np.abs(errors) <= 0.10)),
    )


def correction_note(corrections: Mapping[tuple[int, int], Correction]) -> str:
    """What the sum of the parts missed, and what the correction made of it, in words."""
    sentences = []
    for size, correction in sorted(corrections.items()):
        raw = np.abs(correction.relative_errors(correction.networks, corrected=False))
        fitted = np.abs(correction.relative_errors(correction.networks))
        sentences.append(
            f"At {size_text(size)}, the plain sum of the parts was off by {np.mean(raw):.1%} "
            f"on average (worst {np.max(raw):.1%}) over {len(correction.networks)} whole "
            f"networks; whole = {correction.scale:.3f} x sum + "
            f"{correction.per_call_ms * 1e3:.1f} us x part calls + "
            f"{correction.per_weight_mb_ms:.3f} ms x MB of weights brings that to "
            f"{np.mean(fitted):.1%} (worst {np.max(fitted):.1%})."
        )
    return " ".join(sentences)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    if torch.version.cuda:
        versions["cuda"] = torch.version.cuda
    return versions
