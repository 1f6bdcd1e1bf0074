"""`python -m embeddings`: what the image's training stage runs with only embeddings/ and data/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMPORT_ALL = (
    "import importlib, pkgutil, embeddings\n"
    "for module in pkgutil.walk_packages(embeddings.__path__, 'embeddings.'):\n"
    "    importlib.import_module(module.name)\n"
)


def _without_service(tmp_path: Path) -> dict[str, str]:
    """An environment where `import service` fails, as in the training stage of the image.

    The child runs in tmp_path: a checkout as working directory would put the real package first.
    """
    blocker = tmp_path / "service"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no service in the training stage')\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow  # two TensorFlow imports
def test_training_code_never_imports_the_service(tmp_path: Path) -> None:
    """A `service` import would break the image build and retrain on every service change."""
    env = _without_service(tmp_path)
    subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], env=env, cwd=tmp_path, check=True, timeout=120
    )
    result = subprocess.run(
        [sys.executable, "-m", "embeddings", "train", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--out" in result.stdout and "--data" in result.stdout
