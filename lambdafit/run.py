"""The `python -m lambdafit` run: prepare each catalog, measure both designs, write the report.

Catalogs are measured one after another, never two processes under test at once. Per catalog:
cold starts of the Lambda-style handler, each in a fresh process (the first one then also runs
the warm invocations, a full state reload and change-log catch-up inside the instance); then one
container replica, started, queried and sent webhooks. Everything measured is written to
`lambda-fit.json`; the report and the plots are rendered from that file alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.harness import machine as harness_machine
from bench.harness.servers import ServerStopped, server_env
from lambdafit import before_after, catalogs, container, deps
from lambdafit.catalogs import Catalog
from service.config import PROJECT_ROOT, Settings

Say = Callable[[str], None]


class LambdaFitError(Exception):
    """A run that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    out: Path
    work: Path
    movielens: bool = True
    container: bool = True
    cold_runs: int = 3
    requests: int = 300
    webhooks: int = 5
    redis_url: str | None = None
    timeout: float = 3600.0  # per process under test
    render_only: bool = False  # re-render the report and plots from the last lambda-fit.json


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": harness_machine.cpu_model(),
        "cores": harness_machine.cores(),
        "ram_gb": harness_machine.memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": harness_machine.commit(PROJECT_ROOT),
        "versions": {name: version(name) for name in ("faiss-cpu", "numpy", "fastapi", "uvicorn")},
    }


def model_dir(settings: Settings) -> Path:
    from embeddings.artifacts import ArtifactError, resolve_model_dir

    base = Path(settings.artifacts_dir)
    path = base if settings.model_version == "latest" else base / settings.model_version
    try:
        return resolve_model_dir(path).resolve()
    except ArtifactError as exc:
        raise LambdaFitError(f"{exc}; train one first: movie-recs train --out {base}") from None


def probe(env: dict[str, str], spec: dict[str, Any], log: Path, timeout: float) -> dict[str, Any]:
    """One cold start in a fresh process (`lambdafit.probe`); its JSON result."""
    spec = {**spec, "spawned": time.time()}
    with log.open("ab") as err:
        done = subprocess.run(
            [sys.executable, "-m", "lambdafit.probe", json.dumps(spec)],
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout,
        )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}); see {log}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure_catalog(cat: Catalog, options: Options, model: Path, say: Say) -> dict[str, Any]:
    env = server_env(cat.store_url, model)  # a version directory: "latest" takes it as is
    logs = options.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stem = cat.name.replace(" ", "-").replace(",", "")
    try:
        return _measure(cat, options, env, logs, stem, say)
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        raise LambdaFitError(f"{cat.name}: {exc} (logs in {logs})") from None


def _measure(
    cat: Catalog, options: Options, env: dict[str, str], logs: Path, stem: str, say: Say
) -> dict[str, Any]:
    runs = options.cold_runs
    cold = []
    for i in range(runs):
        say(f"{cat.name}: Lambda-style cold start {i + 1}/{runs}")
        spec = {
            "users": list(cat.users),
            "requests": options.requests if i == 0 else 0,
            "reload": i == 0,
        }
        cold.append(probe(env, spec, logs / f"{stem}-lambda.log", options.timeout))
    result: dict[str, Any] = {"catalog": asdict(cat), "lambda": cold, "container": None}
    if options.container:
        result["container"] = _container(cat, options, env, logs / f"{stem}-serve.log", say)
    return result


def _container(
    cat: Catalog, options: Options, env: dict[str, str], log: Path, say: Say
) -> dict[str, Any]:
    """One replica measured, started from the snapshot a first replica wrote after its full
    sync (timed too); started once more if it stopped before it was ready (other jobs share
    this machine), which the report then says."""
    snapshots = options.work / "snapshots" / log.stem
    shutil.rmtree(snapshots, ignore_errors=True)
    env = {**env, "MOVIE_RECS_SNAPSHOT_DIR": str(snapshots.resolve())}
    for attempt in (1, 2):
        say(f"{cat.name}: a first container replica: full sync, then its snapshot")
        try:
            full_sync = container.publish_snapshot(
                env, log.with_name(f"{log.stem}-first.log"), options.timeout
            )
            say(f"{cat.name}: container (movie-recs serve) startup, requests, webhooks")
            measured = container.measure(
                env, list(cat.users), options.requests, options.webhooks, log, options.timeout
            )
        except ServerStopped as exc:
            if attempt == 2:
                raise
            say(f"{cat.name}: {exc}; starting it again")
            continue
        if not container.started_from_snapshot(log):
            raise RuntimeError(f"{cat.name}: the measured replica did not start from a snapshot")
        return {**measured, "full_sync_ready_seconds": full_sync, "attempts": attempt}
    raise AssertionError("unreachable")


