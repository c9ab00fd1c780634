"""The schedule's benchmarks, run for real on the small set: what the schedule saves (and that a
trial carried to the top rung has exactly the mIoU of one trained straight there), and whether a
study's ranking of the heads holds at a longer budget."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from analysis.load import HEAD, finished, load_trials
from analysis.rungs import rung_counts
from experiments.research import heads_fidelity, schedule_replay, schedule_savings
from tests.support import INPUT_SIZE, SMALL, merged, run_command, tiny_budget
from workbench.record import MIOU, TrialKey

pytestmark = pytest.mark.slow

TINY_TRAINING = [
    "dataset.root={root}", *(f"dataset.{key}={value}" for key, value in SMALL.items()),
    "trainer.batch_size=2", "trainer.eval_batch_size=6", "trainer.num_workers=0",
    "trainer.warmup_steps=1",
]  # fmt: skip


def tiny(root: Path) -> list[str]:
    return [override.format(root=root) for override in TINY_TRAINING]


def test_schedule_savings_measures_both_runs_and_exact_resumes(
    synthetic_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides = [
        *tiny(synthetic_root), f"dataset.input_size={INPUT_SIZE[0]}x{INPUT_SIZE[1]}",
        "space=dfanet", "study.reference_designs=[xception_b]", "study.first_trials_per_head=0",
        "study.threads_per_worker=1", "trainer.eval_every=2",  # the full run replayable
        # One worker, and no probes (a full run has none): the two runs meet the same
        # architectures in the same order.
        "study.n_workers=1", "study.schedule.probes=0",
    ]  # fmt: skip
    arguments = [
        "--architectures", "4", "--steps", "8", "--reduction", "2", "--min-steps", "2",
        "--storage", str(tmp_path / "kept.db"),
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["schedule_savings", *arguments, *overrides])
    schedule_savings.main()
    out = capsys.readouterr().out
    # Again on the kept storage: the first run is reused as it was, the schedule run afresh.
    kept = f"sqlite:///{tmp_path / 'kept.db'}"
    started = lambda name: [  # noqa: E731
        t.datetime_start for t in optuna.load_study(study_name=name, storage=kept).trials
    ]
    first_run, scheduled_run = started("savings-0"), started("savings-1")
    schedule_savings.main()
    assert started("savings-0") == first_run
    assert min(started("savings-1")) > max(scheduled_run)
    assert capsys.readouterr().out.splitlines()[-1] == out.splitlines()[-1]
    # The trials the schedule carried to 8 steps equal those trained straight to 8.
    gap = re.search(r"largest mIoU gap of a top-rung trial to the first run: (\S+)", out)
    assert gap is not None and float(gap.group(1)) == 0.0
    rows = [line for line in out.splitlines() if line.startswith("| every") or line.startswith(
        "| schedule")]  # fmt: skip
    assert len(rows) == 2
    full_steps = int(rows[0].split("|")[4].split()[0])
    scheduled_steps = int(rows[1].split("|")[4].split()[0])
    assert full_steps == 4 * 8 and scheduled_steps < full_steps
    assert "front kept" in out
    # The study's one rule (`rule.decide`, which its workers called), replayed on the first
    # run's curves with its reference design enqueued first, is the schedule run it measured.
    outcome = schedule_replay.replay(
        schedule_replay.load_full_run(optuna.load_study(study_name="savings-0", storage=kept)),
        reduction=2, min_steps=2,
    )  # fmt: skip
    scheduled_study = optuna.load_study(study_name="savings-1", storage=kept)
    scheduled = load_trials(scheduled_study)
    assert outcome.counts == list(rung_counts(scheduled)["completed"])
    genes = schedule_replay.load_full_run(
        optuna.load_study(study_name="savings-0", storage=kept)
    ).genes
    # Trial by trial: the same architecture trained to the same rung, in the same order.
    assert [(genes[index], rung) for index, rung in outcome.lineage] == [
        (t.user_attrs[TrialKey.SPEC], t.user_attrs[TrialKey.RUNG])
        for t in scheduled_study.get_trials(states=(TrialState.COMPLETE,))
    ]
    assert outcome.steps == scheduled_steps
    kept_line = re.search(r"front kept (\d+) of the (\d+)", out)
    assert kept_line is not None and (outcome.kept, outcome.front) == tuple(
        map(int, kept_line.groups())
    )


def test_heads_fidelity_retrains_each_heads_best(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_arguments = merged(
        "+study=demo", *tiny_budget(synthetic_root, tmp_path), "study.name=tiny",
        "study.n_trials=4", "study.reference_designs=[]", "study.first_trials_per_head=1",
        "study.latency.measure=false", "sampler=random", "study.n_workers=1",
    )  # fmt: skip
    result = run_command("experiments.search", *study_arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/studies.db"
    stored = finished(load_trials(optuna.load_study(study_name="tiny", storage=storage)))
    size = f"input_size={INPUT_SIZE[0]}x{INPUT_SIZE[1]}"
    arguments = ["--study", "tiny", "--storage", storage, "--long", "4", size]
    code = heads_fidelity.main([*arguments, *tiny(synthetic_root)])
    assert code == 0
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ") and "#" in line]
    assert sorted(row[1].strip() for row in rows) == sorted(set(stored[HEAD]))
    for row in rows:  # the study's figure is each head's best
        best = stored[stored[HEAD] == row[1].strip()][MIOU].max()
        assert float(row[4]) == pytest.approx(best, abs=0.005)
    assert "Kendall's tau" in out and f"over {len(rows)} heads" in out
