from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.config import compose_option
from experiments.data import (
    NUM_CLASSES,
    CityscapesDataset,
    DatasetError,
    EvalTransform,
    TrainTransform,
)
from experiments.training.metrics import ConfusionMatrix
from experiments.training.runtime import Runtime
from experiments.training.step import StepSetting, precision_of_amp
from experiments.training.stream import TrainingStream
from experiments.training.trainer import (
    NonFiniteLossError,
    Trainer,
    TrainerConfig,
    poly_with_warmup,
)
from search_space.model import build
from search_space.registry import get_arch
from tests.support import INPUT_SIZE, trainer_config

CPU = Runtime(torch.device("cpu"))


def datasets(root: Path) -> tuple[CityscapesDataset, CityscapesDataset]:
    train = CityscapesDataset(
        root,
        "train",
        TrainTransform(crop_size=INPUT_SIZE, scale_range=(0.75, 1.25), base_size=INPUT_SIZE),
    )
    return train, CityscapesDataset(root, "val", EvalTransform(input_size=INPUT_SIZE))


def make_trainer(
    root: Path, run_dir: Path | None = None, runtime: Runtime = CPU, **overrides: object
) -> Trainer:
    settings = {
        "steps": 40,
        "batch_size": 4,
        "lr": 0.05,
        "warmup_steps": 5,
        "eval_every": 20,
        "eval_batch_size": 6,
        "num_workers": 0,
        "progress": False,
        **overrides,
    }
    torch.manual_seed(0)
    model = build(get_arch("backbone_b").replace(input_size=INPUT_SIZE), NUM_CLASSES)
    train, val = datasets(root)
    return Trainer(
        model,
        train,
        val,
        trainer_config(**settings),
        runtime,
        num_classes=NUM_CLASSES,
        run_dir=run_dir,
    )


def constant_prediction_miou(val: CityscapesDataset) -> float:
    """mIoU of predicting the most frequent class everywhere: the floor a model must beat."""
    labels = torch.stack([val[i][1] for i in range(len(val))])
    valid = labels[labels != 255]
    most_frequent = int(torch.bincount(valid).argmax())
    matrix = ConfusionMatrix(NUM_CLASSES)
    matrix.update(torch.full_like(labels, most_frequent), labels)
    return matrix.result().miou


def test_short_run_learns(synthetic_root: Path) -> None:
    trainer = make_trainer(synthetic_root)
    result = trainer.fit()
    assert result.steps == 40
    assert [step for step, _ in result.curve] == [20, 40]
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.8 * first, f"loss did not fall: {first:.3f} -> {last:.3f}"
    _, val = datasets(synthetic_root)
    assert result.scores.miou > constant_prediction_miou(val) + 0.02
    assert result.images_per_second > 0
    assert len(result.scores.per_class_iou) == NUM_CLASSES


def test_resume_continues_from_the_checkpoint(synthetic_root: Path, tmp_path: Path) -> None:
    first = make_trainer(synthetic_root, tmp_path, steps=6, eval_every=3)
    first.fit()
    saved = {k: v.clone() for k, v in first.module.state_dict().items()}
    resumed = make_trainer(synthetic_root, tmp_path, steps=10, eval_every=3)
    assert resumed.resume()
    assert resumed.step == 6
    for key, value in resumed.module.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert resumed.optimizer.state_dict()["state"], "momentum buffers were not restored"
    result = resumed.fit()
    assert result.steps == 10
    assert [step for step, _ in result.curve] == [3, 6, 9, 10]
    assert len(result.losses) == 10
    assert not make_trainer(synthetic_root, tmp_path / "empty").resume()


