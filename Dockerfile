# syntax=docker/dockerfile:1
# task-mcp serve in a small image: built with the official Rust image, run on Debian slim as a non-root
# user. `docker build -t task-mcp .` then see compose.yaml for PostgreSQL and Redis beside it.

FROM rust:1-bookworm AS build
WORKDIR /src
# Only what the binary is built from (the dashboard's assets and the migrations are embedded in it).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sql ./sql
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin task-mcp \
    && install -m 0755 target/release/task-mcp /usr/local/bin/task-mcp

FROM debian:bookworm-slim
# CA certificates: the OAuth issuer's metadata and keys are fetched over https (OAUTH_ISSUER).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged uid that owns only the data directory (the embedded store and the generated
# secrets live there when no DATABASE_URL / JWT_SECRET is given).
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home --shell /usr/sbin/nologin task-mcp
COPY --from=build /usr/local/bin/task-mcp /usr/local/bin/task-mcp
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=8000 \
    TASK_MCP_DATA_DIR=/data \
    RUST_LOG=info
VOLUME ["/data"]
EXPOSE 8000
# The binary asks the server itself: no curl or wget in the image.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["task-mcp", "health"]
ENTRYPOINT ["task-mcp"]
CMD ["serve"]
