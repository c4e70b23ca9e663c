#!/usr/bin/env bash
# Builds what the end-to-end tests need and runs them (tests/e2e):
#   filterd          -> build-e2e/filterd        (CMake + Ninja, its own build dir)
#   harness, backend, plugin and the harness's test-only plugins -> out/  (scripts/build-go.sh)
# then `go test` in tests/e2e, which starts real processes on loopback and kills them afterwards.
# Extra arguments go to `go test` (e.g. -run TestStackDaemonSIGSTOP).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${E2E_BUILD_DIR:-$ROOT/build-e2e}"
cd "$ROOT"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
# shellcheck source=../versions.env
source "$ROOT/versions.env"
export GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1

bash scripts/install-deps.sh
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
ninja -C "$BUILD" filterd
bash scripts/build-go.sh --test-plugins

# The harness's own unit tests, then the end-to-end tests.
(cd "$ROOT/gateway" && go vet ./... && go test -count=1 ./...)

export E2E_OUT="$ROOT/out" E2E_FILTERD="$BUILD/filterd"
cd "$ROOT/tests/e2e"
# -count=1: never a cached pass; -p 1 / no t.Parallel: the timing assertions need a quiet box.
go test -count=1 -p 1 -timeout 600s -v "$@" ./...
