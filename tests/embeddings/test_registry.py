"""The model registry's contract, run on both backends: a local directory and S3 (a real
S3-compatible server, moto, started on a free port), plus what only one backend has."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pytest

from embeddings.artifacts import read_manifest
from embeddings.registry import LocalRegistry, Registry, RegistryError, open_registry
from embeddings.registry.s3 import ATTEMPTS, CONNECT_TIMEOUT, READ_TIMEOUT, S3Registry
from tests.support.s3 import DUMMY_ENV, REGION, UNSET, MotoServer

PREFIX = "models"
MakeVersion = Callable[..., Path]


class Storage:
    """Reach under a registry, as a crash, a partial upload or a careless hand would."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def put(self, key: str, data: bytes) -> None:
        if isinstance(self.registry, S3Registry):
            client = self.registry.client
            client.put_object(Bucket=self.registry.bucket, Key=f"{PREFIX}/{key}", Body=data)
        else:
            assert isinstance(self.registry, LocalRegistry)
            path = self.registry.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def remove(self, key: str) -> None:
        if isinstance(self.registry, S3Registry):
            client = self.registry.client
            client.delete_object(Bucket=self.registry.bucket, Key=f"{PREFIX}/{key}")
        else:
            assert isinstance(self.registry, LocalRegistry)
            (self.registry.root / key).unlink()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The client's environment: dummy credentials and the server's endpoint, nothing else."""
    set_env(monkeypatch, moto_server.client_env())
    return moto_server


@pytest.fixture
def s3_url(s3_env: MotoServer) -> str:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3_env.create_bucket(bucket)
    return f"s3://{bucket}/{PREFIX}"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    """Parametrizes a test over both backends: one contract, two implementations. The S3 runs
    are `slow`: a server to start, and ~0.2 s for each new boto3 client."""
    if request.param == "s3":
        return open_registry(str(request.getfixturevalue("s3_url")))
    return open_registry(tmp_path / "registry" / PREFIX)


@pytest.fixture
def make_version(tmp_path: Path) -> MakeVersion:
    """A small fake version directory: a manifest, a few files, a nested and an empty dir."""

    def make(
        version: str = "v1", created: str = "2026-01-02T03:04:05+00:00", seed: int = 0
    ) -> Path:
        directory = tmp_path / "exports" / f"{version}-{seed}"
        manifest = {"version": version, "created": created, "dim": 4, "seed": seed}
        files = {
            "manifest.json": json.dumps(manifest, indent=2).encode(),
            "movie_ids.json": b'["1", "2", "3"]',
            "movie_vectors.npy": np.random.default_rng(seed).random((3, 4)).tobytes(),
            "vocab/genres.txt": b"Action\nComedy\n",
            "movie_tower/variables/variables.index": bytes(range(256)) * 10,
        }
        for relative, data in files.items():
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            (directory / relative).write_bytes(data)
        (directory / "movie_tower" / "assets").mkdir(exist_ok=True)
        return directory

    return make


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file() and p.name != "complete.json"
    }


# --- the contract, on both backends ---


def test_publish_then_list_read_and_fetch_identical_bytes(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    source = make_version()

    assert registry.publish(source) == "v1"

    [info] = registry.versions()
    assert (info.version, info.created) == ("v1", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert info.manifest == json.loads((source / "manifest.json").read_bytes())
    assert registry.manifest("v1") == info.manifest
    assert registry.problems("v1") == []
    fetched = registry.fetch("v1", tmp_path / "cache")
    assert files_of(fetched) == files_of(source)
    assert (fetched / "movie_tower" / "assets").is_dir()  # an empty SavedModel dir survives


def test_versions_newest_first_by_created_not_by_publishing(
    registry: Registry, make_version: MakeVersion
) -> None:
    registry.publish(make_version("new", "2026-03-01T00:00:00+00:00"))
    registry.publish(make_version("old", "2026-01-01T00:00:00+00:00"))
    registry.publish(make_version("mid", "2026-02-01T00:00:00+01:00"))

    assert [v.version for v in registry.versions()] == ["new", "mid", "old"]


def test_publishing_the_same_files_again_is_a_no_op(
    registry: Registry, make_version: MakeVersion
) -> None:
    registry.publish(make_version())

    assert registry.publish(make_version()) == "v1"
    assert [v.version for v in registry.versions()] == ["v1"]


def test_publishing_other_files_under_a_published_version_is_refused(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    registry.publish(make_version(seed=0))

    with pytest.raises(RegistryError, match=r"v1 is already in .* with other files"):
        registry.publish(make_version(seed=1))
    fetched = registry.fetch("v1", tmp_path / "cache")
    assert json.loads((fetched / "manifest.json").read_bytes())["seed"] == 0


def test_a_version_without_its_completion_record_is_not_a_version(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    """What a publisher that died before the record leaves: files, no record."""
    registry.publish(make_version("done"))
    registry.publish(make_version("half"))
    Storage(registry).remove("half/complete.json")

    assert [v.version for v in registry.versions()] == ["done"]
    [problem] = registry.problems("half")
    assert "half" in problem and "incomplete" in problem
    with pytest.raises(RegistryError, match=r"half .* incomplete"):
        registry.manifest("half")
    with pytest.raises(RegistryError, match="incomplete"):
        registry.fetch("half", tmp_path / "cache")


def test_a_missing_file_is_a_problem_and_fails_the_fetch(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    registry.publish(make_version())
    Storage(registry).remove("v1/vocab/genres.txt")

    [problem] = registry.problems("v1")
    assert "vocab/genres.txt" in problem and "missing" in problem
    with pytest.raises(RegistryError, match=r"vocab/genres\.txt"):
        registry.fetch("v1", tmp_path / "cache")
    assert not (tmp_path / "cache" / "v1").exists()


def test_an_altered_file_of_the_same_size_is_a_digest_mismatch(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    source = make_version()
    registry.publish(source)
    vectors = (source / "movie_vectors.npy").read_bytes()
    Storage(registry).put("v1/movie_vectors.npy", bytes(len(vectors)))

    [problem] = registry.problems("v1")
    assert "movie_vectors.npy" in problem and "SHA-256" in problem
    with pytest.raises(RegistryError, match=r"movie_vectors.npy.*SHA-256"):
        registry.fetch("v1", tmp_path / "cache")


def test_a_file_of_another_size_and_an_unexpected_file_are_problems(
    registry: Registry, make_version: MakeVersion
) -> None:
    registry.publish(make_version())
    storage = Storage(registry)
    storage.put("v1/movie_ids.json", b"[]")
    storage.put("v1/extra.bin", b"x")

    problems = registry.problems("v1")
    assert len(problems) == 2
    assert any("movie_ids.json" in p and "2 bytes" in p for p in problems)
    assert any("extra.bin" in p and "not in the" in p for p in problems)


def test_an_unknown_version_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    assert registry.versions() == []
    assert registry.problems("nope") == [f"no version nope in {registry.url}"]
    for call in (
        lambda: registry.manifest("nope"),
        lambda: registry.fetch("nope", tmp_path / "cache"),
        lambda: registry.delete("nope"),
    ):
        with pytest.raises(RegistryError, match=f"no version nope in {registry.url}"):
            call()


def test_delete_removes_the_version(
    registry: Registry, make_version: MakeVersion, tmp_path: Path
) -> None:
    registry.publish(make_version("a"))
    registry.publish(make_version("b"))

    registry.delete("a")

    assert [v.version for v in registry.versions()] == ["b"]
    assert registry.problems("a") == [f"no version a in {registry.url}"]
    registry.fetch("b", tmp_path / "cache")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"version": "../escape", "created": "2026-01-01T00:00:00"}, "not a version id"),
        ({"version": "v1"}, "created"),
        ({"version": "v1", "created": "yesterday"}, "created"),
    ],
)
def test_a_version_dir_with_a_bad_manifest_is_refused(
    registry: Registry, tmp_path: Path, manifest: dict[str, str], message: str
) -> None:
    source = tmp_path / "bad"
    source.mkdir()
    (source / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(RegistryError, match=message):
        registry.publish(source)
    assert registry.versions() == []


def test_a_bad_version_id_is_refused_before_any_path_is_built(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError, match="not a version id"):
        registry.fetch("../../etc", tmp_path / "cache")


def test_a_tiny_trained_model_round_trips(
    registry: Registry, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A real export (SavedModels, vectors, vocabularies) published and fetched back loads as
    the same version."""
    version = registry.publish(tiny_model_dir)

    fetched = registry.fetch(version, tmp_path / "cache")

    assert read_manifest(fetched) == read_manifest(tiny_model_dir)
    assert registry.versions()[0].version == version
    original = np.load(tiny_model_dir / "movie_vectors.npy")
    assert np.array_equal(np.load(fetched / "movie_vectors.npy"), original)
    assert files_of(fetched) == files_of(tiny_model_dir)


