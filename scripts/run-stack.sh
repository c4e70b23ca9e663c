#!/usr/bin/env bash
# Builds everything and runs the whole stack on loopback, in the foreground, until Ctrl-C:
#   filterd            conf/filterd.example.json        (socket taken from the gateway config)
#   gateway harness    conf/gateway.example.json        (KrakenD CE 2.12.1 stand-in + the filter-bridge plugin)
#   demo backend       echoes the headers it received, counts requests (GET /__counts)
# then prints a working signed curl example made with the signing tool (tools/spv1-sign).
#
# Env overrides: GATEWAY_CONFIG, FILTERD_CONFIG, BUILD_DIR (default build/), SKIP_BUILD=1.
# Ctrl-C (or any child dying) stops every child this script started, by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GW_CONF="${GATEWAY_CONFIG:-conf/gateway.example.json}"
FD_CONF="${FILTERD_CONFIG:-conf/filterd.example.json}"
BUILD="${BUILD_DIR:-$ROOT/build}"
SIGN="$ROOT/tools/spv1-sign"

say() { printf '\033[1mrun-stack:\033[0m %s\n' "$*"; }
die() { printf 'run-stack: %s\n' "$*" >&2; exit 1; }

# ---- build -----------------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/install-deps.sh
  # Configure only a fresh build dir: re-configuring one that test-all.sh uses would flip its build
  # type and rebuild everything twice.
  [[ -f "$BUILD/build.ninja" ]] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$BUILD" filterd
  bash scripts/build-go.sh
fi
# The same checks as before a deploy: KrakenD's schema, then the fail-open linter.
for f in "$BUILD/filterd" out/bin/gateway-harness out/bin/gateway-lint out/bin/demo-backend out/plugins/simpaisa-plugin-filter-bridge.so "$GW_CONF" "$FD_CONF" "$SIGN"; do
  [[ -e "$f" ]] || die "missing $f"
done
out/bin/gateway-harness check -c "$GW_CONF" --lint-no-network >/dev/null || die "$GW_CONF fails KrakenD's v2.12 schema (gateway-harness check -c $GW_CONF --lint-no-network)"
out/bin/gateway-lint -filterd "$FD_CONF" "$GW_CONF" || die "gateway-lint found errors in $GW_CONF"

