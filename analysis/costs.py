"""The costs a trial's mIoU is weighed against (GMAdds, latency), and where a study's latency
figures come from, in the words a report uses: measured on the trial's own device, or predicted
from a latency table measured on the device deployed to (`load.latency_provenance`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.load import TABLE_RMSPE, TABLE_WITHIN_10, finished
from workbench.record import GMADDS, LATENCY, PREDICTED, TrialKey


@dataclass(frozen=True)
class Cost:
    """A cost the heads are compared at equal value of, and a front is drawn against."""

    column: str  # in the trials frame
    name: str  # in words, as in 'GMAdds budget', 'latency budget'
    unit: str  # after a value: '0.5 GMAdds', '12.30 ms'

    def budget_text(self, budget: float) -> str:
        return f"{budget:g} {self.unit}"

    def value_text(self, value: float) -> str:
        return f"{value:.2f} {self.unit}"


MADDS_COST = Cost(GMADDS, "GMAdds", "GMAdds")
LATENCY_COST = Cost(LATENCY, "latency", "ms")
COSTS = (MADDS_COST, LATENCY_COST)


def recorded_costs(df: pd.DataFrame, first: Cost) -> list[Cost]:
    """`first`, then every other cost some feasible finished trial has: what a table writes
    beside a trial's mIoU."""
    trials = finished(df)
    recorded = [c for c in COSTS if c.column in trials and trials[c.column].notna().any()]
    return [first, *(c for c in recorded if c != first)]


@dataclass(frozen=True)
class LatencySource:
    """The feasible finished trials whose latency came one way."""

    source: str  # record.MEASURED or record.PREDICTED
    devices: tuple[str, ...]
    trials: int

    @property
    def where(self) -> str:
        devices = " and ".join(self.devices) or "a device not recorded"
        return f"from a latency table: {devices}" if self.source == PREDICTED else f"on {devices}"


def latency_sources(df: pd.DataFrame) -> list[LatencySource]:
    """How the feasible finished trials' latencies were taken, the most common way first."""
    trials = finished(df).dropna(subset=[LATENCY])
    sources = [
        LatencySource(
            str(source),
            tuple(sorted({str(d) for d in group[TrialKey.LATENCY_DEVICE].dropna()})),
            len(group),
        )
        for source, group in trials.groupby(TrialKey.LATENCY_SOURCE)
    ]
    return sorted(sources, key=lambda s: -s.trials)


def latency_label(df: pd.DataFrame) -> str:
    """'Predicted latency', 'Measured latency', or 'Measured and predicted latency' for a mix:
    for titles and axes, where the devices do not fit."""
    words = " and ".join(source.source for source in latency_sources(df))
    return f"{words[:1].upper()}{words[1:]} latency"


def latency_text(df: pd.DataFrame) -> str:
    """'Predicted latency (from a latency table: DEVICE)' or 'Measured latency (on DEVICE)';
    for a mix, each source with its trials and devices."""
    return f"{latency_label(df)} ({latency_details(df)})"


def latency_details(df: pd.DataFrame) -> str:
    """'from a latency table: DEVICE', 'on DEVICE', or for a mix 'measured for 5 of the 8
    trials on DEVICE; predicted for 3 of the 8 trials from a latency table: DEVICE'."""
    sources = latency_sources(df)
    if len(sources) == 1:
        return sources[0].where
    total = sum(s.trials for s in sources)
    return "; ".join(f"{s.source} for {s.trials} of the {total} trials {s.where}" for s in sources)


def table_error_text(df: pd.DataFrame) -> str | None:
    """What is known of the error of the latency tables the trials' latencies were predicted
    from, one sentence a table; None when no latency was predicted."""
    trials = finished(df)
    if TABLE_RMSPE not in trials:
        return None
    predicted = trials[trials[TrialKey.LATENCY_SOURCE] == PREDICTED]
    tables = predicted[[TrialKey.LATENCY_DEVICE, TABLE_RMSPE, TABLE_WITHIN_10]].drop_duplicates()
    sentences = []
    for device, rmspe, within_10 in tables.itertuples(index=False):
        error = (
            "that table's error on held-out networks was not measured"
            if pd.isna(rmspe) or pd.isna(within_10)
            else f"on held-out networks that table's predictions were within ±10% for "
            f"{within_10:.0%} (RMSPE {rmspe:.1%})"
        )
        sentences.append(f"Latency predicted from a latency table measured on {device}; {error}.")
    return " ".join(sentences) or None
