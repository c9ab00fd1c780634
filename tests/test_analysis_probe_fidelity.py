"""The schedule's fidelity on its probes: within-bracket pairs and tau counted by hand, the
interval against scipy's exact binomial one, the warning's threshold, and a real SQLite study of
probes and references through the report and the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import scipy.stats
from optuna.distributions import CategoricalDistribution

from analysis.document import to_markdown
from analysis.load import load_study, load_trials
from analysis.probe_fidelity import (
    AGREEMENT_TAU,
    MIN_PAIRS_TO_WARN,
    Pairs,
    Verdict,
    effective_pairs,
    fidelity_sentence,
    pairs_within,
    pooled_agreement,
    rung_fidelity,
    tau_interval,
    verdict,
    within_bracket_pairs,
)
from analysis.report import write_report
from analysis.sections.multi_fidelity import schedule_section
from experiments.study.command import summarise
from search_space.spec import ArchSpec
from tests.test_analysis_report import BUDGET, INPUT_SIZE, _create_study
from workbench.record import Constraint, ScheduleKey, StudyKey, TrialKey

RUNGS = [20, 60, 180]
HEADS = CategoricalDistribution(["dfa", "aspp", "icnet", "bisenet"])


# -------------------------------------------------------------------------- plain numbers
def test_pairs_are_counted_within_brackets_only() -> None:
    # Bracket a: (0,1) and (0,2) ordered alike, (1,2) the other way; bracket b: (3,4) the other
    # way. Across brackets 0 and 4 would be ordered alike, and is not a pair.
    pairs = within_bracket_pairs([1, 2, 3, 10, 20], [1, 3, 2, 5, 1], ["a", "a", "a", "b", "b"])
    assert pairs == Pairs(concordant=2, discordant=2, tied=0)
    assert pairs.tau == 0.0
    everyone = scipy.stats.kendalltau([1, 2, 3, 10, 20], [1, 3, 2, 5, 1]).statistic
    assert everyone != pytest.approx(0.0)


def test_a_tie_at_either_rung_counts_neither_way() -> None:
    # (0,1) tied at the first rung, (1,2) tied at the top, (0,2) alike: tau = (1 - 0) / 3.
    pairs = within_bracket_pairs([1, 1, 2], [1, 3, 3], ["a"] * 3)
    assert pairs == Pairs(concordant=1, discordant=0, tied=2)
    assert pairs.tau == pytest.approx(1 / 3)


def test_effective_pairs() -> None:
    assert effective_pairs([2, 2, 2]) == pytest.approx(3)  # three independent pairs
    assert effective_pairs([2, 1]) == pytest.approx(1)  # a lone probe makes no pair
    assert effective_pairs([1, 1]) == 0
    # Four in one bracket: 6 pairs, worth 9*4*3 / (2*13) independent ones.
    assert effective_pairs([4]) == pytest.approx(108 / 26)
    # Weighted by their pairs: a bracket of 4 (6 pairs) and one of 2 (1 pair).
    variance = (6 / 7) ** 2 * 26 / 108 + (1 / 7) ** 2 * 1
    assert effective_pairs([4, 2]) == pytest.approx(1 / variance)


def test_with_independent_pairs_the_interval_is_the_exact_binomial_one() -> None:
    # Six brackets of two probes: five pairs ordered alike, one the other way.
    first = [1, 2] * 6
    top = [1, 2] * 5 + [2, 1]
    agreement = pooled_agreement(first, top, [str(i // 2) for i in range(12)])
    assert agreement is not None
    assert agreement.tau == pytest.approx(4 / 6) and agreement.architectures == 12
    exact = scipy.stats.binomtest(5, 6).proportion_ci(0.95, method="exact")
    assert agreement.low == pytest.approx(2 * exact.low - 1)
    assert agreement.high == pytest.approx(2 * exact.high - 1)
    # All alike: the interval ends at 1 and starts where 6 of 6 first leave the binomial's tail.
    high_end = tau_interval(Pairs(6, 0, 0), [2] * 6)
    assert high_end == pytest.approx((2 * 0.025 ** (1 / 6) - 1, 1.0))


def test_the_warning_needs_its_minimum_of_pairs() -> None:
    def all_the_other_way(count: int) -> Verdict:
        brackets = [str(i // 2) for i in range(2 * count)]
        agreement = pooled_agreement([1, 2] * count, [2, 1] * count, brackets)
        assert agreement is not None and agreement.tau == -1
        return verdict(agreement)

    # One pair fewer than the minimum, all the other way: the interval still reaches agreement.
    fewer = MIN_PAIRS_TO_WARN - 1
    assert tau_interval(Pairs(0, fewer, 0), [2] * fewer)[1] >= AGREEMENT_TAU
    assert all_the_other_way(fewer) is Verdict.UNDECIDED
    assert tau_interval(Pairs(0, MIN_PAIRS_TO_WARN, 0), [2] * MIN_PAIRS_TO_WARN)[1] < AGREEMENT_TAU
    assert all_the_other_way(MIN_PAIRS_TO_WARN) is Verdict.DOES_NOT_RANK_LIKE_TOP


def test_verdicts_by_where_the_interval_lies() -> None:
    def brackets(count: int) -> list[str]:
        return [str(i // 2) for i in range(2 * count)]

    assert verdict(None) is Verdict.NO_ESTIMATE
    assert verdict(pooled_agreement([1, 2], [1, 2], ["a", "a"])) is Verdict.UNDECIDED
    # 6 of 6 alike: the interval starts at 0.08, above chance, below AGREEMENT_TAU.
    six = pooled_agreement([1, 2] * 6, [1, 2] * 6, brackets(6))
    assert verdict(six) is Verdict.BETTER_THAN_CHANCE
    # 13 of 13 alike: 0.025 ** (1/13) = 0.753 > 0.75, so the whole interval is agreement.
    thirteen = pooled_agreement([1, 2] * 13, [1, 2] * 13, brackets(13))
    assert thirteen is not None and thirteen.low >= AGREEMENT_TAU
    assert verdict(thirteen) is Verdict.RANKS_LIKE_TOP
    assert pooled_agreement([1, 2, 3], [3, 2, 1], ["a", "b", "c"]) is None


def test_pairs_within_a_margin() -> None:
    # Bracket a: |30 - 31| = 1 and |31 - 34| = 3 and |30 - 34| = 4; bracket b: |10 - 40| = 30.
    assert pairs_within([30, 31, 34, 10, 40], ["a", "a", "a", "b", "b"], margin=3.5) == 2


def test_bad_input_says_what_was_expected() -> None:
    with pytest.raises(ValueError, match="one bracket each, got lengths"):
        within_bracket_pairs([1, 2], [1, 2], ["a"])
    with pytest.raises(ValueError, match="confidence must be between 0 and 1, got 95"):
        tau_interval(Pairs(1, 0, 0), [2], confidence=95)


# ------------------------------------------------------------------------ a stored study
def _lineage(
    study: optuna.Study, head: str, mious: list[float], *, failed_at: int | None = None, **key: str
) -> None:
    """An architecture through the rungs as the study driver records it: one trial per rung
    reached, each carrying `key` (probe or reference) and the lineage's results so far."""
    spec = ArchSpec(towers=1, input_size=INPUT_SIZE).replace(head=head)
    parent = None
    for rung, miou in enumerate(mious):
        attrs: dict[str, Any] = {
            TrialKey.SPEC: spec.to_dict(),
            TrialKey.GMADDS: 0.1,
            TrialKey.INFEASIBLE: False,
            TrialKey.RUNG: rung,
            TrialKey.STEPS: RUNGS[rung],
            TrialKey.RUNG_RESULTS: [[r, RUNGS[r], m] for r, m in enumerate(mious[: rung + 1])],
            **key,
        }
        if parent is not None:
            attrs.update(
                {TrialKey.PROMOTED_FROM: parent, TrialKey.RESUMED_FROM_STEP: RUNGS[rung - 1]}
            )
        state = optuna.trial.TrialState.COMPLETE
        if rung == failed_at:
            state = optuna.trial.TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                values=[miou, 0.1] if state == optuna.trial.TrialState.COMPLETE else None,
                params={"head": head},
                distributions={"head": HEADS},
                user_attrs=attrs,
                constraints={Constraint.GMADDS: 0.1 - BUDGET},
            )
        )
        parent = len(study.trials) - 1