# --- the local backend ---


def test_local_fetch_is_the_version_in_place(make_version: MakeVersion, tmp_path: Path) -> None:
    registry = open_registry(f"file://{tmp_path / 'root'}")
    registry.publish(make_version())

    assert registry.fetch("v1", tmp_path / "cache") == tmp_path / "root" / "v1"
    assert not (tmp_path / "cache").exists()


def test_local_publishing_a_version_already_in_the_root_writes_its_record(
    make_version: MakeVersion, tmp_path: Path
) -> None:
    """A training run whose artifacts directory is the registry's root."""
    root = tmp_path / "artifacts"
    root.mkdir()
    make_version().rename(root / "v1")
    registry = open_registry(root)
    assert registry.versions() == []

    assert registry.publish(root / "v1") == "v1"

    assert [v.version for v in registry.versions()] == ["v1"]
    assert registry.problems("v1") == []


def test_local_versions_skip_staging_and_files_are_world_readable(
    make_version: MakeVersion, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / ".publish-crashed" / "x").mkdir(parents=True)
    previous = os.umask(0o077)
    try:
        open_registry(root).publish(make_version())
    finally:
        os.umask(previous)

    assert [v.version for v in open_registry(root).versions()] == ["v1"]
    assert (root / "v1").stat().st_mode & 0o777 == 0o755
    assert (root / "v1" / "vocab" / "genres.txt").stat().st_mode & 0o777 == 0o644


