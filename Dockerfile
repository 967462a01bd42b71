# syntax=docker/dockerfile:1
# Tributary: the service and its bundled adapter plugins, as a non-root container.
#
#   docker build -t tributary .
#   docker run -v tributary-data:/var/lib/tributary \
#     -v "$PWD/tributary.toml:/etc/tributary/tributary.toml:ro" -p 8080:8080 -p 50051:50051 tributary
#
# Listening beyond loopback needs TLS and gRPC credentials in the mounted config (the service
# refuses to start otherwise); keep `[ops] http_listen = "127.0.0.1:9090"`: HEALTHCHECK uses it.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The service and one cdylib per bundled adapter (plugins must unwind: the workspace's profile).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p tributary \
        -p tributary-adapter-arcadia -p tributary-adapter-finicity -p tributary-adapter-klavi \
        -p tributary-adapter-standard-webhooks \
    && mkdir -p /out/plugins \
    && cp target/release/tributary /out/ \
    && cp target/release/libtributary_adapter_*.so /out/plugins/

FROM debian:bookworm-slim
# The tag fixes the Debian release; rebuilds pick up its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tributary \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tributary \
        --shell /usr/sbin/nologin tributary \
    && install -d -o tributary -g tributary -m 0700 /var/lib/tributary \
    && install -d -o root -g root -m 0755 /opt/tributary/plugins /etc/tributary
COPY --from=build /out/tributary /usr/local/bin/tributary
# Root-owned and read-only to the service: it refuses a plugin directory or library that
# anyone but its owner (root or the service user) can write.
COPY --from=build --chown=root:root --chmod=0755 /out/plugins/ /opt/tributary/plugins/
COPY --chown=root:root --chmod=0644 deploy/tributary.toml /etc/tributary/tributary.toml

ENV TRIBUTARY_CONFIG=/etc/tributary/tributary.toml \
    TRIBUTARY_DATA_DIR=/var/lib/tributary \
    TRIBUTARY_PLUGIN_DIR=/opt/tributary/plugins \
    TRIBUTARY_LOG_FORMAT=json
# The event log (redb file, installation key) and the adapter libraries (a named volume starts
# with the bundled ones; mount your own directory to add adapters without rebuilding).
VOLUME ["/var/lib/tributary", "/opt/tributary/plugins"]
EXPOSE 8080 50051
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:9090/readyz || exit 1"]
ENTRYPOINT ["/usr/local/bin/tributary"]
CMD ["serve"]
