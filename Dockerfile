# syntax=docker/dockerfile:1
# The `waas` image: one binary for every role (gateway, control-plane, migrate, CLI).
#   docker build -t waas .
#   docker run --rm -p 8080:8080 -e WAAS_NATS=nats://nats:4222 waas gateway
# See docs/deploy.md (Containers) and deploy/compose.yaml.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# --locked: exactly the versions in Cargo.lock, as CI tested them. The caches keep the registry
# and build between runs of the same builder; the binary is copied out of the cached target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p waas \
 && install -D -m 0755 target/release/waas /out/waas

# distroless/cc: glibc and CA certificates, no shell, no package manager; the :nonroot tag runs
# as uid/gid 65532. Nothing is written to the file system, so it runs read-only.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/waas /usr/local/bin/waas
COPY LICENSE /usr/share/doc/waas/LICENSE
USER 65532:65532
# Every role listens on this address unless --listen or WAAS_LISTEN says otherwise.
ENV WAAS_LISTEN=0.0.0.0:8080
EXPOSE 8080
# No curl in the image: `waas healthcheck` asks /healthz on WAAS_LISTEN's port over loopback
# (`--path /readyz` for a gateway's readiness).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/waas", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/waas"]
CMD ["--help"]
