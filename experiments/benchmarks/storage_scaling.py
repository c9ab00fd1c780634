"""What the storage costs a trial, and how a study scales with workers on one storage:
`python -m experiments.benchmarks.storage_scaling`

Tiny trials that do everything a study's trial does to its storage and nothing else: the
worker loop's reads between trials (`count_trials`, as `run_worker` does), Optuna's ask (its
stale-trial check and heartbeat thread included, where the storage has heartbeats), the DFANet
space's genes suggested by the real `SearchSpace` (random sampler: no model time), the user
attributes a trial records (as many and as large as a Cityscapes trial's, one write each, as
`experiments.study.trial` writes them), then `--work-ms` of sleep standing in for training
(sleep, not compute: the cores are shared, and only the storage is measured), then tell.

Two tables, on SQLite, a journal file and PostgreSQL (`--postgres-url`, else a throwaway server
when the binaries are installed, `workbench.postgres_server`), each storage as its
`conf/storage/` option configures it:
- overhead a trial, ms (median and 95th percentile over `--trials` trials, one worker), by phase;
- finished trials a minute with 1, 2 and 4 worker processes on one study, the ratio to the
  ideal (k times one worker's rate), and the longest any trial waited on the storage (a lock
  shows there: a worker idle on it).
The throughput figure is plotted (`--out`).
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure

from analysis.plots import save_figure
from experiments.config import compose_config, read_value
from experiments.study.progress import count_trials
from search_space.space import SearchSpace, load_space
from workbench.cli import CommandParser
from workbench.files import write_csv
from workbench.postgres_server import PostgresUnavailable, start_server
from workbench.record import TrialKey
from workbench.storage import StorageSettings, make_storage

PHASES = ("reads", "ask", "suggest", "attributes", "tell")
STORAGES = ("sqlite", "journal", "postgres")
BENCHMARK_ROLE, BENCHMARK_PASSWORD = "bench", "bench-pw"
CITYSCAPES_CLASSES, CURVE_POINTS = 19, 40  # a 10k-step trial evaluated every 250 steps


def trial_attributes() -> dict[str, Any]:
    """What a Cityscapes trial records, key for key, at its sizes."""
    return {
        TrialKey.HOST: "gpu-node-17", TrialKey.SEED: 0, TrialKey.N_PARAMS: 2_143_744,
        TrialKey.MADDS: 3_412_112_384, TrialKey.GMADDS: 3.412, TrialKey.FVCORE_TOTAL: 3.41e9,
        TrialKey.SPEC: {f"gene_{i}": [32, 64, 128] for i in range(20)},
        TrialKey.DEVICE: "cuda", TrialKey.DEVICE_NAME: "NVIDIA H200", "python": "3.11.9",
        "torch": "2.13.0", "optuna": "5.0.0", "git_commit": "0" * 40, TrialKey.INFEASIBLE: False,
        TrialKey.LATENCY_MS: 12.5, TrialKey.LATENCY_RESULT: {"median_ms": 12.5, "runs": 50},
        TrialKey.CURVE: [[250 * i, 0.5 + i / 100] for i in range(CURVE_POINTS)],
        TrialKey.PER_CLASS_IOU: [0.5] * CITYSCAPES_CLASSES, TrialKey.STEPS: 10_000,
        TrialKey.FINAL_LOSS: 0.41, TrialKey.IMAGES_PER_SECOND: 42.0, TrialKey.TRAIN_SECONDS: 5400.0,
        TrialKey.WALL_SECONDS: 5460.0,
    }  # fmt: skip


@dataclass(frozen=True)
class WorkerRun:
    """One worker's trials: seconds in each phase, trial by trial, and when it ran."""

    phases: dict[str, list[float]]
    started: float  # time.time() when its first trial began (process start-up excluded)
    ended: float
    cpu_seconds: float  # the process's CPU time over its trials (sleep is none)

    @property
    def storage_waits(self) -> list[float]:
        return [sum(parts) for parts in zip(*self.phases.values(), strict=True)]


