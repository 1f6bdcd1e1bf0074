"""docs/benchmarks.md as the bench commands write it: a run replaces its own section, keeps every
other one (hand-written ones too) and says what was run, from which commit, on what machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from rich.table import Table

from bench.harness import machine
from bench.harness.results import PREAMBLE, Run, command_line, markdown_table, replace_section

HAND_WRITTEN = """# Benchmarks

Written by the bench commands.

## serving

`.venv/bin/python -m bench.serving`

commit 21433f9 · 2026-11-28 · 2 cores · load 6-8

| catalog | ratio |
| --- | --- |
| MovieLens | 0.18x |

## index

an older index table

## startup

a note
"""


def run_into(path: Path) -> Run:
    return Run(
        command=".venv/bin/python -m bench.index --sizes 10000",
        commit="abc1234+dirty",
        date="2026-12-04 10:00 UTC",
        machine="Some CPU, 2 cores, 8 GiB",
        load=1.25,
        path=path,
    )


def index_table() -> Table:
    table = Table(title="Index search, [b]µs[/b]")
    table.add_column("movies", justify="right")
    table.add_column("IVF")
    table.add_row("10,000", "Flat:4 | 32")
    return table


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^(?=## )", text, flags=re.M)
    return {part.splitlines()[0]: part.strip() for part in parts if part.startswith("## ")}


def test_a_run_replaces_its_own_section_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(HAND_WRITTEN, "utf-8")

    run_into(path).record("index", index_table(), notes=["200 queries."])

    text = path.read_text("utf-8")
    before, after = sections(HAND_WRITTEN), sections(text)
    assert list(after) == ["## serving", "## index", "## startup"]  # in place, none added
    assert after["## serving"] == before["## serving"]
    assert after["## startup"] == before["## startup"]
    assert text.startswith("# Benchmarks\n\nWritten by the bench commands.\n\n## serving")
    assert "an older index table" not in text
    assert after["## index"] == (
        "## index\n\n"
        "`.venv/bin/python -m bench.index --sizes 10000`\n\n"
        "commit abc1234+dirty · 2026-12-04 10:00 UTC · Some CPU, 2 cores, 8 GiB · load 1.25\n\n"
        "Index search, µs\n\n"
        "| movies | IVF |\n"
        "| ---: | --- |\n"
        "| 10,000 | Flat:4 \\| 32 |\n\n"
        "200 queries."
    )

    run_into(path).record("index", index_table())  # again: still one index section
    assert text.count("## index") == 1 == path.read_text("utf-8").count("## index")


def test_a_new_benchmark_goes_at_the_end_and_a_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    run_into(path).record("index", index_table())
    assert path.read_text("utf-8").startswith(PREAMBLE + "\n## index\n")

    run_into(path).record("workers", index_table(), index_table())
    text = path.read_text("utf-8")
    assert list(sections(text)) == ["## index", "## workers"]
    assert sections(text)["## workers"].count("| movies | IVF |") == 2
    assert text.endswith("|\n") and "\n\n\n" not in text


def test_no_write_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(HAND_WRITTEN, "utf-8")
    Run.begin(write=False, path=path).record("index", index_table())
    assert path.read_text("utf-8") == HAND_WRITTEN


def test_the_real_file_keeps_every_other_section(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    shutil.copy(machine.ROOT / "docs/benchmarks.md", path)
    before = sections(path.read_text("utf-8"))

    run_into(path).record("index", index_table())

    after = sections(path.read_text("utf-8"))
    assert list(after) == list(before | {"## index": ""})
    assert {k: v for k, v in after.items() if k != "## index"} == {
        k: v for k, v in before.items() if k != "## index"
    }


def test_the_header_names_the_command_the_commit_and_the_machine() -> None:
    run = Run.begin(write=False)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=machine.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert run.commit in (head, f"{head}+dirty")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", run.date)
    assert f"{machine.cores()} cores" in run.machine and run.load >= 0
    text = run.section("index", [index_table()])
    assert f"`{run.command}`" in text and f"commit {run.commit} · {run.date}" in text

    command = command_line(["bench/index.py", "--sizes", "10000", "--variants", "Flat:4 x"])
    assert command.endswith(" --sizes 10000 --variants 'Flat:4 x'")


def test_the_commit_is_dirty_when_the_tree_changed_but_not_for_the_results(
    tmp_path: Path,
) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/benchmarks.md").write_text("# Benchmarks\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    clean = machine.commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{7,}", clean)

    (tmp_path / "docs/benchmarks.md").write_text("# Benchmarks\n\n## index\n")
    assert machine.commit(tmp_path) == clean  # a bench run's own output is not a change
    (tmp_path / "code.py").write_text("x = 2\n")
    assert machine.commit(tmp_path) == f"{clean}+dirty"


def test_a_heading_inside_a_code_fence_is_not_a_section() -> None:
    text = "## startup\n\n```\n## index\n```\n\n## index\n\nold\n"
    replaced = replace_section(text, "index", "## index\n\nnew\n")
    assert replaced == "## startup\n\n```\n## index\n```\n\n## index\n\nnew\n"


def test_a_table_is_markdown() -> None:
    table = Table()
    table.add_column("a")
    table.add_column("b", justify="right")
    table.add_row("[bold]x[/bold]", "1\n2")
    assert markdown_table(table) == "| a | b |\n| --- | ---: |\n| x | 1 2 |\n"
