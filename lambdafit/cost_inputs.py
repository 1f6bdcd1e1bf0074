"""What the cost model reads besides prices: the deployed shape and a measured throughput.

The task size, task counts, scaling target and Redis node come from `infra/config.py`'s
defaults and `infra/cache.py`'s node count, read as source (`ast`), not imported: importing the
CDK app starts a Node.js process for a handful of literals. The requests per second one Fargate
task serves come from `bench.serving`'s table in `docs/benchmarks.md`, with the commit and date
it names, so the figure is always a measured one and says where it came from.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from service.config import PROJECT_ROOT

INFRA_CONFIG = PROJECT_ROOT / "infra" / "config.py"
INFRA_CACHE = PROJECT_ROOT / "infra" / "cache.py"
BENCHMARKS = PROJECT_ROOT / "docs" / "benchmarks.md"
SERVING_SECTION = "## serving"
RPS_COLUMN = "recs req/s"


class InputError(ValueError):
    """An input file lacks what the cost model needs; the message names the file and the value."""


@dataclass(frozen=True)
class Deployment:
    """The Fargate service as `infra/` deploys it by default."""

    vcpu: float
    memory_gb: float
    min_tasks: int
    max_tasks: int
    cpu_target: float  # share of a task's CPU the autoscaler keeps it at
    requests_per_target_per_second: float  # the request-count scaling policy's target
    redis_node_type: str
    redis_nodes: int


@dataclass(frozen=True)
class Throughput:
    """Recommendations per second one replica served, by store and catalog (`bench.serving`)."""

    rows: dict[str, float]  # row label ("ml-latest-small, redis") -> recs req/s
    provenance: str  # the table's "commit … · date … · machine … · load" line


def literals(path: Path, class_name: str | None = None) -> dict[str, object]:
    """The constant assignments of a module (or of one class body in it), by name."""
    try:
        tree = ast.parse(path.read_text("utf-8"))
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{path}: {exc}") from None
    body: list[ast.stmt] = tree.body
    if class_name is not None:
        found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
        if not found:
            raise InputError(f"{path}: no class {class_name}")
        body = found[0].body
    values: dict[str, object] = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            if not isinstance(node.targets[0], ast.Name):
                continue
            target, value = node.targets[0].id, node.value
        else:
            continue
        try:
            values[target] = ast.literal_eval(value)
        except ValueError:
            continue  # not a literal (a call, a name): not a setting this model reads
    return values


def deployment(config: Path = INFRA_CONFIG, cache: Path = INFRA_CACHE) -> Deployment:
    stage = literals(config, "StageConfig")
    nodes = literals(cache)

    def get(source: dict[str, object], name: str, where: Path) -> float:
        value = source.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: no numeric default for {name}")
        return float(value)

    node_type = stage.get("redis_node_type")
    if not isinstance(node_type, str):
        raise InputError(f"{config}: no default redis_node_type")
    return Deployment(
        vcpu=get(stage, "cpu", config) / 1024,
        memory_gb=get(stage, "memory_mib", config) / 1024,
        min_tasks=int(get(stage, "min_tasks", config)),
        max_tasks=int(get(stage, "max_tasks", config)),
        cpu_target=get(stage, "cpu_target_percent", config) / 100,
        requests_per_target_per_second=get(stage, "requests_per_target", config) / 60,
        redis_node_type=node_type,
        redis_nodes=int(get(nodes, "NODES_PER_GROUP", cache)),
    )


def throughput(path: Path = BENCHMARKS) -> Throughput:
    """The `## serving` table: each row's recommendations per second, and where it was taken."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: {exc}") from None
    start = text.find(f"\n{SERVING_SECTION}\n")
    if start < 0:
        raise InputError(f"{path}: no '{SERVING_SECTION}' section (python -m bench.serving)")
    section = text[start + 1 :].split("\n## ", 1)[0]
    lines = section.splitlines()
    provenance = next((line for line in lines if line.startswith("commit ")), "")
    table = [line for line in lines if line.startswith("|")]
    if len(table) < 3:
        raise InputError(f"{path}: '{SERVING_SECTION}' has no table")
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    if RPS_COLUMN not in header:
        raise InputError(f"{path}: '{SERVING_SECTION}' has no '{RPS_COLUMN}' column")
    column = header.index(RPS_COLUMN)
    rows: dict[str, float] = {}
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        number = re.sub(r"[,\s]", "", cells[column]) if len(cells) > column else ""
        if re.fullmatch(r"\d+(\.\d+)?", number):
            rows[cells[0]] = float(number)
    if not rows:
        raise InputError(f"{path}: '{SERVING_SECTION}' has no measured '{RPS_COLUMN}'")
    return Throughput(rows=rows, provenance=provenance)


def rps_for(rows: dict[str, float], size: int, synthetic: bool) -> tuple[str, float]:
    """(row label, recs req/s) of the `bench.serving` row for the same catalog on Redis, the
    store Fargate uses; InputError when the bench has no such row."""
    prefix = f"synthetic {size:,} " if synthetic else "ml-latest-small"
    for label, value in rows.items():
        if label.startswith(prefix) and label.endswith(", redis"):
            return label, value
    raise InputError(f"no bench.serving row on redis starting {prefix!r}")
