#!/usr/bin/env bash
# The PostgreSQL server binaries the tests start a throwaway server from (workbench/postgres_server.py):
# installed from Debian's `postgresql` package when missing, so a second run costs nothing.
# Debian's package also creates a `main` cluster; where services may start it listens on 5432,
# which the tests never use (they pick a free port), so it is left alone.
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
    echo "PostgreSQL server binaries missing; as root: apt-get install postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
has_server || { echo "postgresql installed, but no initdb under /usr/lib/postgresql" >&2; exit 1; }
