"""A throwaway PostgreSQL server, for a test session or a benchmark: the real server binaries
(Debian's `postgresql` package, installed by `make test-deps`), a fresh cluster in a
temporary folder, reached over TCP on 127.0.0.1 with a password, as a remote host reaches it."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "run 'sudo make test-deps' (apt-get install postgresql on Debian)"
# The unprivileged user that runs the server when the tests run as root: PostgreSQL refuses
# to run as root, and Debian's package creates this user.
SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No server can be started here; the message says what is missing and how to get it."""


@dataclass
class PostgresServer:
    """A running server; `url(database)` is what a study command is given."""

    folder: Path
    port: int
    user: str
    password: str
    start_seconds: float
    version: str
    bindir: Path
    _names: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database (a study per test never meets another test's); its URL."""
        # Imported here: without the `postgres` extra, only the tests that need it fail.
        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise PostgresUnavailable(
                "the PostgreSQL driver psycopg is not installed: pip install -e '.[postgres]'"
            ) from None
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        _as_server_user(
            [self.bindir / "pg_ctl", "stop", "-m", "fast", "-D", self.folder / "data"],
            self.folder,
        )
        shutil.rmtree(self.folder)


def start_server(*, user: str, password: str) -> PostgresServer:
    """A server whose one role `user` logs in over TCP with `password` (scram-sha-256); the
    caller stops it (`stop` also deletes its folder)."""
    bindir = server_bindir()
    started = time.monotonic()
    # Not under pytest's tmp_path: its parents are root's own (mode 0700), closed to the server
    # user; a folder of its own in /tmp is short enough for the socket's path, too.
    folder = Path(tempfile.mkdtemp(prefix="dfanet-pg-"))
    try:
        _give_to_server_user(folder)
        (folder / "password").write_text(password)
        _give_to_server_user(folder / "password")
        _as_server_user(
            [bindir / "initdb", "-D", folder / "data", "-U", user,
             f"--pwfile={folder / 'password'}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--no-sync", "--encoding=UTF8", "--no-instructions",
             # The C locale: a fresh machine's LANG may name a locale it has not generated.
             "--no-locale"],
            folder,
        )  # fmt: skip
        (folder / "password").unlink()
        port = free_port()
        # A throwaway server: durability would only cost time.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _as_server_user(
            [bindir / "pg_ctl", "start", "-w", "-t", "60", "-D", folder / "data",
             "-l", folder / "server.log", "-o", options],
            folder,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    version = subprocess.run(
        [bindir / "postgres", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return PostgresServer(folder, port, user, password, time.monotonic() - started, version, bindir)


def server_bindir() -> Path:
    """Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else Debian's versioned folders
    (the newest), which are not on the PATH."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(result.stdout.strip())
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(debian, key=lambda path: int(Path(path).parent.name), reverse=True)
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    raise PostgresUnavailable(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: neither "
        f"`pg_config --bindir` nor /usr/lib/postgresql/*/bin has them; {INSTALL_HINT}"
    )


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _give_to_server_user(path: Path) -> None:
    if not _runs_as_root():
        return
    try:
        shutil.chown(path, user=SERVER_USER)
    except LookupError:
        raise PostgresUnavailable(
            f"the tests run as root, and PostgreSQL refuses root, but there is no user "
            f"{SERVER_USER!r} to run it as; {INSTALL_HINT} (it creates the user)"
        ) from None


def _as_server_user(argv: list[str | Path], folder: Path) -> None:
    """Run a server tool as the server's user; on failure, raise with its output and the
    server's log (where `pg_ctl start` writes why it did not start)."""
    prefix = ["runuser", "-u", SERVER_USER, "--"] if _runs_as_root() else []
    # The server user may not be able to enter the caller's working directory.
    result = subprocess.run(
        [*prefix, *map(str, argv)], cwd=folder, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        log = folder / "server.log"
        tail = log.read_text()[-2000:] if log.is_file() else ""
        raise PostgresUnavailable(
            f"{Path(argv[0]).name} failed ({result.returncode}): {result.stdout}{result.stderr}"
            f"{tail}"
        )


def free_port() -> int:
    """A port nothing listens on now: the server's (a cluster Debian started on 5432 does not
    matter), or a closed one to knock on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
