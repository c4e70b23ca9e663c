# syntax=docker/dockerfile:1
#
# Gateway harness (lura v2.13.0) + filter-bridge plugin + filterd + demo backend, in one image, as
# STD-API-034 asks: a multi-stage build that compiles the plugin and copies the .so into the runtime
# image, with the versions pinned in versions.env.
#
# NOT BUILT OR TESTED HERE: the development machine has no Docker engine. Every step below mirrors a
# command that IS run and tested here (scripts/install-deps.sh, the CMake/Ninja build of filterd,
# scripts/build-go.sh); keep them in step. The tests run the same binaries as plain processes
# (scripts/test-e2e.sh).
#
# This is NOT a KrakenD CE image: KrakenD CE cannot be fetched from the Go module proxy here (403), so
# the gateway is the lura-based harness in gateway/ (docs/gateway-harness.md).
#
#   docker build -t simpaisa-gateway-harness .
#   docker compose -f compose/docker-compose.yml up

# ---- filterd (C++20), with the Debian 12 packages of scripts/install-deps.sh ---------------------------
FROM debian:12 AS filterd-build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt versions.env ./
COPY protocol/ protocol/
COPY daemon/ daemon/
COPY filters/ filters/
COPY tests/ tests/
COPY perf/ perf/
COPY fuzz/ fuzz/
COPY tools/ tools/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build filterd

# ---- harness + plugin: ONE toolchain, ONE set of flags -------------------------------------------------
# The tag must equal GO_VERSION in versions.env (go1.26.8) on Debian 12 (bookworm, the runtime's glibc).
# scripts/build-go.sh checks the toolchain against versions.env and fails the build if they differ:
# a plugin built by another toolchain or with other flags does not load.
FROM golang:1.26.8-bookworm AS go-build
WORKDIR /src
COPY versions.env ./
COPY scripts/build-go.sh scripts/build-go.sh
COPY gateway/go.mod gateway/go.sum gateway/
COPY go-bridge/go.mod go-bridge/go.sum go-bridge/
RUN cd gateway && go mod download && cd ../go-bridge && go mod download
COPY gateway/ gateway/
COPY go-bridge/ go-bridge/
# build-go.sh also really loads the built plugin (gateway-harness -test-plugin); a failure fails the build.
RUN CGO_ENABLED=1 bash scripts/build-go.sh --out /out

# ---- runtime ------------------------------------------------------------------------------------------
FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libstdc++6 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=filterd-build /src/build/filterd /app/bin/filterd
COPY --from=go-build /out/bin/gateway-harness /out/bin/demo-backend /app/bin/
# conf/gateway.example.json names the plugin folder "out/plugins", relative to /app.
COPY --from=go-build /out/plugins/ /app/out/plugins/
COPY versions.env /app/versions.env
COPY conf/ /app/conf/
USER 10001
EXPOSE 8080
# Readiness: /__ready is 200 only when the plugin is loaded and filterd answers through it.
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:8080/__ready || exit 1
ENTRYPOINT ["/app/bin/gateway-harness"]
CMD ["-c", "/app/conf/gateway.example.json"]
