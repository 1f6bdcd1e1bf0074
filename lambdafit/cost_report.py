"""The report's cost section: each measured catalog priced three ways, the table and crossings.

Built from `lambda-fit.json` (durations, memory, cold starts), `bench.serving`'s throughput,
`infra/`'s defaults and `prices.toml`; nothing here is typed in but the words.
"""

from __future__ import annotations

import math
import statistics
from functools import partial
from typing import Any

from lambdafit import cost
from lambdafit.cost import CatalogCost, FargateSetup, LambdaSetup
from lambdafit.cost_inputs import Deployment, InputError, Throughput, rps_for
from lambdafit.plots import COST_PLOT
from lambdafit.prices import Prices
from lambdafit.report import table
from lambdafit.summary import summaries


def analyse(
    results: dict[str, Any], prices: Prices, deployment: Deployment, throughput: Throughput
) -> list[CatalogCost]:
    """Every measured catalog that `bench.serving` also measured on Redis, smallest first."""
    costed = []
    by_name = {e["catalog"]["name"]: e for e in results["catalogs"]}
    for s in summaries(results):
        try:
            row, rps = rps_for(throughput.rows, s.size, s.synthetic)
        except InputError:
            continue
        warm = next(e for e in by_name.values() if e["lambda"][0]["movies"] == s.size)
        durations = warm["lambda"][0]["warm_seconds"]
        peak = max(s.lambda_rss_mb, s.lambda_rss_reload_mb or 0)
        costed.append(
            CatalogCost(
                summary=s,
                fargate=FargateSetup(deployment, rps, f"{row}: {rps:,.0f} req/s"),
                lambda_=LambdaSetup(
                    memory_mb=cost.lambda_memory_mb(peak, prices),
                    warm_seconds=statistics.fmean(durations),
                    billed_seconds=cost.billed_seconds(durations, prices.lambda_billing_ms),
                    cold_seconds=s.cold_median,
                    redis_node_type=deployment.redis_node_type,
                    redis_nodes=deployment.redis_nodes,
                ),
                prices=prices,
            )
        )
    return costed


