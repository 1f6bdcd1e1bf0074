"""The local registry: `<root>/<version>/` per version, each with its completion record (the
default; the compose demo's shared volume). A version is copied into a hidden staging directory
in the root and renamed into place whole, so a reader sees all of it or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from embeddings.registry.base import Registry, RegistryError, VersionInfo
from embeddings.registry.record import (
    DIR_MODE,
    FILE_MODE,
    RECORD_NAME,
    FileEntry,
    Record,
    build_record,
    check_version,
    file_chunks,
    hash_stream,
    layout,
    read_manifest,
    summary,
    verify_dir,
    write_synced,
)


class LocalRegistry(Registry):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def publish(self, version_dir: Path) -> str:
        source = Path(version_dir)
        version = read_manifest(source)["version"]
        if source.resolve() == (self.root / version).resolve():
            return self._adopt(source)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=self.root))
        except OSError as error:
            raise RegistryError(f"{self.root}: cannot publish here ({error})") from error
        try:
            record = _copy(source, staging)
            return self._install(staging, record)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def versions(self) -> list[VersionInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            if child.name.startswith(".") or not (child / RECORD_NAME).is_file():
                continue
            try:
                found.append(self._record(child.name).info())
            except RegistryError:
                continue  # a malformed record: not a complete version
        return sorted(found, key=lambda v: (v.created, v.version), reverse=True)

    def manifest(self, version: str) -> dict[str, Any]:
        return self._record(version).manifest

    def fetch(self, version: str, cache_dir: Path) -> Path:
        """The version's own directory, once every file matches its record."""
        record = self._record(version)
        problems = verify_dir(self.root / version, record)
        if problems:
            raise RegistryError(
                f"version {version} in {self.root} does not match its completion record: "
                + summary(problems)
            )
        return self.root / version

    def problems(self, version: str) -> list[str]:
        try:
            record = self._record(version)
        except RegistryError as error:
            return [str(error)]
        return verify_dir(self.root / version, record)

    def delete(self, version: str) -> None:
        """Renamed out of sight in one step, then removed."""
        directory = self.root / check_version(version)
        if not directory.is_dir():
            raise RegistryError(f"no version {version} in {self.root}")
        doomed = Path(tempfile.mkdtemp(prefix=f".delete-{version}-", dir=self.root))
        try:
            directory.rename(doomed / version)
        finally:
            shutil.rmtree(doomed, ignore_errors=True)

    def _record(self, version: str) -> Record:
        directory = self.root / check_version(version)
        path = directory / RECORD_NAME
        if not directory.is_dir():
            raise RegistryError(f"no version {version} in {self.root}")
        if not path.is_file():
            raise RegistryError(
                f"version {version} in {self.root} is incomplete: it has no completion record"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise RegistryError(f"{path}: cannot read it ({error})") from error
        record = Record.from_json(data, str(path))
        if record.version != version:
            raise RegistryError(f"{path}: records version {record.version}, not {version}")
        return record

    def _adopt(self, directory: Path) -> str:
        """A version already in place (trained straight into the root): write its record."""
        record = build_record(directory)
        if (directory / RECORD_NAME).is_file():
            return self._same_or_refuse(self._record(record.version), record)
        temporary = directory / f".{RECORD_NAME}.{os.getpid()}"
        try:
            write_synced(temporary, record.to_json())
            temporary.replace(directory / RECORD_NAME)
        except OSError as error:
            raise RegistryError(f"{directory}: cannot write its record ({error})") from error
        return record.version

    def _install(self, staging: Path, record: Record) -> str:
        """Rename the staged version into place; an existing copy without a record (not a
        published version) is replaced, one with a record must hold the same files."""
        target = self.root / record.version
        try:
            staging.rename(target)
        except OSError as error:
            if not target.is_dir():
                raise RegistryError(f"{target}: cannot publish ({error})") from error
            if (target / RECORD_NAME).is_file():
                return self._same_or_refuse(self._record(record.version), record)
            old = Path(tempfile.mkdtemp(prefix=f".replace-{record.version}-", dir=self.root))
            try:
                target.rename(old / record.version)
                staging.rename(target)
            except OSError as error:
                raise RegistryError(f"{target}: cannot publish ({error})") from error
            finally:
                shutil.rmtree(old, ignore_errors=True)
        _sync_dir(self.root)
        return record.version

    def _same_or_refuse(self, existing: Record, new: Record) -> str:
        if existing.same_contents(new):
            return new.version
        raise RegistryError(
            f"version {new.version} is already in {self.root} with other files: "
            "a version names one set of files (delete it first to replace it)"
        )


def _copy(source: Path, staging: Path) -> Record:
    """Copy a version directory, hashing each file on the way; the record describes the copy."""
    try:
        directories, files = layout(source)
        for relative in directories:
            (staging / relative).mkdir(DIR_MODE)
            (staging / relative).chmod(DIR_MODE)
        entries = []
        for relative in files:
            with (staging / relative).open("wb") as sink:
                size, sha256 = hash_stream(file_chunks(source / relative), sink)
                sink.flush()
                os.fsync(sink.fileno())
            (staging / relative).chmod(FILE_MODE)
            entries.append(FileEntry(relative, size, sha256))
        manifest = read_manifest(staging)
        record = Record(manifest["version"], manifest, tuple(directories), tuple(entries))
        write_synced(staging / RECORD_NAME, record.to_json())
        staging.chmod(DIR_MODE)
    except OSError as error:
        raise RegistryError(f"{source}: cannot copy it into {staging.parent} ({error})") from error
    return record


def _sync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
