"""Benchmark scripts: they print ratios and throughputs; tests never assert wall-clock times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONF = Path(__file__).parents[2] / "conf"


def conf_option(group: str, option: str) -> dict[str, Any]:
    """One option file of a config group (`conf/<group>/<option>.yaml`) as plain values: the
    benchmarks measure what the commands run, without composing a whole Hydra config."""
    return yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
