#!/bin/sh
# Builds the plugin and runs every check of go-bridge, with the pins of ../versions.env
# (VERSIONS_ENV=file to use another): GOTOOLCHAIN=$GO_VERSION, CGO on, GO_BUILD_FLAGS.
#
#   ./build.sh            build bin/simpaisa-plugin-filter-bridge.so, then `checks`, the race
#                         tests with coverage of the hand-written code, and one quick benchmark pass
#   ./build.sh checks     go vet, gofmt -l, the go mod tidy diff and the schema check (fast; for CI)
#   ./build.sh build      only the .so (OUT=dir to choose where; default go-bridge/bin)
#   ./build.sh bench      go test -run '^$' -bench . -benchmem, kept in $OUT/bench_res/<commit>.out
#                         (BENCH_COUNT=n repeats them)
set -eu
cd "$(dirname "$0")"
. "${VERSIONS_ENV:-../versions.env}"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1
grep -q "github.com/google/flatbuffers $FLATBUFFERS_GO_VERSION\$" go.mod || {
  echo "build.sh: go.mod does not pin github.com/google/flatbuffers $FLATBUFFERS_GO_VERSION" >&2; exit 1; }
OUT=${OUT:-bin}
so="$OUT/simpaisa-plugin-filter-bridge.so"

build() {
  mkdir -p "$OUT"
  # shellcheck disable=SC2086 # GO_BUILD_FLAGS is a list of flags
  go build -buildmode=plugin $GO_BUILD_FLAGS -o "$so" .
  echo "built $so with $(go env GOVERSION) CGO_ENABLED=$(go env CGO_ENABLED) flags: ${GO_BUILD_FLAGS:-none}"
}

checks() {
  go vet ./...
  unformatted=$(gofmt -l $(find . -name '*.go' ! -path './internal/wire/*'))
  [ -z "$unformatted" ] || { echo "build.sh: gofmt needed: $unformatted" >&2; exit 1; }
  tmp=$(mktemp -d)
  cp go.mod go.sum "$tmp/"
  go mod tidy
  if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
    cp "$tmp/go.mod" "$tmp/go.sum" .
    rm -rf "$tmp"
    echo "build.sh: go mod tidy changes go.mod/go.sum; run it and commit the result" >&2
    exit 1
  fi
  rm -rf "$tmp"
  ./internal/wire/gen.sh --check
  echo "build.sh: vet, gofmt, go mod tidy and schema checks passed"
}

case "${1:-all}" in
build) build ;;
checks) checks ;;
bench)
  mkdir -p "$OUT/bench_res"
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-1}" ./... | tee "$OUT/bench_res/$rev.out"
  ;;
all)
  build
  checks
  # -coverpkg=.: the plugin's own code, whichever test runs it (internal/wire is flatc output).
  go test -race -count=1 -coverpkg=. -coverprofile="$OUT/go-bridge.cover" ./...
  echo "coverage of the hand-written code (package main):"
  go tool cover -func="$OUT/go-bridge.cover" | tail -1
  go test -run '^$' -bench . -benchtime 100x ./... > /dev/null
  echo "build.sh: all checks passed"
  ;;
*) echo "usage: $0 [all|checks|build|bench]" >&2; exit 2 ;;
esac
