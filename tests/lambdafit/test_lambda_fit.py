"""`python -m lambdafit`: the dependency closure, and the whole command at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambdafit import deps
from service.config import PROJECT_ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_runtime_closure_holds_the_service_stack_and_no_extras() -> None:
    packages = {p.name: p for p in deps.measure(PROJECT_ROOT / "uv.lock")}

    for needed in ("faiss-cpu", "numpy", "fastapi", "uvicorn", "uvloop"):
        assert needed in packages  # uvloop: a main dependency (not uvicorn[standard])
    # Serving runs both towers in NumPy: TensorFlow is the train extra, outside the closure.
    for extra in ("tensorflow-cpu", "matplotlib", "aws-cdk-lib", "pytest", "ruff", "movie-recs"):
        assert extra not in packages
    faiss = packages["faiss-cpu"]
    assert faiss.wheel is not None and faiss.wheel.startswith(f"faiss_cpu-{faiss.version}-")
    assert faiss.wheel_bytes is not None and faiss.installed_bytes > faiss.wheel_bytes
    sizes = [p.installed_bytes for p in packages.values()]
    assert sizes == sorted(sizes, reverse=True)  # largest first


@pytest.mark.slow
def test_the_command_measures_both_designs_and_writes_the_report(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "reports"
    command = [
        sys.executable, "-m", "lambdafit", "--sizes", "2000", "--no-movielens", "--cold-runs", "1",
        "--requests", "20", "--webhooks", "1", "--out", str(out), "--work", str(tmp_path / "w"),
    ]  # fmt: skip
    env = {
        **os.environ,
        "MOVIE_RECS_ARTIFACTS_DIR": str(tiny_model_dir),
        "MOVIE_RECS_MODEL_VERSION": "latest",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    done = subprocess.run(command, env=env, capture_output=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]

    report = (out / "lambda-fit.md").read_text("utf-8")
    for section in (
        "## What is measured and what is simulated",
        "## Headline",
        "## 1. Dependency size",
        "## 2. Internal state",
        "## 3. Cold starts",
        "## 4. Warm latency",
    ):
        assert section in report
    assert "TensorFlow is about 50 MB zipped" in report and "**moot for serving**" in report
    assert "2k synthetic" in report and "not measured" not in report
    for png in ("lambda-fit-first-recommendation.png", "lambda-fit-dependencies.png"):
        assert f"]({png})" in report
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000

    results = json.loads((out / "lambda-fit.json").read_text("utf-8"))
    [measured] = results["catalogs"]
    [cold] = measured["lambda"]
    assert cold["movies"] == 2000 and cold["index_kind"] == "flat"
    assert len(cold["warm_seconds"]) == 20 and cold["reload_seconds"] > 0
    assert sum(cold["timeline"].values()) > max(cold["warm_seconds"])
    served = measured["container"]
    assert served["movies"] == 2000 and served["first_strategy"] == "personalized"
    assert len(served["webhook_seconds"]) == 1 and served["peak_rss_mb"] > 100
    # The measured replica started from the snapshot the first one wrote after its full sync.
    assert served["full_sync_ready_seconds"] > 0
    assert "started from snapshot" in (tmp_path / "w/logs/synthetic-2000-serve.log").read_text()

    (out / "lambda-fit.md").unlink()  # the report is a function of the measured numbers alone
    again = subprocess.run([*command[:3], "--render-only", "--out", str(out)], env=env, timeout=60)
    assert again.returncode == 0 and (out / "lambda-fit.md").read_text("utf-8") == report
