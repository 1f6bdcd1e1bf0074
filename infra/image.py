"""The images, built from the repository's Dockerfile as CDK assets at deploy time: the API
(target `runtime`) and the scheduled retrain (target `retrain`, the same plus the `train` extra).

Synth only stages the build context into cdk.out (no Docker needed); `cdk deploy` builds and
pushes it. The context is the .dockerignore allow-list; these excludes repeat the paths that
must never be staged, in case that file is ever loosened (a 2 GB .venv, the local store, .env).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs

from infra.config import StageConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
EXCLUDE = [
    ".git",
    ".venv",
    ".tools",
    ".env",
    "var",
    "cdk.out",
    "infra",
    "tests",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    "node_modules",
    "**/__pycache__",
]


def api_image(config: StageConfig) -> ecs.ContainerImage:
    """linux/amd64 (the task's platform); bakes the model version named by the config."""
    return _image(config, "runtime")


def retrain_image(config: StageConfig) -> ecs.ContainerImage:
    """`movie-recs retrain`, with the same baked model: the fallback the gate compares with
    while no version is promoted."""
    return _image(config, "retrain")


def _image(config: StageConfig, target: str) -> ecs.ContainerImage:
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        exclude=EXCLUDE,
        ignore_mode=IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64,
        target=target,
        build_args={"MODEL_SOURCE": "context", "MODEL_VERSION": config.model_version},
    )
