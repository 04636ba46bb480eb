# syntax=docker/dockerfile:1
#
# oneScreen service image: production mode by default, non-root, no secrets inside.
#
#   docker build -t onescreen:0.1.0 .
#   docker run --rm -p 8000:8000 --env-file onescreen.env \
#     -v /path/to/jwks.json:/var/run/secrets/onescreen/jwt/jwks.json:ro onescreen:0.1.0
#
# Everything secret (ONESCREEN_AUDIT_URL, ONESCREEN_AUDIT_KEY, ledger DSNs and service
# keys, the JWT key file) comes from the environment or mounted files at run time;
# see docs/OPERATIONS.md. Try the demo: docker run -e ONESCREEN_MODE=demo
# -e ONESCREEN_DATA_DIR=/tmp/onescreen -p 8000:8000 onescreen:0.1.0
#
# Base image: the exact patch tag is pinned here because no registry could be reached
# where this file was written. CI must pin the digest as well, i.e. replace both FROM
# lines with  python:3.11.14-slim-bookworm@sha256:<digest>  as printed by
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and let a bot (Renovate/Dependabot) propose digest updates.

# ---------------------------------------------------------------- build: a venv with the package
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/onescreen
WORKDIR /src
# README.md is the package's long_description (setup.cfg), so it is needed to build.
COPY pyproject.toml setup.cfg README.md constraints.txt field_catalog.yaml ./
COPY oneScreen ./oneScreen
COPY connectors ./connectors
COPY policies ./policies
COPY frontend ./frontend
# A plain install: the web screens, catalog and policies are the package's data files (share/onescreen);
# asyncpg, aiomysql and redis are dependencies, at the tested versions (constraints.txt). All wheels: no
# compiler needed.
RUN /opt/onescreen/bin/pip install -c constraints.txt . \
 && /opt/onescreen/bin/python -m compileall -q /opt/onescreen/lib/python3.11/site-packages

# ---------------------------------------------------------------- runtime
FROM python:3.11.14-slim-bookworm

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it; no home, no shell.
RUN groupadd --system --gid 10001 onescreen \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin onescreen

COPY --from=build /opt/onescreen /opt/onescreen

# The catalog and policies shipped with this release; in Kubernetes a ConfigMap mounted
# elsewhere replaces them (deploy/, ONESCREEN_CATALOG / ONESCREEN_POLICIES there).
WORKDIR /app
COPY field_catalog.yaml /app/field_catalog.yaml
COPY policies /app/policies

# All files above are owned by root and only readable by the service user: the image
# works with a read-only root file system. ONESCREEN_DATA_DIR points at a directory that
# does not exist and cannot be created: production mode needs none, and an accidental
# fallback to a local SQLite audit file (ONESCREEN_AUDIT_URL unset) then fails closed
# instead of writing a private trail in the container.
ENV PATH=/opt/onescreen/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONESCREEN_MODE=production \
    ONESCREEN_CATALOG=/app/field_catalog.yaml \
    ONESCREEN_POLICIES=/app/policies \
    ONESCREEN_PORT=8000 \
    ONESCREEN_DATA_DIR=/var/lib/onescreen

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); readiness (/readyz: configuration valid, audit
# store writable) is for the orchestrator's load balancing, see deploy/deployment.yaml.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('ONESCREEN_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]

ENTRYPOINT ["onescreen", "serve", "--host", "0.0.0.0"]