# --- the S3 backend ---

slow = pytest.mark.slow


@slow
def test_s3_fetch_reuses_a_verified_download_and_replaces_a_damaged_one(
    s3_url: str, make_version: MakeVersion, tmp_path: Path
) -> None:
    registry = open_registry(s3_url)
    source = make_version()
    registry.publish(source)
    cache = tmp_path / "cache"
    first = registry.fetch("v1", cache)
    marker = first.stat().st_ino

    assert registry.fetch("v1", cache).stat().st_ino == marker  # not downloaded again
    (first / "vocab" / "genres.txt").write_bytes(b"tampered")
    again = registry.fetch("v1", cache)

    assert again == cache / "v1"
    assert files_of(again) == files_of(source)
    assert [p.name for p in cache.iterdir()] == ["v1"]  # no staging left behind


@slow
def test_s3_publish_removes_what_an_interrupted_attempt_left(
    s3_url: str, make_version: MakeVersion
) -> None:
    registry = open_registry(s3_url)
    Storage(registry).put("v1/stale-from-a-crash.bin", b"junk")

    registry.publish(make_version())

    assert registry.problems("v1") == []


@slow
def test_s3_without_a_prefix_keeps_versions_at_the_top(
    s3_url: str, make_version: MakeVersion, tmp_path: Path
) -> None:
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    registry = open_registry(f"s3://{bucket}")
    registry.publish(make_version())

    assert [v.version for v in registry.versions()] == ["v1"]
    assert [v.version for v in open_registry(s3_url).versions()] == []
    assert files_of(registry.fetch("v1", tmp_path / "c")) == files_of(make_version())


def test_s3_client_has_deadlines_and_takes_endpoint_and_region_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, {**DUMMY_ENV, "AWS_REGION": "eu-west-3"})
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")  # AWS_REGION wins, as in other SDKs
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    registry = open_registry("s3://bucket/prefix")
    assert isinstance(registry, S3Registry)

    config = vars(registry.client.meta.config)  # botocore sets its options as attributes
    assert (config["connect_timeout"], config["read_timeout"]) == (CONNECT_TIMEOUT, READ_TIMEOUT)
    assert config["retries"] == {"total_max_attempts": ATTEMPTS, "mode": "standard"}
    assert registry.client.meta.region_name == "eu-west-3"
    assert registry.client.meta.endpoint_url == "http://127.0.0.1:9"


@slow
def test_s3_failures_are_one_registry_error_saying_what_and_where(
    s3_env: MotoServer, make_version: MakeVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RegistryError, match=r"s3://no-such-bucket/m/.*NoSuchBucket") as caught:
        open_registry("s3://no-such-bucket/m").versions()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    from bench.harness.servers import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nobody there
    with pytest.raises(RegistryError, match=r"S3 get s3://any-bucket/m/v1/complete.json: Endpoint"):
        open_registry("s3://any-bucket/m").publish(make_version())


@slow
def test_s3_layout_is_every_file_under_its_key_and_the_record_beside_them(
    s3_url: str, make_version: MakeVersion
) -> None:
    registry = open_registry(s3_url)
    source = make_version()
    registry.publish(source)
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    client = boto3.client("s3", region_name=REGION)

    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/v1/")
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    record_key = f"{PREFIX}/v1/complete.json"
    record = json.loads(client.get_object(Bucket=bucket, Key=record_key)["Body"].read())

    assert keys == sorted([record_key, *(f"{PREFIX}/v1/{name}" for name in files_of(source))])
    assert {f["path"]: f["size"] for f in record["files"]} == {
        name: len(data) for name, data in files_of(source).items()
    }
    assert record["directories"] == [
        "movie_tower",
        "movie_tower/assets",
        "movie_tower/variables",
        "vocab",
    ]


# --- URLs ---


@pytest.mark.parametrize(
    "url", ["", "http://host/models", "file://relative/path", "file://host/abs", "s3://", "s3:///p"]
)
def test_a_url_that_names_no_registry_is_refused(url: str) -> None:
    with pytest.raises(RegistryError, match="s3://bucket/prefix"):
        open_registry(url)


def test_urls_choose_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, DUMMY_ENV)
    assert open_registry(f"file://{tmp_path}").url == str(tmp_path)
    assert open_registry(tmp_path).url == str(tmp_path)
    assert open_registry("relative/dir").url == "relative/dir"
    registry = open_registry("s3://bucket/a/b/")
    assert isinstance(registry, S3Registry)
    assert (registry.bucket, registry.prefix, registry.url) == ("bucket", "a/b", "s3://bucket/a/b")
