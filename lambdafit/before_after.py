"""Serving before vs after TensorFlow left the replica (issue 27), as `bench.startup --baseline`
measured it: read from the file that command writes, so the report quotes one run of both codes
side by side, with its commit, date and load, instead of measuring a second checkout itself."""

from __future__ import annotations

import json
from typing import Any

from service.config import PROJECT_ROOT

RECORD = PROJECT_ROOT / "var" / "bench" / "first-seconds.json"


def load() -> dict[str, Any] | None:
    """The last before/after run, or None when `bench.startup --baseline` has not run here."""
    if not RECORD.is_file():
        return None
    return json.loads(RECORD.read_text("utf-8"))  # type: ignore[no-any-return]
