"""Training speed of one architecture, recipe, batch and input size, from the bare step to trials
sharing the device: `python -m experiments.benchmarks.training_speed`

    [--arch dfanet_a] [--recipe demo|cityscapes] [--batch-size N] [--input-size HxW]
    [--device auto|cpu|cuda] [--steps 50] [--settings all|none|SETTING,...]
    [--trainer-settings recipe|SETTING,...]
    [--processes 1,2,4,8] [--loader-workers N] [--dataset synthetic|cityscapes]
    [--out DIR] [trainer.KEY=VALUE ...] [dataset.KEY=VALUE ...]

(or `key=value`: `arch=dfanet_b input_size=512x1024 trainer=cityscapes`). The batch size, the
loader's workers and the input size default to the recipe's and the dataset's.

Each measurement gives the first step's seconds, the warm-up's, and the steady images/s over
`--steps` steps after warm-up:
1. the bare step (`experiments.training.step`) on one batch already on the device, with the
   recipe's optimiser, poly schedule and loss, once per speed setting: precision (fp32, bf16,
   fp16 with loss scaling), memory format (`+cl`: channels-last), `+bench` (cudnn.benchmark),
   `+graph` (the whole step in a CUDA graph) and `+compile` (torch.compile: its first step is
   the compilation). `--settings all` runs every one that applies to the device; the CUDA-only
   ones (fp16, cudnn.benchmark, graphs) are skipped on a CPU, with the reason;
2. the real `Trainer` on the dataset (the built-in one by default), as the recipe configures it,
   with the speed settings of the device's kind (`trainer.cuda` or `trainer.cpu`: its row names
   them), or once per setting of `--trainer-settings` (`fp32+bench,fp32+bench+graph`: the
   Trainer eager and graphed);
3. the data pipeline alone, the Trainer's loader at this shape: decoding the PNG files on every
   read, as real Cityscapes is read, and from the in-memory cache after one epoch; each with
   the scale, crop and flip in the loader's workers, and on the device (`trainer.augment_on`);
4. N Trainers sharing the device (`--processes`), started together after their warm-up: the
   aggregate images/s and each process's peak memory.
Steps and Trainers run in fresh processes, one per measurement: a process's first step is that
of a new architecture in a process that has already used the device (a trial's first step), and
its memory is its own. Every measurement prints a line when done, long ones a status line every
few seconds; then the table, saved as CSV and Markdown under `--out`. On a CPU the threads are
shared out among the processes, and the figures are the CPU's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch.utils.data import DataLoader

from experiments.config import CONF_DIR, CONFIG_ERRORS, compose_config, read_value
from experiments.data import NUM_CLASSES
from experiments.data.device_transforms import AugmentOn
from experiments.data.from_config import DatasetSettings, build_datasets, dataset_root
from experiments.training.losses import SegmentationLoss
from experiments.training.runtime import Runtime, device_name, resolve_device
from experiments.training.step import (
    GRAPH_WARMUP_CALLS,
    MODES,
    PRECISIONS,
    StepSetting,
    make_optimizer,
    make_step,
)
from experiments.training.stream import SeededItems, TrainingStream, batch_finisher
from experiments.training.trainer import Trainer, TrainerConfig, poly_with_warmup
from search_space.model import build
from search_space.registry import arch_names, get_arch
from workbench.cli import CommandParser, positive_int, size
from workbench.files import write_csv, write_text

PROG = "python -m experiments.benchmarks.training_speed"
# Untimed steps before the timed ones: a graphed step's eager calls, its capture and a first
# replay; a compiled step's compilation; cuDNN's autotuning; the allocator's first allocations.
WARMUP_STEPS = GRAPH_WARMUP_CALLS + 2
PRINT_EVERY_S = 3.0  # a status line at least this often while a measurement runs
REPORT_EVERY_S = 1.0  # how often a measuring process tells the command where it is
BARRIER_TIMEOUT_S = 900.0  # processes that share the device wait this long for each other
Kind = Literal["step", "trainer", "loader", "shared"]


# ---------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Plan:
    """What to measure, every default resolved and every config section checked."""

    command: str
    device: torch.device
    arch: str
    recipe: str
    trainer: dict[str, Any]  # the recipe's `trainer:` section, overrides applied
    dataset: DatasetSettings  # its root resolved
    input_size: tuple[int, int]
    batch_size: int
    steps: int
    settings: tuple[StepSetting, ...]
    trainer_settings: tuple[StepSetting, ...]  # the first is also the sharing Trainers'
    skipped: tuple[tuple[str, str], ...]  # (setting, why it does not run here)
    processes: tuple[int, ...]
    loader_workers: int
    threads: int
    out: Path

    def config(self, steps: int, setting: StepSetting | None = None) -> TrainerConfig:
        """The recipe at this batch, for a run of `steps` steps, evaluated once at the end;
        with `setting` as the speed settings of the device's kind, if given."""
        config = TrainerConfig.from_dict(
            {
                **self.trainer,
                "steps": steps,
                "batch_size": self.batch_size,
                "num_workers": self.loader_workers,
                "eval_every": 0,
                "checkpoint_every": 0,
                "progress": False,
            }
        )
        if setting is None:
            return config
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        return replace(config, amp=None, channels_last=None, **{kind: setting})


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CommandParser(prog=PROG, description=__doc__)
    parser.add_argument("--arch", default="dfanet_a", choices=arch_names(), metavar="NAME")
    parser.add_argument("--recipe", "--trainer", default="demo", choices=conf_options("trainer"))
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--input-size", type=size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=positive_int, default=50)
    parser.add_argument("--settings", type=setting_list, default="all")
    parser.add_argument("--trainer-settings", type=trainer_setting_list, default="recipe")
    parser.add_argument("--processes", type=process_counts, default=(1, 2, 4, 8))
    parser.add_argument("--loader-workers", type=int)
    parser.add_argument("--dataset", default="synthetic", choices=conf_options("dataset"))
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument(
        "overrides", nargs="*", metavar="SECTION.KEY=VALUE", type=section_override,
        help="overrides of the recipe (trainer.KEY=VALUE) or the dataset (dataset.KEY=VALUE)",
    )  # fmt: skip
    return parser.parse_args(argv)


