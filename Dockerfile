# syntax=docker/dockerfile:1.7@sha256:a57df69d0ea827fb7266491f2813635de6f17269be881f696fbfdf2d83dda33e
# The movie-recs API. The image bakes one model version: the one a replica serves until the
# store names a version from the model registry (`movie-recs retrain`, `movie-recs models
# promote`), and the fallback when that cannot load. A replica swaps a whole version at once,
# so it never mixes the user tower of one version with the movie vectors of another.
#
#   make train && docker build -t movie-recs .          # bakes artifacts/<latest> (the default)
#   docker build --build-arg MODEL_SOURCE=train -t movie-recs .   # trains inside the build
#   docker build --target retrain -t movie-recs-retrain .   # `movie-recs retrain` (+ TensorFlow)
#
# MODEL_SOURCE=context (default) ships exactly the model you trained and evaluated; `train`
# makes the image from a bare clone with only Docker (the compose demo uses it).

# Base images by tag and digest: the tag says what it is, the digest makes every build start
# from the same bytes (a tag moves with each upstream rebuild). `make pin-images` moves each
# digest, and the syntax frontend's on the first line, to what its tag names today, as
#   crane digest python:3.11-slim-bookworm
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# print it. UV_IMAGE has no digest yet: none was found where it was last looked up (no registry
# reachable); the next `make pin-images` adds it. Its uv version is the Makefile's bootstrap's.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
ARG MODEL_SOURCE=context

FROM ${UV_IMAGE} AS uv

