# shellcheck shell=bash
# Shared by the perf scripts that drive filterd alone (perf-redis.sh, perf-slice.sh). Source it after
# setting ROOT and BUILD.

# perf_build: filterd and filterd-loadgen in $BUILD, configured RelWithDebInfo without tests when new.
perf_build() {
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFILTERD_BUILD_TESTS=OFF >/dev/null
  fi
  ninja -C "$BUILD" filterd filterd-loadgen >/dev/null
}

# perf_rundir NAME: RUN, a fresh directory under /tmp, and PIDS, the processes to stop; at exit every
# one of PIDS is killed and RUN is removed.
perf_rundir() {
  RUN="$(mktemp -d "/tmp/filterd-$1-XXXXXX")"
  PIDS=()
  trap perf_cleanup EXIT
}

perf_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