def run_trials(
    storage_config: StorageSettings, study_name: str, trials: int, work_seconds: float, seed: int
) -> WorkerRun:
    """A worker: `trials` tiny trials on the study, timed phase by phase."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(storage_config)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    space, attributes = _space(), trial_attributes()
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    marks: dict[str, float] = {}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        marks["asked"] = time.perf_counter()
        space.suggest(trial)
        marks["suggested"] = time.perf_counter()
        for key, value in attributes.items():
            trial.set_user_attr(key, value)
        marks["written"] = time.perf_counter()
        time.sleep(work_seconds)
        marks["worked"] = time.perf_counter()
        return 50.0, 3.4

    started, cpu = time.time(), time.process_time()
    for _ in range(trials):
        begun = time.perf_counter()
        count_trials(study)
        read = time.perf_counter()
        study.optimize(objective, n_trials=1)
        told = time.perf_counter()
        for phase, seconds in zip(
            PHASES,
            (read - begun, marks["asked"] - read, marks["suggested"] - marks["asked"],
             marks["written"] - marks["suggested"], told - marks["worked"]),
            strict=True,
        ):  # fmt: skip
            phases[phase].append(seconds)
    return WorkerRun(phases, started, time.time(), time.process_time() - cpu)


def _space() -> SearchSpace:
    return load_space(compose_config("search", ["+study=cityscapes"])["space"], name="dfanet")


@dataclass(frozen=True)
class Throughput:
    storage: str
    workers: int
    trials: int
    trials_per_minute: float
    ideal: float  # k times the one-worker rate
    storage_ms: float  # a trial's storage calls, wall-clock, mean over every worker's trials
    on_cpu_ms: float  # of which the worker computed (the rest: the server, a lock, the cores)
    longest_wait_ms: float

    @property
    def ratio(self) -> float:
        return self.trials_per_minute / self.ideal


def measure(
    kind: str, storage_config: StorageSettings, workers: int, trials: int, work_seconds: float
) -> list[WorkerRun]:
    """`workers` processes on one new study, each running `trials` trials."""
    name = f"scaling-{kind}-{workers}-{time.time_ns()}"
    optuna.create_study(
        study_name=name, storage=make_storage(storage_config), directions=["maximize", "minimize"]
    )
    context = multiprocessing.get_context("spawn")
    arguments = [(storage_config, name, trials, work_seconds, i) for i in range(workers)]
    with context.Pool(workers) as pool:
        return pool.starmap(run_trials, arguments)


def overhead_rows(kind: str, run: WorkerRun) -> dict[str, str]:
    row = {"storage": kind}
    for phase, seconds in {**run.phases, "total": run.storage_waits}.items():
        milliseconds = sorted(1000 * s for s in seconds)
        p95 = milliseconds[min(len(milliseconds) - 1, round(0.95 * (len(milliseconds) - 1)))]
        row[phase] = f"{statistics.median(milliseconds):.1f} / {p95:.1f}"
    return row


def throughput(kind: str, runs: list[WorkerRun], one_worker_rate: float | None) -> Throughput:
    total = sum(len(run.storage_waits) for run in runs)
    span = max(run.ended for run in runs) - min(run.started for run in runs)
    rate = 60 * total / span
    ideal = len(runs) * (one_worker_rate or rate)
    waits = [wait for run in runs for wait in run.storage_waits]
    on_cpu = sum(run.cpu_seconds for run in runs) / total
    return Throughput(
        kind, len(runs), total, rate, ideal, 1000 * statistics.mean(waits), 1000 * on_cpu,
        1000 * max(waits),
    )  # fmt: skip


@contextmanager
def storages(
    folder: Path, postgres_url: str | None, kinds: tuple[str, ...]
) -> Iterator[dict[str, StorageSettings | str]]:
    """Each storage's config as its conf/storage option sets it (heartbeats, retries), with its
    file in `folder`; one that cannot be had here is the reason, as text."""
    configs: dict[str, StorageSettings | str] = {}
    server = None
    try:
        for kind in kinds:
            overrides = [f"storage={kind}", f"output_dir={folder}"]
            if kind == "postgres":
                if postgres_url is None:
                    try:
                        server = start_server(user=BENCHMARK_ROLE, password=BENCHMARK_PASSWORD)
                        postgres_url = server.create_database()
                    except PostgresUnavailable as error:
                        configs[kind] = f"not run: {error}"
                        continue
                overrides.append(f"storage.url={postgres_url}")
            composed = compose_config("search", ["+study=demo", *overrides])["storage"]
            configs[kind] = read_value(StorageSettings, composed, "storage")
        yield configs
    finally:
        if server is not None:
            server.stop()


def plot(results: list[Throughput], out_dir: Path) -> Path:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for kind in dict.fromkeys(result.storage for result in results):
        mine = [result for result in results if result.storage == kind]
        workers = [result.workers for result in mine]
        line = axes.plot(workers, [r.trials_per_minute for r in mine], "o-", label=kind)[0]
        axes.plot(workers, [r.ideal for r in mine], ":", color=line.get_color())
    axes.set_xlabel("worker processes on one study")
    axes.set_ylabel("finished trials a minute")
    axes.set_xticks(sorted({result.workers for result in results}))
    axes.set_title("Measured (solid) against the ideal, k x one worker (dotted)")
    axes.legend()
    png, _ = save_figure(figure, out_dir, "throughput")
    return png


def main() -> None:
    parser = CommandParser(
        prog="python -m experiments.benchmarks.storage_scaling", description=__doc__
    )
    parser.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument("--trials", type=int, default=40, help="a worker's trials")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--work-ms", type=float, default=200.0, help="a trial's stand-in work")
    parser.add_argument("--postgres-url", help="a database to use (default: a throwaway server)")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/storage_scaling"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overheads: list[dict[str, str]] = []
    results: list[Throughput] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        storages(Path(folder), args.postgres_url, tuple(args.storages)) as configs,
    ):
        for kind, config in configs.items():
            if isinstance(config, str):
                print(f"{kind}: {config}")
                continue
            one_worker_rate = None
            for workers in sorted(args.workers):
                began = time.monotonic()
                runs = measure(kind, config, workers, args.trials, args.work_ms / 1000)
                if workers == 1:
                    overheads.append(overhead_rows(kind, runs[0]))
                result = throughput(kind, runs, one_worker_rate)
                one_worker_rate = one_worker_rate or result.trials_per_minute / workers
                results.append(result)
                print(f"[{kind}] {workers} worker(s): {result.trials} trials, "
                      f"{result.trials_per_minute:.0f}/min ({result.ratio:.2f} of ideal), "
                      f"{time.monotonic() - began:.0f} s", flush=True)  # fmt: skip
    print("\nStorage overhead a trial, ms (median / 95th percentile), one worker:")
    print("| storage | " + " | ".join((*PHASES, "total")) + " |")
    print("|---" * (len(PHASES) + 2) + "|")
    for row in overheads:
        print("| " + " | ".join(row.values()) + " |")
    print(f"\nFinished trials a minute ({args.work_ms:.0f} ms of stand-in work a trial):")
    print("| storage | workers | trials/min | ideal | ratio | storage ms a trial | on the "
          "worker's CPU | longest storage wait, ms |")  # fmt: skip
    print("|---" * 8 + "|")
    for r in results:
        print(f"| {r.storage} | {r.workers} | {r.trials_per_minute:.0f} | {r.ideal:.0f} | "
              f"{r.ratio:.2f} | {r.storage_ms:.0f} | {r.on_cpu_ms:.0f} | "
              f"{r.longest_wait_ms:.0f} |")  # fmt: skip
    if results:
        table = pd.DataFrame([{**asdict(r), "ratio": r.ratio} for r in results])
        write_csv(table, args.out / "throughput.csv")
        print(f"\nfigure: {plot(results, args.out)}")


if __name__ == "__main__":
    main()
