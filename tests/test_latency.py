"""Latency measurement: sane, self-consistent figures; no wall-clock thresholds."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from search_space.latency import (
    CHEAP,
    LatencyResult,
    Protocol,
    _settled,
    measure_latency,
    measure_module,
    pinned_threads,
    time_calls,
)
from search_space.layers import ConvBNReLU
from tests.support import TINY

QUICK = Protocol(warmup=1, min_repeats=4, max_repeats=12, budget_s=5.0, tolerance=0.05)


def assert_sane(result: LatencyResult, protocol: Protocol) -> None:
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.spread_ms >= 0
    assert protocol.min_repeats <= result.repeats <= protocol.max_repeats
    assert result.fps == pytest.approx(result.batch * 1000 / result.median_ms)


@pytest.mark.parametrize("batch", [1, 3])
def test_module_latency_is_sane(batch: int) -> None:
    model = nn.Sequential(ConvBNReLU(3, 8), ConvBNReLU(8, 8, stride=2))
    result = measure_module(model, input_size=(24, 40), batch=batch, threads=1, protocol=QUICK)
    assert_sane(result, QUICK)
    assert (result.batch, result.input_size, result.device) == (batch, (24, 40), "cpu")
    assert (result.dtype, result.threads, result.path) == ("fp32", 1, "eager")
    assert model.training  # the mode it came in
    json.dumps(result.to_dict())


def test_repeated_measurements_are_both_sane() -> None:
    """The same measurement twice (the figures themselves may differ: no timing thresholds)."""
    model = nn.Sequential(ConvBNReLU(3, 8)).eval()
    first, second = (
        measure_module(model, input_size=(16, 16), threads=1, protocol=QUICK) for _ in range(2)
    )
    for result in (first, second):
        assert_sane(result, QUICK)
    settings = ("batch", "input_size", "device", "dtype", "threads", "path")
    assert [getattr(first, s) for s in settings] == [getattr(second, s) for s in settings]


@pytest.mark.parametrize("fast", [False, True])
def test_measure_latency_of_a_spec(fast: bool) -> None:
    rng = torch.random.get_rng_state()
    result = measure_latency(TINY, fast=fast, threads=1, protocol=CHEAP)
    assert_sane(result, CHEAP)
    assert result.path == ("folded+channels_last" if fast else "eager")
    assert result.input_size == (32, 48)
    # Measuring before a seeded training run must not change what that run draws.
    assert torch.equal(rng, torch.random.get_rng_state())


def test_autocast_dtype_is_recorded() -> None:
    result = measure_latency(TINY, fast=False, dtype="bf16", threads=1, protocol=QUICK)
    assert_sane(result, QUICK)
    assert result.dtype == "bf16"


def test_threads_are_restored() -> None:
    before = torch.get_num_threads()
    with pinned_threads(1) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError), pinned_threads(0):
        pass
    assert torch.get_num_threads() == before


def test_warmup_and_repeat_counts() -> None:
    calls: list[int] = []
    protocol = Protocol(warmup=3, min_repeats=5, max_repeats=5)
    samples = time_calls(lambda: calls.append(1), torch.device("cpu"), protocol)
    assert len(samples) == 5
    assert len(calls) == 8
    assert all(sample >= 0 for sample in samples)


def test_stopping_rule() -> None:
    assert _settled([10.0] * 6, tolerance=0.01)
    # A drifting series (a machine getting busier): the median keeps moving.
    assert not _settled([10.0, 10.0, 10.0, 20.0, 20.0, 20.0], tolerance=0.05)


@pytest.mark.parametrize(
    "arguments",
    [
        {"warmup": -1},
        {"min_repeats": 1},
        {"min_repeats": 10, "max_repeats": 5},
        {"budget_s": 0},
        {"tolerance": 0},
    ],
)
def test_protocol_validation(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Protocol(**arguments)


def test_bad_arguments() -> None:
    model = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="dtype"):
        measure_module(model, input_size=(8, 8), dtype="fp64")
    with pytest.raises(ValueError, match="batch"):
        measure_module(model, input_size=(8, 8), batch=0)
