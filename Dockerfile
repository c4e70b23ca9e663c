# syntax=docker/dockerfile:1
#
# The product's container images, multi-stage, every version pinned (versions.env):
#
#   target             image                                     built and tested here?
#   filterd            filterd sidecar (Debian 12 slim, UID 10002)  yes (scripts/build-images.sh, scripts/test-pod.sh)
#   gateway-harness    the gateway for OUR TESTS: the gateway harness (a faithful KrakenD CE 2.12.1,
#                      docs/gateway-harness.md) + the filter-bridge plugin, laid out like the official
#                      KrakenD image (/usr/bin/krakend, /etc/krakend, /opt/krakend/plugins)   yes
#   demo-backend       echo/count backend for the pod and compose tests                       yes
#   gateway            PRODUCTION: the official KrakenD CE 2.12.1 image + the plugin built by
#                      krakend/builder:2.12.1 (Alpine/musl)                                   NO, see below
#
# Base images are build arguments. They default to the public images a real build pulls; the tests
# point them at images made locally from Debian's packages and the Go module proxy, because the
# test machine has no registry (scripts/podman-lib.sh):
#
#   podman build --target filterd -t simpaisa/filterd:1.0.0 .                  # real cluster build
#   bash scripts/build-images.sh                                               # the local, tested build
#
# The `gateway` and `plugin-builder-official` stages CANNOT BE BUILT ON THE DEVELOPMENT MACHINE: the official
# `krakend` and `krakend/builder` images cannot be pulled there (no registry). They are kept as close
# as possible to the tested `gateway-harness` stage: same plugin source, same Go version (1.25.6,
# KrakenD CE 2.12.1's release toolchain), no -trimpath, CGO on, same paths, same user-facing config.
# The one difference is the libc: the official image is Alpine (musl), so its plugin must be built by
# krakend/builder on musl; the tested image is Debian 12 (glibc 2.36) and its plugin is built by the
# Go stage below. A plugin is only ever loaded by a gateway built with the same toolchain, flags and libc.
#
# Real KrakenD CE's code and binaries are never part of this repository; the `gateway` stage only
# starts FROM the official image.

ARG DEBIAN_BUILD_IMAGE=debian:12
ARG DEBIAN_RUNTIME_IMAGE=debian:12-slim
ARG GOLANG_IMAGE=golang:1.25.6-bookworm
ARG KRAKEND_IMAGE=krakend:2.12.1
ARG KRAKEND_BUILDER_IMAGE=krakend/builder:2.12.1

# ---- filterd: build from source (C++20, CMake + Ninja, Debian 12 packages) ------------------------------
FROM ${DEBIAN_BUILD_IMAGE} AS filterd-build
ARG JOBS=2
# The build subset of scripts/install-deps.sh: compiler, CMake/Ninja and the libraries filterd links.
RUN apt-get -o Acquire::Retries=3 update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      cmake ninja-build g++ pkg-config libboost1.81-dev flatbuffers-compiler libflatbuffers-dev \
      libfmt-dev libssl-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY protocol/ protocol/
COPY core/ core/
COPY filters/ filters/
COPY daemon/ daemon/
COPY tools/ tools/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFILTERD_BUILD_TESTS=OFF \
      -DFILTERD_BUILD_BENCHMARKS=OFF -DFILTERD_BUILD_FUZZERS=OFF >/dev/null \
 && ninja -C build -j "${JOBS}" filterd \
 && strip build/filterd

# ---- filterd: runtime ------------------------------------------------------------------------------------
# Non-root with a fixed UID/GID; works with a read-only root filesystem: filterd writes only its socket,
# in /run/filterd, which is meant to be a volume shared with the gateway (an emptyDir in the pod).
# Secrets arrive as files (a Secret volume) or environment variables named by the config, never baked in.
FROM ${DEBIAN_RUNTIME_IMAGE} AS filterd
# Explicit, not inherited: the same PATH as the official images set, whatever the base image's config.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARG FILTERD_UID=10002
ARG POD_GID=10000
RUN apt-get -o Acquire::Retries=3 update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libssl3 libfmt9 libflatbuffers2 libhiredis0.14 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid "${POD_GID}" filterd-pod \
 && useradd --system --uid "${FILTERD_UID}" --gid "${POD_GID}" --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin filterd \
 && install -d -o "${FILTERD_UID}" -g "${POD_GID}" -m 0770 /run/filterd \
 && install -d -m 0755 /etc/filterd
COPY --from=filterd-build /src/build/filterd /usr/local/bin/filterd
# Fails the image build if a shared library is missing from the runtime.
RUN ! ldd /usr/local/bin/filterd | grep 'not found' && /usr/local/bin/filterd --help >/dev/null
USER ${FILTERD_UID}:${POD_GID}
VOLUME ["/run/filterd"]
# SIGTERM starts filterd's drain: it stops accepting, finishes the requests in flight, and exits
# within limits.drain_timeout_ms (default 5 s). The pod's terminationGracePeriodSeconds covers it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/filterd"]
CMD ["--config", "/etc/filterd/filterd.json"]

