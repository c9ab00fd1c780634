"""How well a study's first rung ranked like its top one, measured on a sample its results did
not choose: the probes (seeded random architectures enqueued before any result is known and
trained to the top rung whatever their rank, `TrialKey.PROBE`) and, apart, the reference designs
(hand-picked, so never a sample of the space: `TrialKey.REFERENCE`).

Promotion compares trials within a bracket (`study.schedule.stratify`: each head a bracket of
its own), so agreement is measured there: for every pair of probes in the same bracket, whether
the first rung orders them as the top rung does. Pooled over the brackets,

    tau = (concordant - discordant) / pairs

Kendall's tau-a of the within-bracket pairs; pairs across brackets are left out, since no
promotion compares them. A pair tied at either rung (equal mIoU) counts neither way, so ties
pull tau towards 0: a rung that cannot tell two architectures apart has not ranked them.
Equivalently tau = 2p - 1, where p = (concordant + tied / 2) / pairs is the share of pairs
ordered alike, a tie counting half.

The interval. The study enqueues probes in pairs per bracket; with two probes in a bracket its
one pair shares no probe with any other pair, so the pairs are independent, p is a binomial
share and the Clopper-Pearson interval on it is exact (conservative). With m > 2 probes in a
bracket its m(m-1)/2 pairs share probes and are not independent: they count as the number of
independent pairs whose share has the variance Kendall's tau has over m items under
independence, 9m(m-1) / (2(2m+5)) (Kendall 1938: 1 for m = 2, 4.2 for m = 4, 12 for m = 8),
pooled with each bracket's weight in tau, and the Clopper-Pearson interval is taken at that
effective count (the effective-sample-size form of Korn and Graubard, 1998). A bootstrap would
not do at these sizes: resampling a bracket's two probes draws one probe twice half the time,
and when every pair agrees every resample does, so its interval collapses to a point.
`experiments.research.probe_count` measures how often the interval covers the tau of a whole
measured table, and how the error shrinks with the number of probes.

Pure functions of plain numbers first, then the reader of a trials frame (`load.load_trials`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations
from typing import Final

import pandas as pd
from scipy import stats

from analysis.rungs import RESULTS, lineages, rung_steps, schedule_of, top_rung
from analysis.tables import present
from workbench.record import ScheduleKey, TrialKey

CONFIDENCE: Final = 0.95
# Agreement: at least three within-bracket pairs in four ordered alike (p = 0.75), the usual bar
# for a strong rank correlation. For scale (RESULTS.md): the DFA space's 80-step proxy ranks as
# 400 steps with tau 0.57; the demo's promoted trials, 20 against 180 steps, with -0.07.
AGREEMENT_TAU: Final = 0.5
# The fewest within-bracket pairs that can show disagreement: with two independent pairs, both
# ordered the other way, the 95% interval still reaches tau 0.68; with three it ends at 0.42,
# below AGREEMENT_TAU (tests/test_analysis_probe_fidelity.py checks both). Fewer pairs never
# warn, whatever they show.
MIN_PAIRS_TO_WARN: Final = 3
ONE_BRACKET: Final = "all"  # the bracket of every trial when the schedule has no `stratify`


# ---------------------------------------------------------------------- plain numbers
@dataclass(frozen=True)
class Pairs:
    """Within-bracket pairs of architectures by how the two rungs order them."""

    concordant: int
    discordant: int
    tied: int

    @property
    def count(self) -> int:
        return self.concordant + self.discordant + self.tied

    @property
    def tau(self) -> float:
        return (self.concordant - self.discordant) / self.count if self.count else math.nan


def within_bracket_pairs(
    first: Sequence[float], top: Sequence[float], brackets: Sequence[str]
) -> Pairs:
    """Every pair of architectures in the same bracket: ordered alike by `first` and `top`
    (concordant), the other way (discordant), or equal at either (tied)."""
    _check_lengths(first, top, brackets)
    signs = Counter(
        _sign(first[i] - first[j]) * _sign(top[i] - top[j])
        for i, j in combinations(range(len(first)), 2)
        if brackets[i] == brackets[j]
    )
    return Pairs(concordant=signs[1], discordant=signs[-1], tied=signs[0])


def effective_pairs(bracket_sizes: Sequence[int]) -> float:
    """The number of independent pairs the pooled tau over brackets of these sizes is worth
    (see the module's docstring); 0 without a pair."""
    sizes = [m for m in bracket_sizes if m >= 2]
    total = sum(m * (m - 1) / 2 for m in sizes)
    if not total:
        return 0.0
    # A bracket weighs in the pooled tau by its share of the pairs, and its own tau's variance
    # under independence is 2(2m+5) / (9m(m-1)) (1 for m = 2: one pair's); the pooled variance
    # is their weighted sum, and an independent pair's variance over it the effective count.
    variance = sum(
        (m * (m - 1) / 2 / total) ** 2 * 2 * (2 * m + 5) / (9 * m * (m - 1)) for m in sizes
    )
    return 1 / variance


def tau_interval(
    pairs: Pairs, bracket_sizes: Sequence[int], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Clopper-Pearson interval of the share of pairs ordered alike at the effective number
    of pairs, as an interval of tau = 2p - 1."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = effective_pairs(bracket_sizes)
    if not pairs.count or not n:
        return math.nan, math.nan
    alike = (1 + pairs.tau) / 2 * n
    tail = (1 - confidence) / 2
    low = stats.beta.ppf(tail, alike, n - alike + 1) if alike > 0 else 0.0
    high = stats.beta.ppf(1 - tail, alike + 1, n - alike) if alike < n else 1.0
    return 2 * float(low) - 1, 2 * float(high) - 1


@dataclass(frozen=True)
class Agreement:
    """Pooled within-bracket agreement between two rungs, with its interval."""

    pairs: Pairs
    architectures: int  # those sharing a bracket with another: the ones in some pair
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def tau(self) -> float:
        return self.pairs.tau


def pooled_agreement(
    first: Sequence[float],
    top: Sequence[float],
    brackets: Sequence[str],
    confidence: float = CONFIDENCE,
) -> Agreement | None:
    """Kendall's tau pooled over within-bracket pairs, and its interval; None without a pair."""
    pairs = within_bracket_pairs(first, top, brackets)
    if not pairs.count:
        return None
    sizes = list(Counter(brackets).values())
    low, high = tau_interval(pairs, sizes, confidence)
    return Agreement(pairs, sum(m for m in sizes if m >= 2), low, high, confidence)


class Verdict(StrEnum):
    """What an agreement says about the first rung, by where its interval lies."""

    NO_ESTIMATE = "no estimate"  # no within-bracket pair
    RANKS_LIKE_TOP = "ranks like the top"  # the interval at or above AGREEMENT_TAU
    DOES_NOT_RANK_LIKE_TOP = "does not rank like the top"  # it ends below, on enough pairs
    BETTER_THAN_CHANCE = "better than chance"  # above 0, AGREEMENT_TAU inside it
    UNDECIDED = "undecided"  # it holds both 0 and AGREEMENT_TAU


def verdict(agreement: Agreement | None) -> Verdict:
    """The first rung does not rank like the top one when the interval's upper end is below
    AGREEMENT_TAU over at least MIN_PAIRS_TO_WARN pairs; it does when its lower end is at or
    above AGREEMENT_TAU."""
    if agreement is None:
        return Verdict.NO_ESTIMATE
    if agreement.high < AGREEMENT_TAU and agreement.pairs.count >= MIN_PAIRS_TO_WARN:
        return Verdict.DOES_NOT_RANK_LIKE_TOP
    if agreement.low >= AGREEMENT_TAU:
        return Verdict.RANKS_LIKE_TOP
    if agreement.low > 0:
        return Verdict.BETTER_THAN_CHANCE
    return Verdict.UNDECIDED


def pairs_within(values: Sequence[float], brackets: Sequence[str], margin: float) -> int:
    """How many within-bracket pairs differ by less than `margin`: an order that another
    training seed could swap, where `margin` is about twice the seed-to-seed spread."""
    _check_lengths(values, values, brackets)
    return sum(
        abs(values[i] - values[j]) < margin
        for i, j in combinations(range(len(values)), 2)
        if brackets[i] == brackets[j]
    )


# ------------------------------------------------------------------------ a stored study
@dataclass(frozen=True)
class Measured:
    """One probe's or reference's lineage: its mIoU at the first rung and at the top one."""

    name: str
    bracket: str
    first: float
    top: float


@dataclass(frozen=True)
class Sample:
    """The probes, or the references, of a study: those measured at both rungs, the names of
    those that did not reach the top rung (failed, stopped, or still to run), and the pooled
    agreement over the measured ones."""

    measured: tuple[Measured, ...]
    short_of_top: tuple[str, ...]
    agreement: Agreement | None


@dataclass(frozen=True)
class RungFidelity:
    """The schedule's fidelity in a stored study, first rung against the top one."""

    first_steps: int | None
    top_steps: int | None
    probes_enqueued: int  # the schedule's setting (probes seen where the study predates it)
    probes: Sample
    references: Sample

    @property
    def verdict(self) -> Verdict:
        return verdict(self.probes.agreement)


def rung_fidelity(df: pd.DataFrame) -> RungFidelity:
    """The probes' and the references' agreement between the first rung and the top rung of the
    schedule (its last; the highest reached when the schedule names no rungs). A lineage
    below the top rung is left out of the agreement and named in `short_of_top`."""
    schedule = schedule_of(df) or {}
    rungs = schedule.get(ScheduleKey.RUNGS) or []
    top = len(rungs) - 1 if rungs else top_rung(df)
    steps = rung_steps(df)
    probes = _sample(df, TrialKey.PROBE, top, schedule.get(ScheduleKey.STRATIFY))
    enqueued = schedule.get(ScheduleKey.PROBES)
    return RungFidelity(
        first_steps=steps.get(0),
        top_steps=steps.get(top) if top is not None else None,
        probes_enqueued=int(enqueued) if present(enqueued) else _named_count(df, TrialKey.PROBE),
        probes=probes,
        references=_sample(df, TrialKey.REFERENCE, top, schedule.get(ScheduleKey.STRATIFY)),
    )


def fidelity_sentence(fidelity: RungFidelity) -> str:
    """In words: whether the first rung ranked like the top one on the study's probes, how
    sure that is, and, when it did not, which settings to change. One line, for the report and
    the terminal."""
    rungs = (
        f"the first rung ({_steps(fidelity.first_steps)}) ranked like the top one "
        f"({_steps(fidelity.top_steps)})"
    )
    agreement = fidelity.probes.agreement
    if not (fidelity.probes_enqueued or fidelity.probes.measured or fidelity.probes.short_of_top):
        return (
            f"This study has no probes, so it cannot say without bias whether {rungs}: "
            "`study.schedule.probes=N` enqueues N seeded random architectures, in pairs per "
            "bracket, trained to the top rung whatever their rank."
        )
    reached = _reached_text(fidelity)
    if agreement is None:
        why = (
            "fewer than two of them"
            if len(fidelity.probes.measured) < 2
            else "no two in the same bracket"
        )
        return f"{reached}, {why}: no within-bracket pair, so no estimate of whether {rungs}."
    pairs = agreement.pairs
    measured = (
        f"{reached}. Over their {plural(pairs.count, 'within-bracket pair')}, {rungs} "
        f"with Kendall's tau {agreement.tau:.2f} ({agreement.confidence:.0%} interval "
        f"{agreement.low:.2f} to {agreement.high:.2f}; {pairs.concordant} ordered alike, "
        f"{pairs.discordant} the other way"
        + (f", {pairs.tied} tied at a rung, each counting half)" if pairs.tied else ")")
    )
    return measured + _verdict_clause(fidelity.verdict)


# ------------------------------------------------------------------------------ helpers
def _sample(df: pd.DataFrame, key: str, top: int | None, stratify: str | None) -> Sample:
    if key not in df or top is None:
        return Sample((), (), None)
    table = lineages(df)
    named = df.set_index("number")
    measured, short = [], []
    for _, lineage in table.iterrows():
        name = named.at[lineage["root"], key]  # enqueued with it: on the root at least
        if not present(name):
            continue
        by_rung = {rung: miou for rung, _, miou in lineage[RESULTS]}
        if top in by_rung and 0 in by_rung:
            # The bracket promotion compared it in: its value of the stratifying gene.
            bracket = str(named.at[lineage["last"], stratify]) if stratify in named else ONE_BRACKET
            measured.append(Measured(str(name), bracket, by_rung[0], by_rung[top]))
        else:
            short.append(str(name))
    seen = {m.name for m in measured} | set(short)
    # A lineage none of whose trials completed (failed, waiting, running) is short of it too.
    short += sorted({str(n) for n in df[key] if present(n)} - seen)
    agreement = pooled_agreement(
        [m.first for m in measured], [m.top for m in measured], [m.bracket for m in measured]
    )
    return Sample(tuple(measured), tuple(short), agreement)


def _named_count(df: pd.DataFrame, key: str) -> int:
    return len({n for n in df[key] if present(n)}) if key in df else 0


def _verdict_clause(found: Verdict) -> str:
    more = "more probes (`study.schedule.probes`) narrow the interval"
    if found is Verdict.RANKS_LIKE_TOP:
        return f": it ranked like the top one (tau {AGREEMENT_TAU} or more)."
    if found is Verdict.DOES_NOT_RANK_LIKE_TOP:
        return (
            f". WARNING: the first rung does not rank like the top one (the interval ends below "
            f"tau {AGREEMENT_TAU}), so its promotions drop architectures the top rung would rank "
            "high. Lengthen the first rung (`study.schedule.min_steps`) or promote a larger share "
            "of each rung (a smaller `study.schedule.reduction`)."
        )
    if found is Verdict.BETTER_THAN_CHANCE:
        return (
            f": better than chance, but not surely like the top one (tau {AGREEMENT_TAU} is "
            f"inside the interval); {more}."
        )
    return (
        f": too few pairs to tell ranking like the top one (tau {AGREEMENT_TAU}) from chance (0), "
        f"both inside the interval; {more}."
    )


def _reached_text(fidelity: RungFidelity) -> str:
    probes = fidelity.probes
    total = max(fidelity.probes_enqueued, len(probes.measured) + len(probes.short_of_top))
    text = f"{len(probes.measured)} of the study's {total} probes reached the top rung"
    if probes.short_of_top:
        text += f" ({len(probes.short_of_top)} did not: {', '.join(probes.short_of_top)})"
    return text


def _steps(steps: int | None) -> str:
    return f"{steps} steps" if steps is not None else "steps unknown"


def plural(count: int, noun: str) -> str:
    """'1 within-bracket pair', '2 within-bracket pairs'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _check_lengths(*columns: Sequence[object]) -> None:
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise ValueError(f"paired values need one bracket each, got lengths {sorted(lengths)}")
