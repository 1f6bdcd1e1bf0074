"""A replica never imports TensorFlow: the real server answers, embeds a movie a webhook adds,
and on exit lists what it imported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from bench.harness.servers import Server, server_env
from service.config import Settings
from service.ingest.webhook_signer import post_webhook
from tests.support.service import SECRET

pytestmark = pytest.mark.slow

# `movie-recs` itself, writing the names of its imported modules when it exits.
SERVE_AND_LIST_MODULES = """
import atexit, json, os, sys


def write_modules():
    with open(os.environ["MODULES_FILE"], "w") as out:
        json.dump(sorted(sys.modules), out)


atexit.register(write_modules)
from service.cli import app

app()
"""


def test_a_replica_serves_and_embeds_a_new_movie_without_importing_tensorflow(
    app_settings: Settings, tmp_path: Path
) -> None:
    command = tmp_path / "movie-recs"
    command.write_text(f"#!{sys.executable}\n{SERVE_AND_LIST_MODULES}")
    command.chmod(0o755)
    modules = tmp_path / "modules.json"
    env = server_env(
        app_settings.store_url,
        app_settings.artifacts_dir,
        MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
        MODULES_FILE=str(modules),
    )
    with Server(env, tmp_path / "server.log", cli=command) as server:
        server.wait_ready()
        answer = httpx.get(f"{server.url}/v1/users/1/recommendations", params={"k": 3}).json()
        assert answer["strategy"] == "personalized" and len(answer["items"]) == 3
        new = {"id": "900001", "title": "The Recommender", "genres": ["Sci-Fi"], "year": 2026}
        delivered = post_webhook(
            server.url, SECRET, {"type": "movie.upserted", "data": new}, msg_id="no-tf"
        )
        body = {
            "history": [{"movie_id": "900001"}],
            "k": 5,
            "exclude_seen": False,
            "min_index_version": delivered.json()["last_seq"],
        }
        similar = httpx.post(f"{server.url}/v1/recommendations", json=body, timeout=30).json()
        assert similar["items"][0]["movie_id"] == "900001"  # embedded by this replica's tower
        assert server.stop() == 0, server.log_tail()

    imported = {name.split(".")[0] for name in json.loads(modules.read_text())}
    assert "service" in imported and "fastapi" in imported
    assert not imported & {"tensorflow", "keras"}
