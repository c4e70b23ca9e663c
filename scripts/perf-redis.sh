#!/usr/bin/env bash
# filterd in Redis mode (merchant-auth and rate-limit with store "redis", perf/load/conf/
# filterd.perf-redis.json.in) against a local redis-server, driven by filterd-loadgen over the socket:
#   - decisions/s and decisions per filterd CPU-second (pipelined: --connections 2 --pipeline 32),
#   - Redis round trips per request (INFO commandstats: EVALSHA + EVAL + top-level SET calls / requests),
#   - Redis CPU per request (INFO cpu: used_cpu_user + used_cpu_sys over the run / requests),
#   - a paced run at RATE req/s, one request in flight (filterd's round trip as the bridge sees it).
# Usage: scripts/perf-redis.sh [--build DIR] [--out DIR]
#   env: SECONDS_RUN=10 RATE=1000 IO_THREADS=1, FILTERD=<binary> (default: the build dir's filterd)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-perf"
OUT="$ROOT/perf/results/latest/redis"
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "perf-redis: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
SECONDS_RUN="${SECONDS_RUN:-10}"
RATE="${RATE:-1000}"
IO_THREADS="${IO_THREADS:-1}"

# shellcheck source=perf-lib.sh
source "$ROOT/scripts/perf-lib.sh"
bash "$ROOT/scripts/install-deps.sh" >/dev/null
perf_build
mkdir -p "$OUT"
perf_rundir perf-redis

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN" \
  --maxmemory-policy noeviction --logfile "$RUN/redis.log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
cli() { redis-cli -p "$PORT" "$@"; }

head -c 32 /dev/urandom | base64 | tr -d '\n' >"$RUN/secret"
chmod 600 "$RUN/secret"
SOCK="$RUN/filterd.sock"
sed -e "s|@SOCKET@|$SOCK|" -e "s|@SECRET_FILE@|$RUN/secret|" -e "s|@IO_THREADS@|$IO_THREADS|" \
  -e "s|@REDIS_ADDRESS@|127.0.0.1:$PORT|g" "$ROOT/perf/load/conf/filterd.perf-redis.json.in" >"$RUN/filterd.json"
"${FILTERD:-$BUILD/filterd}" --config "$RUN/filterd.json" 2>"$RUN/filterd.log" &
FD_PID=$!
PIDS+=($FD_PID)
for _ in $(seq 200); do [[ -S "$SOCK" ]] && break; sleep 0.05; done

stat_calls() { cli INFO commandstats | sed -n "s/^cmdstat_$1:calls=\([0-9]*\).*/\1/p" | head -1; }
redis_cpu() { cli INFO cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.6f", s}'; }

cli CONFIG RESETSTAT >/dev/null
cpu0="$(redis_cpu)"
"$BUILD/filterd-loadgen" run --socket "$SOCK" --route pay --filters merchant-auth,rate-limit,enrichment \
  --path /v1/payments --duration "$SECONDS_RUN" --connections 2 --pipeline 32 \
  --merchant m-perf --key-id k-perf --secret-file "$RUN/secret" --filterd-pid "$FD_PID" \
  --json "$OUT/loadgen-redis.json"
cpu1="$(redis_cpu)"
evalsha="$(stat_calls evalsha)"; eval_="$(stat_calls eval)"; sets="$(stat_calls set)"
python3 - "$OUT/loadgen-redis.json" "${evalsha:-0}" "${eval_:-0}" "${sets:-0}" "$cpu0" "$cpu1" <<'EOF' | tee "$OUT/redis-summary.txt"
import json, sys
lg = json.load(open(sys.argv[1]))
ev, el, st = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = float(sys.argv[6]) - float(sys.argv[5])
n = sum(v for k, v in lg.items() if k in ("allowed", "denied", "errors") and isinstance(v, (int, float))) or lg.get("requests", 0)
print("loadgen:", json.dumps({k: v for k, v in lg.items() if not isinstance(v, (list, dict))}))
print(f"script calls: evalsha={ev} eval={el}; SET calls (inside scripts, nonce + buckets)={st}")
if n:
    print(f"round trips per request: {(ev + el) / n:.4f}  (requests {n})")
    print(f"redis CPU per request: {cpu / n * 1e6:.2f} us  (redis CPU {cpu:.3f} s)")
EOF

"$BUILD/filterd-loadgen" run --socket "$SOCK" --route pay --filters merchant-auth,rate-limit,enrichment \
  --path /v1/payments --duration 5 --connections 1 --rate "$RATE" \
  --merchant m-perf --key-id k-perf --secret-file "$RUN/secret" --filterd-pid "$FD_PID" \
  --json "$OUT/paced-redis.json"
echo "perf-redis: results in $OUT"
