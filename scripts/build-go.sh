#!/usr/bin/env bash
# Builds the Go side with ONE toolchain and ONE set of flags, both pinned in versions.env:
#   out/bin/gateway-harness      gateway harness (lura $LURA_VERSION), gateway/cmd/gateway-harness
#   out/bin/demo-backend         echo/count backend for the demo stack and the e2e tests
#   out/plugins/simpaisa-plugin-filter-bridge.so   the plugin, from go-bridge/ (-buildmode=plugin)
# With --test-plugins it also builds the harness's test-only plugins into out/test-plugins*/.
# Go refuses to load a plugin built by another toolchain or with other flags, so the harness and
# every plugin are built here, together. Each built plugin is then checked by `gateway-harness
# -check-plugin` (build info vs the harness's, like `krakend check-plugin`) and really loaded by
# `gateway-harness -test-plugin` (like `krakend test-plugin`); a failure fails the build.
#
# Usage: scripts/build-go.sh [--test-plugins] [--out DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/out"
TEST_PLUGINS=0
while (($#)); do
  case "$1" in
    --test-plugins) TEST_PLUGINS=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "build-go: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=../versions.env
source "$ROOT/versions.env"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null 2>&1 || { echo "build-go: no Go toolchain on PATH; install $GO_VERSION (versions.env)" >&2; exit 1; }
have="$(go env GOVERSION)"
if [[ "$have" != "$GO_VERSION" ]]; then
  echo "build-go: toolchain is $have but versions.env pins GO_VERSION=$GO_VERSION; refusing to build" >&2
  exit 1
fi
lura="$(cd "$ROOT/gateway" && go list -m -f '{{.Version}}' github.com/luraproject/lura/v2)"
if [[ "$lura" != "$LURA_VERSION" ]]; then
  echo "build-go: gateway/go.mod has lura $lura but versions.env pins LURA_VERSION=$LURA_VERSION" >&2
  exit 1
fi

export CGO_ENABLED=1 # Go plugins need cgo, in the host and in the plugin alike
read -r -a FLAGS <<<"$GO_BUILD_FLAGS"
mkdir -p "$OUT/bin" "$OUT/plugins"
echo "build-go: $have, flags: ${FLAGS[*]}, lura $lura -> $OUT"

(cd "$ROOT/gateway" && go build "${FLAGS[@]}" -o "$OUT/bin/gateway-harness" ./cmd/gateway-harness)
(cd "$ROOT/gateway" && go build "${FLAGS[@]}" -o "$OUT/bin/demo-backend" ./cmd/demo-backend)

plugins=()
if [[ -f "$ROOT/go-bridge/go.mod" ]]; then
  (cd "$ROOT/go-bridge" && go build -buildmode=plugin "${FLAGS[@]}" -o "$OUT/plugins/simpaisa-plugin-filter-bridge.so" .)
  plugins+=("$OUT/plugins/simpaisa-plugin-filter-bridge.so")
else
  echo "build-go: go-bridge/ is not there yet: the plugin was NOT built" >&2
fi

if ((TEST_PLUGINS)); then
  mkdir -p "$OUT/test-plugins" "$OUT/test-plugins-empty"
  (cd "$ROOT/gateway" && go build -buildmode=plugin "${FLAGS[@]}" -o "$OUT/test-plugins/harness-test-plugins.so" ./testplugins/multi)
  (cd "$ROOT/gateway" && go build -buildmode=plugin "${FLAGS[@]}" -o "$OUT/test-plugins-empty/empty.so" ./testplugins/empty)
  plugins+=("$OUT/test-plugins/harness-test-plugins.so")
fi

for p in "${plugins[@]}"; do
  "$OUT/bin/gateway-harness" -check-plugin "$p" # same toolchain, settings, shared modules (krakend check-plugin)
  "$OUT/bin/gateway-harness" -test-plugin "$p"  # really loads it (krakend test-plugin)
done
