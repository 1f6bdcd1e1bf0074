"""`movie-recs experiments create | list | stop` against a store, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from service.cli import app
from service.store import open_store
from service.store.records import Exposure, ExposureLimits

runner = CliRunner()


def said(result: Result) -> str:
    """The output as one line (rich wraps at the terminal's width)."""
    return " ".join(result.output.split())


def test_create_list_stop(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIE_RECS_STORE_URL", store_url)
    created = runner.invoke(
        app, ["experiments", "create", "ab1", "-v", "model:personalized", "-v", "pop:popular:3"]
    )
    assert created.exit_code == 0, created.output
    assert "model=personalized (1), pop=popular (3)" in said(created)

    again = runner.invoke(
        app, ["experiments", "create", "ab2", "-v", "a:popular", "-v", "b:popular"]
    )
    assert again.exit_code == 2 and "'ab1' is running" in said(again)

    listed = runner.invoke(app, ["experiments", "list"])
    assert listed.exit_code == 0 and "ab1" in listed.output and "yes" in listed.output

    stopped = runner.invoke(app, ["experiments", "stop", "ab1"])
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert "yes" not in runner.invoke(app, ["experiments", "list"]).output


def test_bad_input_is_one_line_and_exit_2(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIE_RECS_STORE_URL", store_url)
    for args, says in (
        (["create", "x", "-v", "a:popular"], "2 to 10 variants"),
        (["create", "x", "-v", "a:random", "-v", "b:popular"], "strategy must be one of"),
        (["create", "x", "-v", "a", "-v", "b:popular"], "name:strategy"),
        (["create", "x", "-v", "a:popular:heavy", "-v", "b:popular"], "must be a number"),
        (["stop", "nope"], "no experiment named 'nope'"),
        (["create", "x", "-v", "a:personalized", "-v", "b:popular@v1"], "only a personalized"),
        (
            ["create", "x", "-v", "a:personalized", "-v", "b:personalized@v-none"],
            "not in the registry",
        ),
    ):
        result = runner.invoke(app, ["experiments", *args])
        assert result.exit_code == 2 and says in said(result), (args, result.output)


def test_report_prints_each_variant_and_the_srm_check(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOVIE_RECS_STORE_URL", store_url)
    monkeypatch.setenv("MOVIE_RECS_EXPERIMENT_MIN_USERS", "5")
    runner.invoke(app, ["experiments", "create", "ab", "-v", "m:personalized", "-v", "p:popular"])

    async def traffic() -> None:
        store = await open_store(store_url)
        try:
            shown = [
                Exposure(uuid.uuid4().hex, f"u{i}", ("1",), "user", "popular", "m", time.time(),
                         "ab", assign_name(i))
                for i in range(40)
            ]  # fmt: skip
            await store.add_exposures(shown, ExposureLimits(3600, 1000, 5))
            for exposure in shown[:10]:
                await store.claim_attribution(exposure, "1", 3600)
        finally:
            await store.close()

    asyncio.run(traffic())
    table = runner.invoke(app, ["experiments", "report", "ab"])
    assert table.exit_code == 0, table.output
    assert "Experiment ab (running)" in said(table) and "srm p-value" in said(table)
    as_json = runner.invoke(app, ["experiments", "report", "ab", "--json"])
    report = json.loads(as_json.output)
    assert [v["users"] for v in report["variants"]] == [20, 20]
    assert sum(v["attributed"] for v in report["variants"]) == 10
    missing = runner.invoke(app, ["experiments", "report", "zz"])
    assert missing.exit_code == 2 and "no experiment named 'zz'" in said(missing)


def assign_name(i: int) -> str:
    return "m" if i % 2 else "p"


def test_a_variant_names_a_registry_version(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, other_tiny_model_dir: Path
) -> None:
    monkeypatch.setenv("MOVIE_RECS_STORE_URL", store_url)
    monkeypatch.setenv("MOVIE_RECS_REGISTRY_URL", str(tmp_path / "registry"))
    published = runner.invoke(app, ["models", "publish", str(other_tiny_model_dir)])
    assert published.exit_code == 0, published.output
    version = said(published).split()[1]
    created = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "ab",
            "-v",
            "a:personalized",
            "-v",
            f"b:personalized@{version}:2",
        ],
    )
    assert created.exit_code == 0, created.output
    assert f"b=personalized@{version} (2)" in said(created)
    broken = tmp_path / "broken"
    broken.mkdir()
    refused = runner.invoke(app, ["models", "publish", str(broken)])
    assert refused.exit_code == 2 and "cannot publish" in said(refused)