def test_a_run_stopped_and_resumed_is_the_run_that_never_stopped(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """What a promoted trial of a multi-fidelity study relies on: the data stream and the
    schedule follow the step, so stopping at step 4 and resuming from the checkpoint in a new
    trainer gives the same weights, losses and curve as training straight to step 8."""
    straight = make_trainer(synthetic_root, steps=8, eval_every=4)
    expected = straight.fit()
    stopped = make_trainer(synthetic_root, tmp_path, steps=8, eval_every=4)
    partial = stopped.fit(until=4)
    assert partial.steps == 4 and [step for step, _ in partial.curve] == [4]
    resumed = make_trainer(synthetic_root, tmp_path / "elsewhere", steps=8, eval_every=4)
    assert resumed.resume(tmp_path / "checkpoint.pt")
    result = resumed.fit()
    assert result.losses == expected.losses
    assert result.curve == expected.curve
    for key, value in resumed.module.state_dict().items():
        assert torch.equal(value, straight.module.state_dict()[key]), key
    with pytest.raises(ValueError, match="cannot train to step 3: the run is at step 8"):
        resumed.fit(until=3)


def test_the_stream_gives_every_process_its_share_of_the_same_global_batches() -> None:
    single = list(itertools.islice(TrainingStream(10, batch_size=4, seed=3), 12))
    ranks = [
        list(itertools.islice(TrainingStream(10, batch_size=4, seed=3, rank=r, world_size=2), 6))
        for r in (0, 1)
    ]
    for step in range(3):
        batch = single[4 * step : 4 * step + 4]
        shares = ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2]
        assert sorted(shares) == sorted(batch)
    # Two batches an epoch (the incomplete third is dropped), each epoch its own permutation.
    assert len({index for index, _ in single[:8]}) == 8
    assert single[8][1][1] == 1  # step 2 is epoch 1's first batch
    resumed = list(itertools.islice(TrainingStream(10, batch_size=4, seed=3, start_step=2), 4))
    assert resumed == single[8:12]


