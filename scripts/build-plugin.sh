#!/usr/bin/env bash
# Builds the plugin for one KrakenD CE release, exactly as that release builds plugins: its Go
# toolchain (fetched by GOTOOLCHAIN from the Go module proxy), -buildmode=plugin, CGO on, no
# -trimpath, against this machine's glibc. Then it checks the artefact (verify-plugin: toolchain,
# flags, libc) and, when the gateway harness of the same target is built, loads it (test-plugin).
#
# Usage: scripts/build-plugin.sh [--krakend 2.12.1] [--out DIR]
#   --krakend  a KrakenD CE version from KRAKEND_TARGETS in versions.env (default: KRAKEND_CE_VERSION)
#   --out      output folder (default: out/plugins)
# The official KrakenD image is Alpine (musl): build for it with the Dockerfile's
# plugin-builder-official stage (krakend/builder:<version>), not with this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$ROOT/versions.env"
KRAKEND="$KRAKEND_CE_VERSION"
OUT="$ROOT/out/plugins"
while (($#)); do
  case "$1" in
    --krakend) KRAKEND="${2#v}"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "build-plugin: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

row="$(awk -v v="$KRAKEND" '$1 == v {print; exit}' <<<"$KRAKEND_TARGETS")"
if [[ -z "$row" ]]; then
  echo "build-plugin: KrakenD CE $KRAKEND is not in KRAKEND_TARGETS (versions.env); known:" \
    "$(awk 'NF {printf "%s ", $1}' <<<"$KRAKEND_TARGETS")" >&2
  exit 2
fi
read -r _ go_version glibc _ <<<"$row"
# awk reads all of ldd's output: with head, ldd can die of SIGPIPE and pipefail fails the build.
host_glibc="glibc-$(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"

command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN="go$go_version" CGO_ENABLED=1
have="$(cd "$ROOT/go-bridge" && go env GOVERSION)"
if [[ "$have" != "go$go_version" ]]; then
  echo "build-plugin: GOTOOLCHAIN=go$go_version gave $have; refusing to build" >&2
  exit 1
fi
read -r -a FLAGS <<<"$GO_BUILD_FLAGS"
mkdir -p "$OUT"
so="$OUT/simpaisa-plugin-filter-bridge.so"
echo "build-plugin: KrakenD CE $KRAKEND -> Go $have, -buildmode=plugin, CGO_ENABLED=1, no -trimpath," \
  "target libc $glibc (this machine: $host_glibc) -> $so"
(cd "$ROOT/go-bridge" && go build -buildmode=plugin "${FLAGS[@]}" -o "$so" .)

harness="$ROOT/out/bin/gateway-harness"
if [[ -x "$harness" ]]; then
  "$harness" verify-plugin -g "$go_version" -l "$glibc" "$so"
  if [[ "$KRAKEND" == "$KRAKEND_CE_VERSION" ]]; then
    "$harness" test-plugin -m "$so"
  else
    echo "build-plugin: test-plugin skipped: the gateway harness is built for KrakenD CE $KRAKEND_CE_VERSION, not $KRAKEND"
  fi
else
  echo "build-plugin: $harness is not built: verify-plugin and test-plugin not run (scripts/build-go.sh runs them)"
fi
