"""Publishing a version and finding it again: plain file operations, no TensorFlow needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings.artifacts import ArtifactError, resolve_model_dir


def stage(artifacts: Path, content: str) -> Path:
    from embeddings.export import staging_dir

    staging = staging_dir(artifacts)
    (staging / "manifest.json").write_text(content)
    return staging


def test_publish_points_latest_at_the_version_and_replaces_a_retrained_one(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from embeddings.export import publish

    first = publish(stage(tmp_path, '{"n": 1}'), tmp_path, "abc")
    assert (tmp_path / "latest").read_text().strip() == "abc"
    assert resolve_model_dir(tmp_path) == first == resolve_model_dir(first)
    again = publish(stage(tmp_path, '{"n": 2}'), tmp_path, "abc")
    assert (again / "manifest.json").read_text() == '{"n": 2}'
    publish(stage(tmp_path, '{"n": 3}'), tmp_path, "def")
    assert resolve_model_dir(tmp_path).name == "def"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc", "def", "latest"]


def test_a_dangling_latest_or_an_empty_directory_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="latest"):
        resolve_model_dir(tmp_path)
    (tmp_path / "latest").write_text("gone\n")
    with pytest.raises(ArtifactError, match="gone"):
        resolve_model_dir(tmp_path)
