"""How big the service's runtime dependencies are, installed and as wheels.

The closure is walked from the installed `movie-recs` distribution's own requirements (extras
off: no train, report, infra or dev packages; an extra a requirement names is followed).
Installed size is the sum of the files each distribution's RECORD lists, as they are on this
disk. Zipped size is the wheel uv would install on this machine, read from `uv.lock`'s recorded
`size` field (a wheel is a zip archive: what a Lambda .zip package of that dependency would
carry).
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = "movie-recs"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    installed_bytes: int
    wheel_bytes: int | None  # None: no wheel for this platform in uv.lock
    wheel: str | None


def runtime_closure(
    root: str = ROOT, without: frozenset[str] = frozenset()
) -> dict[str, metadata.Distribution]:
    """Every installed distribution the root needs at run time, by canonical name; a name in
    `without` is not followed, so what only it requires is left out too."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    queue: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while queue:
        name, extras = queue.pop()
        key = canonicalize_name(name)
        if key in without:
            continue
        if key in found and extras <= extras_seen[key]:
            continue
        dist = found.get(key) or metadata.distribution(name)
        found[key] = dist
        extras_seen.setdefault(key, set()).update(extras)
        active = extras_seen[key] or {""}
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in active):
                queue.append((req.name, frozenset(req.extras)))
    return found


def installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def locked_wheels(lock: Path) -> dict[str, tuple[str, str, int]]:
    """Per package, the best wheel in uv.lock for this interpreter and platform:
    (version, file, size)."""
    rank = {tag: i for i, tag in enumerate(sys_tags())}
    best: dict[str, tuple[str, str, int]] = {}
    for package in tomllib.loads(lock.read_text("utf-8")).get("package", []):
        choice: tuple[int, str, int] | None = None
        for wheel in package.get("wheels", []):
            filename = wheel["url"].rsplit("/", 1)[-1]
            tags = parse_wheel_filename(filename)[3]
            score = min((rank[t] for t in tags if t in rank), default=None)
            if score is not None and "size" in wheel and (choice is None or score < choice[0]):
                choice = (score, filename, int(wheel["size"]))
        if choice is not None:
            best[canonicalize_name(package["name"])] = (package["version"], choice[1], choice[2])
    return best


def measure(lock: Path, without: frozenset[str] = frozenset()) -> list[Package]:
    """The runtime closure (the project itself excluded: it is editable here), largest first."""
    wheels = locked_wheels(lock) if lock.is_file() else {}
    packages = []
    for key, dist in runtime_closure(without=without).items():
        if key == canonicalize_name(ROOT):
            continue
        wheel = wheels.get(key)
        if wheel is not None and Version(wheel[0]) != Version(dist.version):
            wheel = None  # the lock describes another version than the one installed
        packages.append(
            Package(
                name=key,
                version=dist.version,
                installed_bytes=installed_bytes(dist),
                wheel_bytes=wheel[2] if wheel else None,
                wheel=wheel[1] if wheel else None,
            )
        )
    return sorted(packages, key=lambda p: -p.installed_bytes)


def tree_bytes(root: Path, pattern: str = "**/*") -> int:
    """Size of the files under a directory (the model, the project's own source)."""
    return sum(p.stat().st_size for p in root.glob(pattern) if p.is_file())
