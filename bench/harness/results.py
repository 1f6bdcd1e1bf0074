"""A benchmark's current tables, written into docs/benchmarks.md by the command that measured
them: `args, run = begin_run(parser)` (or `Run.begin()`) when the command starts,
`run.record(name, table, ...)` once a table is measured.

docs/benchmarks.md holds one section per benchmark, in this format (a section written by hand
follows it too):

    ## <name>

    `<the command line, as run>`

    commit <hash>[+dirty] · <YYYY-MM-DD HH:MM> UTC · <CPU model>, <N> cores, <M> GiB · load <L>

    <each table's title, then the table in Markdown>

    <notes, a paragraph each>

`<hash>` is HEAD's short hash, `+dirty` when the work tree differed from it (other than in
docs/benchmarks.md itself); the load is the one-minute load average when the command started
(the cores may be shared). Recording a section replaces the section of that name (from its
`## <name>` line to the next `## ` line) and keeps every other one as it was, hand-written ones
included; a new name goes at the end.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.harness import machine

BENCHMARKS = machine.ROOT / machine.RESULTS
NO_WRITE_HELP = "Print the tables only; do not write them into docs/benchmarks.md."
WRITE_HELP = "Write the tables into docs/benchmarks.md (--no-write: print them only)."
PREAMBLE = """# Benchmarks

The tables below are written by the bench commands themselves (`python -m bench.<name>`): one
current table per benchmark, each under the command, commit, date and machine that produced it.
How a figure moved over time is in the commit log (`git log -p docs/benchmarks.md`), not here.
"""


def command_line(argv: Sequence[str] | None = None) -> str:
    """This process's command as typed: `.venv/bin/python -m bench.index --sizes 10000`."""
    argv = sys.argv if argv is None else argv
    python = Path(sys.executable)
    if python.is_relative_to(machine.ROOT):
        python = python.relative_to(machine.ROOT)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        program = [str(python), "-m", spec.name.removesuffix(".__main__")]
    else:
        program = [str(python), argv[0]]
    return shlex.join([*program, *argv[1:]])


def _plain(cell: object) -> str:
    """A rich cell as plain Markdown text: markup gone, pipes escaped, on one line."""
    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = Text.from_markup(cell).plain
    else:
        text = str(cell)
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(table: Table) -> str:
    """A rich Table as a Markdown table (right-justified columns stay right-aligned)."""
    header = [_plain(column.header) for column in table.columns]
    rule = ["---:" if column.justify == "right" else "---" for column in table.columns]
    rows = zip(*(list(column.cells) for column in table.columns), strict=True)
    lines = [header, rule, *([_plain(cell) for cell in row] for row in rows)]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines) + "\n"


def replace_section(text: str, name: str, section: str) -> str:
    """`text` with its `## <name>` section replaced by `section`, or `section` added at the end.

    Headings inside fenced code blocks are not headings."""
    lines = text.splitlines(keepends=True)
    headings = []
    fenced = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("## ") and not fenced:
            headings.append(number)
    for start in headings:
        if lines[start].rstrip() == f"## {name}":
            end = next((n for n in headings if n > start), len(lines))
            after = "".join(lines[end:])
            return "".join(lines[:start]) + section + ("\n" + after if after else "")
    return text.rstrip("\n") + "\n\n" + section


def begin_run(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Run]:
    """A bench command's arguments (`--no-write` added to `parser`) and its Run, begun."""
    parser.add_argument("--no-write", action="store_true", help=NO_WRITE_HELP)
    args = parser.parse_args()
    return args, Run.begin(write=not args.no_write)


@dataclass(frozen=True)
class Run:
    """What a section is headed by, taken when the command starts."""

    command: str
    commit: str
    date: str
    machine: str
    load: float
    write: bool = True
    path: Path = field(default=BENCHMARKS)

    @classmethod
    def begin(cls, write: bool = True, path: Path = BENCHMARKS) -> Run:
        """`write` False: `record` writes nothing (a trial run, a `--no-write`)."""
        return cls(
            command=command_line(),
            commit=machine.commit(),
            date=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=machine.describe(),
            load=os.getloadavg()[0],
            write=write,
            path=path,
        )

    def section(self, name: str, tables: Iterable[Table], notes: Sequence[str] = ()) -> str:
        parts = [
            f"## {name}\n",
            f"`{self.command}`\n",
            f"commit {self.commit} · {self.date} · {self.machine} · load {self.load:.2f}\n",
        ]
        for table in tables:
            if table.title:
                parts.append(f"{_plain(table.title)}\n")
            parts.append(markdown_table(table))
        parts += [f"{note}\n" for note in notes]
        return "\n".join(parts)

    def record(self, name: str, *tables: Table, notes: Sequence[str] = ()) -> None:
        """Write the `## <name>` section of docs/benchmarks.md (unless `write` is off)."""
        if not self.write:
            return
        text = self.path.read_text("utf-8") if self.path.exists() else PREAMBLE
        updated = replace_section(text, name, self.section(name, tables, notes))
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        staging.write_text(updated, "utf-8")
        staging.replace(self.path)  # a reader never sees half a file
        Console(stderr=True).print(f"wrote ## {name} in {self.path}", highlight=False)
