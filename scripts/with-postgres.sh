#!/usr/bin/env bash
# Runs COMMAND against a throwaway PostgreSQL cluster: initdb in a temp dir, pg_ctl on a free
# 127.0.0.1 port (never the system service), one database, and a trap that always stops the
# cluster and deletes the dir. Exports for COMMAND:
#   PFC_TEST_DATABASE_URL   postgres://postgres@127.0.0.1:PORT/pfc_test
#   PFC_TEST_PGDATA         the cluster's data directory
#   PFC_TEST_PG_CTL         the pg_ctl binary
#   PFC_TEST_PG_RESTART     a ready-made command that restarts the cluster (fast mode, waits)
# Usage: scripts/with-postgres.sh COMMAND [ARGS...]   (exit status is COMMAND's)
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

bindir=""
for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then bindir="$candidate"; break; fi
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    bindir="$(dirname "$(command -v pg_ctl)")"
fi
if [ -z "$bindir" ]; then
    echo "with-postgres: no initdb/pg_ctl found (apt-get install -y postgresql)" >&2
    exit 2
fi

# initdb refuses to run as root: run the server as the `postgres` OS user when we are root.
pg_user=""
if [ "$(id -u)" = "0" ]; then
    pg_user="postgres"
    id "$pg_user" >/dev/null 2>&1 || { echo "with-postgres: running as root but no 'postgres' user" >&2; exit 2; }
fi

# Prints a shell command line that runs "$@" as the cluster's OS user.
as_pg_cmdline() {
    local quoted
    quoted="$(printf '%q ' "$@")"
    if [ -z "$pg_user" ]; then
        printf '%s' "$quoted"
    elif command -v runuser >/dev/null 2>&1; then
        printf 'runuser -u %s -- %s' "$pg_user" "$quoted"
    else
        printf 'su %s -s /bin/sh -c %q' "$pg_user" "$quoted"
    fi
}
as_pg() { (cd "$tmpdir" && eval "$(as_pg_cmdline "$@")"); }

tmpdir="$(mktemp -d "${TMPDIR:-/tmp}/pfc-pg.XXXXXX")"
chmod 700 "$tmpdir"
[ -n "$pg_user" ] && chown "$pg_user" "$tmpdir"
pgdata="$tmpdir/data"
started=0

cleanup() {
    local status=$?
    if [ "$started" = "1" ]; then
        as_pg "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmpdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

as_pg "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C >"$tmpdir/initdb.log" 2>&1 || {
    cat "$tmpdir/initdb.log" >&2
    echo "with-postgres: initdb failed" >&2
    exit 2
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

port=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    candidate=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if port_in_use "$candidate"; then continue; fi
    if as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$tmpdir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $candidate -k $tmpdir -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
        start >/dev/null 2>&1; then
        port="$candidate"
        started=1
        break
    fi
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
done
if [ -z "$port" ]; then
    cat "$tmpdir/server.log" >&2 2>/dev/null || true
    echo "with-postgres: could not start PostgreSQL" >&2
    exit 2
fi

as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres pfc_test

restart="$tmpdir/restart.sh"
{
    echo '#!/bin/sh'
    echo "cd $(printf '%q' "$tmpdir") && $(as_pg_cmdline "$bindir/pg_ctl" -D "$pgdata" -l "$tmpdir/server.log" -m fast -w -t 60 restart) >/dev/null"
} >"$restart"
chmod 755 "$restart"
[ -n "$pg_user" ] && chmod 711 "$tmpdir"

export PFC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/pfc_test"
export PFC_TEST_PGDATA="$pgdata"
export PFC_TEST_PG_CTL="$bindir/pg_ctl"
export PFC_TEST_PG_RESTART="$restart"

set +e
"$@"
status=$?
set -e
exit "$status"
