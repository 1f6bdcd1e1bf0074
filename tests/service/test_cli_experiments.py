"""`movie-recs experiments create | list | stop` against a store, as an operator runs them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from service.cli import app

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
    ):
        result = runner.invoke(app, ["experiments", *args])
        assert result.exit_code == 2 and says in said(result), (args, result.output)
