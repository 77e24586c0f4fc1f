#!/usr/bin/env bash
# Iaso's core benchmarks, with Helios (helios-hfs, a Rust FHIR server on SQLite) measured
# side by side in the same run. Figures go to bench-out/results.md; docs/benchmarks.md records
# them with machine and date.
#
#   bash scripts/bench.sh [--patients N] [--read-seconds S] [--no-helios] [--no-postgres]
#
# What it measures, for the 63 Synthea patients as shipped and for N generated patients
# (default 1000, ~370,000 resources):
#   1. `iaso import` throughput (resources/s, validation on) on SQLite and PostgreSQL, and bytes
#      on disk per resource;
#   2. loading the same Bundles over HTTP (POST [base], 4 at a time) into Iaso and into Helios;
#   3. read by id under 64 connections (wrk, 2 threads) against each server: requests/s, p50, p99.
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth) and the package registries (wrk from Debian,
# helios-hfs from crates.io, built outside the repository in ~/.cache/iaso-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PATIENTS=1000
READ_SECONDS=30
HELIOS=1
POSTGRES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --patients) PATIENTS=$2; shift 2 ;;
    --read-seconds) READ_SECONDS=$2; shift 2 ;;
    --no-helios) HELIOS=0; shift ;;
    --no-postgres) POSTGRES=0; shift ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

SHARED_SYNTHEA="${IASO_BENCH_SYNTHEA:-$ROOT/../shared/data/synthea}"
OUT="$ROOT/bench-out"
CACHE="${IASO_BENCH_CACHE:-$HOME/.cache/iaso-bench}"
HELIOS_VERSION=0.2.7
HELIOS_BIN="$CACHE/helios-$HELIOS_VERSION/bin/hfs"
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB=iaso_bench
RESULTS="$OUT/results.md"
mkdir -p "$OUT" "$CACHE"

log() { printf '\n== %s\n' "$*" >&2; }
need() {
  command -v "$1" >/dev/null 2>&1 && return
  log "installing $2 from Debian"
  (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null
}
need wrk wrk
need psql postgresql-client
need sqlite3 sqlite3

log "building Iaso and the benchmark tools (release)"
cargo build --release --locked -p iaso -p loadgen -p bench
IASO="$ROOT/target/release/iaso"
LOADGEN="$ROOT/target/release/loadgen"
BENCH="$ROOT/target/release/bench"

if [ "$HELIOS" = 1 ] && [ ! -x "$HELIOS_BIN" ]; then
  log "building helios-hfs $HELIOS_VERSION (default features) outside the repository"
  CARGO_TARGET_DIR="$CACHE/helios-target" cargo install --locked --quiet \
    --root "$CACHE/helios-$HELIOS_VERSION" helios-hfs --version "$HELIOS_VERSION"
fi

dataset() { # name patients source
  local dir="$OUT/data/$1"
  if [ ! -f "$dir/MANIFEST.txt" ]; then
    rm -rf "$dir"
    log "generating $1 ($2 patients)"
    "$LOADGEN" --source "$3" --patients "$2" --out "$dir" >&2
  fi
  echo "$dir"
}

# Helios refuses the Synthea 3.x Bundles (batch entries with ifNoneExist answer 400, so the
# patients' conditional references find nothing): the side-by-side runs on the two sets both
# servers load whole, the 2019 SMART set and the 2020 set (53 patients).
PEER_SOURCE="$OUT/data/peer-source"
if [ ! -d "$PEER_SOURCE" ]; then
  mkdir -p "$PEER_SOURCE"
  ln -s "$SHARED_SYNTHEA/smart-on-fhir-r4" "$PEER_SOURCE/smart-on-fhir-r4"
  ln -s "$SHARED_SYNTHEA/synthea-2020-iris" "$PEER_SOURCE/synthea-2020-iris"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "bench.sh: $1 did not come up" >&2
  return 1
}

pg_fresh() {
  psql "$PG_ADMIN" -qAt -c "drop database if exists $PG_BENCH_DB with (force)" -c "create database $PG_BENCH_DB" >/dev/null
  echo "postgres://postgres@127.0.0.1:5432/$PG_BENCH_DB"
}

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

# `iaso import` into a fresh store; prints "resources rate bytes".
cli_import() { # dataset backend
  local data=$1 backend=$2 dir db size line
  dir=$(mktemp -d "$OUT/store.XXXX")
  db=()
  [ "$backend" = postgres ] && db=(--database "$(pg_fresh)")
  line=$("$IASO" import --data-dir "$dir" "${db[@]}" "$data" 2>/dev/null | grep '^Imported')
  if [ "$backend" = postgres ]; then
    psql "$PG_ADMIN" -qAt -c "vacuum" >/dev/null 2>&1 || true
    size=$(psql "$PG_ADMIN" -qAt -c "select pg_database_size('$PG_BENCH_DB')")
  else
    sqlite3 "$dir/iaso.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    size=$(du -cb "$dir"/iaso.db* | tail -n1 | cut -f1)
  fi
  rm -rf "$dir"
  # "Imported N resources from F files in S s (R resources/s); K failure(s)."
  awk -v size="$size" '{print $2, substr($10,2), size}' <<<"$line"
}

# Starts a server in the background; sets SERVER_PID and BASE.
start_iaso() { # backend
  local port dir db
  port=$(free_port)
  dir=$(mktemp -d "$OUT/store.XXXX")
  db=()
  [ "$1" = postgres ] && db=(--database "$(pg_fresh)")
  IASO_LOG=warn "$IASO" serve --data-dir "$dir" "${db[@]}" --listen "127.0.0.1:$port" >/dev/null 2>"$OUT/iaso-$1.log" &
  SERVER_PID=$!
  BASE="http://127.0.0.1:$port/fhir"
  wait_http "http://127.0.0.1:$port/health/ready"
}