def dollars(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 0.995:
        return f"${value:.2f}"
    if value >= 0.001:
        return f"${value:.3f}"
    return "$0" if value == 0 else f"${value:.1g}" if value >= 1e-4 else "< $0.0001"


def rate(rps: float) -> str:
    return f"{rps:,.0f} req/s" if rps >= 10 else f"{rps:.1f} req/s"


def one_in(share: float) -> str:
    return "none" if share <= 0 else f"1 in {1 / share:,.0f}"


def crossing_sentence(c: CatalogCost) -> str:
    parts = []
    for (a, b), points in c.crossings().items():
        if points:
            where = ", ".join(rate(p) for p in points)
            parts.append(f"{a} and {b} cross at {where}")
        else:
            cheaper = a if c.per_million(a, cost.LOW) < c.per_million(b, cost.LOW) else b
            parts.append(f"{a} and {b} never cross: {cheaper} is cheaper from 1 to 1,000 req/s")
    return "; ".join(parts) + ".\n\n" + _sensitivity(c)


def _sensitivity(c: CatalogCost) -> str:
    """What the choices the issue leaves open move: the store on the Lambda line, cold starts."""

    def bare(rps: float) -> float:
        bill = c.bill("Lambda", rps)
        return (bill.hourly - bill.parts["Redis"]) / (rps * 3600) * cost.MILLION

    points = cost.crossings(partial(c.per_million, "Fargate"), bare)
    without = (
        f"at {', '.join(rate(p) for p in points)}" if points else "nowhere from 1 to 1,000 req/s"
    )
    share = max(
        c.bill("Lambda", rps).parts["cold starts"] / c.bill("Lambda", rps).hourly
        for rps in cost.LEVELS
    )
    init = c.lambda_.cold_seconds
    over = (
        f" A cold start here ({init:.1f} s) is longer than the 10 s init phase: on AWS the "
        "init is retried inside the first invocation, which the model bills the same."
        if init > 10
        else ""
    )
    return (
        f"Without the Redis nodes on the Lambda line (a store it would still need), Fargate and "
        f"Lambda would cross {without}. Cold starts are at most {share:.1%} of the Lambda line's "
        f"cost at these levels; what they cost is latency: the share of callers who wait "
        f"{init:.1f} s.{over}\n"
    )


def _table(c: CatalogCost) -> str:
    rows = []
    for rps in cost.LEVELS:
        f, lam, p = (c.bill(d, rps) for d in cost.DESIGNS)
        cheapest = min((f, lam, p), key=lambda b: b.per_million).design
        rows.append(
            f"| {rate(rps)} | {dollars(f.per_million)} ({f.units:.0f} tasks) "
            f"| {dollars(lam.per_million)} ({lam.units:.1f} warm, "
            f"cold {one_in(lam.cold_per_request)}) "
            f"| {dollars(p.per_million)} ({p.units:,.0f} TPS) | {cheapest} |"
        )
    return (
        "| steady traffic | Fargate (tasks) | Lambda (warm instances, requests that wait for a "
        "cold start) | Personalize (billed TPS) | cheapest |\n| --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n"
    )


def _parts(c: CatalogCost) -> str:
    rows = []
    for design in cost.DESIGNS:
        low, high = c.bill(design, cost.LOW), c.bill(design, cost.HIGH)
        for part in low.parts:
            rows.append(
                f"| {design} | {part} | {dollars(low.parts[part])} | "
                f"{dollars(low.parts[part] / 3600 * cost.MILLION)} | {dollars(high.parts[part])} "
                f"| {dollars(high.parts[part] / (cost.HIGH * 3600) * cost.MILLION)} |"
            )
    return (
        "| design | part | $/hour at 1 req/s | $ per million at 1 req/s | $/hour at 1,000 req/s "
        "| $ per million at 1,000 req/s |\n| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n"
    )


def _configured(c: CatalogCost) -> str:
    """The stack's own autoscaling also tracks requests per task, which scales out sooner."""
    d = c.fargate.deployment
    rps = cost.HIGH
    by_requests = math.ceil(rps / d.requests_per_target_per_second)
    tasks = min(d.max_tasks, max(cost.fargate_tasks(rps, c.fargate), by_requests))
    at_cpu = cost.fargate(rps, c.fargate, c.prices)
    task_hour = at_cpu.parts["tasks"] / at_cpu.units
    hourly = at_cpu.hourly + (tasks - at_cpu.units) * task_hour
    per_million = hourly / (rps * 3600) * cost.MILLION
    return (
        f"The stack also scales on requests per task ({d.requests_per_target_per_second:.0f}/s "
        f"per task, `requests_per_target`) up to `max_tasks` {d.max_tasks}: as deployed today it "
        f"would run {tasks} tasks at 1,000 req/s, {dollars(per_million)} per million instead of "
        f"{dollars(at_cpu.per_million)}; the lines above use the measured capacity."
    )


def _inputs(c: CatalogCost, throughput: Throughput) -> list[list[str]]:
    d, lam, s = c.fargate.deployment, c.lambda_, c.summary
    return [
        [
            "Fargate requests/s per task (full CPU)",
            c.fargate.rps_source,
            f"`bench.serving` (docs/benchmarks.md, serving: {throughput.provenance}); "
            "wrk ran on the same 2 cores",
        ],
        [
            "Fargate task, count, scaling",
            f"{d.vcpu:g} vCPU / {d.memory_gb:g} GB, at least {d.min_tasks} tasks, "
            f"CPU target {d.cpu_target:.0%}",
            "`infra/config.py` defaults",
        ],
        [
            "Redis",
            f"{d.redis_nodes} x {d.redis_node_type} (primary + replica)",
            "`infra/config.py`, `infra/cache.py`",
        ],
        [
            "Lambda memory",
            f"{lam.memory_mb:,.0f} MB",
            f"peak RSS {max(s.lambda_rss_mb, s.lambda_rss_reload_mb or 0):,.0f} MB (this run), "
            f"at least {c.prices.full_vcpu_mb:,.0f} MB (one vCPU)",
        ],
        [
            "Lambda warm duration",
            f"mean {lam.warm_seconds * 1000:.2f} ms, billed {lam.billed_seconds * 1000:.2f} ms",
            "this run's warm invocations (section 4), each "
            f"rounded up to {c.prices.lambda_billing_ms:g} ms",
        ],
        [
            "Lambda cold start",
            f"{lam.cold_seconds:.1f} s billed per cold start",
            "this run's median cold start (spawn → first answer, section 3)",
        ],
    ]


def _prices(prices: Prices) -> str:
    rows = [
        ("fargate", f"${prices.fargate_vcpu_hour} per vCPU-hour, "
                    f"${prices.fargate_gb_hour} per GB-hour"),
        ("alb", f"${prices.alb_hour} per hour, ${prices.alb_lcu_hour} per LCU-hour "
                f"(1 LCU = {prices.lcu_new_connections_per_second:g} new connections/s)"),
        ("elasticache", ", ".join(f"{k} ${v}/hour" for k, v in prices.node_hour.items())),
        ("lambda", f"${prices.lambda_request * cost.MILLION:.2f} per million requests, "
                   f"${prices.lambda_gb_second} per GB-second, rounded up to "
                   f"{prices.lambda_billing_ms:g} ms"),
        ("api_gateway", "HTTP API " + _tier_text(prices.api_gateway, "requests", cost.MILLION,
                                                  "million")),
        ("personalize", f"at least {prices.personalize_min_tps:g} TPS, "
                        + _tier_text(prices.personalize, "TPS-hours", 1, "TPS-hour")),
    ]  # fmt: skip
    body = "\n".join(
        f"| {name} | {text} | {prices.sources[name]} | {prices.found.get(name, 'that page')} |"
        for name, text in rows
    )
    return "| part | price | source page | read from |\n| --- | --- | --- | --- |\n" + body + "\n"


def _tier_text(tiers: tuple[tuple[float, float], ...], unit: str, per: float, per_name: str) -> str:
    parts, below = [], 0.0
    for up_to, price in tiers:
        span = f"beyond {below:,.0f}" if math.isinf(up_to) else f"up to {up_to:,.0f}"
        parts.append(f"${price * per:g} per {per_name} {span}")
        below = up_to
    return f"{'; '.join(parts)} {unit} a month"


def render(
    results: dict[str, Any], costs: list[CatalogCost], throughput: Throughput, prices: Prices
) -> str:
    if not costs:
        return (
            "## 5. The cost of a million recommendations\n\nNo measured catalog has a "
            "`bench.serving` row on Redis to take the Fargate throughput from.\n"
        )
    head = [
        f"Prices as of **{prices.as_of.isoformat()}** ({prices.region}, on demand, no free tier), "
        "from [`lambdafit/prices.toml`](../lambdafit/prices.toml); regenerate this section, its "
        "table and plot from the recorded measurements with `python -m lambdafit cost`. "
        "Steady traffic means Poisson arrivals at a constant rate, all month.\n",
        f"![cost per million recommendations]({COST_PLOT})\n",
    ]
    for c in costs:
        head.append(f"### {c.name}\n\n" + _table(c) + "\n" + crossing_sentence(c) + "\n")
    main = costs[0]
    head.append(
        f"### What each line is made of ({main.name})\n\n"
        + _parts(main)
        + "\n"
        + _configured(main)
        + "\n"
    )
    inputs = [[f"{c.name}: {a}", b, src] for c in costs for a, b, src in _inputs(c, throughput)]
    head.append(
        "### Inputs\n\n" + table(["input", "value", "from"], inputs) + "\n" + _prices(prices)
    )
    head.append(
        "### How the model works\n\n"
        f"- **Fargate**: tasks = max({main.fargate.deployment.min_tasks}, traffic / (requests/s "
        f"per task at full CPU x the CPU target)). The ALB's LCUs are new connections "
        f"({prices.alb_new_connections_per_request:g} per request, i.e. no keep-alive: the "
        "dearest case); its one forwarding rule is under the free 10; processed bytes would "
        "take over only above 11 KB per request (not measured here). The throughput per task is "
        "`bench.serving`'s at the commit it names, on this machine's cores, not a Fargate vCPU; "
        "work added to the request path since is in it only once that bench is rerun.\n"
        "- **Lambda**: memory is the measured peak RSS (a reload included) but at least one "
        "vCPU's worth, because the durations were measured on a whole core. Concurrency is "
        "Poisson (traffic x the mean warm duration); instance *k* is needed whenever *k* "
        "requests run at once, is reclaimed after "
        f"{prices.idle_reclaim_seconds / 60:g} minutes without one, and is replaced every "
        f"{prices.instance_lifetime_seconds / 3600:g} hours even when busy (neither is "
        "documented by AWS: both are measured by others, see `prices.toml`). Requests fill the "
        "lowest free instance first, which keeps the fewest warm: the cheapest case for Lambda. "
        "Each cold start is billed for the whole measured cold start (INIT is billed since "
        "2025-08-01) and makes one caller wait for it. The Redis nodes the handler reads every "
        "history from are counted, as on Fargate.\n"
        "- **Personalize**: a campaign is billed for max(minimum provisioned TPS, actual TPS), "
        "every hour, under monthly tiers. Training, data ingestion and the backend that would "
        "call it are not counted.\n"
        "- **Not counted on any line**: NAT gateways (the stack runs "
        "two), EFS, CloudWatch, data transfer out, S3, free tiers and Savings Plans.\n"
    )
    return "## 5. The cost of a million recommendations\n\n" + "\n".join(head)
