"""The S3 registry: `s3://bucket/prefix/<version>/<file>`, and last `<version>/complete.json`.

S3 has been strongly consistent for reads after writes and for listings since December 2020:
once the completion record's PUT succeeds, every reader sees it and every file it lists, so
"the record last" is the whole commit protocol. The endpoint (AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL for an S3-compatible server), credentials and region come from the standard
AWS environment; AWS_REGION, which ECS and Lambda set, wins over AWS_DEFAULT_REGION as it does
in the other AWS SDKs. Every call has a connect and a read timeout and at most three attempts;
every failure is one RegistryError naming the operation and the object.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from embeddings.registry.base import Registry, RegistryError, VersionInfo
from embeddings.registry.record import (
    CHUNK,
    DIR_MODE,
    FILE_MODE,
    RECORD_NAME,
    FileEntry,
    Record,
    build_record,
    check_version,
    entry_problem,
    hash_stream,
    is_version,
    verify_dir,
    write_synced,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 30.0  # seconds any one read of a response may wait
ATTEMPTS = 3  # tries per call, the first included (botocore's standard retry mode)
DELETE_BATCH = 1000  # keys per DeleteObjects, S3's limit
MISSING = {"NoSuchKey", "404", "NotFound"}


def make_client() -> S3Client:
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
    )
    try:
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        return session.client("s3", config=config)
    except BotoCoreError as error:
        raise RegistryError(f"S3: cannot make a client ({error})") from None


class S3Registry(Registry):
    def __init__(self, bucket: str, prefix: str = "", client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client if client is not None else make_client()

    def publish(self, version_dir: Path) -> str:
        """Every file (each with its SHA-256, which S3 checks on arrival), the leftovers of an
        interrupted earlier attempt removed, then the completion record."""
        source = Path(version_dir)
        record = build_record(source)
        version = record.version
        existing = self._get(self._key(version, RECORD_NAME))
        if existing is not None:
            if Record.from_json(existing, self._where(version, RECORD_NAME)).same_contents(record):
                return version
            raise RegistryError(
                f"version {version} is already in {self.url} with other files: "
                "a version names one set of files (delete it first to replace it)"
            )
        for entry in record.files:
            self._upload(source / entry.path, version, entry)
        expected = {entry.path for entry in record.files}
        leftovers = [p for p in self._objects(version) if p not in expected]
        self._delete_keys(version, leftovers)
        key = self._key(version, RECORD_NAME)
        with self._errors("put", key):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=record.to_json(), ContentType="application/json"
            )
        return version

    def versions(self) -> list[VersionInfo]:
        """One listing of the version prefixes, then one GET per version's record."""
        base = f"{self.prefix}/" if self.prefix else ""
        names: list[str] = []
        with self._errors("list", base):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common.get("Prefix", "")[len(base) :].rstrip("/"))
        found = []
        for name in filter(is_version, names):
            data = self._get(self._key(name, RECORD_NAME))
            try:
                if data is not None:
                    found.append(self._parse(name, data).info())
            except RegistryError:
                continue  # a malformed record: not a complete version
        return sorted(found, key=lambda v: (v.created, v.version), reverse=True)

    def manifest(self, version: str) -> dict[str, Any]:
        return self._record(version).manifest

    def fetch(self, version: str, cache_dir: Path) -> Path:
        """`cache_dir/<version>`: a verified earlier download as is, else every file downloaded
        into a staging directory beside it, checked against the record and renamed into place."""
        record = self._record(version)
        target = Path(cache_dir) / version
        if _cached(target, record):
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".fetch-{version}-", dir=target.parent))
        except OSError as error:
            raise RegistryError(f"{cache_dir}: cannot download into it ({error})") from error
        try:
            for relative in record.directories:
                (staging / relative).mkdir(DIR_MODE, parents=True, exist_ok=True)
            for entry in record.files:
                self._download(version, entry, staging / entry.path)
            write_synced(staging / RECORD_NAME, record.to_json())
            for directory in [staging, *(staging / d for d in record.directories)]:
                directory.chmod(DIR_MODE)
            _install(staging, target, record)
        except OSError as error:
            raise RegistryError(f"{target}: cannot write the download ({error})") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def problems(self, version: str) -> list[str]:
        """The listing against the record, and every file's bytes (downloaded and hashed,
        not kept) against its SHA-256."""
        data = self._get(self._key(check_version(version), RECORD_NAME))
        objects = self._objects(version)
        if data is None:
            if not objects:
                return [f"no version {version} in {self.url}"]
            return [f"version {version} in {self.url} is incomplete: no completion record"]
        try:
            record = self._parse(version, data)
        except RegistryError as error:
            return [str(error)]
        problems = [
            f"{self._where(version, p)}: not in the completion record"
            for p in objects
            if p not in {entry.path for entry in record.files}
        ]
        for entry in record.files:
            where = self._where(version, entry.path)
            if entry.path not in objects:
                problems.append(f"{where}: missing")
            elif objects[entry.path] != entry.size:
                problems.append(f"{where}: {entry_problem(entry, objects[entry.path], '')}")
            else:
                problem = entry_problem(entry, *self._hash(version, entry.path))
                if problem:
                    problems.append(f"{where}: {problem}")
        return problems

    def delete(self, version: str) -> None:
        """The record first (the version stops being listed), then every other object."""
        objects = self._objects(check_version(version))
        if not objects and self._get(self._key(version, RECORD_NAME)) is None:
            raise RegistryError(f"no version {version} in {self.url}")
        self._delete_keys(version, [RECORD_NAME])
        self._delete_keys(version, sorted(objects))

    def _key(self, version: str, relative: str = "") -> str:
        """The key of a version's file, or with no file the prefix of all of them."""
        return f"{self.prefix}/{version}/{relative}" if self.prefix else f"{version}/{relative}"

    def _where(self, version: str, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key(version, relative)}"

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Any botocore failure inside becomes one RegistryError saying what and where."""
        try:
            yield
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", "?"), details.get("Message", "")
            raise RegistryError(f"S3 {action} s3://{self.bucket}/{key}: {code} {message}") from None
        except BotoCoreError as error:
            name = type(error).__name__
            raise RegistryError(f"S3 {action} s3://{self.bucket}/{key}: {name}: {error}") from None

    def _get(self, key: str) -> bytes | None:
        """A small object's bytes, None when there is none."""
        with self._errors("get", key):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in MISSING:
                    return None
                raise

    def _parse(self, version: str, data: bytes) -> Record:
        record = Record.from_json(data, self._where(version, RECORD_NAME))
        if record.version != version:
            raise RegistryError(
                f"{self._where(version, RECORD_NAME)}: a malformed completion record "
                f"(it records version {record.version})"
            )
        return record

    def _record(self, version: str) -> Record:
        data = self._get(self._key(check_version(version), RECORD_NAME))
        if data is None:
            if self._objects(version):
                raise RegistryError(
                    f"version {version} in {self.url} is incomplete: no completion record"
                )
            raise RegistryError(f"no version {version} in {self.url}")
        return self._parse(version, data)

    def _objects(self, version: str) -> dict[str, int]:
        """The version's objects but its record: relative path -> size."""
        base = self._key(version)
        found: dict[str, int] = {}
        with self._errors("list", base):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            for page in pages:
                for item in page.get("Contents", []):
                    relative = item.get("Key", "")[len(base) :]
                    if relative != RECORD_NAME:
                        found[relative] = item.get("Size", 0)
        return found

    def _upload(self, path: Path, version: str, entry: FileEntry) -> None:
        key = self._key(version, entry.path)
        checksum = base64.b64encode(bytes.fromhex(entry.sha256)).decode()
        try:
            with path.open("rb") as body, self._errors("put", key):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=entry.size,
                    ChecksumSHA256=checksum,
                )
        except OSError as error:
            raise RegistryError(f"{path}: cannot read it ({error})") from error

    def _hash(self, version: str, relative: str) -> tuple[int, str]:
        key = self._key(version, relative)
        with self._errors("get", key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return hash_stream(body.iter_chunks(CHUNK))

    def _download(self, version: str, entry: FileEntry, path: Path) -> None:
        key = self._key(version, entry.path)
        path.parent.mkdir(DIR_MODE, parents=True, exist_ok=True)
        with self._errors("get", key), path.open("wb") as sink:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            size, sha256 = hash_stream(body.iter_chunks(CHUNK), sink)
            sink.flush()
            os.fsync(sink.fileno())
        path.chmod(FILE_MODE)
        problem = entry_problem(entry, size, sha256)
        if problem:
            raise RegistryError(f"{self._where(version, entry.path)}: downloaded {problem}")

    def _delete_keys(self, version: str, relatives: list[str]) -> None:
        keys = [self._key(version, r) for r in relatives]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            with self._errors("delete", batch[0]):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            failed = response.get("Errors", [])
            if failed:
                first = failed[0]
                raise RegistryError(
                    f"S3 delete s3://{self.bucket}/{first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')} ({len(failed)} keys not deleted)"
                )


def _cached(target: Path, record: Record) -> bool:
    """An earlier download of the same files, every one of them still intact."""
    try:
        local = Record.from_json((target / RECORD_NAME).read_bytes(), str(target))
    except (OSError, RegistryError):
        return False
    return local.same_contents(record) and not verify_dir(target, record)


def _install(staging: Path, target: Path, record: Record) -> None:
    """Rename the download into place; another process's verified copy there is kept, a stale
    or broken one replaced."""
    try:
        staging.rename(target)
        return
    except OSError:
        if _cached(target, record):
            return
    old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
    try:
        if target.exists():
            target.rename(old / target.name)
        staging.rename(target)
    finally:
        shutil.rmtree(old, ignore_errors=True)
