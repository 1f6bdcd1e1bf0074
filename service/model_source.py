"""Where a replica gets a promoted model version: the registry, fetched into a local cache.

The version a replica starts with comes from the image (settings' artifacts); a version
promoted later (`movie-recs models promote`, `retrain`) is read from the registry by its id,
verified file by file (embeddings/registry), and loaded like the image's own.
"""

from __future__ import annotations

from pathlib import Path

from embeddings.registry import RegistryError, open_registry
from service.config import Settings
from service.towers import ModelLoadError, Towers, load_towers


def own_version(settings: Settings) -> str | None:
    """The version of the model the image carries (the fallback every replica can serve), or
    None when it cannot be loaded."""
    try:
        return load_towers(settings.artifacts_dir, settings.model_version).version
    except ModelLoadError:
        return None


class ModelSource:
    def __init__(self, registry_url: str, cache_dir: Path) -> None:
        self.registry_url = registry_url
        self.cache_dir = Path(cache_dir)
        self.own: Towers | None = None  # the image's model: promotable without the registry

    def load(self, version: str) -> Towers:
        """The towers of `version`, checked; blocking: call it in a thread.
        ModelLoadError says why it cannot be had."""
        if self.own is not None and version == self.own.version:
            return self.own
        try:
            directory = open_registry(self.registry_url).fetch(version, self.cache_dir)
        except RegistryError as exc:
            raise ModelLoadError(f"cannot fetch model {version}: {exc}") from None
        towers = load_towers(directory.parent, directory.name)
        if towers.version != version:
            raise ModelLoadError(
                f"the registry's {version} holds a model that calls itself {towers.version}"
            )
        return towers
