# syntax=docker/dockerfile:1.7
# vneid-sync image: `docker build -t vneid-sync:latest .` (from the repository root), or `docker compose
# build` in deploy/. Two stages: the builder installs the locked dependencies (uv.lock) and the project into
# /opt/vneid-sync/.venv; the runtime stage copies that venv onto a slim Python with the XML-security runtime
# libraries and runs as the unprivileged user vneid-sync (uid/gid 10001).

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ------------------------------------------------------------------------------------------------ builder
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
# Compilers and headers only for a dependency without a wheel for this platform; none reach the runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libxml2-dev libxmlsec1-dev \
 && rm -rf /var/lib/apt/lists/*
ENV UV_PROJECT_ENVIRONMENT=/opt/vneid-sync/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first (their layer is reused while only the code changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-install-project --no-editable
# Then the project itself, installed as a regular (non-editable) package: the runtime needs no /src.
COPY worker ./worker
COPY adapters ./adapters
COPY schemas ./schemas
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable \
 && /opt/vneid-sync/.venv/bin/vneid-sync --version

# ------------------------------------------------------------------------------------------------ runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# libxml2 / libxmlsec1 (+ the xmlsec1 verifier CLI) for XML signatures; CA certificates for the gateway's
# TLS; tzdata for Asia/Ho_Chi_Minh. A PKCS#11 token additionally needs its vendor's module (see
# docs/operations.md); it is not part of this image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libxml2 libxmlsec1 libxmlsec1-openssl xmlsec1 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vneid-sync \
 && useradd --system --uid 10001 --gid vneid-sync --home-dir /var/lib/vneid-sync --no-create-home \
      --shell /usr/sbin/nologin vneid-sync \
 && install -d -o vneid-sync -g vneid-sync -m 0750 /var/lib/vneid-sync \
 && install -d -o root -g vneid-sync -m 0750 /etc/vneid-sync
# Same base image and path as the builder, so the venv's interpreter links stay valid.
COPY --from=builder /opt/vneid-sync/.venv /opt/vneid-sync/.venv
ENV PATH=/opt/vneid-sync/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TZ=Asia/Ho_Chi_Minh
USER vneid-sync
WORKDIR /var/lib/vneid-sync
# Flower (5555), Prometheus metrics (9464), the staging gateway simulator (8765).
EXPOSE 5555 9464 8765
# Ledger and broker reachable, schema current. Not the gateway (a real token call) nor the certificate
# (opens the key or token): run the full `vneid-sync health` on demand.
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
  CMD ["vneid-sync", "health", "--skip", "his", "--skip", "gateway", "--skip", "certificate"]
ENTRYPOINT ["vneid-sync"]
CMD ["--help"]
