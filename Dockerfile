# syntax=docker/dockerfile:1
# pfc-server image: a Swift builder stage compiles the release binary (Swift stdlib and Foundation
# linked statically), and a slim Debian runtime carries only that binary and the shared C libraries
# it links (OpenBLAS, libpq, SQLite, OpenSSL). Migrations and openapi.yaml are compiled in.
#   docker build -t pfc-server .
#   docker run -p 8080:8080 -v pfc-data:/data pfc-server            # embedded SQLite in /data
#   docker run -p 8080:8080 -e PFC_DATABASE_URL=postgres://… pfc-server
# scripts/check-deploy.sh keeps the apt packages and build command here in step with
# scripts/setup.sh and CI.

# The toolchain CI builds with; override with --build-arg SWIFT_VERSION=6.x.
ARG SWIFT_VERSION=6.3

FROM swift:${SWIFT_VERSION}-bookworm AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas-dev libpq-dev libsqlite3-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so editing sources does not refetch them (Package.resolved is optional).
COPY Package.swift Package.resolve[d] ./
RUN swift package resolve
COPY . .
RUN swift build -c release --product pfc-server --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/pfc-server" /out/pfc-server

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0 libpq5 libsqlite3-0 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pfc \
 && useradd --system --uid 10001 --gid pfc --home-dir /data --no-create-home --shell /usr/sbin/nologin pfc \
 && install -d -o pfc -g pfc -m 0750 /data
COPY --from=builder /out/pfc-server /usr/local/bin/pfc-server
# The data directory: the SQLite file (<data dir>/pfc.sqlite) when no PFC_DATABASE_URL is given,
# and the first start's default API key (a 0600 file).
ENV PFC_DATA_DIR=/data
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["pfc-server"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