start_helios() {
  local port dir
  port=$(free_port)
  dir=$(mktemp -d "$OUT/store.XXXX")
  (cd "$dir" && exec "$HELIOS_BIN" --port "$port" --database-url "$dir/hfs.db" --data-dir "$dir" --log-level warn) >/dev/null 2>"$OUT/helios.log" &
  SERVER_PID=$!
  BASE="http://127.0.0.1:$port"
  wait_http "$BASE/metadata"
}

# Loads a dataset over HTTP into the running server; prints "ok rate failed_files".
http_load() { # dataset targets-file
  "$BENCH" load --base "$BASE" --dir "$1" --concurrency 4 --targets-out "$2" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ok"], r["resources_per_second"], r["failed_files"])'
}

# wrk against the running server; prints "rps p50 p99 non2xx".
read_bench() { # targets-file base-path
  local out
  out=$(wrk -t2 -c64 -d"${READ_SECONDS}s" --latency -s "$ROOT/scripts/bench/read.lua" "${BASE%%/fhir}" -- "$1" "$2")
  echo "$out" >>"$OUT/wrk.log"
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
# Anchored at the line start: the thread table's "+/- Stdev" column also ends in "99%".
p50 = ms(re.search(r"^\s*50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s*99%\s+(\S+)", text, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{float(rps):.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}x' if b else 'n/a')" "$1" "$2"; }

SMALL=$(dataset synthea-63 63 "$SHARED_SYNTHEA")
LARGE=$(dataset "synthea-$PATIENTS" "$PATIENTS" "$SHARED_SYNTHEA")
PEER_SMALL=$(dataset peer-53 53 "$PEER_SOURCE")
PEER_LARGE=$(dataset "peer-$PATIENTS" "$PATIENTS" "$PEER_SOURCE")
count() { grep '^resources:' "$1/MANIFEST.txt" | cut -d' ' -f2; }

{
  echo "# Iaso benchmark run"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
  echo "- Iaso $(git -C "$ROOT" rev-parse --short HEAD) (release build); Helios helios-hfs $HELIOS_VERSION (default features)"
  echo "- data: synthea-63 = the 63 shared Synthea patients, all three generations ($(count "$SMALL") resources); synthea-$PATIENTS = loadgen copies of them ($(count "$LARGE") resources)"
  echo "- side-by-side data: peer-53 = the 2019 SMART and 2020 Synthea patients, which both servers load whole ($(count "$PEER_SMALL") resources); peer-$PATIENTS = loadgen copies of them ($(count "$PEER_LARGE") resources)"
  echo
  echo "## iaso import (validation on)"
  echo
  echo "| data | store | resources | resources/s | bytes on disk / resource |"
  echo "|---|---|---:|---:|---:|"
} >"$RESULTS"

backends=(sqlite)
[ "$POSTGRES" = 1 ] && backends+=(postgres)
for data in "$SMALL" "$LARGE"; do
  for backend in "${backends[@]}"; do
    log "iaso import $(basename "$data") on $backend"
    read -r n rate size < <(cli_import "$data" "$backend")
    echo "| $(basename "$data") | $backend | $n | $rate | $((size / (n > 0 ? n : 1))) |" >>"$RESULTS"
  done
done

{
  echo
  echo "## HTTP: load Bundles (POST [base], 4 at a time), then read by id (wrk, 64 connections, ${READ_SECONDS} s)"
  echo
  echo "| data | server | loaded | load resources/s | failed files | reads/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
} >>"$RESULTS"

declare -A LOAD READ
servers=(iaso-sqlite)
[ "$POSTGRES" = 1 ] && servers+=(iaso-postgres)
[ "$HELIOS" = 1 ] && servers+=(helios)
for data in "$PEER_SMALL" "$PEER_LARGE"; do
  name=$(basename "$data")
  for server in "${servers[@]}"; do
    log "HTTP load and reads: $name into $server"
    case "$server" in
      iaso-sqlite) start_iaso sqlite; path=/fhir ;;
      iaso-postgres) start_iaso postgres; path=/fhir ;;
      helios) start_helios; path= ;;
    esac
    targets="$OUT/targets-$server-$name.txt"
    read -r ok rate failed < <(http_load "$data" "$targets")
    if [ -s "$targets" ]; then
      read -r rps p50 p99 bad < <(read_bench "$targets" "$path")
    else
      rps=0 p50=- p99=- bad=-
    fi
    stop_server
    LOAD[$server-$name]=$rate
    READ[$server-$name]=$rps
    echo "| $name | $server | $ok | $rate | $failed | $rps | $p50 | $p99 | $bad |" >>"$RESULTS"
  done
done

if [ "$HELIOS" = 1 ]; then
  {
    echo
    echo "## Iaso (SQLite) as a multiple of Helios"
    echo
    echo "| data | HTTP load | read by id |"
    echo "|---|---:|---:|"
    for data in "$PEER_SMALL" "$PEER_LARGE"; do
      name=$(basename "$data")
      echo "| $name | $(ratio "${LOAD[iaso-sqlite-$name]}" "${LOAD[helios-$name]}") | $(ratio "${READ[iaso-sqlite-$name]}" "${READ[helios-$name]}") |"
    done
  } >>"$RESULTS"
fi

psql "$PG_ADMIN" -qAt -c "drop database if exists $PG_BENCH_DB with (force)" >/dev/null 2>&1 || true
rm -rf "$OUT"/store.*
cat "$RESULTS"
