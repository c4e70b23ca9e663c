#!/usr/bin/env bash
# Runs every micro-benchmark in one go and writes the results beside the load-test result:
#   <out>/gbench/<binary>.json   each Google Benchmark binary of the build dir (JSON, --benchmark_out)
#   <out>/gbench/<binary>.txt    its console table
#   <out>/go-bench.txt           go test -run '^$' -bench . -benchmem in go-bridge/ (benchstat input)
#   <out>/micro-commit.txt       the commit (and dirty state) the figures belong to
#
# Usage: scripts/perf-micro.sh [--fast] [--out DIR] [--build DIR]
#   --fast   CI mode: each C++ benchmark runs ~10 ms, Go benchmarks -count 6 -benchtime 100ms.
#            They still run every benchmark, so none can rot.
# Defaults: --out perf/results/latest, --build build-perf (configured here if needed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/perf/results/latest"
BUILD="$ROOT/build-perf"
FAST=0
while (($#)); do
  case "$1" in
    --fast) FAST=1 ;;
    --out) OUT="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    *) echo "perf-micro: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=../versions.env
source "$ROOT/versions.env"
export GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1 # KrakenD CE release toolchain (versions.env)
mkdir -p "$OUT/gbench"
failed=()

# ---- Google Benchmark binaries ----------------------------------------------------------------
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFILTERD_BUILD_TESTS=OFF \
    -DFILTERD_BUILD_BENCHMARKS=ON >/dev/null
fi
ninja -C "$BUILD" build.ninja >/dev/null # re-runs CMake's globs, so benchmarks added since are seen
mapfile -t benches < <(ninja -C "$BUILD" -t targets all 2>/dev/null | sed -n 's/^\([A-Za-z0-9_.-]*_bench\): CXX_EXECUTABLE_LINKER.*/\1/p' | sort -u)
if ((${#benches[@]})); then
  ninja -C "$BUILD" "${benches[@]}" >/dev/null
fi
gb_args=()
((FAST)) && gb_args+=(--benchmark_min_time=0.01)
for b in "${benches[@]}"; do
  echo "perf-micro: $b ${gb_args[*]}"
  if ! "$BUILD/$b" "${gb_args[@]}" --benchmark_out="$OUT/gbench/$b.json" --benchmark_out_format=json \
      >"$OUT/gbench/$b.txt" 2>&1; then
    echo "perf-micro: $b FAILED (see $OUT/gbench/$b.txt)" >&2
    failed+=("$b")
  fi
done
((${#benches[@]})) || echo "perf-micro: no Google Benchmark binaries in $BUILD"

# ---- go-bridge benchmarks ---------------------------------------------------------------------
if [[ -f "$ROOT/go-bridge/go.mod" ]]; then
  go_args=(-run '^$' -bench . -benchmem)
  if ((FAST)); then go_args+=(-count 6 -benchtime 100ms); else go_args+=(-count 10); fi
  echo "perf-micro: (go-bridge) go test ${go_args[*]}"
  read -r -a FLAGS <<<"${GO_BUILD_FLAGS:-}"
  if ! (cd "$ROOT/go-bridge" && go test "${FLAGS[@]}" "${go_args[@]}" .) >"$OUT/go-bench.txt" 2>&1; then
    echo "perf-micro: go-bridge benchmarks FAILED (see $OUT/go-bench.txt)" >&2
    failed+=(go-bridge)
  fi
  grep -E '^Benchmark' "$OUT/go-bench.txt" | sort -u -k1,1 || echo "perf-micro: go-bridge has no benchmarks yet"
else
  echo "perf-micro: go-bridge/ is not there: no Go benchmarks"
fi

{
  git -C "$ROOT" rev-parse HEAD
  git -C "$ROOT" status --porcelain | grep -q . && echo "dirty work tree" || echo "clean work tree"
} >"$OUT/micro-commit.txt"
echo "perf-micro: results in $OUT"
if ((${#failed[@]})); then
  echo "perf-micro: FAILED: ${failed[*]}" >&2
  exit 1
fi
