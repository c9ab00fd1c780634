#!/usr/bin/env bash
# What the tests need beyond the virtualenv: PostgreSQL's server binaries, from which the tests
# start a throwaway server (workbench/postgres_server.py) on a free port. `make test` runs this
# first. As root it installs Debian's `postgresql` package when missing (a second run costs
# nothing); as a user who cannot install, it stops with one line naming the command to run.
# Debian's package also creates a `main` cluster on port 5432, which the tests never use.
set -euo pipefail

has_server() {
    local bindir
    bindir="$(pg_config --bindir 2>/dev/null || true)"
    [[ -n "$bindir" && -x "$bindir/initdb" ]] || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if has_server; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "make test needs PostgreSQL's server binaries (initdb), which are missing: run 'sudo make test-deps' once, then 'make test'" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
has_server || { echo "postgresql installed, but no initdb under /usr/lib/postgresql" >&2; exit 1; }
