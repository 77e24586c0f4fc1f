#!/usr/bin/env bash
# Iaso's search benchmark (issue 4), with Helios measured side by side in the same run. Figures
# go to bench-out/search-results.md; docs/benchmarks.md records them with machine and date.
#
#   bash scripts/bench-search.sh [--patients "1000 5000"] [--peer-patients N] [--seconds S]
#                                [--no-helios] [--no-postgres]
#
# For each size of generated Synthea data (default 1,000 and 5,000 patients, ~370,000 and
# ~1.8 M resources) and each store (SQLite, PostgreSQL):
#   1. `iaso import` with indexing on: resources/s, bytes on disk and index bytes per resource;
#   2. the query mix (one file of 200 queries per kind, drawn from the store's own patients by
#      `bench queries`, each probed once for status and matches) under 16 connections (wrk,
#      2 threads, S seconds each): requests/s, p50, p99;
#   3. `Observation?_summary=count` over all Observations: the median of 5 requests.
# Then the same mix against Iaso (SQLite) and Helios, both holding the peer set (the Synthea
# generations Helios loads whole) multiplied to --peer-patients (default 1,000), and the ratios.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SIZES="1000 5000"
PEER_PATIENTS=1000
SECONDS_EACH=10
HELIOS=1
POSTGRES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --patients) SIZES=$2; shift 2 ;;
    --peer-patients) PEER_PATIENTS=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --no-helios) HELIOS=0; shift ;;
    --no-postgres) POSTGRES=0; shift ;;
    *) echo "bench-search.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

source "$ROOT/scripts/bench/lib.sh"
RESULTS="$OUT/search-results.md"
bench_tools
[ "$HELIOS" = 1 ] && helios_tools

MIX=(name birthdate-gender obs-patient-code-date obs-code-value encounter-chained patient-has medreq-include
  everything obs-code-count)

# Bytes of the search index (every idx_ table, its indexes and the full-text tables).
index_bytes() { # backend
  if [ "$1" = postgres ]; then
    psql "${STORE_DB[1]}" -qAt -c \
      "select coalesce(sum(pg_total_relation_size(oid)), 0) from pg_class where relname like 'idx\_%' and relkind = 'r'"
  else
    sqlite3 "$STORE_DIR/iaso.db" "select coalesce(sum(pgsize), 0) from dbstat where name like 'idx\_%' escape '\\'"
  fi
}

# Median milliseconds of 5 requests.
median_ms() { # url
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept: application/fhir+json' "$1"
  done | sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'
}

# The query mix against the running server; one table row per query appended to the file,
# requests/s kept in RPS[label-query].
declare -A RPS
run_mix() { # label path-prefix rows-file
  local label=$1 prefix=$2 rows=$3 dir="$OUT/queries-$1" q probe ok statuses matches rps p50 p99 bad
  rm -rf "$dir"
  "$BENCH" queries --base "$BASE" --out "$dir" --sample 200 >/dev/null
  for q in "${MIX[@]}"; do
    probe=$("$BENCH" probe --base "$BASE" --file "$dir/$q.txt" --n 5)
    read -r ok statuses matches < <(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["ok"], r["statuses"].replace(" ", ","), round(r["mean_matches"], 1))' "$probe")
    if [ "$ok" -gt 0 ]; then
      read -r rps p50 p99 bad < <(wrk_paths 16 "$SECONDS_EACH" "$dir/$q.txt" "$prefix")
    else
      rps=0 p50=- p99=- bad=-
    fi
    RPS[$label-$q]=$rps
    echo "| $label | $q | $statuses | $matches | $rps | $p50 | $p99 | $bad |" >>"$rows"
  done
}

{
  echo "# Iaso search benchmark run"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  machine_line
  echo "- Iaso $(git -C "$ROOT" rev-parse --short HEAD) (release build); Helios helios-hfs $HELIOS_VERSION (default features)"
  echo "- query mix: 200 queries per kind from 200 patients spread over the store (bench queries); wrk, 2 threads, 16 connections, ${SECONDS_EACH} s per kind"
  echo
  echo "## Import with indexing, and index size"
  echo
  echo "| data | store | resources | resources/s | bytes on disk / resource | index bytes / resource | count all Observations, ms |"
  echo "|---|---|---:|---:|---:|---:|---:|"
} >"$RESULTS"

MIX_ROWS="$OUT/search-mix.md"
{
  echo
  echo "## Query mix (16 connections)"
  echo
  echo "| server and data | query | probe statuses | mean matches | requests/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
} >"$MIX_ROWS"

backends=(sqlite)
[ "$POSTGRES" = 1 ] && backends+=(postgres)
for patients in $SIZES; do
  data=$(dataset "synthea-$patients" "$patients" "$SHARED_SYNTHEA")
  for backend in "${backends[@]}"; do
    label="iaso-$backend-synthea-$patients"
    log "import synthea-$patients into $backend"
    fresh_store "$backend"
    read -r n rate < <(store_import "$data")
    size=$(store_bytes "$backend")
    index=$(index_bytes "$backend")
    serve_store "$backend"
    count_ms=$(median_ms "$BASE/Observation?_summary=count")
    echo "| synthea-$patients | $backend | $n | $rate | $((size / (n > 0 ? n : 1))) | $((index / (n > 0 ? n : 1))) | $count_ms |" >>"$RESULTS"
    log "query mix on $label"
    run_mix "$label" /fhir "$MIX_ROWS"
    stop_server
    rm -rf "$STORE_DIR"
    pg_drop
  done
done
cat "$MIX_ROWS" >>"$RESULTS"

if [ "$HELIOS" = 1 ]; then
  peer=$(dataset "peer-$PEER_PATIENTS" "$PEER_PATIENTS" "$(peer_source)")
  {
    echo
    echo "## Side by side on peer-$PEER_PATIENTS ($(count "$peer") resources; Iaso on SQLite, loaded with iaso import; Helios loaded over HTTP)"
    echo
    echo "| server and data | query | probe statuses | mean matches | requests/s | p50 ms | p99 ms | non-2xx |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
  } >>"$RESULTS"
  log "peer-$PEER_PATIENTS into Iaso (SQLite)"
  fresh_store sqlite
  store_import "$peer" >/dev/null
  serve_store sqlite-peer
  run_mix iaso-peer /fhir "$RESULTS"
  stop_server
  rm -rf "$STORE_DIR"
  log "peer-$PEER_PATIENTS into Helios over HTTP"
  start_helios
  read -r ok rate failed < <(http_load "$peer")
  echo "Helios loaded $ok resources ($rate/s, $failed failed files)" >&2
  run_mix helios-peer "" "$RESULTS"
  stop_server
  rm -rf "$STORE_DIR"
  {
    echo
    echo "## Iaso (SQLite) requests/s as a multiple of Helios's, peer-$PEER_PATIENTS"
    echo
    echo "| query | Iaso | Helios | ratio |"
    echo "|---|---:|---:|---:|"
    for q in "${MIX[@]}"; do
      echo "| $q | ${RPS[iaso-peer-$q]} | ${RPS[helios-peer-$q]} | $(ratio "${RPS[iaso-peer-$q]}" "${RPS[helios-peer-$q]}") |"
    done
  } >>"$RESULTS"
fi

rm -rf "$OUT"/store.*
cat "$RESULTS"