def conf_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def setting_list(text: str) -> str | tuple[StepSetting, ...]:
    """`all`, `none`, or step settings separated by commas (`fp32,bf16+cl+bench+graph`)."""
    if text in ("all", "none"):
        return text
    try:
        return tuple(StepSetting.parse(name) for name in text.split(",") if name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def trainer_setting_list(text: str) -> str | tuple[StepSetting, ...]:
    """`recipe` (the recipe's section of the device's kind) or step settings, as `--settings`."""
    if text == "recipe":
        return text
    settings = setting_list(text)
    if not settings or isinstance(settings, str):
        raise argparse.ArgumentTypeError(f"expected recipe or step settings, got {text!r}")
    return settings


def process_counts(text: str) -> tuple[int, ...]:
    return tuple(sorted({positive_int(count) for count in text.split(",") if count}))


def section_override(text: str) -> str:
    if not re.fullmatch(r"(trainer|dataset)\.[\w.]+=.*", text):
        raise argparse.ArgumentTypeError(
            f"expected trainer.KEY=VALUE or dataset.KEY=VALUE, got {text!r}"
        )
    return text


def plan_from(args: argparse.Namespace, command: str) -> Plan:
    """Compose and check everything before any measurement: a wrong option or config fails
    here, in one line."""
    device = resolve_device(args.device)
    composed = compose_config(
        None, [f"+trainer={args.recipe}", f"+dataset={args.dataset}", *args.overrides]
    )
    trainer = composed["trainer"]
    recipe = TrainerConfig.from_dict(trainer)
    dataset = read_value(DatasetSettings, composed["dataset"], "dataset")
    # The built-in set is rendered here, on first use, rather than by each measuring process.
    print(f"locating the {dataset.name} dataset", flush=True)
    root = dataset_root(dataset)
    dataset = replace(dataset, root=None if root is None else str(root))
    requested = {"all": all_settings(device), "none": ()}.get(args.settings, args.settings)
    reasons = {setting: setting.unsupported(device) for setting in requested}
    trainer_settings = args.trainer_settings
    if trainer_settings == "recipe":
        trainer_settings = (recipe.step_setting(device),)
    plan = Plan(
        command=command,
        device=device,
        arch=args.arch,
        recipe=args.recipe,
        trainer=trainer,
        dataset=dataset,
        input_size=args.input_size or dataset.input_size,
        batch_size=args.batch_size or recipe.batch_size,
        steps=args.steps,
        settings=tuple(setting for setting, reason in reasons.items() if reason is None),
        trainer_settings=trainer_settings,
        skipped=tuple((setting.name, reason) for setting, reason in reasons.items() if reason),
        processes=args.processes,
        loader_workers=recipe.num_workers if args.loader_workers is None else args.loader_workers,
        threads=torch.get_num_threads(),
        out=args.out,
    )
    for setting in plan.trainer_settings:  # the overrides and settings make valid recipes
        reason = setting.unsupported(device)
        if reason:
            raise ValueError(f"--trainer-settings {setting.name} on {device.type}: {reason}")
        plan.config(WARMUP_STEPS + plan.steps, setting)
    return plan


def all_settings(device: torch.device) -> tuple[StepSetting, ...]:
    """Every precision and memory format, eager with cudnn.benchmark off and on; then graphed
    and compiled, with cudnn.benchmark on where there is cuDNN (shapes are fixed there anyway).
    `Plan` drops the ones the device cannot run."""
    formats = (False, True)
    eager = [
        StepSetting(precision, channels_last, benchmark)
        for benchmark in (False, True)
        for precision in PRECISIONS
        for channels_last in formats
    ]
    fixed_shapes = [
        StepSetting(precision, channels_last, device.type == "cuda", mode)
        for mode in MODES[1:]
        for precision in PRECISIONS
        for channels_last in formats
    ]
    return tuple(eager + fixed_shapes)


# ----------------------------------------------------------------- a measuring process's side
@dataclass(frozen=True)
class Job:
    """What one measuring process runs: the bare step with `setting`, or the Trainer with
    `setting` as its device's speed settings."""

    kind: Literal["step", "trainer"]
    plan: Plan
    threads: int
    setting: StepSetting | None = None


@dataclass(frozen=True)
class Timing:
    """One process's measurement. `started`/`ended` are wall-clock (`time.time()`), comparable
    across processes: several processes' steady rate is their images over their joint span."""

    first_step_s: float
    warmup_s: float  # from the first step's start to the timed steps' start
    started: float
    ended: float
    images: int
    peak_memory_mb: float | None
    final_loss: float | None


class Reporter:
    """A measuring process's status, sent to the command when its phase (the first word)
    changes, else at most every `REPORT_EVERY_S`."""

    def __init__(self, events: Any, index: int) -> None:
        self.events, self.index, self.sent, self.phase = events, index, 0.0, ""

    def __call__(self, status: str) -> None:
        phase = status.split()[0]
        if phase != self.phase or time.monotonic() - self.sent >= REPORT_EVERY_S:
            self.events.put((self.index, "status", status))
            self.sent, self.phase = time.monotonic(), phase


class Window:
    """The timed span; with a barrier, every sharing process starts it together."""

    def __init__(self, barrier: Any) -> None:
        self.barrier, self.started, self.ended = barrier, 0.0, 0.0

    def open(self) -> None:
        if self.barrier is not None:
            self.barrier.wait(BARRIER_TIMEOUT_S)
        self.started = time.time()

    def close(self) -> None:
        self.ended = time.time()


def run_job(job: Job, index: int, events: Any, barrier: Any) -> None:
    """A measuring process: one Timing, or the error, onto `events`."""
    try:
        torch.set_num_threads(job.threads)
        device = job.plan.device
        warm_up_device(device)
        report, window = Reporter(events, index), Window(barrier)
        measure = time_bare_step if job.kind == "step" else time_trainer
        events.put((index, "done", measure(job, report, window)))
    except Exception as error:  # reported, then this process ends: the command goes on
        events.put((index, "failed", f"{type(error).__name__}: {error}"))


def warm_up_device(device: torch.device) -> None:
    """Create the CUDA context and the cuDNN and cuBLAS handles on shapes of no architecture:
    what the first step then costs is the architecture's own, as in a worker's later trials."""
    if device.type != "cuda":
        return
    image = torch.randn(1, 3, 8, 8, device=device, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, device=device)
    convolved = torch.nn.functional.conv2d(image, weight)
    multiplied = image.flatten(1) @ image.flatten(1).T
    (convolved.sum() + multiplied.sum()).backward()
    torch.cuda.synchronize(device)


def time_bare_step(job: Job, report: Reporter, window: Window) -> Timing:
    plan, device = job.plan, job.plan.device
    total = WARMUP_STEPS + plan.steps
    config = plan.config(total)
    torch.manual_seed(0)
    spec = get_arch(plan.arch).replace(input_size=plan.input_size)
    model = build(spec, NUM_CLASSES).to(device).train()
    optimizer = make_optimizer(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        device=device,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        partial(poly_with_warmup, total=total, warmup=config.warmup_steps, power=config.poly_power),
    )
    assert job.setting is not None
    step = make_step(model, optimizer, SegmentationLoss(config.loss), job.setting, device)
    image = torch.randn(plan.batch_size, 3, *plan.input_size, device=device)
    label = torch.randint(0, NUM_CLASSES, (plan.batch_size, *plan.input_size), device=device)
    losses: list[torch.Tensor] = []

    def train_one() -> None:
        losses[:] = [step(image, label)]
        schedule.step()

    first_step, warmup = time_calls(
        train_one,
        steps=plan.steps,
        window=window,
        status=report,
        wait=partial(_synchronize, device),
    )
    return Timing(
        first_step_s=first_step,
        warmup_s=warmup,
        started=window.started,
        ended=window.ended,
        images=plan.steps * plan.batch_size,
        peak_memory_mb=peak_memory_mb(device),
        final_loss=float(losses[0]),
    )


def time_calls(
    call: Callable[[], object],
    *,
    steps: int,
    window: Window,
    status: Callable[[str], None],
    untimed: int = WARMUP_STEPS,
    wait: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """`untimed` calls, then `steps` calls inside `window`; `wait()` waits for the device's
    queued work to finish. Returns the first call's seconds and the untimed calls'."""
    started = time.perf_counter()
    status("first step")
    call()
    wait()
    first = time.perf_counter() - started
    for done in range(1, untimed):
        status(f"untimed step {done + 1}/{untimed}")
        call()
    wait()
    untimed_seconds = time.perf_counter() - started
    window.open()
    for done in range(steps):
        call()
        status(f"step {done + 1}/{steps}")
    wait()
    window.close()
    return first, untimed_seconds


class TrainerClock:
    """The Trainer's `between_steps`: called before each step, then before each evaluation
    batch, so call k marks the end of step k. The Trainer reads its losses from the device only
    every `trainer.loss_fetch_every` steps, so the clock waits for the device where it marks a
    span's end: each untimed step (the first step's seconds), and the window's two ends. Opens
    the window after the warm-up, closes it after the last timed step."""

    def __init__(
        self, steps: int, untimed: int, report: Reporter, window: Window, device: torch.device
    ) -> None:
        self.steps, self.untimed, self.report = steps, untimed, report
        self.window, self.device = window, device
        self.marks: list[float] = []

    def __call__(self) -> None:
        calls, untimed = len(self.marks), self.untimed
        if calls <= WARMUP_STEPS or calls in (untimed, untimed + self.steps):
            _synchronize(self.device)
        self.marks.append(time.perf_counter())  # before the window: no wait for the others
        if calls == untimed:
            self.window.open()
        if calls == untimed + self.steps:
            self.window.close()
        if calls < untimed:
            self.report(f"untimed step {calls + 1}/{untimed}")
        elif calls < untimed + self.steps:
            self.report(f"step {calls - untimed + 1}/{self.steps}")


def untimed_steps(items: int, batch_size: int, *, cached: bool) -> int:
    """Steps before the timing starts: the warm-up, and on a cached dataset its first epoch
    (the stream's whole batches), which decodes every PNG. A study's worker reads the cache
    after its first trial (on the built-in set, DFANet B's Trainer ran at 0.76 of the bare
    step over the first epoch on a 2-core CPU, at 1.03 after it)."""
    return max(WARMUP_STEPS, items // batch_size) if cached else WARMUP_STEPS


def time_trainer(job: Job, report: Reporter, window: Window) -> Timing:
    plan, device = job.plan, job.plan.device
    recipe = plan.config(WARMUP_STEPS, job.setting)
    report("reading the dataset")
    train, val, num_classes = build_datasets(
        plan.dataset,
        input_size=plan.input_size,
        scale_range=recipe.scale_range,
        augment_on=recipe.augment_on,
    )
    untimed = untimed_steps(len(train), plan.batch_size, cached=plan.dataset.cache)
    # One step more than the clock times: the window closes before it (at the start of the
    # step after the timed ones), and the evaluation, whose first batch loads before the clock
    # is called, comes after it.
    config = replace(recipe, steps=untimed + plan.steps + 1)
    val.samples = val.samples[: config.eval_batch_size]  # one batch: the evaluation is untimed
    torch.manual_seed(0)
    model = build(get_arch(plan.arch).replace(input_size=plan.input_size), num_classes)
    clock = TrainerClock(plan.steps, untimed, report, window, device)
    trainer = Trainer(
        model, train, val, config, Runtime(device), num_classes=num_classes, between_steps=clock
    )
    result = trainer.fit()
    marks = clock.marks
    return Timing(
        first_step_s=marks[1] - marks[0],
        warmup_s=marks[untimed] - marks[0],
        started=window.started,
        ended=window.ended,
        images=plan.steps * plan.batch_size,
        peak_memory_mb=peak_memory_mb(device),
        final_loss=result.final_loss,
    )


def peak_memory_mb(device: torch.device) -> float:
    """The tensors' peak on a GPU; the process's peak resident memory on a CPU (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------ the command's side
class MeasurementFailed(RuntimeError):
    pass


class Heartbeat:
    """`  label: status, N s`, at most every `PRINT_EVERY_S`: a long measurement is never
    silent for longer."""

    def __init__(self, label: str) -> None:
        self.label, self.status = label, "starting"
        self.started = self.printed = time.monotonic()

    def __call__(self, status: str | None = None) -> None:
        self.status = status or self.status
        now = time.monotonic()
        if now - self.printed >= PRINT_EVERY_S:
            print(f"  {self.label}: {self.status}, {now - self.started:.0f} s", flush=True)
            self.printed = now


def run_processes(label: str, job: Job, count: int) -> list[Timing]:
    """`count` fresh processes running `job` together; their Timings, in process order."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited CUDA
    events = context.Queue()
    barrier = context.Barrier(count) if count > 1 else None
    processes = [
        context.Process(target=run_job, args=(job, index, events, barrier), name=f"{label} {index}")
        for index in range(count)
    ]  # fmt: skip
    for process in processes:
        process.start()
    try:
        return _collect(label, processes, events, count)
    except MeasurementFailed:
        if barrier is not None:
            barrier.abort()  # the others stop waiting for the one that failed
        raise
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
                process.join()


def _collect(label: str, processes: list[Any], events: Any, count: int) -> list[Timing]:
    heartbeat = Heartbeat(label)
    statuses: dict[int, str] = {}
    timings: dict[int, Timing] = {}
    gone_since: float | None = None
    while len(timings) < count:
        try:
            index, kind, payload = events.get(timeout=0.5)
        except queue.Empty:
            missing = [p for i, p in enumerate(processes) if i not in timings and not p.is_alive()]
            # A process that ended has flushed its queue: allow the last message a moment.
            gone_since = (gone_since or time.monotonic()) if missing else None
            if gone_since is not None and time.monotonic() - gone_since > 2:
                raise MeasurementFailed(
                    f"{missing[0].name} exited with code {missing[0].exitcode}"
                ) from None
        else:
            if kind == "failed":
                raise MeasurementFailed(payload)
            if kind == "done":
                timings[index] = payload
            else:
                statuses[index] = payload
        waiting = min(set(range(count)) - set(timings), default=0)
        status = statuses.get(waiting, "starting")
        heartbeat(f"{status} ({len(timings)}/{count} done)" if count > 1 else status)
    return [timings[index] for index in range(count)]


def time_loader(plan: Plan, cached: bool, augment_on: AugmentOn) -> Timing:
    """The Trainer's loader (its stream, workers and pinning) at this shape, without a model:
    decoding every PNG, or from the in-memory cache filled by one untimed epoch (each worker
    fills a copy of its own: with workers, the timed epochs still decode some); with the
    augmentation in the workers, or on the device (each batch timed until it is resampled)."""
    config = plan.config(WARMUP_STEPS + plan.steps)
    train, _, _ = build_datasets(
        replace(plan.dataset, cache=cached),
        input_size=plan.input_size,
        scale_range=config.scale_range,
        augment_on=augment_on,
    )
    finish = batch_finisher(train)
    batch = plan.batch_size
    loader = DataLoader(
        SeededItems(train),
        batch_size=batch,
        sampler=TrainingStream(len(train), batch_size=batch, seed=0),
        num_workers=plan.loader_workers,
        pin_memory=plan.device.type == "cuda",
    )
    batches = iter(loader)

    def next_batch() -> None:
        finish(next(batches), plan.device)
        _synchronize(plan.device)

    window = Window(barrier=None)
    untimed = untimed_steps(len(train), batch, cached=cached)
    first_batch, warmup = time_calls(
        next_batch,
        steps=plan.steps,
        window=window,
        status=Heartbeat(f"loader, {'cached' if cached else 'PNG'}, augment on {augment_on}"),
        untimed=untimed,
    )
    return Timing(
        first_step_s=first_batch,
        warmup_s=warmup,
        started=window.started,
        ended=window.ended,
        images=plan.steps * batch,
        peak_memory_mb=None,
        final_loss=None,
    )


@dataclass(frozen=True)
class Row:
    what: str
    kind: Kind
    processes: int = 1
    first_step_s: float | None = None
    warmup_s: float | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None  # the largest of its processes'
    final_loss: float | None = None
    note: str = ""

    @classmethod
    def of(cls, what: str, kind: Kind, timings: Sequence[Timing]) -> Row:
        span = max(t.ended for t in timings) - min(t.started for t in timings)
        memory = [t.peak_memory_mb for t in timings if t.peak_memory_mb is not None]
        return cls(
            what=what,
            kind=kind,
            processes=len(timings),
            first_step_s=max(t.first_step_s for t in timings),
            warmup_s=max(t.warmup_s for t in timings),
            images_per_s=sum(t.images for t in timings) / max(span, 1e-9),
            peak_memory_mb=max(memory) if memory else None,
            final_loss=timings[0].final_loss,
        )


def measure(what: str, kind: Kind, run: Callable[[], list[Timing]]) -> Row:
    try:
        return Row.of(what, kind, run())
    except MeasurementFailed as error:
        return Row(what, kind, note=f"failed: {error}")


def best_bare_step(rows: Sequence[Row]) -> float | None:
    rates = [row.images_per_s for row in rows if row.kind == "step" and row.images_per_s]
    return max(rates, default=None)


def one_process(rows: Sequence[Row]) -> float | None:
    """The Trainer's images/s alone on the device: what sharing rows are read against."""
    return next((row.images_per_s for row in rows if row.kind == "trainer"), None)


def line(row: Row, rows: Sequence[Row]) -> str:
    """The line printed when a measurement is done (`rows`: every one so far, this included)."""
    if row.images_per_s is None:
        return f"{row.what}: {row.note}"
    parts = [f"first step {row.first_step_s:.3f} s", f"warm-up {row.warmup_s:.2f} s",
             f"{row.images_per_s:.1f} images/s"]  # fmt: skip
    best = best_bare_step(rows)
    if best:
        so_far = " so far" if row.kind == "step" else ""
        parts.append(f"{row.images_per_s / best:.2f} of the best bare step{so_far}")
    alone = one_process(rows)
    if row.kind == "shared" and alone:
        parts.append(f"{row.images_per_s / alone:.2f}x one process")
    if row.peak_memory_mb is not None:
        parts.append(f"peak {row.peak_memory_mb:.0f} MB" + (" each" if row.processes > 1 else ""))
    if row.final_loss is not None:
        parts.append(f"loss {row.final_loss:.3f}")
    return f"{row.what}: " + ", ".join(parts)


def table(rows: Sequence[Row]) -> pd.DataFrame:
    best, alone = best_bare_step(rows), one_process(rows)
    records = []
    for row in rows:
        record = asdict(row)
        rate = row.images_per_s
        record["of_best_bare_step"] = rate / best if rate and best else None
        record["of_one_process"] = rate / alone if row.kind == "shared" and rate and alone else None
        records.append(record)
    columns = [f.name for f in fields(Row) if f.name != "note"]
    columns += ["of_best_bare_step", "of_one_process", "note"]
    return pd.DataFrame.from_records(records, columns=columns)


def markdown(frame: pd.DataFrame, context: dict[str, str]) -> str:
    header = ["measurement", "processes", "first step s", "warm-up s", "images/s",
              "of best bare step", "of one process", "peak MB (each)", "loss", "note"]  # fmt: skip
    keys = ["what", "processes", "first_step_s", "warmup_s", "images_per_s", "of_best_bare_step",
            "of_one_process", "peak_memory_mb", "final_loss", "note"]  # fmt: skip
    formats = {"first_step_s": "{:.3f}", "warmup_s": "{:.2f}", "images_per_s": "{:.1f}",
               "of_best_bare_step": "{:.2f}", "of_one_process": "{:.2f}x",
               "peak_memory_mb": "{:.0f}", "final_loss": "{:.3f}"}  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in frame.to_dict("records"):
        cells = [
            "" if pd.isna(record[key]) else formats.get(key, "{}").format(record[key])
            for key in keys
        ]
        lines.append("| " + " | ".join(cells) + " |")
    facts = "\n".join(f"- {key}: {value}" for key, value in context.items())
    return (
        f"# Training speed\n\n{facts}\n\n" + "\n".join(lines) + "\n\n"
        f"Steady images/s over the timed steps, after {WARMUP_STEPS} untimed ones (the first "
        "step among them); a +compile row's first step is its compilation, a loader row's its "
        "first batch. Bare steps train on one batch already on the device; the Trainer on the "
        "dataset, as the recipe configures it (on a cached dataset, timed after one untimed "
        "epoch has filled the cache); the loader rows are its data pipeline alone. "
        "Trainer xN: N Trainers started together, their images over their joint span. Peak "
        "memory: CUDA's max_memory_allocated, or a CPU process's peak resident memory.\n"
    )


def context_of(plan: Plan) -> dict[str, str]:
    height, width = plan.input_size
    where = plan.device.type if plan.device.type == "cuda" else f"cpu, {plan.threads} threads"
    return {
        "command": plan.command,
        "device": f"{where} ({device_name(plan.device)}), torch {torch.__version__}",
        "model": f"{plan.arch}, {height}x{width}, batch {plan.batch_size}, recipe {plan.recipe}",
        "steps": f"{WARMUP_STEPS} untimed + {plan.steps} timed",
        "data": f"{plan.dataset.name} at {plan.dataset.root}, {plan.loader_workers} loader workers",
    }


def run(plan: Plan) -> tuple[pd.DataFrame, str]:
    context = context_of(plan)
    for key, value in context.items():
        print(f"{key}: {value}", flush=True)
    skipped: dict[str, list[str]] = {}
    for name, reason in plan.skipped:
        skipped.setdefault(reason, []).append(name)
    for reason, names in skipped.items():
        print(f"skipped {', '.join(names)}: {reason}", flush=True)
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        print(line(row, rows), flush=True)

    for setting in plan.settings:
        what, job = f"step {setting.name}", Job("step", plan, plan.threads, setting)
        add(measure(what, "step", partial(run_processes, what, job, 1)))
    for setting in plan.trainer_settings:
        what, job = f"Trainer {setting.name}", Job("trainer", plan, plan.threads, setting)
        add(measure(what, "trainer", partial(run_processes, what, job, 1)))
    trainer = Job("trainer", plan, plan.threads, plan.trainer_settings[0])
    for cached in (False, True):
        for augment_on in ("loader", "device"):
            what = (f"loader, {'cached' if cached else 'PNG'}, {plan.loader_workers} workers, "
                    f"augment on {augment_on}")  # fmt: skip
            timed = partial(time_loader, plan, cached, augment_on)
            add(measure(what, "loader", lambda timed=timed: [timed()]))
    for count in plan.processes:
        if count > 1:
            shared = replace(trainer, threads=max(1, plan.threads // count))
            label = f"Trainer x{count}"
            add(measure(label, "shared", partial(run_processes, label, shared, count)))
    frame = table(rows)
    return frame, markdown(frame, context)


def write_outputs(plan: Plan, frame: pd.DataFrame, text: str) -> tuple[Path, Path]:
    plan.out.mkdir(parents=True, exist_ok=True)
    where = "cuda" if plan.device.type == "cuda" else f"cpu{plan.threads}t"
    size_tag = "x".join(map(str, plan.input_size))
    stem = "_".join(("training_speed", where, plan.arch, size_tag, f"b{plan.batch_size}",
                     time.strftime("%Y%m%d-%H%M%S")))  # fmt: skip
    csv_path, md_path = plan.out / f"{stem}.csv", plan.out / f"{stem}.md"
    write_csv(frame, csv_path)
    write_text(md_path, text)
    return csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        plan = plan_from(args, " ".join([PROG, *argv]))
    except CONFIG_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frame, text = run(plan)
    print(text, flush=True)
    csv_path, md_path = write_outputs(plan, frame, text)
    print(f"saved {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
