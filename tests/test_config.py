"""Config sections read into typed settings: every key and every value's type checked, a wrong
one a one-line error that names the key and what was expected; the commands read their whole
composed config once, at their entry, and report such an error as one line and exit code 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from experiments.config import compose_config, read_section
from experiments.study.command import run_and_report
from experiments.study.settings import SearchSettings
from tests.support import run_command
from workbench.cli import parse_size


@dataclass(frozen=True)
class Inner:
    count: int
    share: float | None


@dataclass(frozen=True)
class Journal:
    kind: Literal["journal"]
    path: Path


@dataclass(frozen=True)
class Database:
    kind: Literal["rdb"]
    url: str
    retry: bool


@dataclass(frozen=True)
class Example:
    steps: int
    lr: float
    name: str
    enabled: bool
    size: Annotated[tuple[int, int], parse_size] | None
    scale_range: tuple[float, float]
    seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]]
    inner: Inner
    storage: Journal | Database


GOOD = {
    "steps": 3, "lr": 1, "name": 2024, "enabled": False, "size": "64x128",
    "scale_range": [0.5, 2], "seeds": [0, 1], "variants": {"a": {}, 7: {"towers": 2}},
    "inner": {"count": 1, "share": None}, "storage": {"kind": "rdb", "url": "x", "retry": True},
}  # fmt: skip


def test_values_are_converted_to_their_fields_types() -> None:
    example = read_section(Example, GOOD, "example")
    assert example == Example(
        steps=3, lr=1.0, name="2024", enabled=False, size=(64, 128), scale_range=(0.5, 2.0),
        seeds=(0, 1), variants={"a": {}, "7": {"towers": 2}}, inner=Inner(1, None),
        storage=Database(kind="rdb", url="x", retry=True),
    )  # fmt: skip
    assert isinstance(example.lr, float) and isinstance(example.scale_range[1], float)
    journal = read_section(Example, {**GOOD, "storage": {"kind": "journal", "path": "a/b"}}, "x")
    assert journal.storage == Journal(kind="journal", path=Path("a/b"))
    assert read_section(Example, {**GOOD, "size": [32, 48]}, "x").size == (32, 48)
    assert read_section(Example, {**GOOD, "size": None}, "x").size is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": "abc"}, "example.steps must be an int, got 'abc'"),
        ({"steps": True}, "example.steps must be an int, got True"),  # a bool is no count
        ({"steps": 2.5}, "example.steps must be an int, got 2.5"),
        ({"lr": "fast"}, "example.lr must be a number, got 'fast'"),
        ({"enabled": 1}, "example.enabled must be true or false, got 1"),
        ({"name": ["a"]}, "example.name must be a string, got ['a']"),
        ({"size": "64"}, "example.size: expected an input size as HxW (e.g. 512x1024), got '64'"),
        ({"scale_range": [1.0]}, "example.scale_range must be a list of 2, got [1.0]"),
        ({"scale_range": 1.0}, "example.scale_range must be a list, got 1.0"),
        ({"seeds": [0, "one"]}, "example.seeds[1] must be an int, got 'one'"),
        ({"variants": ["a"]}, "example.variants must be a mapping, got ['a']"),
        ({"variants": {"a": 3}}, "example.variants.a must be a mapping, got 3"),
        ({"inner": {"count": 1, "share": "half"}},
         "example.inner.share must be null or a number, got 'half'"),
        ({"inner": {"count": 1}}, "example.inner is missing ['share']"),
        ({"inner": {"count": 1, "share": 0, "extra": 2}},
         "example.inner has unknown keys ['extra']"),
        ({"inner": 3}, "example.inner must be a mapping of its keys, got 3"),
        ({"storage": {"kind": "s3"}},
         "example.storage.kind must be one of ['journal', 'rdb'], got 's3'"),
        ({"storage": {"kind": "journal", "url": "x"}}, "example.storage has unknown keys ['url']"),
        ({"steps": "???"}, "example.steps must be set (example.steps=VALUE)"),
    ],
)  # fmt: skip
def test_a_wrong_value_is_one_line_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        read_section(Example, {**GOOD, **changes}, "example")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["study.n_trials=abc"], "study.n_trials must be an int, got 'abc'"),
        (["study.keep_checkpoints=1"], "study.keep_checkpoints must be true or false, got 1"),
        (["study.latency.batch=two"], "study.latency.batch must be an int, got 'two'"),
        (["study.early_stopping.margin=x"], "study.early_stopping.margin must be a number"),
        (["study.schedule.reduction=2.5"], "study.schedule.reduction must be an int, got 2.5"),
        (["trainer.lr=abc"], "trainer.lr must be a number, got 'abc'"),
        (["trainer.loss.ohem=yes"], "trainer.loss.ohem must be true or false, got 'yes'"),
        (["dataset.n_train=many"], "dataset.n_train must be an int, got 'many'"),
        (["dataset.name=kitti"], "dataset.name must be one of ['synthetic', 'cityscapes']"),
        (["storage.kind=s3"], "storage.kind must be one of ['rdb', 'journal'], got 's3'"),
        (["storage.grace_period=soon"], "storage.grace_period must be an int, got 'soon'"),
        (["sampler.n_startup_trials=1.5"], "sampler.n_startup_trials must be an int, got 1.5"),
        (["sampler.name=cmaes"], "sampler.name must be one of ['tpe', 'nsga2', 'random', "),
        (["tracking.enabled=1"], "tracking.enabled must be true or false, got 1"),
        (["job=first"], "job must be an int, got 'first'"),
        (["+stuy.n_trials=3"], "the config has unknown keys ['stuy']"),
    ],
)  # fmt: skip
def test_every_section_of_a_study_is_typed(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        SearchSettings.from_config(compose_config("search", ["+study=demo", *overrides]))
    assert str(error.value).startswith(message)


def test_a_search_and_an_ablation_read_their_own_sections() -> None:
    search = SearchSettings.from_config(compose_config("search", ["+study=demo"]))
    assert search.ablation is None and search.space is not None and search.space.name == "heads"
    assert search.input_size == (128, 256) and search.output_dir == Path("outputs")
    ablation = SearchSettings.from_config(
        compose_config("ablate", ["+ablation=table3", "+profile=demo"])
    )
    assert ablation.space is None and ablation.sampler is None
    assert ablation.ablation is not None and ablation.ablation.seeds == (0, 1)


def test_a_wrong_type_ends_the_study_command_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = compose_config(
        "search", ["+study=demo", "study.n_trials=abc", f"output_dir={tmp_path}"]
    )
    with pytest.raises(SystemExit) as stop:
        run_and_report(config)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: study.n_trials must be an int, got 'abc'\n"
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "arguments", "message"),
    [
        ("experiments.search", ["+study=demo", "study.n_trials=abc"],
         "study.n_trials must be an int, got 'abc'"),
        ("experiments.ablate", ["+ablation=table3", "+profile=demo", "ablation.seeds=[0,x]"],
         "ablation.seeds[1] must be an int, got 'x'"),
        ("experiments.train", ["+arch=dfanet_a", "trainer.steps=many"],
         "trainer.steps must be an int, got 'many'"),
        ("experiments.evaluate", ["checkpoint=none.pt", "batch_size=big"],
         "batch_size must be an int, got 'big'"),
    ],
)  # fmt: skip
def test_every_command_reports_a_wrong_type_in_one_line(
    tmp_path: Path, module: str, arguments: list[str], message: str
) -> None:
    result = run_command(module, *arguments, f"output_dir={tmp_path}", timeout=120)
    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"
    assert [path.name for path in tmp_path.iterdir()] == ["hydra"]  # Hydra's run folder only