def _study(
    storage: str, name: str, probes: dict[str, tuple[str, list[float]]], *, failing: str = ""
) -> optuna.Study:
    """A study of one architecture chosen by its results, then `probes` (the one named
    `failing` fails its last promotion)."""
    study = _create_study(storage, name, latency=False, dataset="synthetic")
    schedule = {ScheduleKey.RUNGS: RUNGS, ScheduleKey.REDUCTION: 3, ScheduleKey.STRATIFY: "head",
                ScheduleKey.PROBES: len(probes)}  # fmt: skip
    study.set_user_attr(StudyKey.SCHEDULE, schedule)
    _lineage(study, "dfa", [12.0, 20.0, 30.0])  # chosen by its results: neither kind
    for probe, (head, mious) in probes.items():
        failed_at = len(mious) - 1 if probe == failing else None
        _lineage(study, head, mious, failed_at=failed_at, probe=probe)
    return study


# Two pairs: dfa's ordered the other way at the top, aspp's alike; icnet/4's partner failed its
# promotion to the top rung. References: the two DFANets ordered the other way, one ASPP alone.
MIXED = {
    "dfa/0": ("dfa", [10.0, 20.0, 30.0]),
    "dfa/1": ("dfa", [12.0, 21.0, 28.0]),
    "aspp/2": ("aspp", [8.0, 15.0, 20.0]),
    "aspp/3": ("aspp", [9.0, 16.0, 25.0]),
    "icnet/4": ("icnet", [7.0, 14.0, 22.0]),
    "icnet/5": ("icnet", [6.0, 13.0, 99.0]),
}
# Three brackets, every pair ordered the other way at the top rung.
REVERSED = {
    f"{head}/{2 * j + i}": (head, [10.0 + i, 15.0, 30.0 - 5 * i])
    for j, head in enumerate(["dfa", "aspp", "icnet"])
    for i in range(2)
}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('probes') / 's.db'}"
    mixed = _study(url, "mixed", MIXED, failing="icnet/5")
    for name, mious in [("dfanet_a", [5.0, 15.0, 32.0]), ("dfanet_b", [7.0, 16.0, 31.0])]:
        _lineage(mixed, "dfa", mious, reference=name)
    _lineage(mixed, "aspp", [6.0, 14.0, 27.0], reference="aspp_backbone_a")
    _study(url, "reversed", REVERSED)
    _study(url, "no_probes", {})
    return url


