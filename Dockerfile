# The Abacus node image: Gunicorn managing Uvicorn workers, with the same Gunicorn configuration
# (abacus/node/gunicorn_conf.py) and package as the local stack. Built by `docker compose up
# --build` (service node), and loaded into a Kubernetes cluster by scripts/kind_smoke.sh.

# Both stages use the same base, so the venv built in the first runs unchanged in the second.
ARG PYTHON_IMAGE=python:3.13-slim-trixie

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only here, for any pinned package without a wheel for this platform; none of it
# reaches the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# The runtime lock (every package pinned with its hashes; requirements-dev.lock is for tests and
# tools), then the project itself without dependencies of its own: the node needs nothing else.
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md requirements.txt requirements-tools.txt /tmp/abacus/
COPY abacus/ /tmp/abacus/abacus/
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps /tmp/abacus \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="abacus-node" \
      org.opencontainers.image.description="Abacus node: the running-sum HTTP service behind the balancer"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000

# A fixed numeric id, so that runtimes can check it is not root without reading /etc/passwd.
RUN groupadd --system --gid 10001 abacus \
    && useradd --system --uid 10001 --gid abacus --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin abacus

COPY --from=builder /opt/venv /opt/venv

WORKDIR /srv/abacus
# Owned by root and read-only to the node: the process cannot change its own code (the package
# is in the venv, compiled to bytecode in the build stage: the root filesystem is read-only).
COPY scripts/healthcheck.py scripts/

USER 10001:10001

EXPOSE 8000
# Gunicorn stops gracefully on SIGTERM (graceful_timeout in abacus/node/gunicorn_conf.py): in-flight requests
# finish and queued adds commit. Compose's stop_grace_period is longer than that timeout.
STOPSIGNAL SIGTERM

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]

CMD ["gunicorn", "-c", "python:abacus.node.gunicorn_conf"]
