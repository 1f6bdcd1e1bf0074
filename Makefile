# Every target bootstraps what it needs: uv in .tools/, the locked environment in .venv/.
SHELL := /bin/bash
UV := .tools/bin/uv
VENV := .venv/.synced

.PHONY: demo test lint format serve clean

demo: $(VENV)  ## import MovieLens into the embedded store, train if needed, serve on :8000
	.venv/bin/movie-recs demo

test: $(VENV)  ## lint, then the whole test suite (starts its own redis-server)
	@command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server (the Redis tests start their own on a free port)"; exit 1; }
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pytest

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: $(VENV)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

$(VENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python python3.11
	touch $@

clean:
	rm -rf .venv .tools var
