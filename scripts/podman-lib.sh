#!/usr/bin/env bash
# Shared by scripts/build-images.sh and scripts/test-pod.sh (source it; it defines functions only).
#
# podman on this kind of host needs two settings, both applied here and nowhere else:
#   - a containers.conf with `default_ulimits = []` (the default ulimits fail with
#     "setrlimit ... Operation not permitted"), passed with CONTAINERS_CONF;
#   - the runc OCI runtime (crun fails with "cgroups in hybrid mode not supported").
# `pm ARGS...` runs podman with both. Needs root.
#
# Base images: there is no registry, so the public base images the Dockerfile defaults to are
# replaced by images made locally from Debian's packages and the Go module proxy:
#   localhost/simpaisa/debian:12          debootstrap --variant=minbase bookworm (stands for debian:12 and debian:12-slim)
#   localhost/simpaisa/golang:<go>-bookworm   that image + gcc/libc6-dev + the Go toolchain zip from the module proxy
# They are cached in podman's store between runs on the same machine (reused when present);
# PKG_REBUILD_BASE=1 makes them again from nothing.

PKG_STATE="${PKG_STATE:-/var/tmp/simpaisa-pkg}"
PKG_CONTAINERS_CONF="$PKG_STATE/containers.conf"
PKG_DEBIAN_IMAGE="localhost/simpaisa/debian:12"
# Debian mirror for debootstrap; the host's own is used when it can be read from its sources.
PKG_DEBIAN_MIRROR="${PKG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

pkg_log() { printf 'pkg: %s\n' "$*" >&2; }
pkg_die() { printf 'pkg: FAIL: %s\n' "$*" >&2; exit 1; }

pm() { CONTAINERS_CONF="$PKG_CONTAINERS_CONF" podman --runtime runc "$@"; }

# Installs podman, runc, debootstrap, podman-compose and writes the containers.conf. Idempotent.
pkg_podman_setup() {
  [[ "$(id -u)" == 0 ]] || pkg_die "podman here runs as root (rootful); run this as root"
  local pkgs=(podman runc catatonit golang-github-containernetworking-plugin-dnsname debootstrap podman-compose uidmap curl ca-certificates jq) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    pkg_log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  mkdir -p "$PKG_STATE"
  # [engine] runtime: for podman-compose, which runs plain `podman` with this file.
  printf '# written by scripts/podman-lib.sh\n[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' \
    >"$PKG_CONTAINERS_CONF"
  pm info --format '{{.Host.OCIRuntime.Name}} {{.Version.Version}}' >/dev/null \
    || pkg_die "podman does not start with $PKG_CONTAINERS_CONF and runc"
}

pkg_image_exists() { pm image exists "$1"; }

# localhost/simpaisa/debian:12 from debootstrap (about 50 s), unless cached.
pkg_debian_base() {
  if [[ "${PKG_REBUILD_BASE:-0}" != 1 ]] && pkg_image_exists "$PKG_DEBIAN_IMAGE"; then
    pkg_log "base image $PKG_DEBIAN_IMAGE: cached"
    return 0
  fi
  local dir="$PKG_STATE/rootfs-bookworm"
  rm -rf "$dir"
  pkg_log "base image $PKG_DEBIAN_IMAGE: debootstrap --variant=minbase bookworm ($PKG_DEBIAN_MIRROR)"
  debootstrap --variant=minbase bookworm "$dir" "$PKG_DEBIAN_MIRROR" >"$PKG_STATE/debootstrap.log" 2>&1 \
    || { tail -20 "$PKG_STATE/debootstrap.log" >&2; pkg_die "debootstrap failed (log: $PKG_STATE/debootstrap.log)"; }
  # Same apt settings as the official debian:12-slim image: no caches, no docs, no recommends.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  # PATH and CMD as the official debian:12 image sets them (an imported image has no config at all).
  tar -C "$dir" -c . | pm import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' --quiet - "$PKG_DEBIAN_IMAGE" >/dev/null
  rm -rf "$dir"
  pkg_log "base image $PKG_DEBIAN_IMAGE: made"
}

# localhost/simpaisa/golang:<ver>-bookworm: the Debian base, cgo's C toolchain, and the Go toolchain
# zip the module proxy serves for GOTOOLCHAIN=$GO_VERSION, checked against GO_TOOLCHAIN_ZIP_SHA256.
pkg_go_base() {
  local ver="${GO_VERSION#go}" image="localhost/simpaisa/golang:${GO_VERSION#go}-bookworm"
  PKG_GO_IMAGE="$image"
  if [[ "${PKG_REBUILD_BASE:-0}" != 1 ]] && pkg_image_exists "$image"; then
    pkg_log "base image $image: cached"
    return 0
  fi
  local proxy="${GOPROXY_URL:-https://proxy.golang.org}"
  pkg_log "base image $image: $PKG_DEBIAN_IMAGE + Go toolchain $GO_VERSION from $proxy"
  pm build -q -t "$image" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg BASE="$PKG_DEBIAN_IMAGE" --build-arg GO_VERSION="$GO_VERSION" \
    --build-arg GO_ZIP_SHA256="$GO_TOOLCHAIN_ZIP_SHA256" --build-arg GOPROXY_URL="$proxy" \
    -f - "$PKG_STATE" >/dev/null <<'CONTAINERFILE'
ARG BASE
FROM ${BASE}
ARG GO_VERSION
ARG GO_ZIP_SHA256
ARG GOPROXY_URL
# The CA bundle is the host's, mounted read-only for this build only; the image does not keep it.
RUN apt-get -o Acquire::Retries=3 update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev curl unzip git \
 && rm -rf /var/lib/apt/lists/* \
 && zip="v0.0.1-${GO_VERSION}.linux-amd64.zip" \
 && curl -fsSL --retry 3 -o /tmp/go.zip "${GOPROXY_URL}/golang.org/toolchain/@v/${zip}" \
 && echo "${GO_ZIP_SHA256}  /tmp/go.zip" | sha256sum -c - \
 && unzip -q /tmp/go.zip -d /tmp/go \
 && mv "/tmp/go/golang.org/toolchain@v0.0.1-${GO_VERSION}.linux-amd64" /usr/local/go \
 && rm -rf /tmp/go /tmp/go.zip \
 && /usr/local/go/bin/go version
ENV PATH=/usr/local/go/bin:/root/go/bin:$PATH GOTOOLCHAIN=${GO_VERSION} CGO_ENABLED=1
CONTAINERFILE
  pkg_log "base image $image: made"
}