def prepare(
    options: Options, settings: Settings, model: Path, say: Say
) -> list[Callable[[], Catalog]]:
    """The catalogs to measure, as thunks: on Redis each one replaces the previous."""
    from embeddings.artifacts import read_manifest

    manifest = read_manifest(model)
    version_, dim = str(manifest["version"]), int(manifest["dim"])
    redis = options.redis_url
    plan: list[Callable[[], Catalog]] = []
    if options.movielens:
        movielens = partial(catalogs.movielens, options.work, settings.data_dir, model)
        plan.append(partial(movielens, redis_url=redis, say=say))
    for size in options.sizes:
        plan.append(
            partial(catalogs.synthetic, options.work, size, version_, dim, redis_url=redis, say=say)
        )
    return plan


def run(options: Options, settings: Settings, command: str, say: Say = print) -> dict[str, Any]:
    """Measure everything, then write `lambda-fit.json`, the plots and `lambda-fit.md`."""
    try:
        from lambdafit import plots  # noqa: F401  (checked before an hour of measuring)
    except ImportError as exc:
        raise LambdaFitError(
            f"{exc.name} is missing: install the report extra (uv sync --extra report)"
        ) from None
    if options.render_only:
        return render(options.out)
    started = time.perf_counter()
    options.work.mkdir(parents=True, exist_ok=True)
    options.out.mkdir(parents=True, exist_ok=True)
    model = model_dir(settings)
    results: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "model": {
            "version": model.name,
            "bytes": deps.tree_bytes(model),
            "source_bytes": sum(
                deps.tree_bytes(PROJECT_ROOT / pkg, "**/*.py") for pkg in ("service", "embeddings")
            ),
        },
        "settings": {
            "omp_threads": settings.omp_threads,
            "tf_threads": settings.tf_threads,
            "ann_threshold": settings.ann_threshold,
            "store": "redis" if options.redis_url else "sqlite",
            "requests": options.requests,
            "cold_runs": options.cold_runs,
            "webhooks": options.webhooks,
            "container": options.container,
        },
        "dependencies": serving_closure(),
        "catalogs": [],
    }
    recorded = before_after.load()
    if recorded is not None:
        results["before_after"] = recorded
    for make in prepare(options, settings, model, say):
        cat = make()
        results["catalogs"].append(measure_catalog(cat, options, model, say))
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = time.perf_counter() - started
    (options.out / "lambda-fit.json").write_text(json.dumps(results, indent=1), "utf-8")
    return render(options.out)


def serving_closure() -> list[dict[str, Any]]:
    """The serving process's runtime dependencies, TensorFlow a training extra outside them
    (seconds to measure: every RECORD file is listed, nothing is imported)."""
    return [asdict(p) for p in deps.measure(PROJECT_ROOT / "uv.lock")]


def cost(out: Path) -> dict[str, Any]:
    """Measure the serving closure into `lambda-fit.json` (the rest of it stays as recorded),
    then re-render the report, cost section and plots included."""
    source = out / "lambda-fit.json"
    if not source.is_file():
        raise LambdaFitError(f"no {source}: run the measurements first (make lambda-fit)")
    results: dict[str, Any] = json.loads(source.read_text("utf-8"))
    results["dependencies"] = serving_closure()
    results.pop("dependencies_without_tensorflow", None)  # recorded while serving had TensorFlow
    source.write_text(json.dumps(results, indent=1), "utf-8")
    return render(out)


def render(out: Path) -> dict[str, Any]:
    """The plots and `lambda-fit.md` from `lambda-fit.json`, priced with `prices.toml`: numbers
    only ever come from a run, a bench table or the dated price file."""
    from lambdafit import cost_inputs, cost_report, plots, prices, report

    source = out / "lambda-fit.json"
    if not source.is_file():
        raise LambdaFitError(f"no {source}: run the measurements first")
    results: dict[str, Any] = json.loads(source.read_text("utf-8"))
    try:
        price = prices.load()
        throughput = cost_inputs.throughput()
        costs = cost_report.analyse(results, price, cost_inputs.deployment(), throughput)
    except (prices.PriceError, cost_inputs.InputError) as exc:
        raise LambdaFitError(str(exc)) from None
    plots.render(results, out, costs)
    section = cost_report.render(results, costs, throughput, price)
    (out / "lambda-fit.md").write_text(report.render(results, section), "utf-8")
    return results
