"""The image's Python environment, checked without building it.

The Dockerfile installs `uv sync --frozen --no-dev` from uv.lock (test_dockerfile checks the
flags). Installing that again here would download 2 GB of TensorFlow, so instead: the lock
agrees with pyproject.toml; this test environment holds every package of that no-dev set at
the locked version; the application code imports nothing outside it (dev tools and extras are
absent from the image); and the CLI starts. What this cannot show: that the wheels install on
the slim base image (system libraries), which only a real `docker build` proves.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tests.support import dockerfile as df

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"service", "embeddings"}
# Packages only training and evaluation may import (the `train` extra, which the Dockerfile's
# training stages install and the serving image leaves out). SciPy left this set when the
# experiment report (service/experiments/stats.py) made it a main dependency; TensorFlow joined
# it when the service's towers became NumPy (docs/decisions/0029).
TRAINING_ONLY = {"tensorflow", "keras", "scipy"}  # the train extra
TRAINING_MODULES = {
    f"embeddings/{name}.py"
    for name in ("baselines", "model", "features", "export", "train", "optimizer")
} | {"embeddings/artifacts.py", "embeddings/movie_inputs.py"}  # these two import it lazily
LOCK = tomllib.loads((ROOT / "uv.lock").read_text("utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PACKAGES = {p["name"]: p for p in LOCK["package"]}
PROJECT = PACKAGES[PYPROJECT["project"]["name"]]


def _applies(dependency: dict[str, object]) -> bool:
    """Markers evaluated for this interpreter: Linux, x86_64, CPython 3.11, like the image."""
    marker = dependency.get("marker")
    return marker is None or Marker(str(marker)).evaluate({"extra": ""})


def left_out() -> set[str]:
    """Locked packages the Dockerfile does not install (`uv sync --no-install-package NAME`)."""
    syncs = [i.value for i in df.stage("deps") + df.stage("builder") if "uv sync" in i.value]
    per_sync = [set(re.findall(r"--no-install-package (\S+)", sync)) for sync in syncs]
    assert all(names == per_sync[0] for names in per_sync), "each sync would reinstall the rest"
    return per_sync[0]


def image_packages() -> dict[str, str]:
    """name -> locked version for what `uv sync --no-dev --no-install-project` installs, less
    what the Dockerfile leaves out."""
    todo = [(d["name"], tuple(d.get("extra", ()))) for d in PROJECT["dependencies"]]
    found: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        package = PACKAGES[name]
        found[name] = package["version"]
        dependencies = list(package.get("dependencies", []))
        for extra in extras:
            dependencies += package.get("optional-dependencies", {}).get(extra, [])
        todo += [(d["name"], tuple(d.get("extra", ()))) for d in dependencies if _applies(d)]
    return {name: version for name, version in found.items() if name not in left_out()}


def _requirement_key(requirement: Requirement) -> tuple[str, str, tuple[str, ...], str]:
    return (
        canonicalize_name(requirement.name),
        str(requirement.specifier),
        tuple(sorted(requirement.extras)),
        str(requirement.marker or ""),
    )


def test_lock_file_is_up_to_date_with_pyproject() -> None:
    """`--frozen` trusts the lock as is; a dependency edited without `uv lock` must fail CI."""
    declared = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra, requirements in PYPROJECT["project"].get("optional-dependencies", {}).items():
        declared += [Requirement(f"{r}; extra == '{extra}'") for r in requirements]
    locked = []
    for entry in PROJECT["metadata"]["requires-dist"]:
        text = entry["name"]
        if entry.get("extras"):
            text += f"[{','.join(entry['extras'])}]"
        text += entry.get("specifier", "")
        if entry.get("marker"):
            text += f"; {entry['marker']}"
        locked.append(Requirement(text))
    assert sorted(map(_requirement_key, declared)) == sorted(map(_requirement_key, locked))


def test_this_environment_has_every_image_package_at_its_locked_version() -> None:
    packages = image_packages()
    assert {"faiss-cpu", "numpy", "uvicorn", "uvloop", "redis", "hiredis"} <= set(packages)
    assert not {"pytest", "ruff", "aws-cdk-lib", "matplotlib"} & set(packages)
    assert not {"tensorflow-cpu", "tensorflow", "keras"} & set(packages)  # training only
    assert {"scipy", "mpmath"} & set(packages) == {"mpmath"}  # the report's distributions
    assert "libclang" not in packages  # a TensorFlow dependency nothing here imports
    wrong = {}
    for name, version in packages.items():
        installed = importlib.metadata.version(name)
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed: {wrong}"


def _imports(path: Path) -> set[str]:
    """Top-level modules a file imports anywhere (functions too), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _outside_the_image(modules: set[str]) -> dict[str, list[NormalizedName]]:
    """Modules that no package of the image provides (stdlib and first-party are fine)."""
    image = {canonicalize_name(name) for name in image_packages()}
    providers = importlib.metadata.packages_distributions()
    outside = {}
    known = FIRST_PARTY | set(sys.stdlib_module_names) | {"__future__"}
    for module in modules - known:
        distributions = [canonicalize_name(d) for d in providers.get(module, [])]
        if not set(distributions) & image:
            outside[module] = distributions
    return outside


def test_application_code_imports_only_what_the_image_installs() -> None:
    """Lazy imports inside functions count: they run in production, not at start-up."""
    modules: set[str] = set()
    for package in FIRST_PARTY:
        for path in (ROOT / package).rglob("*.py"):
            imported = _imports(path)
            if path.relative_to(ROOT).as_posix() not in TRAINING_MODULES:
                assert not imported & TRAINING_ONLY, f"{path} imports a training-only package"
            modules |= imported - TRAINING_ONLY
    assert "faiss" in modules
    assert not _outside_the_image(modules)


def test_the_product_cli_does_not_know_the_measuring_tool() -> None:
    """`lambda-fit` is `python -m lambdafit` from a source checkout, not a `movie-recs` command:
    the image has no lambdafit/, so the product must not name it."""
    from typer.testing import CliRunner

    from service.cli import app

    result = CliRunner().invoke(app, ["lambda-fit"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_cli_and_app_start_in_this_environment() -> None:
    """`movie-recs --help` runs, and importing the app loads no package the image lacks."""
    cli = Path(sys.executable).parent / "movie-recs"
    shown = subprocess.run(
        [str(cli), "--help"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for command in ("serve", "import-movielens", "train", "send-webhook"):
        assert command in shown
    probe = (
        "import json, sys; import service.api.app, service.cli; "
        "print(json.dumps(sorted({n.split('.')[0] for n, m in list(sys.modules.items()) "
        "if getattr(m, '__file__', None)})))"  # SWIG and friends add file-less modules
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout
    modules = {m for m in json.loads(loaded) if not m.startswith("_")}
    assert {"fastapi", "numpy", "faiss"} <= modules and not modules & TRAINING_ONLY
    # numpy.f2py (which SciPy's array API layer imports) tries charset_normalizer and runs
    # without it: present here through the dev tools, absent from the image.
    assert not _outside_the_image(modules - {"charset_normalizer"})
