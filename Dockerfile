# syntax=docker/dockerfile:1
# sealed-secrets-rs controller image (also carries kubeseal, for `kubectl exec` recovery work).
#
#   docker build -t ghcr.io/sealed-secrets-rs/sealed-secrets-controller:0.1.0 .
#
# Stage 1 builds both release binaries from the locked dependency graph. Stage 2 is distroless
# "cc" (glibc + libgcc, CA roots, no shell, no package manager): the binaries link glibc
# dynamically (aws-lc-rs), so the fully static distroless image would not run them.
# Not built in this repository's CI (no Docker engine on the CI machines): keep it this simple.
# Without Docker or a registry, `bash release/build.sh` assembles an equivalent OCI image (same
# binaries, glibc/libgcc from Debian 12, CA roots, USER 1001, ports, entrypoint) from the host.
# That release image has no base image to pin: its content is the exact Debian package versions
# it records in /usr/share/doc/sealed-secrets-rs/debian-packages.txt. The two bases below are
# not pinned by digest: this project's machines reach no container registry, so no digest could
# be verified here. Pin them (`FROM image:tag@sha256:...`) where the image is built.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# aws-lc-sys compiles C and needs cmake + clang for its build script on some targets.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sealed-secrets-controller -p kubeseal \
 && install -D -m 0755 target/release/sealed-secrets-controller /out/sealed-secrets-controller \
 && install -D -m 0755 target/release/kubeseal /out/kubeseal

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="sealed-secrets-rs controller" \
      org.opencontainers.image.source="https://github.com/sealed-secrets-rs/sealed-secrets-rs" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/sealed-secrets-controller /out/kubeseal /usr/local/bin/
# Same uid as upstream's image, so existing PodSecurity settings (runAsUser: 1001) keep working.
USER 1001:1001
# 8080: /healthz, /v1/cert.pem, /v1/verify, /v1/rotate; 8081: /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/sealed-secrets-controller"]
