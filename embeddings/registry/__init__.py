"""The model registry: versions (what `artifacts/<version>/` holds) published by training and read
by replicas, behind one interface (`base.py`) with two backends chosen by URL:

- a path or `file:///abs/path`: a local directory (`local.py`), the default;
- `s3://bucket/prefix`: S3 or an S3-compatible server (`s3.py`).

A version is complete once its completion record (`record.py`) is written, after every file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from embeddings.registry.base import Registry, RegistryError, VersionInfo
from embeddings.registry.local import LocalRegistry

__all__ = ["LocalRegistry", "Registry", "RegistryError", "VersionInfo", "open_registry"]

USAGE = "a directory, file:///absolute/path or s3://bucket/prefix"


def open_registry(url: str | Path) -> Registry:
    """The registry at `url`; nothing is read or connected until it is used. boto3 is imported
    only for an S3 URL."""
    text = str(url)
    if text.startswith("s3://"):
        from embeddings.registry.s3 import S3Registry

        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise RegistryError(f"{text}: no bucket ({USAGE})")
        return S3Registry(bucket, prefix)
    if text.startswith("file://"):
        parts = urlsplit(text)
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise RegistryError(f"{text}: a file URL needs an absolute path ({USAGE})")
        return LocalRegistry(Path(path))
    if "://" in text or not text:
        raise RegistryError(f"{text!r} is not a registry URL ({USAGE})")
    return LocalRegistry(Path(text))
