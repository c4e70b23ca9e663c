#!/usr/bin/env bash
# filterd's round trip under CPU contention, with and without the I/O threads' short CPU slice
# (io_thread_slice_us). filterd runs the perf chain (perf/load/conf/filterd.perf.json.in, route "pay",
# three filters); HOGS busy loops at the same priority keep every CPU busy, as a loaded gateway node's
# other tasks do; filterd-loadgen sends RATE signed requests per second, one in flight, for
# SECONDS_RUN seconds, and reports the round trip as the bridge sees it. Each slice is run REPEAT
# times, interleaved, so that a change in the machine's load hits both alike.
# Usage: scripts/perf-slice.sh [--build DIR]
#   env: SLICES="0 100" HOGS=2 RATE=1000 SECONDS_RUN=20 REPEAT=2 BUDGET_US=4500
# Prints one table row per run: round trip P50, P99, P99.9, max, and round trips over BUDGET_US.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-perf"
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift ;;
    *) echo "perf-slice: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
SLICES="${SLICES:-0 100}" HOGS="${HOGS:-2}" RATE="${RATE:-1000}" SECONDS_RUN="${SECONDS_RUN:-20}"
REPEAT="${REPEAT:-2}" BUDGET_US="${BUDGET_US:-4500}"

# shellcheck source=perf-lib.sh
source "$ROOT/scripts/perf-lib.sh"
perf_build
perf_rundir perf-slice
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/secret"
chmod 600 "$RUN/secret"

echo "| io_thread_slice_us | busy loops | requests | P50 | P99 | P99.9 | max | over ${BUDGET_US} µs |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$REPEAT"); do
  for slice in $SLICES; do
    SOCK="$RUN/filterd-$slice.sock"
    sed -e "s|@SOCKET@|$SOCK|" -e "s|@SECRET_FILE@|$RUN/secret|" -e "s|@IO_THREADS@|1|" \
      -e "s|@IO_THREAD_SLICE_US@|$slice|" "$ROOT/perf/load/conf/filterd.perf.json.in" >"$RUN/filterd.json"
    "$BUILD/filterd" --config "$RUN/filterd.json" >"$RUN/filterd.log" 2>&1 &
    FD_PID=$!
    PIDS=("$FD_PID")
    for _ in $(seq 200); do [[ -S "$SOCK" ]] && break; sleep 0.05; done
    [[ -S "$SOCK" ]] || { echo "perf-slice: filterd did not start:" >&2; cat "$RUN/filterd.log" >&2; exit 1; }
    for _ in $(seq "$HOGS"); do
      bash -c 'while :; do :; done' &
      PIDS+=($!)
    done
    "$BUILD/filterd-loadgen" run --socket "$SOCK" --route pay --filters merchant-auth,rate-limit,enrichment \
      --merchant m-perf --key-id k-perf --secret-file "$RUN/secret" --rate "$RATE" --connections 1 \
      --duration "$SECONDS_RUN" --budget-us "$BUDGET_US" --json "$RUN/run.json" \
      >"$RUN/loadgen.log" 2>&1 || { cat "$RUN/loadgen.log" >&2; exit 1; }
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    python3 - "$RUN/run.json" "$slice" "$HOGS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["rtt_us"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['decisions'] + r['errors']} | {t['p50']:.0f} µs | {t['p99']:.0f} µs "
      f"| {t['p99_9']:.0f} µs | {t['max']:.0f} µs | {r['over_budget']} |")
PY
  done
done
