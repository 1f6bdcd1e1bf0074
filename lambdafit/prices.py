"""The price file (`lambdafit/prices.toml`): dated list prices with their sources, read once.

Prices are inputs, never constants in code: a price that moved is one edit in that file (and its
`as_of`), and the report prints the date and every source next to the numbers it produced.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

PRICES = Path(__file__).with_name("prices.toml")
SECTIONS = ("fargate", "alb", "elasticache", "lambda", "api_gateway", "personalize")

Tiers = tuple[tuple[float, float], ...]  # (up to this many units a month, price per unit)


class PriceError(ValueError):
    """The price file is missing a price, a date or a source; the message names it."""


@dataclass(frozen=True)
class Prices:
    as_of: date
    region: str
    hours_per_month: float
    fargate_vcpu_hour: float
    fargate_gb_hour: float
    alb_hour: float
    alb_lcu_hour: float
    lcu_new_connections_per_second: float
    lcu_processed_gb_per_hour: float
    lcu_rule_evaluations_per_second: float
    alb_free_rules: int
    node_hour: dict[str, float]
    lambda_request: float
    lambda_gb_second: float
    lambda_billing_ms: float
    api_gateway: Tiers
    personalize_min_tps: float
    personalize: Tiers
    idle_reclaim_seconds: float
    instance_lifetime_seconds: float
    full_vcpu_mb: float
    alb_new_connections_per_request: float
    sources: dict[str, str]  # section -> the page the price belongs to
    found: dict[str, str]  # section -> where the number was read, when not on that page


def load(path: Path = PRICES) -> Prices:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PriceError(f"{path}: {exc}") from None
    return parse(raw, str(path))


def parse(raw: dict[str, Any], where: str = "prices") -> Prices:
    """Check the whole file before any number is used: a missing price fails here, by name."""
    if not isinstance(raw.get("as_of"), date):
        raise PriceError(f"{where}: as_of must be a date (as_of = 2026-12-05)")
    for section in SECTIONS:
        if not isinstance(raw.get(section), dict) or not raw[section].get("source"):
            raise PriceError(f"{where}: [{section}] needs a source (the page its prices are on)")

    def num(section: str, key: str) -> float:
        return _price(raw.get(section, {}).get(key), f"{where}: [{section}] {key}")

    f, a, lam, m = "fargate", "alb", "lambda", "model"
    nodes = raw["elasticache"].get("node_hour", {})
    return Prices(
        as_of=raw["as_of"],
        region=str(raw.get("region", "")),
        hours_per_month=float(raw.get("hours_per_month", 730)),
        fargate_vcpu_hour=num(f, "vcpu_hour"),
        fargate_gb_hour=num(f, "gb_hour"),
        alb_hour=num(a, "hour"),
        alb_lcu_hour=num(a, "lcu_hour"),
        lcu_new_connections_per_second=num(a, "lcu_new_connections_per_second"),
        lcu_processed_gb_per_hour=num(a, "lcu_processed_gb_per_hour"),
        lcu_rule_evaluations_per_second=num(a, "lcu_rule_evaluations_per_second"),
        alb_free_rules=int(num(a, "free_rules")),
        node_hour={
            str(k): _price(v, f"{where}: [elasticache.node_hour] {k}") for k, v in nodes.items()
        },
        lambda_request=num(lam, "request"),
        lambda_gb_second=num(lam, "gb_second"),
        lambda_billing_ms=num(lam, "billing_ms"),
        api_gateway=_tiers(raw["api_gateway"].get("tiers"), f"{where}: [api_gateway] tiers"),
        personalize_min_tps=num("personalize", "min_provisioned_tps"),
        personalize=_tiers(raw["personalize"].get("tiers"), f"{where}: [personalize] tiers"),
        idle_reclaim_seconds=num(m, "lambda_idle_reclaim_seconds"),
        instance_lifetime_seconds=num(m, "lambda_instance_lifetime_seconds"),
        full_vcpu_mb=num(m, "lambda_full_vcpu_mb"),
        alb_new_connections_per_request=num(m, "alb_new_connections_per_request"),
        sources={s: str(raw[s]["source"]) for s in SECTIONS},
        found={s: str(raw[s]["found"]) for s in SECTIONS if raw[s].get("found")},
    )


def _price(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise PriceError(f"{where} must be a number >= 0, not {value!r}")
    return float(value)


def _tiers(value: object, where: str) -> Tiers:
    """[[up_to, price], ...] by rising volume, the last one open (inf)."""
    if not isinstance(value, list) or not value:
        raise PriceError(f"{where}: a list of [up to this many a month, price]")
    tiers = tuple((float(up), float(price)) for up, price in value)
    bounds = [up for up, _ in tiers]
    if bounds != sorted(bounds) or not math.isinf(bounds[-1]) or min(p for _, p in tiers) < 0:
        raise PriceError(f"{where}: rising bounds, the last one inf, prices >= 0")
    return tiers


def tiered(units: float, tiers: Tiers) -> float:
    """What `units` in one month cost under volume tiers (each unit at its own tier's price)."""
    total, below = 0.0, 0.0
    for up_to, price in tiers:
        portion = min(units, up_to) - below
        if portion <= 0:
            break
        total += portion * price
        below = up_to
    return total
