#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, storage conformance on SQLite and
# PostgreSQL, HTTP integration tests and end-to-end runs of the binary.
# Needs: the Rust toolchain, PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
# Each test that needs PostgreSQL creates its own fresh database (iaso_test_*); this script
# drops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${IASO_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export IASO_TEST_PG_ADMIN_URL="$PG_ADMIN_URL"

psql_admin() { psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }

ensure_postgres() {
  if ! command -v psql >/dev/null 2>&1; then
    echo "test.sh: installing the PostgreSQL client" >&2
    (apt-get update -qq && apt-get install -y -qq postgresql-client) >/dev/null
  fi
  if ! psql_admin -c 'select 1' >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "test.sh: starting the local PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
  fi
  psql_admin -c 'select 1' >/dev/null || { echo "test.sh: PostgreSQL is not reachable at $PG_ADMIN_URL" >&2; exit 1; }
}

drop_test_databases() {
  psql_admin -c "select datname from pg_database where datname like 'iaso_test_%'" 2>/dev/null |
    while read -r db; do [ -n "$db" ] && psql_admin -c "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true; done
}

ensure_postgres
drop_test_databases
trap drop_test_databases EXIT

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
