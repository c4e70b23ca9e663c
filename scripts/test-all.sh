#!/usr/bin/env bash
# The one test command (README "Run every test"; .ci/run calls it). On a fresh Debian 12 machine it
# installs what it needs, builds everything, and runs every test of the project:
#   1. the STD-API-034 compliance matrix, Go static checks, C++ format of every C++ file
#   2. C++ build (warnings as errors), Catch2 tests and fuzz-corpus replays (ctest)
#   3. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer, then ThreadSanitizer
#   4. C++ line coverage of core/, daemon/, filters/, protocol/ (at least 80%)
#   5. Go: go-bridge (race, coverage, build.sh checks), gateway harness, gateway-lint, the Go SPV1
#      signer (shared vectors), kubecheck, perf tooling unit tests
#   6. gateway configs: KrakenD's own v2.12 schema (gateway-harness check --lint-no-network) and
#      gateway-lint on every shipped gateway config and deployment file
#   7. end-to-end: gateway harness + plugin + filterd + backend (+ Redis) on loopback (test-e2e.sh)
#   8. the containers and the Kubernetes pod with podman (scripts/test-pod.sh)
#   9. the performance regression gate (scripts/perf-gate.sh)
# In stages 2 and 3, a ctest failure names its tests in the final summary; a test that fails without a
# sanitizer report runs once more, and if it passes then it is reported as FLAKY there (run_ctest).
# Set SKIP_ASAN=1, SKIP_TSAN=1, SKIP_COVERAGE=1, SKIP_POD=1 or SKIP_PERF=1 to skip a stage locally (a
# skipped stage is announced); CI runs them all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export PATH="$PATH:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"

bash scripts/install-deps.sh
# shellcheck source=../versions.env
source versions.env
export GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1 # KrakenD CE release toolchain (versions.env)

BUILD="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-2}"
passed=0
failed=0
failures=()
# Stages run in subshells; what they have to say in the summary (failed or flaky test names) goes here.
NOTES="$(mktemp)"
trap 'rm -f "$NOTES"' EXIT

