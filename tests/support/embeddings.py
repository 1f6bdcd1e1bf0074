"""Type names of the embeddings tests' fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# `write_data(ratings=..., movies=..., ...)`: a MovieLens-format directory (conftest.py)
WriteData = Callable[..., Path]
