from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from experiments.config import CONF_DIR, compose_option
from search_space.space import SpaceError, load_space
from search_space.spec import HEAD_GENES, HEADS, ArchSpec

# Every option of conf/space/, composed as a study composes it (heads.yaml extends dfanet.yaml).
SPACES = sorted(path.stem for path in (CONF_DIR / "space").glob("*.yaml"))


def space_config(name: str) -> dict[str, Any]:
    return compose_option("space", name)


def sample(space_name: str, n_trials: int, seed: int = 0) -> tuple[list[ArchSpec], dict]:
    space = load_space(space_config(space_name))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs, seen = [], defaultdict(set)
    for _ in range(n_trials):
        trial = study.ask()
        specs.append(space.suggest(trial))
        study.tell(trial, 0.0)
        for name, value in trial.params.items():
            seen[name].add(value)
    return specs, seen


@pytest.mark.parametrize("space_name", SPACES)
def test_500_random_trials_are_valid_and_cover_the_space(space_name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    specs, seen = sample(space_name, 500)
    assert all(isinstance(spec, ArchSpec) for spec in specs)  # each validated on construction
    description = space_config(space_name)["genes"]
    for gene, entry in description.items():
        entries = entry if isinstance(entry, list) else [entry]
        for index, item in enumerate(entries):
            name = f"{gene}.{index}" if isinstance(entry, list) else gene
            if "choices" in item:
                # List-valued choices reach Optuna as their JSON text.
                assert seen[name] == {_encode(choice) for choice in item["choices"]}, name
            elif "low" in item:
                assert {item["low"], item["high"]} <= seen[name], name
    # The conditional structure is real: single-tower specs never sample tower links.
    assert any(spec.towers == 1 for spec in specs) and any(spec.towers == 4 for spec in specs)


def test_heads_space_reaches_every_head_with_only_its_genes() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_config("heads"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    heads_seen = set()
    for _ in range(200):
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        heads_seen.add(spec.head)
        other_heads_genes = {
            g for head, genes in HEAD_GENES.items() if head != spec.head for g in genes
        }
        assert not other_heads_genes & {name.split(".")[0] for name in trial.params}, spec.head
        if spec.head == "icnet":
            assert spec.towers == 1 and "towers" not in trial.params
    assert heads_seen == set(HEADS)


def test_heads_space_searches_the_same_backbone_as_dfanet() -> None:
    """The two spaces differ only in heads: heads.yaml extends dfanet.yaml's backbone genes."""
    dfanet = space_config("dfanet")["genes"]
    heads = space_config("heads")["genes"]
    head_only = {"head", "towers"} | {g for genes in HEAD_GENES.values() for g in genes}
    assert {g: e for g, e in heads.items() if g not in head_only} == {
        g: e for g, e in dfanet.items() if g not in head_only
    }
    assert {**heads["towers"], "when": None} == {**dfanet["towers"], "when": None}


@pytest.mark.parametrize("space_name", SPACES)
def test_params_rebuild_the_same_spec(space_name: str) -> None:
    space = load_space(space_config(space_name))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        assert space.spec_from_params(study.trials[-1].params) == spec


def test_with_fixed_pins_a_gene() -> None:
    space = load_space(space_config("dfanet")).with_fixed({"input_size": [256, 512]})
    trial = optuna.create_study().ask()
    assert space.suggest(trial).input_size == (256, 512)


def _encode(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def write_space(tmp_path: Path, genes: dict[str, Any], **top: Any) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"genes": genes, **top}))
    return path


@pytest.mark.parametrize(
    ("genes", "message"),
    [
        ({"tower": {"low": 1, "high": 2}}, "unknown gene 'tower'"),
        ({"towers": {"low": 1, "high": 5}}, "gene 'towers' value 5"),
        ({"towers": {"low": 3, "high": 1}}, "gene 'towers': expected low <= high"),
        ({"widths": [{"choices": [32]}]}, "gene 'widths' needs 3 entries"),
        ({"widths": [{"choices": [30]}, {"value": 96}, {"value": 192}]}, "widths.0"),
        ({"head": {"choices": ["dfa", "psp"]}}, "gene 'head' value 'psp'"),
        # dfanet.yaml's base has three towers, which ICNet does not take.
        ({"head": {"choices": ["dfa", "icnet"]}}, "value 'icnet': gene 'towers'"),
        ({"aspp_rates": {"choices": [[6, 12], [12, 6]]}}, "gene 'aspp_rates' value \\[12, 6\\]"),
        ({"fc_attention": {"choices": [True], "when": {"towers": [2]}}}, "refers to 'towers'"),
        ({"towers": {"choices": []}}, "non-empty list"),
        ({"towers": {"low": 1, "high": 4, "stepp": 1}}, "unknown key 'stepp'"),
        ({"towers": 3}, "expected a mapping"),
    ],
)
def test_bad_space_is_rejected_with_the_gene(
    tmp_path: Path, genes: dict[str, Any], message: str
) -> None:
    path = write_space(tmp_path, genes)
    with pytest.raises(SpaceError, match=message) as caught:
        load_space(path)
    assert str(path) in str(caught.value)


def test_unguarded_combination_is_reported_at_sampling(tmp_path: Path) -> None:
    """Each value is valid alone; together they are not: the error says how to fix the space."""
    path = write_space(
        tmp_path,
        {
            "subnetwork_link": {"value": False},
            "substage_links": [{"value": False}, {"value": True}, {"value": True}],
        },
    )
    space = load_space(path)
    with pytest.raises(SpaceError, match="Add a `when` condition"):
        space.suggest(optuna.create_study().ask())


def test_params_for_enqueues_the_reference_designs() -> None:
    from search_space.registry import get_arch

    space = load_space(space_config("dfanet")).with_fixed({"input_size": [256, 512]})
    for name in ("dfanet_a", "dfanet_b", "backbone_a_x2_hl"):
        spec = get_arch(name).replace(input_size=(256, 512))
        assert space.spec_from_params(space.params_for(spec)) == spec
    outside = get_arch("dfanet_a").replace(widths=(40, 96, 192), input_size=(256, 512))
    with pytest.raises(SpaceError, match=r"gene 'widths\.0'"):
        space.params_for(outside)
    with pytest.raises(SpaceError, match="input_size"):
        space.params_for(get_arch("dfanet_a"))  # 1024x1024: the space pins 256x512


def test_pinning_a_small_input_removes_what_it_invalidates() -> None:
    """At 64x128 four towers (deepest map at 1/128) are impossible: the space drops them."""
    space = load_space(space_config("dfanet")).with_fixed({"input_size": [64, 128]})
    towers = next(d for d in space.dimensions if d.name == "towers")
    assert (towers.low, towers.high) == (1, 3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(100):
        trial = study.ask()
        assert space.suggest(trial).towers <= 3
        study.tell(trial, 0.0)
    dfanet = load_space(space_config("dfanet"))
    with pytest.raises(SpaceError, match="cannot pin"):
        dfanet.with_fixed({"input_size": [32, 64]})  # the base has 3 towers
