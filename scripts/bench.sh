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

source "$ROOT/scripts/bench/lib.sh"
RESULTS="$OUT/results.md"
bench_tools
[ "$HELIOS" = 1 ] && helios_tools
PEER_SOURCE=$(peer_source)

# `iaso import` into a fresh store; prints "resources rate bytes".
cli_import() { # dataset backend
  local n rate size
  fresh_store "$2"
  read -r n rate < <(store_import "$1")
  size=$(store_bytes "$2")
  rm -rf "$STORE_DIR"
  echo "$n $rate $size"
}

SMALL=$(dataset synthea-63 63 "$SHARED_SYNTHEA")
LARGE=$(dataset "synthea-$PATIENTS" "$PATIENTS" "$SHARED_SYNTHEA")
PEER_SMALL=$(dataset peer-53 53 "$PEER_SOURCE")
PEER_LARGE=$(dataset "peer-$PATIENTS" "$PATIENTS" "$PEER_SOURCE")

{
  echo "# Iaso benchmark run"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  machine_line
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
      read -r rps p50 p99 bad < <(wrk_paths 64 "$READ_SECONDS" "$targets" "$path")
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

pg_drop
rm -rf "$OUT"/store.*
cat "$RESULTS"
