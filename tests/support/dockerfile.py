"""Just enough of a Dockerfile parser for the tests: instructions, stages, ENV and exec forms."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    stage: str | None  # the `AS name` of the FROM this instruction belongs to
    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD/ENTRYPOINT/HEALTHCHECK CMD (shell form is not accepted)."""
        text = self.value.split(" CMD ", 1)[1] if self.keyword == "HEALTHCHECK" else self.value
        parsed = json.loads(text)
        assert isinstance(parsed, list), f"{self.keyword} must use the exec (JSON) form"
        return [str(item) for item in parsed]

    def flags(self) -> dict[str, str]:
        """`--name=value` options before the arguments (COPY --from, RUN --mount, ...)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.value))

    def words(self) -> list[str]:
        return shlex.split(self.value)


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    logical: list[str] = []
    pending = ""
    for line in path.read_text("utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines, also between continued lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    result: list[Instruction] = []
    stage: str | None = None
    for text in logical:
        keyword, _, value = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\s+AS\s+(\S+)$", value, flags=re.IGNORECASE)
            stage = match.group(1) if match else None
        result.append(Instruction(stage, keyword, " ".join(value.split())))
    return result


def stage(name: str) -> list[Instruction]:
    return [i for i in instructions() if i.stage == name]


def final_stage() -> list[Instruction]:
    last = [i for i in instructions() if i.keyword == "FROM"][-1].stage
    return [i for i in instructions() if i.stage == last]


def env(items: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in items:
        if instruction.keyword == "ENV":
            for word in instruction.words():
                key, _, value = word.partition("=")
                values[key] = value
    return values


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults."""
    values: dict[str, str] = {}
    for instruction in instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            key, _, value = instruction.value.partition("=")
            values[key] = value
    return values


def allowed_in_context() -> set[str]:
    """The `!path` entries of the .dockerignore allow-list (it starts by ignoring `*`)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text("utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must be an allow-list: '*' first"
    return {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
