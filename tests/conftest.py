"""Shared test settings and fixtures: no wandb processes, one torch thread, a fixed torch seed
per test, the small synthetic Cityscapes set generated once a session, and a real PostgreSQL
server started once a session (workbench/postgres_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from experiments.data import ensure_synthetic_cityscapes
from tests.support import SMALL, TEST_PASSWORD, TEST_USER, run_command, tiny_search_arguments
from workbench.postgres_server import PostgresServer, PostgresUnavailable, start_server

os.environ.setdefault("WANDB_MODE", "disabled")

# Two cores shared with subprocess-run commands: two-thread kernels stall each other badly.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_cityscapes(tmp_path_factory.mktemp("synthetic") / "set", **SMALL)


@pytest.fixture(scope="session")
def tiny_search(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished three-trial demo study `tiny` (storage `<folder>/studies.db`, artefacts and
    report under `<folder>/outputs`), run once a session by the real command: what the export
    and retrain tests take trials from. Tests that add to it copy the database first."""
    folder = tmp_path_factory.mktemp("tiny-search")
    # Checkpoints kept, as a scheduled study keeps them: an export reads a trial's weights.
    arguments = tiny_search_arguments(synthetic_root, folder, "study.keep_checkpoints=true")
    result = run_command("experiments.search", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway server for the session. Missing binaries fail the tests that need it (a
    skip would pass CI without ever testing PostgreSQL); the message says how to install."""
    try:
        server = start_server(user=TEST_USER, password=TEST_PASSWORD)
    except PostgresUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    print(f"\n{server.version} started in {server.start_seconds:.2f} s on port {server.port}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql://USER:PASSWORD@127.0.0.1:PORT/DB` of a database the session shares."""
    return _created(postgres_server)


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database for this test alone."""
    return _created(postgres_server)


def _created(server: PostgresServer) -> str:
    try:
        return server.create_database()
    except PostgresUnavailable as error:  # the driver is missing
        pytest.fail(str(error), pytrace=False)
