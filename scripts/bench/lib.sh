# Shared by scripts/bench.sh and scripts/bench-search.sh: the tools, the datasets, starting and
# stopping the servers, wrk and its figures. Sourced with ROOT set to the repository.

SHARED_SYNTHEA="${IASO_BENCH_SYNTHEA:-$ROOT/../shared/data/synthea}"
OUT="$ROOT/bench-out"
CACHE="${IASO_BENCH_CACHE:-$HOME/.cache/iaso-bench}"
HELIOS_VERSION=0.2.7
HELIOS_BIN="$CACHE/helios-$HELIOS_VERSION/bin/hfs"
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB=iaso_bench
mkdir -p "$OUT" "$CACHE"

log() { printf '\n== %s\n' "$*" >&2; }

need() { # command debian-package
  command -v "$1" >/dev/null 2>&1 && return
  log "installing $2 from Debian"
  (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null
}

bench_tools() {
  need wrk wrk
  need psql postgresql-client
  need sqlite3 sqlite3
  log "building Iaso and the benchmark tools (release)"
  cargo build --release --locked -p iaso -p loadgen -p bench
  IASO="$ROOT/target/release/iaso"
  LOADGEN="$ROOT/target/release/loadgen"
  BENCH="$ROOT/target/release/bench"
}

helios_tools() {
  [ -x "$HELIOS_BIN" ] && return
  log "building helios-hfs $HELIOS_VERSION (default features) outside the repository"
  CARGO_TARGET_DIR="$CACHE/helios-target" cargo install --locked --quiet \
    --root "$CACHE/helios-$HELIOS_VERSION" helios-hfs --version "$HELIOS_VERSION"
}

dataset() { # name patients source
  local dir="$OUT/data/$1"
  if [ ! -f "$dir/MANIFEST.txt" ]; then
    rm -rf "$dir"
    log "generating $1 ($2 patients)"
    "$LOADGEN" --source "$3" --patients "$2" --out "$dir" >&2
  fi
  echo "$dir"
}

count() { grep '^resources:' "$1/MANIFEST.txt" | cut -d' ' -f2; }

# Helios refuses the Synthea 3.x Bundles (batch entries with ifNoneExist answer 400, so the
# patients' conditional references find nothing): side-by-side runs use the two sets both
# servers load whole, the 2019 SMART set and the 2020 set (53 patients).
peer_source() {
  local dir="$OUT/data/peer-source"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    ln -s "$SHARED_SYNTHEA/smart-on-fhir-r4" "$dir/smart-on-fhir-r4"
    ln -s "$SHARED_SYNTHEA/synthea-2020-iris" "$dir/synthea-2020-iris"
  fi
  echo "$dir"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

pg_fresh() {
  psql "$PG_ADMIN" -qAt -c "drop database if exists $PG_BENCH_DB with (force)" -c "create database $PG_BENCH_DB" >/dev/null
  echo "postgres://postgres@127.0.0.1:5432/$PG_BENCH_DB"
}

pg_drop() { psql "$PG_ADMIN" -qAt -c "drop database if exists $PG_BENCH_DB with (force)" >/dev/null 2>&1 || true; }

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

# A fresh store: sets STORE_DIR and STORE_DB (the --database arguments, empty for SQLite).
fresh_store() { # backend
  STORE_DIR=$(mktemp -d "$OUT/store.XXXX")
  STORE_DB=()
  if [ "$1" = postgres ]; then STORE_DB=(--database "$(pg_fresh)"); fi
}

# Bytes the current store takes on disk.
store_bytes() { # backend
  if [ "$1" = postgres ]; then
    # The store's own database: VACUUM sets the visibility map that index-only scans need (as
    # autovacuum would some time after an import) and ANALYZE gives the planner its statistics.
    psql "${STORE_DB[1]}" -qAt -c "vacuum analyze" >/dev/null 2>&1 || true
    psql "$PG_ADMIN" -qAt -c "select pg_database_size('$PG_BENCH_DB')"
  else
    sqlite3 "$STORE_DIR/iaso.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    du -cb "$STORE_DIR"/iaso.db* | tail -n1 | cut -f1
  fi
}

# `iaso import` into the current store; prints "resources rate".
store_import() { # dataset
  local line
  line=$("$IASO" import --data-dir "$STORE_DIR" "${STORE_DB[@]}" "$1" 2>/dev/null | grep '^Imported')
  # "Imported N resources from F files in S s (R resources/s); K failure(s)."
  awk '{print $2, substr($10,2)}' <<<"$line"
}

# Serves the current store in the background; sets SERVER_PID and BASE.
serve_store() { # log-name
  local port
  port=$(free_port)
  IASO_LOG=warn "$IASO" serve --data-dir "$STORE_DIR" "${STORE_DB[@]}" --listen "127.0.0.1:$port" \
    >/dev/null 2>"$OUT/iaso-$1.log" &
  SERVER_PID=$!
  BASE="http://127.0.0.1:$port/fhir"
  wait_http "http://127.0.0.1:$port/health/ready"
}

start_iaso() { # backend
  fresh_store "$1"
  serve_store "$1"
}

start_helios() {
  local port
  port=$(free_port)
  STORE_DIR=$(mktemp -d "$OUT/store.XXXX")
  BASE="http://127.0.0.1:$port"
  # Its links must name the port it was given (the default base is localhost:8080).
  (cd "$STORE_DIR" && exec "$HELIOS_BIN" --port "$port" --base-url "$BASE" --database-url "$STORE_DIR/hfs.db" \
    --data-dir "$STORE_DIR" --log-level warn) >/dev/null 2>"$OUT/helios.log" &
  SERVER_PID=$!
  wait_http "$BASE/metadata"
}

# Loads a dataset over HTTP into the running server; prints "ok rate failed_files".
http_load() { # dataset [targets-file]
  local targets=()
  [ -n "${2:-}" ] && targets=(--targets-out "$2")
  "$BENCH" load --base "$BASE" --dir "$1" --concurrency 4 "${targets[@]}" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ok"], r["resources_per_second"], r["failed_files"])'
}

# wrk GETs of the paths in a file against the running server; prints "rps p50 p99 non2xx".
wrk_paths() { # connections seconds paths-file base-path
  local out
  out=$(wrk -t2 -c"$1" -d"$2s" --timeout 10s --latency -s "$ROOT/scripts/bench/read.lua" "${BASE%%/fhir}" -- "$3" "$4")
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

machine_line() {
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
}
