"""The one JSON parser for request bodies: strict numbers and bounded nesting.

Python's `json` accepts `NaN`, `Infinity` and `1e999` (a float that is infinite), which no
JSON client means and which cannot be written back in an error message; and it recurses once
per nesting level. Both are refused here with a message, before any model sees the document.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32  # the deepest body of the API nests 4 levels


class BadJSON(ValueError):
    """A body that is not the JSON the API accepts; the message says why."""


def _reject_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON number: send finite numbers only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON(f"{text[:40]} is out of range: send finite numbers only")
    return value


def load_json(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw`, or raise BadJSON (malformed, non-finite number, nested too deeply)."""
    try:
        document = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except BadJSON:
        raise
    except RecursionError:
        raise BadJSON(f"body nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJSON(f"body is not JSON: {str(exc)[:200]}") from None
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise BadJSON(f"body nested deeper than {max_depth} levels")
            stack.extend((child, depth + 1) for child in children)
    return document
