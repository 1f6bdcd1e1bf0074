"""The cost of a million recommendations at steady traffic: Fargate, Lambda and Personalize.

Each design is priced per hour at a steady rate of requests, then per million requests. The work
per request is measured (this run's warm durations, memory and cold starts; `bench.serving`'s
requests per second per replica), the deployment is `infra/`'s, the prices are
`prices.toml`'s. How each design turns traffic into billed units:

- **Fargate**: enough tasks that each stays at the autoscaler's CPU target when one task at full
  CPU serves the measured requests per second, never fewer than the configured minimum; plus the
  ALB (hourly + LCUs: new connections, as many per request as `prices.toml` says; rules under
  the free 10) and the Redis nodes.
- **Lambda**: every request billed (request price + its measured duration rounded up to the
  billing step, at the memory it needs) behind an HTTP API, plus cold starts, each billed for
  the measured cold start; plus the same Redis nodes, which the handler reads every request's
  history from. Instances and cold starts follow `cold_starts`.
- **Personalize**: a real-time campaign billed for max(minimum provisioned TPS, actual TPS)
  every hour, under its monthly tiers. Its training, data ingestion and the backend that calls
  it are not counted (nor are they on the other two lines).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from lambdafit.cost_inputs import Deployment
from lambdafit.prices import Prices, tiered
from lambdafit.summary import CatalogSummary, label

LEVELS = (1.0, 10.0, 100.0, 1000.0)  # requests per second in the table
LOW, HIGH = 1.0, 1000.0  # the plotted and searched range
MILLION = 1_000_000
DESIGNS = ("Fargate", "Lambda", "Personalize")


@dataclass(frozen=True)
class FargateSetup:
    deployment: Deployment
    rps_per_task: float  # one task at full CPU, measured
    rps_source: str


@dataclass(frozen=True)
class LambdaSetup:
    memory_mb: float
    warm_seconds: float  # mean measured duration of a warm invocation
    billed_seconds: float  # mean of each measured duration rounded up to the billing step
    cold_seconds: float  # a measured cold start: fresh process -> first answer
    redis_node_type: str
    redis_nodes: int


@dataclass(frozen=True)
class Bill:
    """One design at one traffic level: dollars per hour by part, and what drove them."""

    design: str
    rps: float
    parts: dict[str, float]  # $ per hour
    units: float = 0.0  # tasks (Fargate), warm instances (Lambda), billed TPS (Personalize)
    cold_per_request: float = 0.0  # Lambda: the share of requests that wait for a cold start

    @property
    def hourly(self) -> float:
        return sum(self.parts.values())

    @property
    def per_million(self) -> float:
        return self.hourly / (self.rps * 3600) * MILLION


@dataclass(frozen=True)
class CatalogCost:
    summary: CatalogSummary
    fargate: FargateSetup
    lambda_: LambdaSetup
    prices: Prices

    @property
    def name(self) -> str:
        return label(self.summary)

    def bill(self, design: str, rps: float) -> Bill:
        if design == "Fargate":
            return fargate(rps, self.fargate, self.prices)
        if design == "Lambda":
            return lambda_(rps, self.lambda_, self.prices)
        return personalize(rps, self.prices)

    def per_million(self, design: str, rps: float) -> float:
        return self.bill(design, rps).per_million

    def crossings(self) -> dict[tuple[str, str], list[float]]:
        pairs = [(a, b) for i, a in enumerate(DESIGNS) for b in DESIGNS[i + 1 :]]
        return {
            (a, b): crossings(partial(self.per_million, a), partial(self.per_million, b))
            for a, b in pairs
        }


def fargate_tasks(rps: float, setup: FargateSetup) -> int:
    d = setup.deployment
    return max(d.min_tasks, math.ceil(rps / (setup.rps_per_task * d.cpu_target) - 1e-9))


def fargate(rps: float, setup: FargateSetup, prices: Prices) -> Bill:
    d = setup.deployment
    tasks = fargate_tasks(rps, setup)
    task_hour = d.vcpu * prices.fargate_vcpu_hour + d.memory_gb * prices.fargate_gb_hour
    lcus = rps * prices.alb_new_connections_per_request / prices.lcu_new_connections_per_second
    return Bill(
        "Fargate",
        rps,
        {
            "tasks": tasks * task_hour,
            "ALB": prices.alb_hour + lcus * prices.alb_lcu_hour,
            "Redis": d.redis_nodes * node_hour(d.redis_node_type, prices),
        },
        units=tasks,
    )


def node_hour(node_type: str, prices: Prices) -> float:
    if node_type not in prices.node_hour:
        raise KeyError(f"prices.toml has no [elasticache.node_hour] price for {node_type}")
    return prices.node_hour[node_type]


def cold_starts(
    rps: float, duration: float, idle_reclaim: float, lifetime: float
) -> tuple[float, float]:
    """(cold starts per second, instances kept warm) for Poisson arrivals at `rps`, each
    holding one instance for `duration` seconds.

    Concurrency is then Poisson with mean rps x duration. Instance k is needed whenever k or more
    requests run at once; such episodes begin at rate rps x P(concurrency = k - 1). Lambda
    reclaims an instance idle for `idle_reclaim` seconds, so an episode finds instance k cold
    when no episode came in that window (probability exp(-rate x idle_reclaim)); and it replaces
    a kept instance every `lifetime` seconds. Requests are assumed to fill the lowest-numbered
    free instance, which keeps the fewest warm: the cheapest case for Lambda.
    """
    mean = rps * duration
    total = warm = 0.0
    pmf = math.exp(-mean)  # P(concurrency = k - 1), from k = 1
    k = 1
    while True:
        rate = rps * pmf
        kept = -math.expm1(-rate * idle_reclaim)
        total += rate * math.exp(-rate * idle_reclaim) + kept / lifetime
        warm += kept
        if k > mean and rate * (1 + idle_reclaim) < 1e-12:  # the rest adds nothing
            return total, warm
        pmf *= mean / k
        k += 1


def lambda_(rps: float, setup: LambdaSetup, prices: Prices) -> Bill:
    gb = setup.memory_mb / 1024
    per_second, warm = cold_starts(
        rps, setup.warm_seconds, prices.idle_reclaim_seconds, prices.instance_lifetime_seconds
    )
    requests_hour = rps * 3600
    monthly = requests_hour * prices.hours_per_month
    return Bill(
        "Lambda",
        rps,
        {
            "requests": requests_hour * prices.lambda_request,
            "duration": requests_hour * setup.billed_seconds * gb * prices.lambda_gb_second,
            "cold starts": per_second * 3600 * setup.cold_seconds * gb * prices.lambda_gb_second,
            "API Gateway": tiered(monthly, prices.api_gateway) / prices.hours_per_month,
            "Redis": setup.redis_nodes * node_hour(setup.redis_node_type, prices),
        },
        units=warm,
        cold_per_request=per_second / rps,
    )


def personalize(rps: float, prices: Prices) -> Bill:
    tps = max(prices.personalize_min_tps, rps)
    monthly = tiered(tps * prices.hours_per_month, prices.personalize)
    return Bill("Personalize", rps, {"campaign": monthly / prices.hours_per_month}, units=tps)


def lambda_memory_mb(peak_rss_mb: float, prices: Prices) -> int:
    """The memory setting: the measured peak (a reload included), and at least one full vCPU,
    since the durations were measured on one whole core."""
    return math.ceil(max(peak_rss_mb, prices.full_vcpu_mb))


def billed_seconds(durations: list[float], step_ms: float) -> float:
    """Mean billed duration: each invocation rounded up to the billing step on its own."""
    step = step_ms / 1000
    return sum(math.ceil(d / step - 1e-9) * step for d in durations) / len(durations)


def crossings(
    first: Callable[[float], float],
    second: Callable[[float], float],
    low: float = LOW,
    high: float = HIGH,
    points: int = 2000,
) -> list[float]:
    """Every traffic level in [low, high] where the two costs swap order, found on a log grid
    and refined by bisection (a Fargate step is found at the step)."""
    logs = [
        math.log(low) + (math.log(high) - math.log(low)) * i / points for i in range(points + 1)
    ]

    def gap(x: float) -> float:
        rps = math.exp(x)
        return first(rps) - second(rps)

    found = []
    for a, b in itertools.pairwise(logs):
        ga, gb = gap(a), gap(b)
        if ga == 0:
            found.append(math.exp(a))
        elif ga * gb < 0:
            for _ in range(60):
                mid = (a + b) / 2
                if gap(a) * gap(mid) <= 0:
                    b = mid
                else:
                    a = mid
            found.append(math.exp((a + b) / 2))
    return found
