#!/usr/bin/env bash
# Builds the Go side for the default KrakenD CE target (versions.env), with that release's toolchain
# and flags (GOTOOLCHAIN=$GO_VERSION, CGO on, no -trimpath):
#   out/bin/gateway-harness      the KrakenD CE stand-in for tests (gateway/cmd/gateway-harness),
#                                linked like a KrakenD release (version and glibc in lura's core)
#   out/bin/demo-backend         echo/count backend for the demo stack and the e2e tests
#   out/bin/gateway-lint         the gateway config linter for operators (tools/gateway-lint)
#   out/plugins/simpaisa-plugin-filter-bridge.so   the plugin (scripts/build-plugin.sh, which then
#                                runs verify-plugin and test-plugin on it; a failure fails the build)
# With --test-plugins it also builds the harness's test-only plugins into out/test-plugins*/.
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
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)" # the builds below run in each module's directory

# shellcheck source=../versions.env
source "$ROOT/versions.env"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1
have="$(cd "$ROOT/gateway" && go env GOVERSION)"
if [[ "$have" != "$GO_VERSION" ]]; then
  echo "build-go: GOTOOLCHAIN=$GO_VERSION gave $have; refusing to build" >&2
  exit 1
fi
for pin in "github.com/luraproject/lura/v2 $LURA_VERSION" "github.com/krakend/krakend-ratelimit/v3 $KRAKEND_RATELIMIT_VERSION"; do
  read -r mod want <<<"$pin"
  got="$(cd "$ROOT/gateway" && go list -m -f '{{.Version}}' "$mod")"
  if [[ "$got" != "$want" ]]; then
    echo "build-go: gateway/go.mod has $mod $got but versions.env pins $want" >&2
    exit 1
  fi
done

read -r -a FLAGS <<<"$GO_BUILD_FLAGS"
LDFLAGS="-X github.com/luraproject/lura/v2/core.KrakendVersion=$KRAKEND_CE_VERSION -X github.com/luraproject/lura/v2/core.GlibcVersion=$LIBC_VERSION"
mkdir -p "$OUT/bin"
echo "build-go: $have, CGO on, flags: [${FLAGS[*]}], KrakenD CE $KRAKEND_CE_VERSION wiring -> $OUT"
(cd "$ROOT/gateway" && go build "${FLAGS[@]}" -ldflags "$LDFLAGS" -o "$OUT/bin/gateway-harness" ./cmd/gateway-harness)
(cd "$ROOT/gateway" && go build "${FLAGS[@]}" -o "$OUT/bin/demo-backend" ./cmd/demo-backend)
(cd "$ROOT/tools/gateway-lint" && go build "${FLAGS[@]}" -o "$OUT/bin/gateway-lint" .)

bash "$ROOT/scripts/build-plugin.sh" --krakend "$KRAKEND_CE_VERSION" --out "$OUT/plugins"

if ((TEST_PLUGINS)); then
  mkdir -p "$OUT/test-plugins" "$OUT/test-plugins-empty"
  (cd "$ROOT/gateway" && go build -buildmode=plugin "${FLAGS[@]}" -o "$OUT/test-plugins/harness-test-plugins.so" ./testplugins/multi)
  (cd "$ROOT/gateway" && go build -buildmode=plugin "${FLAGS[@]}" -o "$OUT/test-plugins-empty/empty.so" ./testplugins/empty)
  "$OUT/bin/gateway-harness" verify-plugin -g "${GO_VERSION#go}" -l "$LIBC_VERSION" "$OUT/test-plugins/harness-test-plugins.so"
  "$OUT/bin/gateway-harness" test-plugin -m "$OUT/test-plugins/harness-test-plugins.so"
fi