def test_the_checkpoint_is_written_before_the_final_evaluation(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """A validation file that breaks the last evaluation must not cost the trained weights."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    trainer = make_trainer(root, tmp_path / "run", steps=4, eval_every=0)
    broken = trainer.val_loader.dataset.samples[0].label  # type: ignore[attr-defined]
    Image.fromarray(np.full((64, 128), 250, np.uint8)).save(broken)  # not a label id
    with pytest.raises(DatasetError, match=str(broken)):
        trainer.fit()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4


def test_non_finite_loss_stops_with_its_own_error(synthetic_root: Path) -> None:
    trainer = make_trainer(synthetic_root, steps=3)
    with torch.no_grad():
        trainer.module.head.classifier.weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 0"):
        trainer.fit()


def test_a_checkpoint_of_a_float_rate_optimiser_resumes(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """A checkpoint written before the learning rate was a tensor (plain SGD, float rate):
    resumed, the optimiser is back to make_optimizer's, and the run is the one never stopped."""
    expected = make_trainer(synthetic_root, steps=6, eval_every=0).fit()
    make_trainer(synthetic_root, tmp_path, steps=6, eval_every=0).fit(until=3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for group in state["optimizer"]["param_groups"]:
        group.update(lr=float(group["lr"]), initial_lr=float(group["initial_lr"]), fused=None)
    torch.save(state, tmp_path / "checkpoint.pt")
    resumed = make_trainer(synthetic_root, tmp_path, steps=6, eval_every=0)
    assert resumed.resume()
    (group,) = resumed.optimizer.param_groups
    assert isinstance(group["lr"], torch.Tensor) and group["fused"]
    assert resumed.fit().losses == pytest.approx(expected.losses, rel=1e-6)


@pytest.mark.parametrize("fetch_every", [1, 4])
def test_a_loss_turning_nan_is_named_at_its_step(synthetic_root: Path, fetch_every: int) -> None:
    """The weights are poisoned just before step 6: the run stops naming step 6, read from the
    device at most `loss_fetch_every` steps later (with 4: after step 8), the losses before it
    kept."""
    trainer = make_trainer(synthetic_root, steps=12, eval_every=0, loss_fetch_every=fetch_every)

    def poison_before_step_6() -> None:
        if trainer.step == 6:
            with torch.no_grad():
                trainer.module.head.classifier.weight.fill_(math.nan)

    trainer.between_steps = poison_before_step_6
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 6:") as error:
        trainer.fit()
    assert error.value.step == 6
    assert trainer.step == {1: 7, 4: 8}[fetch_every]
    assert len(trainer.losses) == 6 and all(map(math.isfinite, trainer.losses))


def test_losses_read_in_batches_are_the_losses_read_every_step(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """Reading every 3rd step, stopped at step 4 (between two reads), checkpointed and resumed
    in a new trainer: the losses, curve and weights of a run read every step, never stopped."""
    straight = make_trainer(synthetic_root, steps=8, eval_every=4, loss_fetch_every=1)
    expected = straight.fit()
    stopped = make_trainer(synthetic_root, tmp_path, steps=8, eval_every=0, loss_fetch_every=3)
    partial = stopped.fit(until=4)
    assert partial.losses == expected.losses[:4]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["losses"] == expected.losses[:4]
    resumed = make_trainer(synthetic_root, tmp_path, steps=8, eval_every=4, loss_fetch_every=3)
    assert resumed.resume()
    result = resumed.fit()
    assert result.losses == expected.losses and result.final_loss == expected.losses[-1]
    for key, value in resumed.module.state_dict().items():
        assert torch.equal(value, straight.module.state_dict()[key]), key


def test_evaluation_callback_can_stop_the_run(synthetic_root: Path) -> None:
    seen: list[tuple[int, float]] = []

    class Stop(Exception):
        pass

    def on_evaluation(step: int, miou: float) -> None:
        seen.append((step, miou))
        raise Stop

    trainer = make_trainer(synthetic_root, steps=10, eval_every=4)
    trainer.on_evaluation = on_evaluation
    with pytest.raises(Stop):
        trainer.fit()
    assert trainer.step == 4 and seen[0][0] == 4 and trainer.curve == seen


def test_the_run_can_be_stopped_before_any_step_or_evaluation_batch(synthetic_root: Path) -> None:
    """`between_steps` is where a stop signal ends a trial: nothing is cut in half."""

    class Stop(Exception):
        pass

    calls: list[tuple[int, bool]] = []  # (step, in training mode) at each call

    def stop_on_call(n: int):
        def between_steps() -> None:
            calls.append((trainer.step, trainer.module.training))
            if len(calls) == n:
                raise Stop

        return between_steps

    trainer = make_trainer(synthetic_root, steps=10, eval_every=4)
    trainer.between_steps = stop_on_call(3)
    with pytest.raises(Stop):
        trainer.fit()
    # Two whole steps, the third not begun; their losses read although no read was due.
    assert trainer.step == 2 and len(trainer.losses) == 2
    # 4 steps, then the evaluation at step 4: 6 images in batches of 2, stopped before the 2nd.
    calls.clear()
    trainer = make_trainer(synthetic_root, steps=10, eval_every=4, eval_batch_size=2)
    trainer.between_steps = stop_on_call(6)
    with pytest.raises(Stop):
        trainer.fit()
    assert calls[4:] == [(4, False), (4, False)] and trainer.step == 4 and trainer.curve == []


def test_poly_schedule_with_warmup() -> None:
    assert poly_with_warmup(0, total=100, warmup=10, power=0.9) == pytest.approx(0.1)
    assert poly_with_warmup(9, total=100, warmup=10, power=0.9) == pytest.approx(1.0)
    assert poly_with_warmup(10, total=100, warmup=10, power=0.9) == pytest.approx(1.0)
    assert poly_with_warmup(55, total=100, warmup=10, power=0.9) == pytest.approx(0.5**0.9)
    assert poly_with_warmup(100, total=100, warmup=10, power=0.9) == 0.0


@pytest.mark.parametrize(
    ("field", "value"), [("steps", 0), ("lr", 0.0), ("eval_every", -1), ("loss_fetch_every", 0)]
)
def test_bad_trainer_settings_are_named(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"trainer.{field}"):
        trainer_config(**{field: value})


def test_trainer_section_must_name_every_field_and_nothing_else() -> None:
    with pytest.raises(ValueError, match=r"trainer has unknown keys \['stpes'\]"):
        trainer_config(stpes=3)
    recipe = compose_option("trainer", "demo")
    del recipe["lr"]
    with pytest.raises(ValueError, match=r"trainer is missing \['lr'\]"):
        TrainerConfig.from_dict(recipe)


def speed(**overrides: object) -> dict[str, object]:
    """A speed section (`trainer.cuda` / `trainer.cpu`) of conf/trainer/base.yaml's CPU one."""
    return {**compose_option("trainer", "demo")["cpu"], **overrides}


def test_the_trainer_takes_the_speed_settings_of_its_device_kind(synthetic_root: Path) -> None:
    config = trainer_config(cuda=speed(precision="bf16", step_mode="graph"))
    assert config.step_setting(torch.device("cuda")) == StepSetting("bf16", step_mode="graph")
    assert config.step_setting(torch.device("cpu")) == config.cpu == StepSetting()
    trainer = make_trainer(synthetic_root, cuda=speed(precision="bf16"))
    assert trainer.setting == StepSetting()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (speed(channels_last=True), r"trainer.cpu.channels_last must be false: .*crashes"),
        (speed(step_mode="graph"), r"trainer.cpu cannot hold fp32\+graph: CUDA graphs need CUDA"),
        (speed(precision="fp16"), r"cannot hold fp16: fp16 with loss scaling runs on CUDA only"),
        (speed(step_mode="jit"), r"trainer.cpu.step_mode must be one of \['eager', 'graph'"),
    ],
)
def test_a_speed_setting_a_cpu_cannot_run_is_refused(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        trainer_config(cpu=section)


def test_the_former_cuda_keys_still_work_with_a_warning() -> None:
    """`trainer.amp` / `trainer.channels_last` set: they override trainer.cuda's values."""
    with pytest.warns(FutureWarning, match="trainer.amp and trainer.channels_last are deprecated"):
        config = trainer_config(amp=True, channels_last=True)
    cuda = config.step_setting(torch.device("cuda"))
    assert cuda == StepSetting(precision_of_amp(True), channels_last=True, cudnn_benchmark=True)
    assert config.step_setting(torch.device("cpu")) == StepSetting()  # CUDA only, as they were
    with pytest.warns(FutureWarning):
        assert trainer_config(amp=False).step_setting(torch.device("cuda")).precision == "fp32"
    assert precision_of_amp(True) in ("bf16", "fp16")


# On CUDA, cuDNN's and upsampling's backward kernels add atomically, in an order that varies
# from run to run: two runs of the same seed agree to fp32 rounding grown over the steps.
CUDA_RTOL = 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("step_mode", ["eager", "graph"])
def test_on_cuda_a_run_stopped_and_resumed_is_the_run_that_never_stopped(
    synthetic_root: Path, tmp_path: Path, step_mode: str
) -> None:
    """The CUDA defaults (fp32, cudnn.benchmark), eager and graphed: stopped at step 5, between
    two reads of the losses, and resumed; the graphed run is also the eager one."""
    cuda = Runtime(torch.device("cuda"))
    settings = {"steps": 10, "eval_every": 5, "loss_fetch_every": 3}
    mode = {"cuda": speed(cudnn_benchmark=True, step_mode=step_mode)}
    eager = make_trainer(synthetic_root, None, cuda, **settings).fit()
    straight = make_trainer(synthetic_root, None, cuda, **settings, **mode).fit()
    make_trainer(synthetic_root, tmp_path, cuda, **settings, **mode).fit(until=5)
    resumed = make_trainer(synthetic_root, tmp_path, cuda, **settings, **mode)
    assert resumed.resume()
    result = resumed.fit()
    assert result.losses == pytest.approx(straight.losses, rel=CUDA_RTOL)
    assert straight.losses == pytest.approx(eager.losses, rel=CUDA_RTOL)
    assert [s for s, _ in result.curve] == [5, 10]