# ---- Go: gateway harness, plugin, demo backend; ONE toolchain (go1.25.6), no -trimpath, CGO on --------
FROM ${GOLANG_IMAGE} AS go-build
ENV CGO_ENABLED=1
WORKDIR /src
COPY versions.env ./
COPY scripts/build-go.sh scripts/build-plugin.sh scripts/
COPY gateway/go.mod gateway/go.sum gateway/
COPY go-bridge/go.mod go-bridge/go.sum go-bridge/
COPY tools/gateway-lint/go.mod tools/gateway-lint/go.sum tools/gateway-lint/
RUN . ./versions.env && export GOTOOLCHAIN="$GO_VERSION" \
 && (cd gateway && go mod download) && (cd go-bridge && go mod download) && (cd tools/gateway-lint && go mod download)
COPY gateway/ gateway/
COPY go-bridge/ go-bridge/
COPY tools/gateway-lint/ tools/gateway-lint/
# build-go.sh checks the toolchain against versions.env and builds with GO_BUILD_FLAGS. The built
# plugin is then checked against the built gateway (toolchain, flags, libc: like `krakend
# check-plugin`) and really loaded by it (like `krakend test-plugin`); a failure fails the image build.
# The Go build cache is a cache mount: a rebuild after a plugin change recompiles only the plugin.
RUN --mount=type=cache,target=/root/.cache/go-build \
    . ./versions.env && export GOTOOLCHAIN="$GO_VERSION" && bash scripts/build-go.sh --out /out
RUN . ./versions.env \
 && /out/bin/gateway-harness verify-plugin -g "${GO_VERSION#go}" -l "$LIBC_VERSION" /out/plugins/simpaisa-plugin-filter-bridge.so \
 && /out/bin/gateway-harness test-plugin -m /out/plugins/simpaisa-plugin-filter-bridge.so

# ---- gateway for the tests: the harness laid out like the official KrakenD image ------------------------
FROM ${DEBIAN_RUNTIME_IMAGE} AS gateway-harness
# Explicit, not inherited: the same PATH as the official images set, whatever the base image's config.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARG GATEWAY_UID=10001
ARG POD_GID=10000
RUN groupadd --system --gid "${POD_GID}" filterd-pod \
 && useradd --system --uid "${GATEWAY_UID}" --gid "${POD_GID}" --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin krakend \
 && install -d -m 0755 /etc/krakend /opt/krakend/plugins
COPY --from=go-build /out/bin/gateway-harness /usr/bin/krakend
COPY --from=go-build /out/plugins/simpaisa-plugin-filter-bridge.so /opt/krakend/plugins/
# KrakenD's usage reporting is off in every image and deployment of this product.
ENV USAGE_DISABLE=1
USER ${GATEWAY_UID}:${POD_GID}
WORKDIR /etc/krakend
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/krakend"]
CMD ["run", "-c", "/etc/krakend/krakend.json"]

# ---- demo backend (tests only) ---------------------------------------------------------------------------
FROM ${DEBIAN_RUNTIME_IMAGE} AS demo-backend
# Explicit, not inherited: the same PATH as the official images set, whatever the base image's config.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=go-build /out/bin/demo-backend /usr/local/bin/demo-backend
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/demo-backend"]
CMD ["-listen", "127.0.0.1:8081"]

# ---- PRODUCTION plugin: built by KrakenD's own builder image (Alpine/musl, Go 1.25.6) -------------------
# NOT BUILT HERE: krakend/builder cannot be pulled on the development machine. krakend/builder:2.12.1
# carries KrakenD CE 2.12.1's exact toolchain and libc; a plugin built any other way does not load into
# the official image. The flags are the tested ones: -buildmode=plugin, no -trimpath, CGO on.
FROM ${KRAKEND_BUILDER_IMAGE} AS plugin-builder-official
WORKDIR /app
COPY go-bridge/ ./
RUN CGO_ENABLED=1 go build -buildmode=plugin -o /plugins/simpaisa-plugin-filter-bridge.so .

# ---- PRODUCTION gateway: the official KrakenD CE 2.12.1 image + the plugin -------------------------------
# NOT BUILT HERE (the official image cannot be pulled on the development machine). The checks KrakenD
# itself provides run at build time: a plugin that would not load fails the image build.
FROM ${KRAKEND_IMAGE} AS gateway
COPY --from=plugin-builder-official /plugins/simpaisa-plugin-filter-bridge.so /opt/krakend/plugins/
COPY go-bridge/go.sum /tmp/plugin-go.sum
ENV USAGE_DISABLE=1
RUN krakend test-plugin -m /opt/krakend/plugins/simpaisa-plugin-filter-bridge.so \
 && krakend check-plugin -g 1.25.6 -l musl-1.2.5 -s /tmp/plugin-go.sum
# The official image's entrypoint and user are kept: /usr/bin/krakend run -c /etc/krakend/krakend.json.