def test_the_estimate_pools_the_probes_within_brackets(storage: str) -> None:
    fidelity = rung_fidelity(load_trials(load_study("mixed", storage)))
    assert (fidelity.first_steps, fidelity.top_steps, fidelity.probes_enqueued) == (20, 180, 6)
    probes = fidelity.probes
    assert sorted(m.name for m in probes.measured) == ["aspp/2", "aspp/3", "dfa/0", "dfa/1",
                                                       "icnet/4"]  # fmt: skip
    assert probes.short_of_top == ("icnet/5",)
    assert probes.agreement is not None
    assert probes.agreement.pairs == Pairs(concordant=1, discordant=1, tied=0)
    assert probes.agreement.architectures == 4
    references = fidelity.references
    assert {(m.name, m.bracket, m.first, m.top) for m in references.measured} == {
        ("dfanet_a", "dfa", 5.0, 32.0),
        ("dfanet_b", "dfa", 7.0, 31.0),
        ("aspp_backbone_a", "aspp", 6.0, 27.0),
    }
    assert references.agreement is not None
    assert references.agreement.pairs == Pairs(concordant=0, discordant=1, tied=0)
    sentence = fidelity_sentence(fidelity)
    assert sentence.startswith(
        "5 of the study's 6 probes reached the top rung (1 did not: icnet/5)"
    )
    assert "Over their 2 within-bracket pairs, the first rung (20 steps) ranked like the top one " \
           "(180 steps) with Kendall's tau 0.00 (95% interval" in sentence  # fmt: skip
    assert "too few pairs to tell" in sentence and "WARNING" not in sentence


def test_the_report_says_it_beside_the_biased_figure(storage: str, tmp_path: Path) -> None:
    text = write_report(load_study("mixed", storage), tmp_path).read_text()
    section = text.split("## Multi-fidelity schedule", 1)[1].split("\n## ", 1)[0]
    probes = section.index("Did the first rung rank like the top one, in this study on this data?")
    biased = section.index("Over the promoted trials")
    assert probes < biased
    assert "Biased: these architectures were chosen by their results" in section
    assert "The reference designs are hand-picked" in section
    assert "over their 1 within-bracket pair, Kendall's tau -1.00" in section
    assert "| dfa/0 | probe | dfa | 10.00 | 30.00 |" in section
    assert "| dfanet_a | reference | dfa | 5.00 | 32.00 |" in section
    assert "seed noise floor is not measured here" in section


def test_a_study_that_ranks_the_other_way_warns_in_report_and_terminal(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = load_study("reversed", storage)
    fidelity = rung_fidelity(load_trials(study))
    assert fidelity.probes.agreement is not None
    assert fidelity.probes.agreement.pairs == Pairs(concordant=0, discordant=3, tied=0)
    assert fidelity.verdict is Verdict.DOES_NOT_RANK_LIKE_TOP
    summarise(study, tmp_path)
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if "WARNING" in line)
    assert "the first rung does not rank like the top one" in line
    assert "`study.schedule.min_steps`" in line and "`study.schedule.reduction`" in line
    report = (tmp_path / "reports" / "reversed" / "report.md").read_text()
    assert "WARNING: the first rung does not rank like the top one" in report


def test_a_study_without_probes_says_how_to_get_them(storage: str) -> None:
    fidelity = rung_fidelity(load_trials(load_study("no_probes", storage)))
    assert fidelity.probes_enqueued == 0 and fidelity.probes.agreement is None
    sentence = fidelity_sentence(fidelity)
    assert sentence.startswith("This study has no probes")
    assert "`study.schedule.probes=N`" in sentence


def test_the_seed_noise_floor_beside_counts_the_pairs_it_could_swap(
    storage: str, tmp_path: Path
) -> None:
    study = load_study("mixed", storage)
    blocks = schedule_section(load_trials(study), study.user_attrs, tmp_path, ("heads-demo", 1.5))
    text = to_markdown(blocks)
    # Top-rung gaps: dfa's probes 30 - 28 = 2 (under 2 x 1.5), aspp's 25 - 20 = 5.
    assert (
        "The heads ablation `heads-demo` beside this study measures a seed-to-seed standard "
        "deviation of 1.5 mIoU points at the top rung's steps: 1 of the 2 probe pairs differ by "
        "less than 3.0 points at the top rung"
    ) in text