# ---- read the addresses from the configs (one source of truth each) ---------------------------------
SOCK="$(jq -r '[.endpoints[].extra_config["plugin/req-resp-modifier"]["simpaisa/filter-bridge"].socket_path // empty] | unique | .[]' "$GW_CONF")"
[[ -n "$SOCK" && "$(wc -l <<<"$SOCK")" == 1 ]] || die "$GW_CONF must use exactly one filterd socket_path (found: ${SOCK:-none})"
GW_ADDR="$(jq -r '"\(.listen_ip // "127.0.0.1"):\(.port)"' "$GW_CONF")"
PROBE='.extra_config["plugin/req-resp-modifier"]["simpaisa/filter-bridge"].mode? == "probe"'
BE_URL="$(jq -r "[.endpoints[] | select(($PROBE) | not) | .backend[].host[]] | unique | .[]" "$GW_CONF")"
[[ "$(wc -l <<<"$BE_URL")" == 1 ]] || die "$GW_CONF must use exactly one backend host (found: $BE_URL)"
BE_ADDR="${BE_URL#http://}"
READY_PATH="$(jq -r "[.endpoints[] | select($PROBE) | .endpoint] | first // empty" "$GW_CONF")"
[[ -n "$READY_PATH" ]] || die "$GW_CONF has no readiness probe endpoint (the bridge in mode \"probe\")"
ADMIN="$(jq -r 'if (.admin.enabled // true) then "\(.admin.address // "127.0.0.1"):\(.admin.port // 9901)" else "" end' "$FD_CONF")"

# ---- the demo merchant and its secret reference, from the daemon config -----------------------------
# The first active hmac-sha256 key. The secret is referenced (env or file), never inline. If the env
# var is unset, a random secret is generated for this session only: it lives in this process's
# environment, is inherited by filterd, and is never written to disk or printed.
read -r MERCHANT KEY_ID SECRET_KIND SECRET_REF < <(jq -r '
  .filters["merchant-auth"].merchants // {} | to_entries[]
  | select(.value.status == "active") | .key as $m | .value.keys[]
  | select(.alg == "hmac-sha256" and .state == "active")
  | [$m, .id, (if .secret.env then "env" else "file" end), (.secret.env // .secret.file)] | @tsv' "$FD_CONF" | head -n1) || true
SIGN_ARGS=()
if [[ -n "${MERCHANT:-}" ]]; then
  if [[ "$SECRET_KIND" == env ]]; then
    if [[ -z "${!SECRET_REF:-}" ]]; then
      export "$SECRET_REF=$(openssl rand -hex 32)"
      say "generated a random demo secret in \$$SECRET_REF for this session (not stored anywhere)"
    fi
    SIGN_ARGS=(--secret-env "$SECRET_REF")
  else
    [[ -r "$SECRET_REF" ]] || die "the demo key's secret file $SECRET_REF is missing; create it (>= 32 bytes, mode 0600)"
    SIGN_ARGS=(--secret-file "$SECRET_REF")
  fi
fi

# The rate-limit quota may be divided by a replica count taken from an env var; this stack is one
# replica on loopback, so default it to 1 when unset (never overriding a value you exported).
REPLICAS_ENV="$(jq -r '.filters["rate-limit"].replicas.env // empty' "$FD_CONF")"
if [[ -n "$REPLICAS_ENV" && -z "${!REPLICAS_ENV:-}" ]]; then
  export "$REPLICAS_ENV=1"
  say "\$$REPLICAS_ENV unset: using 1 (this stack is a single replica)"
fi

# ---- start, in dependency order, with bounded waits -------------------------------------------------
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n "${RUN_FD_CONF:-}" ]] && rm -f "$RUN_FD_CONF"
  say "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs="$1" what="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "$what did not come up within ${secs}s"
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a child exited early while waiting for $what"; done
    sleep 0.1
  done
}

mkdir -p "$(dirname "$SOCK")"
out/bin/demo-backend -listen "$BE_ADDR" &
PIDS+=($!)
wait_for 10 "demo backend on $BE_ADDR" curl -fsS "http://$BE_ADDR/__counts"

# The example's listen.allowed_uids is the pod's gateway uid (10001, the image's user). This stack runs
# every process as you, so filterd gets a copy of the config that allows your uid instead.
MY_UID="$(id -u)"
if ! jq -e --argjson u "$MY_UID" '.listen.allowed_uids == null or any(.listen.allowed_uids[]; . == $u)' "$FD_CONF" >/dev/null; then
  RUN_FD_CONF="$(mktemp --suffix=.filterd.json)"
  jq --argjson u "$MY_UID" '.listen.allowed_uids = [$u]' "$FD_CONF" >"$RUN_FD_CONF"
  say "listen.allowed_uids of $FD_CONF does not list uid $MY_UID: filterd runs with a copy that does ($RUN_FD_CONF)"
  FD_CONF="$RUN_FD_CONF"
fi
"$BUILD/filterd" --config "$FD_CONF" --socket "$SOCK" &
PIDS+=($!)
wait_for 15 "filterd on $SOCK" test -S "$SOCK"

GW_LOG="$(mktemp /tmp/run-stack-gateway.XXXXXX.log)"
USAGE_DISABLE=1 out/bin/gateway-harness run -c "$GW_CONF" > >(tee "$GW_LOG") 2>&1 &
PIDS+=($!)
wait_for 20 "gateway readiness (http://$GW_ADDR$READY_PATH)" curl -fsS "http://$GW_ADDR$READY_PATH"
bash scripts/check-gateway-log.sh "$GW_LOG" "$GW_CONF" || die "the gateway's start-up log lacks the plugin's lines (see above)"

# ---- a signed request that really works, then one to print -------------------------------------------
BODY='{"amount":"100.00","currency":"PKR","order_id":"demo-1"}'
sign_headers() { printf '%s' "$BODY" | "$SIGN" --method POST --url /v1/payments --body-file - \
  --merchant "$MERCHANT" --key-id "$KEY_ID" --alg hmac-sha256 "${SIGN_ARGS[@]}"; }
echo
say "stack is up: gateway http://$GW_ADDR  filterd $SOCK${ADMIN:+ (admin http://$ADMIN)}  backend http://$BE_ADDR"
if [[ -n "${MERCHANT:-}" ]]; then
  mapfile -t H < <(sign_headers)
  args=(); for h in "${H[@]}"; do args+=(-H "$h"); done
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$GW_ADDR/v1/payments" \
    -H 'Content-Type: application/json' "${args[@]}" --data-binary "$BODY")"
  [[ "$code" == 200 ]] || die "self-check: a freshly signed POST /v1/payments got HTTP $code, not 200"
  say "self-check: a signed POST /v1/payments went through (200)"
  mapfile -t H < <(sign_headers)
  echo
  echo "# A signed request (single use: the nonce is spent once sent; valid for the skew window):"
  printf "curl -i -X POST 'http://%s/v1/payments' \\\\\n  -H 'Content-Type: application/json' \\\\\n" "$GW_ADDR"
  for h in "${H[@]}"; do printf "  -H '%s' \\\\\n" "$h"; done
  printf "  --data-binary '%s'\n" "$BODY"
  echo
  echo "# Sign another one (needs \$$SECRET_REF, or the secret file, in your shell):"
  echo "#   printf '%s' '$BODY' | tools/spv1-sign --method POST --url /v1/payments --body-file - --merchant $MERCHANT --key-id $KEY_ID --alg hmac-sha256 ${SIGN_ARGS[*]}"
else
  say "no active hmac-sha256 merchant key in $FD_CONF: no signed example to print"
fi
cat <<EOF

# Unsigned (denied 401 by merchant-auth; never reaches the backend):
curl -i -X POST 'http://$GW_ADDR/v1/payments' --data-binary '{}'
# Other endpoints: no plugin / plugin with no filters / rate-limit only (repeat it to see the 429):
curl -i 'http://$GW_ADDR/v1/baseline'; curl -i 'http://$GW_ADDR/v1/public'; curl -i 'http://$GW_ADDR/v1/rates'
# Readiness (plugin loaded AND filterd answering), and what the backend received:
curl -i 'http://$GW_ADDR$READY_PATH'; curl -s 'http://$BE_ADDR/__counts'
EOF
echo
say "running; Ctrl-C stops everything"

# Stay in the foreground; if any child dies, stop the rest (fail closed: no half stack).
set +e
wait -n "${PIDS[@]}"
say "a child process exited; stopping the stack"
exit 1
