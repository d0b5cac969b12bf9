# livereco in one image: `livereco flow` and `livereco serve`, hot modules compiled with mypyc.
#   docker build -t livereco .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 8000:8000 livereco serve --workers 2
# deploy/docker-compose.yml runs the whole system; docs/deploy.md explains it. The image needs a Redis
# (REDIS_URL): it never starts the embedded one `livereco run` uses for trying livereco out.

ARG PYTHON_VERSION=3.11

# Build stage: a C compiler turns the hot modules into C extensions (setup.py, mypyc).
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# Debian's compiler packages, at the release's current (security-patched) versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py mypyc.ini README.md LICENSE ./
COPY online ./online
COPY flows ./flows
COPY serving ./serving
# mypyc type-checks the modules it compiles against their dependencies' types, so those are installed first
# (pure Python), then livereco is rebuilt compiled without build isolation; the venv is copied as it is
# to the runtime stage (same base image, same Python path), without the compiler's mypy.
RUN python -m venv /opt/livereco \
    && LIVERECO_COMPILE=0 /opt/livereco/bin/pip install --no-cache-dir . \
    && /opt/livereco/bin/pip install --no-cache-dir "setuptools>=68" "mypy>=2.4" wheel \
    && /opt/livereco/bin/pip install --no-cache-dir --no-build-isolation --no-deps --force-reinstall . \
    && /opt/livereco/bin/pip uninstall -y mypy
# Fail the build rather than ship pure Python: mypyc marks its extensions optional.
RUN /opt/livereco/bin/python -c "from online.compiled import COMPILED_MODULES, compiled_modules; \
missing = sorted(set(COMPILED_MODULES) - set(compiled_modules())); \
assert not missing, f'not compiled: {missing}'; print('compiled:', len(COMPILED_MODULES), 'modules')"

# Runtime stage: no compiler, no build tools, an unprivileged user.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 livereco \
    && useradd --system --uid 10001 --gid livereco --home-dir /data --no-create-home --shell /usr/sbin/nologin livereco \
    && mkdir -p /data/recovery \
    && chown -R livereco:livereco /data
COPY --from=build /opt/livereco /opt/livereco
# LIVERECO_HOST=0.0.0.0: the server and the flow's metrics answer outside the container.
ENV PATH=/opt/livereco/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIVERECO_HOST=0.0.0.0 \
    LIVERECO_PORT=8000 \
    LIVERECO_FLOW_METRICS_PORT=9101
# Numeric, so Kubernetes' runAsNonRoot can verify it; the compose file health-checks each role.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 8000: the HTTP API and the server's /metrics; 9101: the flow's /metrics.
EXPOSE 8000 9101
ENTRYPOINT ["livereco"]
CMD ["serve"]
