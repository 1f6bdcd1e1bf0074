"""The completion record (`complete.json` in a version): the version's manifest, directories and
every file with its size and SHA-256. Written after every file, it is what makes a version
complete, and what a reader checks the files against."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from embeddings.registry.base import RegistryError, VersionInfo

RECORD_NAME = "complete.json"
FORMAT = 1
CHUNK = 1 << 20
DIR_MODE = 0o755  # as export.py: the service may run as another user than the publisher
FILE_MODE = 0o644
MAX_LISTED = 5  # problems quoted in an error message
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # also the API's, for a variant's model
_VERSION = re.compile(VERSION_PATTERN)


def is_version(name: object) -> bool:
    """A version id is one safe path segment: it names a directory and a key prefix."""
    return isinstance(name, str) and _VERSION.fullmatch(name) is not None


def check_version(version: str) -> str:
    if not is_version(version):
        raise RegistryError(
            f"{version!r} is not a version id (letters, digits, '.', '_', '-'; 128 at most)"
        )
    return version


def parse_created(value: object, where: str) -> datetime:
    """The manifest's "created" (ISO 8601), timezone-aware (UTC when it names none)."""
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    if created is None:
        raise RegistryError(f'{where}: "created" is not an ISO 8601 time: {value!r}')
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """manifest.json of a version directory, with a valid "version" and "created"."""
    path = version_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise RegistryError(f"{path}: no readable manifest ({error})") from error
    if not isinstance(manifest, dict):
        raise RegistryError(f"{path}: not a JSON object")
    if not is_version(manifest.get("version")):
        raise RegistryError(f'{path}: "version" is not a version id: {manifest.get("version")!r}')
    parse_created(manifest.get("created"), str(path))
    return manifest


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated
    size: int
    sha256: str  # hex


@dataclass(frozen=True)
class Record:
    version: str
    manifest: dict[str, Any]
    directories: tuple[str, ...]
    files: tuple[FileEntry, ...]

    def info(self) -> VersionInfo:
        created = parse_created(self.manifest.get("created"), self.version)
        return VersionInfo(self.version, created, self.manifest)

    def same_contents(self, other: Record) -> bool:
        return (self.directories, self.files) == (other.directories, other.files)

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "version": self.version,
            "manifest": self.manifest,
            "directories": list(self.directories),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return (json.dumps(document, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Record:
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"not a format {FORMAT} record")
            version = check_version(document["version"])
            manifest = document["manifest"]
            if not isinstance(manifest, dict) or manifest.get("version") != version:
                raise ValueError("its manifest is not the version's")
            parse_created(manifest.get("created"), where)
            directories = tuple(safe_path(d) for d in document["directories"])
            files = tuple(
                FileEntry(safe_path(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in document["files"]
            )
        except (ValueError, KeyError, TypeError, RegistryError) as error:
            raise RegistryError(f"{where}: a malformed completion record ({error})") from error
        return cls(version, manifest, directories, files)


def safe_path(value: object) -> str:
    """A relative '/'-path inside the version: no '..', no absolute path, no record name."""
    if not isinstance(value, str) or not value or "\\" in value or "\0" in value:
        raise RegistryError(f"not a relative path: {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or any(p in ("", ".", "..") for p in value.split("/")):
        raise RegistryError(f"not a relative path inside the version: {value!r}")
    if value == RECORD_NAME:
        raise RegistryError(f"{RECORD_NAME} is the completion record's own name")
    return value


def layout(version_dir: Path) -> tuple[list[str], list[str]]:
    """The directories and files of a version directory (relative, sorted), without a
    completion record at its top (a fetched version can be published elsewhere)."""
    directories: list[str] = []
    files: list[str] = []
    for root, dirnames, filenames in os.walk(version_dir):
        base = Path(root)
        for name in [*dirnames, *filenames]:
            path = base / name
            relative = path.relative_to(version_dir).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise RegistryError(f"{path}: a version holds plain files and directories only")
            if path.is_dir():
                directories.append(relative)
            elif relative != RECORD_NAME:
                files.append(relative)
    return sorted(directories), sorted(files)


def hash_stream(chunks: Iterable[bytes], sink: BinaryIO | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a stream, written to `sink` on the way when given."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return size, digest.hexdigest()


def file_chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def build_record(version_dir: Path) -> Record:
    """The record of a version directory as it is on disk (every file read once)."""
    manifest = read_manifest(version_dir)
    directories, files = layout(version_dir)
    entries = []
    for relative in files:
        size, sha256 = hash_stream(file_chunks(version_dir / relative))
        entries.append(FileEntry(relative, size, sha256))
    return Record(manifest["version"], manifest, tuple(directories), tuple(entries))


def verify_dir(directory: Path, record: Record) -> list[str]:
    """What in a local copy differs from its record: missing, altered and unexpected files."""
    try:
        directories, files = layout(directory)
    except (OSError, RegistryError) as error:
        return [f"{directory}: unreadable ({error})"]
    present_dirs = set(directories)
    problems = [f"{directory / d}: missing" for d in record.directories if d not in present_dirs]
    expected = {entry.path for entry in record.files}
    problems += [f"{directory / f}: not in the record" for f in files if f not in expected]
    present = set(files)
    for entry in record.files:
        path = directory / entry.path
        if entry.path not in present:
            problems.append(f"{path}: missing")
            continue
        problem = entry_problem(entry, *hash_stream(file_chunks(path)))
        if problem:
            problems.append(f"{path}: {problem}")
    return problems


def entry_problem(entry: FileEntry, size: int, sha256: str) -> str | None:
    if size != entry.size:
        return f"{size} bytes, the completion record says {entry.size}"
    if sha256 != entry.sha256:
        return f"SHA-256 {sha256[:12]}…, the completion record says {entry.sha256[:12]}…"
    return None


def write_synced(path: Path, data: bytes) -> None:
    """Write a small file and flush it to disk, readable by every user."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(FILE_MODE)


def summary(problems: list[str]) -> str:
    """The first few problems, in one line."""
    more = len(problems) - MAX_LISTED
    return "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
