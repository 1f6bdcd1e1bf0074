"""Helpers of the retraining tests: the small training config, what a test store holds, and
settings around a store, a registry and the image's model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from embeddings.config import TrainConfig
from embeddings.train import TINY_CONFIG
from service.config import Settings
from service.store import Event, Movie, Store, Upsert

CONFIG = dataclasses.replace(TINY_CONFIG, epochs=3)
# The same config for `movie-recs retrain --config-json`: every field that differs from train's
CONFIG_JSON = json.dumps(
    {
        name: value
        for name, value in dataclasses.asdict(CONFIG).items()
        if value != getattr(TrainConfig(), name)
    }
)


@dataclass(frozen=True)
class Seed:
    """What a test store is filled with."""

    movies: list[Movie]
    events: dict[str, list[Event]]

    async def into(self, store: Store) -> None:
        await store.apply_changes([Upsert(movie) for movie in self.movies])
        await store.add_events_bulk(self.events)


def version_of(artifacts: Path) -> str:
    return (artifacts / "latest").read_text("utf-8").strip()


def settings_for(store_url: str, artifacts: Path, tmp_path: Path, **more: object) -> Settings:
    """Settings of a run: this store, a registry and model cache in `tmp_path`, and `artifacts`
    as the image's own model."""
    return Settings(
        store_url=store_url,
        registry_url=str(tmp_path / "registry"),
        model_cache_dir=tmp_path / "models",
        artifacts_dir=artifacts,
        _env_file=None,  # type: ignore[call-arg]
        **more,  # type: ignore[arg-type]
    )
