"""The model registry's interface: what a training run publishes and a replica reads, whatever
holds the versions (a local directory, S3)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


class RegistryError(Exception):
    """A registry operation failed: an unknown, incomplete or altered version, a bad URL, or the
    storage behind it. The message says what and where."""


@dataclass(frozen=True)
class VersionInfo:
    """A complete version: its id, its manifest's `created` (timezone-aware) and manifest."""

    version: str
    created: datetime
    manifest: dict[str, Any]


class Registry(ABC):
    """Model versions (the contents of `artifacts/<version>/`) by id.

    A version is visible only once complete: its completion record (every file with its size
    and SHA-256) is written after every file, so a reader never sees half a version.
    """

    url: str  # where the versions are, for messages

    @abstractmethod
    def publish(self, version_dir: Path) -> str:
        """Publish the version in `version_dir` under its manifest's "version" and return it.

        Publishing the same files again is a no-op; other files under a published id are a
        RegistryError (a version names one set of bytes: delete it first to replace it).
        """

    @abstractmethod
    def versions(self) -> list[VersionInfo]:
        """Every complete version, newest first by the manifest's "created"."""

    @abstractmethod
    def manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a complete version."""

    @abstractmethod
    def fetch(self, version: str, cache_dir: Path) -> Path:
        """A local directory holding the complete version, verified file by file."""

    @abstractmethod
    def problems(self, version: str) -> list[str]:
        """What is wrong with a version (missing, incomplete, a file missing, altered or
        unexpected); empty when it is complete and every file matches its record."""

    @abstractmethod
    def delete(self, version: str) -> None:
        """Remove a version; it stops being listed before any of its files go."""
