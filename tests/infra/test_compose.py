"""The compose demo's wiring (`docker-compose config` in make check-containers validates syntax)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from standardwebhooks.webhooks import Webhook

from infra.service import CONTAINER_PORT
from service.cli import uvicorn_options
from service.config import Settings
from tests.support import dockerfile as df

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return compose["services"]  # type: ignore[no-any-return]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_redis_is_persistent_and_healthchecked(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_seed_imports_movielens_once_redis_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    seed = services["seed"]
    assert seed["entrypoint"] + seed["command"] == ["movie-recs", "import-movielens"]
    assert seed["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert seed["restart"] == "no"


def test_two_api_replicas_share_the_store_on_their_own_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    replicas = {name: s for name, s in services.items() if name.startswith("api-")}
    assert len(replicas) == 2
    published: set[int] = set()
    variables: set[str] = set()
    for api in replicas.values():
        assert api["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "seed": {"condition": "service_completed_successfully"},
        }
        assert api["environment"]["MOVIE_RECS_STORE_URL"] == "redis://redis:6379/0"
        (port,) = api["ports"]
        host, _, container = port.rpartition(":")
        assert int(container) == CONTAINER_PORT
        # "${MOVIE_RECS_API_1_PORT:-8001}": the README's port unless CI moves it to a free one.
        variable = re.fullmatch(r"\$\{(MOVIE_RECS_API_\d_PORT):-(\d+)\}", host)
        assert variable, host
        published.add(int(variable.group(2)))
        variables.add(variable.group(1))
        assert api["read_only"] is True and api["tmpfs"] == ["/tmp"]
        grace = int(api["stop_grace_period"].removesuffix("s"))
        assert grace > uvicorn_options()["timeout_graceful_shutdown"]
    assert published == {8001, 8002}
    assert variables == {"MOVIE_RECS_API_1_PORT", "MOVIE_RECS_API_2_PORT"}
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "localhost:8001" in readme and "localhost:8002" in readme


def test_secrets_come_from_the_env_file(services: dict[str, dict[str, Any]]) -> None:
    for name in ("seed", "api-1", "api-2", "cli", "retrain"):
        assert services[name]["env_file"] == "${MOVIE_RECS_ENV_FILE:-.env.example}"
        assert not {"MOVIE_RECS_API_KEYS", "MOVIE_RECS_WEBHOOK_SECRETS"} & set(
            services[name]["environment"]
        )


def test_env_example_values_work_and_are_clearly_fake() -> None:
    values = env_example()
    assert set(values) == {"MOVIE_RECS_API_KEYS", "MOVIE_RECS_WEBHOOK_SECRETS"}
    assert "not-secret" in values["MOVIE_RECS_API_KEYS"]
    for secret in values["MOVIE_RECS_WEBHOOK_SECRETS"].split(","):
        assert secret.startswith("whsec_")
        Webhook(secret)  # a valid Standard Webhooks secret, so the demo's signatures verify
    assert "FAKE" in ENV_EXAMPLE.read_text("utf-8")
    assert ".env" in (ROOT / ".gitignore").read_text("utf-8").split()  # real values stay local


def test_the_replicas_share_one_snapshot_volume_the_image_user_owns(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("api-1", "api-2"):
        api = services[name]
        assert "snapshots:/var/snapshots" in api["volumes"]
        assert api["environment"]["MOVIE_RECS_SNAPSHOT_DIR"] == "/var/snapshots"
    assert directories_the_image_user_owns("runtime") >= {"/var/snapshots"}


def directories_the_image_user_owns(stage: str) -> set[str]:
    """What `stage` creates and gives uid 10001: an empty named volume mounted there takes that
    owner, so the app user can write it."""
    created = " ".join(i.value for i in df.stage(stage) if i.keyword == "RUN")
    made = re.search(r"mkdir -p ((?:/[\w/]+ ?)+) && chown 10001:10001 ((?:/[\w/]+ ?)+)", created)
    assert made, created
    assert made.group(1).split() == made.group(2).split()
    return set(made.group(1).split())


REGISTRY = "/registry"


def test_every_image_service_uses_the_shared_registry_and_a_writable_model_cache(
    services: dict[str, dict[str, Any]],
) -> None:
    """One registry for the replicas, `retrain` and `models`, as the S3 bucket is on AWS; the
    cache (used with an s3:// registry) under the tmpfs, as the root filesystem is read-only."""
    images = {name: s for name, s in services.items() if name != "redis"}
    assert set(images) == {"seed", "api-1", "api-2", "cli", "retrain"}
    for name, service in images.items():
        environment = service["environment"]
        assert environment["MOVIE_RECS_REGISTRY_URL"] == REGISTRY, name
        assert environment["MOVIE_RECS_MODEL_CACHE_DIR"].startswith("/tmp/"), name
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"], name
        for variable in environment:
            field = variable.removeprefix("MOVIE_RECS_").lower()
            assert field in Settings.model_fields, f"{name}: {variable} is not a setting"
    mounts = {
        name: [v for v in service.get("volumes", []) if v.split(":")[1] == REGISTRY]
        for name, service in images.items()
    }
    # Only retrain writes versions; a replica and `models` only read them.
    assert mounts == {
        "seed": [],
        "api-1": [f"registry:{REGISTRY}:ro"],
        "api-2": [f"registry:{REGISTRY}:ro"],
        "cli": [f"registry:{REGISTRY}:ro"],
        "retrain": [f"registry:{REGISTRY}"],
    }
    # The volume starts empty: each image's REGISTRY belongs to its user, whichever mounts first.
    assert REGISTRY in directories_the_image_user_owns("runtime")
    assert REGISTRY in directories_the_image_user_owns("retrain")


def test_retrain_runs_on_demand_from_the_training_image(
    services: dict[str, dict[str, Any]],
) -> None:
    """`docker compose run --rm retrain`: the Dockerfile's retrain target (SciPy, which the
    serving image that `cli` runs lacks), against the demo's Redis, never started by `up`."""
    retrain = services["retrain"]
    assert retrain["profiles"] == ["tools"]
    assert retrain["entrypoint"] + retrain["command"] == ["movie-recs", "retrain"]
    assert retrain["build"]["target"] == "retrain"
    assert retrain["build"]["args"] == services["api-1"]["build"]["args"]  # the same model
    assert retrain["image"] != services["api-1"]["image"]
    assert retrain["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert retrain["restart"] == "no"
    assert retrain["environment"]["MOVIE_RECS_STORE_URL"] == "redis://redis:6379/0"
    assert retrain["env_file"] == services["api-1"]["env_file"]
    assert "retrain" in [i.stage for i in df.instructions() if i.keyword == "FROM"]


def test_the_smoke_starts_the_demo_services_only() -> None:
    """podman-compose 1.0.3 (CI) ignores profiles: a bare `up` would start the tools too,
    retrain among them, whose image the smoke does not build."""
    smoke = (ROOT / ".ci" / "container-smoke.sh").read_text("utf-8")
    (up,) = re.findall(r"^compose up .*", smoke, flags=re.MULTILINE)
    assert up.split()[:6] == ["compose", "up", "-d", "--no-build", "redis", "seed"]
    assert up.split()[6:8] == ["api-1", "api-2"]


def test_the_replicas_start_with_a_key_not_with_auth_disabled(
    services: dict[str, dict[str, Any]],
) -> None:
    """`serve` refuses to start without an API key unless MOVIE_RECS_AUTH_DISABLED=true: the
    demo configures a key in its env file (the production path, which CI's smoke exercises
    with a Bearer), so it needs no switch that would open /v1 to anyone."""
    values = env_example()
    assert values["MOVIE_RECS_API_KEYS"]
    for name in ("api-1", "api-2"):
        assert "MOVIE_RECS_AUTH_DISABLED" not in services[name]["environment"]
    assert "MOVIE_RECS_AUTH_DISABLED" not in values
    smoke = (ROOT / ".ci" / "container-smoke.sh").read_text("utf-8")
    assert "--env-file .env.example" in smoke  # the one-container run reads the same key
    assert "Authorization: Bearer $KEY" in smoke
