#!/usr/bin/env bash
# Builds every container image of the product that can be built on this machine, from a clean
# machine, with podman (installed and configured here: scripts/podman-lib.sh):
#
#   localhost/simpaisa/filterd:dev           Dockerfile target `filterd`
#   localhost/simpaisa/gateway-harness:dev   Dockerfile target `gateway-harness` (harness + plugin)
#   localhost/simpaisa/demo-backend:dev      Dockerfile target `demo-backend`
#
# The Dockerfile's base-image arguments point at images made locally (debootstrap + the Go module
# proxy), because there is no registry here; a real cluster build uses the public defaults
# (docs/deployment.md). The production `gateway` target (official KrakenD image + krakend/builder)
# cannot be built here and is not attempted.
#
# Layers are reused between runs (podman's cache); base images are cached in podman's store.
# Usage: scripts/build-images.sh [--only filterd|gateway-harness|demo-backend]...
# Env: PKG_REBUILD_BASE=1 remakes the base images; JOBS (default 2) for the C++ build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../versions.env
source versions.env
# shellcheck source=podman-lib.sh
source scripts/podman-lib.sh

TARGETS=()
while (($#)); do
  case "$1" in
    --only) TARGETS+=("$2"); shift ;;
    *) pkg_die "unknown argument $1" ;;
  esac
  shift
done
((${#TARGETS[@]})) || TARGETS=(filterd gateway-harness demo-backend)

pkg_podman_setup
pkg_debian_base
need_go=0
for t in "${TARGETS[@]}"; do [[ "$t" == filterd ]] || need_go=1; done
((need_go)) && pkg_go_base

BUILD_ARGS=(
  --build-arg "DEBIAN_BUILD_IMAGE=$PKG_DEBIAN_IMAGE"
  --build-arg "DEBIAN_RUNTIME_IMAGE=$PKG_DEBIAN_IMAGE"
  --build-arg "GOLANG_IMAGE=localhost/simpaisa/golang:${GO_VERSION#go}-bookworm"
  --build-arg "JOBS=${JOBS:-2}"
  --build-arg "GATEWAY_UID=$GATEWAY_UID" --build-arg "FILTERD_UID=$FILTERD_UID" --build-arg "POD_GID=$POD_GID"
)

for t in "${TARGETS[@]}"; do
  case "$t" in
    filterd | gateway-harness | demo-backend) ;;
    *) pkg_die "unknown image target $t (buildable here: filterd, gateway-harness, demo-backend)" ;;
  esac
  image="localhost/simpaisa/$t:dev"
  pkg_log "building $image (Dockerfile target $t)"
  t0=$SECONDS
  # --layers: reuse cached layers; the host CA bundle is mounted for the module proxy (HTTPS) only.
  pm build --layers --target "$t" -t "$image" "${BUILD_ARGS[@]}" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -f Dockerfile . >"$PKG_STATE/build-$t.log" 2>&1 \
    || { tail -40 "$PKG_STATE/build-$t.log" >&2; pkg_die "image $image did not build (log: $PKG_STATE/build-$t.log)"; }
  pkg_log "built $image in $((SECONDS - t0)) s ($(pm image inspect --format '{{.Size}}' "$image" | numfmt --to=iec) bytes)"
done
