# retryd as a container: `docker build -t retryd .` then `docker run retryd` (see docs/container.md).
# With podman or buildah: `podman build --format docker -t retryd .` (the default OCI format
# silently drops HEALTHCHECK).
#
# Two stages on the same base: "build" makes a virtualenv holding retryd and its dependencies,
# then removes pip and setuptools from it; "runtime" copies only that venv onto a clean base, so
# the venv ships no installer, wheels, caches or sources (the base image keeps its own pip).
# Both stages must use the very same base: the venv's python is a symlink to the base's interpreter.
# The base is pinned by exact version and by the digest of its multi-platform index; bump both
# together (tests/test_container.py refuses a floating tag). BASE can be overridden to build
# where no registry is reachable, e.g. on a local Debian bookworm image with python3-venv
# (.ci/container-base makes one): `--build-arg BASE=localhost/retryd-ci-base:bookworm`.
ARG BASE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${BASE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/retryd
WORKDIR /src

# Dependencies first, in their own layer, so editing retryd's code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/retryd/bin/pip install --no-cache-dir -r /tmp/requirements.txt

COPY README.md ./
COPY store/ store/
COPY worker/ worker/
COPY handlers/ handlers/
# A regular (not editable) install: the venv must stand alone once /src is left behind.
# Loading the console script here fails the build, not the first start, if `retryd` is broken.
# pip and setuptools leave the venv last (about 25 of its 38 MB): nothing at run time needs them.
RUN /opt/retryd/bin/pip install --no-cache-dir --no-deps . \
    && /opt/retryd/bin/python -c "from importlib.metadata import entry_points; entry_points(group='console_scripts')['retryd'].load()" \
    && /opt/retryd/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && rm -f /opt/retryd/bin/pip*


FROM ${BASE} AS runtime

LABEL org.opencontainers.image.title="retryd" \
      org.opencontainers.image.description="Background retry worker daemon: task records in Redis, claimed, dispatched by type, retried with backoff." \
      org.opencontainers.image.licenses="MIT" \
      io.retryd.env.redis-url="RETRYD_REDIS_URL: the Redis to use, e.g. redis://:password@redis:6379/0 (default redis://redis:6379/0)" \
      io.retryd.env.log-format="RETRYD_LOG_FORMAT: json (the default in this image) or console" \
      io.retryd.env.overrides="RETRYD_<SECTION>_<KEY> overrides any config.toml key, e.g. RETRYD_WORKER_CONCURRENCY=64"

# A fixed uid/gid so volumes and Kubernetes' runAsNonRoot/runAsUser can rely on it. /app is
# made here, root-owned, because buildah does not keep an empty WORKDIR: podman would create it
# at start, owned by the container's user, and it would no longer be read-only to retryd.
RUN groupadd --system --gid 10001 retryd \
    && useradd --system --uid 10001 --gid retryd --no-log-init --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin retryd \
    && mkdir -m 0755 /app

COPY --from=build /opt/retryd /opt/retryd

# RETRYD_REDIS_URL defaults to a sibling container named "redis" (compose.yaml): an empty URL
# would start the embedded server inside the container, whose data dies with it.
ENV PATH="/opt/retryd/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RETRYD_LOG_FORMAT=json \
    RETRYD_REDIS_URL=redis://redis:6379/0

# Root-owned and read-only to retryd: it keeps no state on disk (it all lives in Redis), so the
# container can run with a read-only root filesystem. Mount a config at /app/config.toml if wanted.
WORKDIR /app
USER 10001:10001

# Prometheus /metrics, /healthz and /readyz ([metrics] port).
EXPOSE 9464

# /healthz is 200 while the worker loop ticks. The port follows RETRYD_METRICS_PORT if it is set;
# RETRYD_METRICS_PORT=0 turns the listener off, and with it the probe (exit 0: nothing to ask).
# urllib, not curl: the slim base has no curl, and an HTTP error status raises, so exit status 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('RETRYD_METRICS_PORT', '9464'); port == '0' or urllib.request.urlopen('http://127.0.0.1:' + port + '/healthz', timeout=4)"]

# Exec form: retryd is PID 1 and receives SIGTERM itself (no shell in between to swallow it);
# it stops claiming, lets running handlers finish for [worker] shutdown_grace (25 s), then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["retryd"]
CMD ["run"]