# --- dependencies from the lock file, then the project itself --------------------------------
FROM ${PYTHON_IMAGE} AS deps
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /app
# binutils, for `strip` below; this stage's only, never the runtime's.
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
    && rm -rf /var/lib/apt/lists/*
# This layer changes only when the lock file does. No TensorFlow: the serving replica runs its
# towers in NumPy (docs/decisions/0029); the `train` extra brings it to the training stages.
# Then what a replica never reads goes (docs/decisions/0033): the packages' own test suites
# (~48 MB); botocore's models of ~440 AWS services but S3 and STS, the model registry's client
# (27 MB); the debug info of the extensions that ship it (uvloop, httptools, hiredis: 13 MB).
# Only files with a .debug_info section are stripped: the auditwheel-patched libraries in
# *.libs (the OpenBLAS copies) no longer load once `strip` rewrites them.
# Absolute mount targets: BuildKit also accepts relative ones, buildah does not.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=/app/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/app/pyproject.toml \
    uv sync --frozen --no-dev --no-install-project --no-install-package libclang \
    && site=/opt/venv/lib/python3.11/site-packages \
    && find "$site" -type d -name tests -prune -exec rm -rf {} + \
    && find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts \
       -exec rm -rf {} + \
    && find "$site" -name '*.so*' -type f -exec sh -c \
       'for f; do readelf -S "$f" | grep -q "\.debug_info" && strip --strip-debug "$f"; done; true' \
       sh {} +

FROM deps AS builder
COPY pyproject.toml uv.lock README.md ./
COPY service/ service/
COPY embeddings/ embeddings/
COPY data/ data/
# Editable on purpose: the settings find the bundled data next to the `service` package.
# COPY keeps the modes of the build context: readable by the runtime user whatever the umask
# of whoever cloned the repository.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-package libclang \
    && chmod -R a+rX,go-w /app

# --- the model: trained artifacts from the build context, or trained here -------------------
FROM ${PYTHON_IMAGE} AS model-context
COPY artifacts/ /src/artifacts/

# Training needs the `train` extra (TensorFlow; SciPy for the co-occurrence baseline). Only the
# two training stages below build on this layer: the serving image stays without it. Training
# needs neither TensorFlow's C++ headers (290 MB, for building custom ops) nor libclang (60 MB,
# a TensorFlow dependency only its source generators use).
FROM deps AS train-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=/app/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/app/pyproject.toml \
    uv sync --frozen --no-dev --extra train --no-install-project --no-install-package libclang \
    && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include

# Training reads only embeddings/ and data/ (`python -m embeddings`, no project install), so a
# change to the service or the README reuses the cached model instead of training again.
FROM train-deps AS model-train
COPY embeddings/ embeddings/
COPY data/ data/
RUN /opt/venv/bin/python -m embeddings train --out /src/artifacts

# A stage picked by build arg, not an image to pull (hadolint cannot tell the two apart).
# hadolint ignore=DL3006
FROM model-${MODEL_SOURCE} AS model-source

FROM ${PYTHON_IMAGE} AS model
ARG MODEL_VERSION=latest
COPY --from=model-source /src/artifacts /src/artifacts
# Keep one version only, with its own `latest` pointer, readable by the runtime user even when
# artifacts/ was written under a strict umask.
RUN set -eu; \
    version="${MODEL_VERSION}"; \
    if [ "$version" = latest ]; then \
      test -f /src/artifacts/latest || { echo "artifacts/latest missing: run 'make train' first" >&2; exit 1; }; \
      version="$(cat /src/artifacts/latest)"; \
    fi; \
    test -f "/src/artifacts/$version/manifest.json" \
      || { echo "artifacts/$version has no manifest.json" >&2; exit 1; }; \
    mkdir -p /model; \
    cp -a "/src/artifacts/$version" /model/; \
    printf '%s\n' "$version" > /model/latest; \
    chmod -R a+rX,go-w /model

# --- retrain: `movie-recs retrain`, the scheduled task on AWS and compose's `retrain` ---------
# The serving image's project and baked model (the fallback the gate compares a candidate with
# while no version is promoted) plus the `train` extra. Not the default target: the last stage,
# runtime, is. Build it with `--target retrain`.
FROM train-deps AS retrain-builder
COPY pyproject.toml uv.lock README.md ./
COPY service/ service/
COPY embeddings/ embeddings/
COPY data/ data/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra train --no-install-package libclang \
    && chmod -R a+rX,go-w /app

FROM ${PYTHON_IMAGE} AS retrain
# /registry: where compose's shared registry volume mounts (S3 on AWS); an empty named volume
# takes this directory's owner, so the app user can publish into it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin app \
    && mkdir -p /registry && chown 10001:10001 /registry
# No thread pins: training uses every core the task has. Nothing is written outside /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MOVIE_RECS_ARTIFACTS_DIR=/app/artifacts \
    MOVIE_RECS_MODEL_VERSION=latest
WORKDIR /app
COPY --from=retrain-builder /opt/venv /opt/venv
COPY --from=retrain-builder /app /app
COPY --from=model /model /app/artifacts
VOLUME ["/tmp"]
USER 10001:10001
CMD ["movie-recs", "retrain"]

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# /var/snapshots and /registry: where the shared volumes of index snapshots and of model versions
# mount (compose; EFS and S3 on AWS); an empty named volume takes its directory's owner.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin app \
    && mkdir -p /var/snapshots /registry && chown 10001:10001 /var/snapshots /registry
# One thread per pool: a small FAISS query or user-tower call is slower with more, and the
# replica count (not threads) is what scales. The root filesystem can be read-only: nothing is
# written outside /tmp (bytecode is compiled at build time).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MOVIE_RECS_OMP_THREADS=1 \
    MOVIE_RECS_ARTIFACTS_DIR=/app/artifacts \
    MOVIE_RECS_MODEL_VERSION=latest
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
COPY --from=model /model /app/artifacts
VOLUME ["/tmp"]
USER 10001:10001
EXPOSE 8000
# Liveness only: uvicorn answers once the lifespan has loaded the model and the index, so the
# start period covers that load. Readiness (/readyz) is the load balancer's check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=180s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# The flags equal service.cli.uvicorn_options() (tests/infra checks): keep-alive above the
# ALB's 60 s idle timeout, graceful shutdown inside the 30 s ECS stop timeout, overload -> 503.
CMD ["movie-recs", "serve", "--host", "0.0.0.0", "--port", "8000"]
