#!/usr/bin/env bash
# Start-up check of a gateway (KrakenD CE or the harness) running the filter bridge: reads the
# gateway's log and its config, and passes only if the plugin said, at INFO, that it loaded and that
# it configured EVERY endpoint of the config that names it. KrakenD CE logs a failed plugin load at
# DEBUG only and says nothing about a misspelt name or a "name" that is not a list; the plugin's own
# lines are the only evidence at INFO that each endpoint really runs it.
#
# Usage: scripts/check-gateway-log.sh GATEWAY_LOG GATEWAY_CONFIG
# Run it once the gateway serves (its /__health answers): the lines are written before it listens.
# Exit: 0 all present; 1 something missing or the plugin logged an error at start; 2 bad usage.
set -euo pipefail
(($# == 2)) || { echo "usage: $0 GATEWAY_LOG GATEWAY_CONFIG" >&2; exit 2; }
LOG="$1" CONF="$2"
[[ -r "$LOG" && -r "$CONF" ]] || { echo "check-gateway-log: cannot read $LOG or $CONF" >&2; exit 2; }
TAG='[PLUGIN: simpaisa/filter-bridge]'
fail=0

if grep -qF "$TAG loaded: request modifier registered" "$LOG"; then
  echo "check-gateway-log: OK   plugin loaded"
else
  echo "check-gateway-log: MISSING '$TAG loaded: request modifier registered': the plugin did not load (KrakenD logs why only at DEBUG)"
  fail=1
fi

# Every endpoint (or backend) whose plugin block carries bridge settings, with its route id.
mapfile -t ROUTES < <(jq -r '
  [.endpoints[] | (., .backend[]?) | .extra_config["plugin/req-resp-modifier"]? // empty
   | .["simpaisa/filter-bridge"].route_id? // empty] | unique | .[]' "$CONF")
((${#ROUTES[@]})) || { echo "check-gateway-log: $CONF has no endpoint with simpaisa/filter-bridge settings"; exit 1; }
for r in "${ROUTES[@]}"; do
  if grep -qF "$TAG endpoint configured: route=$r " "$LOG"; then
    echo "check-gateway-log: OK   route $r configured"
  else
    echo "check-gateway-log: MISSING route $r: no endpoint of it runs the plugin (name not a list, misspelt or unloaded plugin, or bad settings)"
    fail=1
  fi
done

if grep -F "$TAG" "$LOG" | grep -qE '(ERROR|CRITICAL)'; then
  echo "check-gateway-log: the plugin logged errors at start:"
  grep -F "$TAG" "$LOG" | grep -E '(ERROR|CRITICAL)' | head -5
  fail=1
fi
exit $fail
