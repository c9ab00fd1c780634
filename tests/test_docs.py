"""The manual against the code: the lists that drift are checked here, not remembered.

- the settings docs/studies.md says may change on resume are `identity.MAY_CHANGE`;
- the genes docs/search-space.md tables are `ArchSpec`'s;
- every `python -m MODULE` the documents show exists, and every command module is shown;
- every config option they choose (`+study=demo`, `sampler=nsga2`) is a file of `conf/`;
- the README stays a manual one reads in ten minutes;
- every relative link points to a file that exists (and a heading that exists, for `#anchors`).

Nothing here imports torch: modules are found with `importlib.util.find_spec`, which imports
only their packages, and commands are found by reading the source.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from experiments.study.identity import MAY_CHANGE
from search_space.spec import gene_names

REPO = Path(__file__).parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MANUAL = [README, *DOCS]  # where commands must be named
DOCUMENTS = [*MANUAL, REPO / "RESULTS.md"]  # where links and modules are checked
README_MAX_WORDS = 2600
# Where command modules live: a module with a top-level `main` (or a package's `__main__`).
COMMAND_ROOMS = ("experiments", "experiments/benchmarks", "experiments/research", "analysis")
PACKAGES = ("workbench", "search_space", "analysis", "experiments")
# Options that Hydra's plugins bring, not files of conf/.
PLUGIN_OPTIONS = {("hydra/launcher", "submitit_local"), ("hydra/launcher", "submitit_slurm")}

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
MODULE = re.compile(r"(?<![\w-])-m ([A-Za-z_][\w.]*)")
# `group=option` of a Hydra command; `study=` without `+` is a study's name (analysis.report).
CHOICE = re.compile(
    r"(?<![\w.+])(\+(?:study|ablation|profile)|ablation|profile|sampler|storage|space|trainer"
    r"|dataset|tracking|hydra/launcher)=([a-z][\w]*)\b"
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def marked_block(text: str, name: str) -> str:
    """The text between `<!-- name -->` and `<!-- /name -->`."""
    match = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, re.DOTALL)
    assert match, f"no <!-- {name} --> ... <!-- /{name} --> block"
    return match.group(1)


def bulleted_keys(block: str) -> list[str]:
    """`- \\`key\\`` bullets, in order; any other line in the block is an error."""
    keys = []
    for line in block.strip().splitlines():
        match = re.fullmatch(r"- `([^`]+)`", line.strip())
        assert match, f"not a '- `key`' bullet: {line!r}"
        keys.append(match.group(1))
    return keys


def table_first_column_names(block: str) -> list[str]:
    """Every backticked name in the first column of a Markdown table's body rows."""
    rows = [line for line in block.strip().splitlines() if line.startswith("|")][2:]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def modules_named(text: str) -> set[str]:
    """The modules of every `python -m MODULE` (or `torchrun ... -m MODULE`) in the text."""
    return set(MODULE.findall(text))


def config_choices(text: str) -> set[tuple[str, str]]:
    """Every `(group, option)` chosen on a command line in the text."""
    return {(group.lstrip("+"), option) for group, option in CHOICE.findall(text)}


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a package on the way does not exist
        return False


def command_modules() -> set[str]:
    """Every module of the command rooms with a top-level `main`, and every package `__main__`."""
    found = set()
    for room in COMMAND_ROOMS:
        for path in sorted((REPO / room).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
                found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    for package in PACKAGES:
        for path in (REPO / package).rglob("__main__.py"):
            found.add(".".join(path.parent.relative_to(REPO).parts))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(prose(path.read_text(encoding="utf-8")))}


def prose(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` there is no heading)."""
    return FENCE.sub("", text)


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading in {linked.name})")
    return broken


def test_the_settings_that_may_change_on_resume_are_the_codes() -> None:
    documented = bulleted_keys(
        marked_block((REPO / "docs/studies.md").read_text(encoding="utf-8"), "may-change")
    )
    assert len(documented) == len(set(documented)), "a key listed twice"
    assert documented == list(MAY_CHANGE), (
        f"docs/studies.md lists {sorted(set(documented) - set(MAY_CHANGE))} that "
        f"experiments/study/identity.py's MAY_CHANGE does not, and misses "
        f"{sorted(set(MAY_CHANGE) - set(documented))} (or the order differs)"
    )


def test_the_genes_table_names_every_gene() -> None:
    block = marked_block((REPO / "docs/search-space.md").read_text(encoding="utf-8"), "genes")
    documented = table_first_column_names(block)
    assert len(documented) == len(set(documented)), "a gene listed twice"
    assert set(documented) == set(gene_names()), (
        f"not genes: {sorted(set(documented) - set(gene_names()))}; "
        f"missing: {sorted(set(gene_names()) - set(documented))}"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_every_module_a_document_runs_exists(path: Path) -> None:
    named = modules_named(path.read_text(encoding="utf-8"))
    assert not sorted(name for name in named if not module_exists(name))


def test_every_command_is_in_the_manual() -> None:
    commands = command_modules()
    # The ones the README's jobs are built on, whatever the scan finds.
    assert {
        "experiments.search", "experiments.train", "experiments.evaluate", "experiments.ablate",
        "experiments.retrain", "analysis.report", "analysis.paper", "analysis.export",
        "search_space.cost",
    } <= commands  # fmt: skip
    named = set().union(*(modules_named(path.read_text(encoding="utf-8")) for path in MANUAL))
    assert not sorted(commands - named), "commands the README and docs/ never show"
    scripts = {path.relative_to(REPO).as_posix() for path in (REPO / "experiments").rglob("*.sh")}
    manual = "\n".join(path.read_text(encoding="utf-8") for path in MANUAL)
    assert not sorted(script for script in scripts if script not in manual)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_every_config_option_a_document_chooses_exists(path: Path) -> None:
    chosen = config_choices(path.read_text(encoding="utf-8"))
    missing = [f"{group}={option}" for group, option in sorted(chosen - PLUGIN_OPTIONS)
               if not (REPO / "conf" / group / f"{option}.yaml").exists()]  # fmt: skip
    assert not missing, "options with no file in conf/"


def test_the_readme_is_read_in_ten_minutes() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words: move reference to docs/"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_resolves(path: Path) -> None:
    assert not broken_links(path)


def test_the_checks_see_what_they_check() -> None:
    """Each helper finds what it is for, so that an empty scan cannot pass for a clean one."""
    assert modules_named("`python -m a.b x=1`, `torchrun --n=2 -m c.d`, `-m +study=x`") == {
        "a.b",
        "c.d",
    }
    assert not module_exists("experiments.no_such_command")
    assert not module_exists("no_such_package.command")
    assert config_choices("`+study=demo sampler=nsga2 study=x study.name=y storage=URL`") == {
        ("study", "demo"),
        ("sampler", "nsga2"),
    }
    assert slug("The schedule at the demo's budget: 20/60/180") == (
        "the-schedule-at-the-demos-budget-2060180"
    )
    assert slug("`search_space.cost`") == "search_spacecost"
    assert prose("a\n```bash\n# not a heading\n```\nb") == "a\n\nb"
    assert {"experiments.search", "experiments.benchmarks.inference_speed"} <= command_modules()
    assert len(DOCS) >= 6
