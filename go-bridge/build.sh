#!/bin/sh
# Builds the plugin and runs every check of go-bridge. Uses the pins in ../versions.env.
#
#   ./build.sh            build bin/simpaisa-plugin-filter-bridge.so, check it loads, run the
#                         schema check, vet, go mod tidy check, and the race tests with coverage
#   ./build.sh build      only build the .so (OUT=dir to choose where; default go-bridge/bin,
#                         so that it never races scripts/build-go.sh, which owns out/plugins)
#   ./build.sh bench      run the benchmarks (go test -run '^$' -bench . -benchmem ./...) and keep
#                         the output in $OUT/bench_res/<commit>.out (BENCH_COUNT=n repeats them)
set -eu
cd "$(dirname "$0")"
. ../versions.env
export PATH="/usr/local/go/bin:$PATH"
have=$(go env GOVERSION)
if [ "$have" != "$GO_VERSION" ]; then
  echo "build.sh: $have found, versions.env pins $GO_VERSION" >&2
  exit 1
fi
grep -q "github.com/google/flatbuffers $FLATBUFFERS_GO_VERSION\$" go.mod || {
  echo "build.sh: go.mod does not pin github.com/google/flatbuffers $FLATBUFFERS_GO_VERSION" >&2; exit 1; }
OUT=${OUT:-bin}
mkdir -p "$OUT"
so="$OUT/simpaisa-plugin-filter-bridge.so"

build() {
  # shellcheck disable=SC2086 # GO_BUILD_FLAGS is a list of flags
  go build -buildmode=plugin $GO_BUILD_FLAGS -o "$so" .
  echo "built $so"
}

case "${1:-all}" in
build) build ;;
bench)
  # Results are kept per commit (as lura's bench_res/${GIT_COMMIT}.out), for benchstat.
  mkdir -p "$OUT/bench_res"
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-1}" ./... | tee "$OUT/bench_res/$rev.out"
  ;;
all)
  build
  # Load the .so as lura does, with a stdlib-only host built with the same flags.
  # shellcheck disable=SC2086
  go build $GO_BUILD_FLAGS -o "$OUT/plugincheck" ./cmd/plugincheck
  "$OUT/plugincheck" -so "$so"
  ./internal/wire/gen.sh --check
  cp go.mod /tmp/go-bridge.go.mod.$$ && cp go.sum /tmp/go-bridge.go.sum.$$
  go mod tidy
  if ! cmp -s go.mod /tmp/go-bridge.go.mod.$$ || ! cmp -s go.sum /tmp/go-bridge.go.sum.$$; then
    echo "build.sh: go mod tidy changed go.mod/go.sum; commit the tidy result" >&2
    rm -f /tmp/go-bridge.go.mod.$$ /tmp/go-bridge.go.sum.$$
    exit 1
  fi
  rm -f /tmp/go-bridge.go.mod.$$ /tmp/go-bridge.go.sum.$$
  test -z "$(gofmt -l $(ls *.go cmd/*/*.go internal/codec/*.go))" || { echo "build.sh: gofmt needed" >&2; exit 1; }
  go vet ./...
  # -coverpkg=./...: a package's code counts as covered when any package's tests run it.
  go test -race -count=1 -coverpkg=./... -coverprofile="$OUT/go-bridge.cover" ./...
  echo "coverage of everything, including the flatc-generated internal/wire and cmd/plugincheck:"
  go tool cover -func="$OUT/go-bridge.cover" | tail -1
  # internal/wire is generated; cmd/plugincheck is exercised by running it above.
  echo "coverage of the hand-written packages (main, internal/codec):"
  grep -v -e '/internal/wire/' -e '/cmd/plugincheck/' "$OUT/go-bridge.cover" > "$OUT/go-bridge.handwritten.cover"
  go tool cover -func="$OUT/go-bridge.handwritten.cover" | tail -1
  # Benchmarks must keep compiling and running: one quick pass (habit 10).
  go test -run '^$' -bench . -benchtime 100x ./... > /dev/null
  echo "build.sh: all checks passed"
  ;;
*) echo "usage: $0 [all|build|bench]" >&2; exit 2 ;;
esac
