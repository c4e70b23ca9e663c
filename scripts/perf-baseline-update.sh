#!/usr/bin/env bash
# The deliberate, documented way to change the performance baseline the CI gate compares against.
#
#   scripts/perf-baseline-update.sh --reason "why the baseline moves"
#
# It runs the gate's own load profile (GATE_RATE=1000 requests/s, GATE_DURATION=10s per endpoint)
# BASELINE_RUNS=3 times and keeps the run whose added P99 (b over a) is the median of the three, so
# that one lucky or unlucky run does not become the yardstick; then the micro-benchmarks in the
# gate's fast mode. It writes
#   perf/baseline/load.json       the chosen run's result (what perf-gate.sh compares with)
#   perf/baseline/go-bench.txt    go-bridge benchmarks (benchstat baseline, allocation gate)
#   perf/baseline/HISTORY.md      one line per update: date, commit, machine, figures, reason
# and stops. It never commits: review the diff, then commit it yourself with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REASON=""
while (($#)); do
  case "$1" in
    --reason) REASON="$2"; shift ;;
    *) echo "perf-baseline-update: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$REASON" ]] || { echo "perf-baseline-update: --reason \"...\" is required: a baseline moves on purpose" >&2; exit 2; }
GATE_RATE="${GATE_RATE:-1000}"
GATE_DURATION="${GATE_DURATION:-10s}"
RUNS="${BASELINE_RUNS:-3}"
GOOUT="${GOOUT:-$ROOT/out/perf}"
WORK="$ROOT/perf/results/tmp/baseline-update"
BASE="$ROOT/perf/baseline"
rm -rf "$WORK"
mkdir -p "$WORK" "$BASE"

for ((i = 1; i <= RUNS; i++)); do
  echo "perf-baseline-update: load run $i/$RUNS ($GATE_RATE/s for $GATE_DURATION per endpoint)"
  build=()
  if ((i > 1)); then build=(--no-build); fi
  OUT="$WORK/load$i" RATE="$GATE_RATE" DURATION="$GATE_DURATION" WARMUP=2s LOADGEN_SECONDS=3 GOOUT="$GOOUT" \
    "$ROOT/scripts/perf-load.sh" "${build[@]}" >"$WORK/load$i.log" 2>&1 ||
    { tail -20 "$WORK/load$i.log"; echo "perf-baseline-update: run $i failed" >&2; exit 1; }
done
chosen="$(python3 - "$WORK" "$RUNS" <<'PY'
import json, sys
work, runs = sys.argv[1], int(sys.argv[2])
rs = []
for i in range(1, runs + 1):
    r = json.load(open(f"{work}/load{i}/result.json"))
    b = r["phases"]["b"]
    if b["errors"] > b["requests"] / 100 or r["phases"]["a"]["errors"]:  # the gate's own tolerance
        sys.exit(f"run {i}: failed requests ((a) {r['phases']['a']['errors']}, (b) {b['errors']}); not a baseline")
    rs.append((r["derived"]["added_b_us"]["p99"], i))
rs.sort()
for p99, i in rs:
    print(f"run {i}: added P99 {p99:.0f} us", file=sys.stderr)
print(rs[len(rs) // 2][1])
PY
)"
cp "$WORK/load$chosen/result.json" "$BASE/load.json"
echo "perf-baseline-update: micro-benchmarks (fast mode, as the gate runs them)"
"$ROOT/scripts/perf-micro.sh" --fast --out "$WORK/micro"
if [[ -s "$WORK/micro/go-bench.txt" ]]; then
  cp "$WORK/micro/go-bench.txt" "$BASE/go-bench.txt"
fi
line="$(python3 - "$BASE/load.json" "$REASON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); d = r["derived"]["added_b_us"]; m = r["machine"]
print(f"| {r['started_at']} | {r['commit']} | {m['cpus']} CPUs {m['cpu_model']}, load {m.get('loadavg_start','?')} | "
      f"{d['p50']:.0f} / {d['p99']:.0f} µs | {sys.argv[2]} |")
PY
)"
[[ -s "$BASE/HISTORY.md" ]] || printf '# Performance baseline history\n\n| run | commit | machine | added P50 / P99 (b over a) | reason |\n|---|---|---|---|---|\n' >"$BASE/HISTORY.md"
echo "$line" >>"$BASE/HISTORY.md"
echo "perf-baseline-update: baseline written (run $chosen of $RUNS). Review and commit it:"
echo "  git diff --stat perf/baseline && git add perf/baseline && git commit -m \"perf baseline: $REASON\""