stage() {
  local name="$1"
  shift
  echo
  echo "=== test-all: $name"
  local t0=$SECONDS rc
  # In a subshell with `set -e`, not as an `if` condition: there bash ignores `set -e`, and a stage
  # whose build failed would pass on the status of its last command (a ctest that found no tests).
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "=== test-all: $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== test-all: $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

# ctest in build dir $1, $2 s the timeout of a test that sets none. Each failing test is named in the
# summary (CI shows the end of the log). A test that failed without a sanitizer report runs once
# more: if it passes then, the stage passes and the summary names it as flaky; a sanitizer report, or
# a second failure, fails the stage.
run_ctest() {
  local b="$1" timeout="$2" log="$1/ctest-output.log" failed="$1/Testing/Temporary/LastTestsFailed.log" rc=0
  rm -f "$failed" # ctest leaves it behind after a clean run: only this run's failures may be named
  ctest --test-dir "$b" --output-on-failure --no-tests=error --timeout "$timeout" 2>&1 | tee "$log" || rc=$?
  ((rc == 0)) && return 0
  local names=""
  [[ -f "$failed" ]] && names="$(cut -d: -f2- "$failed" | paste -sd ';' -)"
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log"; then
    echo "$(basename "$b"): sanitizer report in: ${names:-?}" >>"$NOTES"
    return 1
  elif [[ -z "$names" ]]; then
    echo "$(basename "$b"): ctest failed (exit $rc) without a failing test" >>"$NOTES"
    return 1
  fi
  echo "=== test-all: running the failed tests once more: $names"
  if ctest --test-dir "$b" --rerun-failed --output-on-failure --timeout "$timeout"; then
    echo "$(basename "$b"): FLAKY (failed, then passed): $names" >>"$NOTES"
    return 0
  fi
  echo "$(basename "$b"): failed twice: $(cut -d: -f2- "$failed" 2>/dev/null | paste -sd ';' -)" >>"$NOTES"
  return 1
}

cpp_tests() {
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFILTERD_WERROR=ON \
    -DFILTERD_BUILD_TESTS=ON -DFILTERD_BUILD_BENCHMARKS=ON >/dev/null
  ninja -C "$BUILD" -j "$JOBS"
  run_ctest "$BUILD" 300
}

asan_tests() {
  local b="$ROOT/build-asan"
  cmake -S "$ROOT" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFILTERD_SANITIZE=ON \
    -DFILTERD_BUILD_TESTS=ON -DFILTERD_BUILD_BENCHMARKS=OFF >/dev/null
  ninja -C "$b" -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$b" 600
}

# ThreadSanitizer: the same tests, built with -fsanitize=thread. No suppressions file: every report fails.
tsan_tests() {
  local b="$ROOT/build-tsan"
  cmake -S "$ROOT" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFILTERD_TSAN=ON \
    -DFILTERD_BUILD_TESTS=ON -DFILTERD_BUILD_BENCHMARKS=OFF >/dev/null
  ninja -C "$b" -j "$JOBS"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_ctest "$b" 600
}

go_unit_tests() {
  local rc=0
  # Coverage counts the hand-written packages (the plugin and its codec), not flatc's generated code;
  # at least 80 % is required.
  local cover
  cover="$(mktemp)"
  if (cd go-bridge && go test -race -count=1 -coverpkg=. -coverprofile="$cover" ./...); then
    local total
    total="$(cd go-bridge && go tool cover -func="$cover" | awk '/^total:/ {sub("%", "", $3); print $3}')"
    echo "go-bridge coverage (package main): ${total}%"
    awk -v t="$total" 'BEGIN { exit !(t >= 80) }' || { echo "go-bridge coverage below 80%"; rc=1; }
  else
    rc=1
  fi
  rm -f "$cover"
  # vet, gofmt, go mod tidy and the generated wire code against protocol/filterd.fbs
  bash go-bridge/build.sh checks || rc=1
  for m in gateway tools/gateway-lint tools/spv1 perf/load deploy/kubernetes/check; do
    if [[ -f "$m/go.mod" ]]; then
      (cd "$m" && go vet ./... && go test -count=1 ./...) || rc=1
    fi
  done
  return $rc
}

# STD-API-034 matrix and review records: every cited test, script, file and link exists (self-test first).
compliance_matrix() { bash scripts/check-compliance.sh --self-test && bash scripts/check-compliance.sh; }
# Every Go module: vet, gofmt, go mod tidy; the plugin logs only through KrakenD's logger; unsafe only in
# the FlatBuffers runtime.
go_static_checks() { bash scripts/check-go.sh; }
# clang-format-14 on every tracked C++ file (a few seconds).
cpp_format() { bash scripts/check-format.sh --all; }
# C++ line coverage of core/, daemon/, filters/, protocol/ (gcov + gcovr, build-cov/); fails below 80%.
cpp_coverage() { JOBS="$JOBS" COV_BUILD_DIR="$ROOT/build-cov" bash scripts/coverage.sh; }

# Every KrakenD config we ship passes KrakenD's own v2.12 schema and the fail-open linter; every
# deployment file that starts KrakenD sets USAGE_DISABLE=1 (a linter warning fails this stage).
gateway_configs() {
  bash scripts/build-go.sh >/dev/null
  local rc=0 schema="$ROOT/../shared/krakend-schema/v2.12/krakend.json"
  if [[ -f "$schema" ]] && ! cmp -s "$schema" gateway/cmd/gateway-harness/schema/schema.json; then
    echo "gateway/cmd/gateway-harness/schema/schema.json differs from KrakenD's published v2.12 schema ($schema)"
    rc=1
  fi
  local c
  for c in conf/gateway*.json; do
    out/bin/gateway-harness check -c "$c" --lint-no-network || rc=1
    out/bin/gateway-lint -filterd conf/filterd.example.json "$c" || rc=1
  done
  out/bin/gateway-harness check -c deploy/kubernetes/config/krakend.json --lint-no-network || rc=1
  out/bin/gateway-lint -filterd deploy/kubernetes/config/filterd.json deploy/kubernetes/config/krakend.json || rc=1
  local manifests=()
  mapfile -t manifests < <(ls Dockerfile compose/*.y*ml deploy/kubernetes/*.y*ml 2>/dev/null || true)
  if ((${#manifests[@]})); then
    local args=() m
    for m in "${manifests[@]}"; do args+=(-manifest "$m"); done
    local lint
    lint="$(out/bin/gateway-lint "${args[@]}")" || rc=1
    echo "$lint"
    grep -q '^WARNING' <<<"$lint" && { echo "a deployment file starts KrakenD without USAGE_DISABLE=1"; rc=1; }
  fi
  return $rc
}

# Containers and the Kubernetes pod, for real with podman (docs/deployment.md).
pod_tests() {
  bash scripts/test-pod.sh
}

e2e_tests() {
  E2E_BUILD_DIR="$BUILD" bash scripts/test-e2e.sh
}

perf_gate() {
  if [[ -f scripts/perf-gate.sh ]]; then
    PERF_BUILD_DIR="$BUILD" bash scripts/perf-gate.sh
  else
    echo "perf gate: scripts/perf-gate.sh not present"
    return 1
  fi
}

stage "compliance matrix (STD-API-034)" compliance_matrix
stage "Go static checks" go_static_checks
stage "C++ format (every C++ file)" cpp_format
stage "C++ build and tests" cpp_tests
if [[ "${SKIP_ASAN:-0}" != 1 ]]; then stage "C++ tests under ASan+UBSan" asan_tests; fi
if [[ "${SKIP_TSAN:-0}" != 1 ]]; then stage "C++ tests under ThreadSanitizer" tsan_tests; fi
if [[ "${SKIP_COVERAGE:-0}" != 1 ]]; then stage "C++ coverage (at least 80%)" cpp_coverage; fi
stage "Go unit tests" go_unit_tests
stage "gateway configs (KrakenD schema, gateway-lint)" gateway_configs
stage "end-to-end tests" e2e_tests
if [[ "${SKIP_POD:-0}" == 1 ]]; then
  echo; echo "=== test-all: containers and Kubernetes pod (podman): SKIPPED (SKIP_POD=1)"
else
  stage "containers and Kubernetes pod (podman)" pod_tests
fi
if [[ "${SKIP_PERF:-0}" != 1 ]]; then stage "performance regression gate" perf_gate; fi

echo
sed 's/^/test-all: /' "$NOTES"
if ((failed > 0)); then
  echo "test-all: failed stages: ${failures[*]}"
fi
echo "test-all: ${passed} passed, ${failed} failed"
((failed == 0))
