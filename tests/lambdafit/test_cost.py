"""The cost of a million recommendations: the model against hand-computed bills, the crossings,
the dated price file, the inputs it reads, and the report section the command writes."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lambdafit import cost, cost_inputs, prices
from lambdafit.cost import FargateSetup, LambdaSetup
from lambdafit.cost_inputs import Deployment
from lambdafit.prices import PriceError, Prices
from service.config import PROJECT_ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def price_file(**changes: Any) -> dict[str, Any]:
    """Round numbers, so every bill below can be worked out by hand."""
    raw: dict[str, Any] = {
        "as_of": date(2026, 12, 5),
        "region": "us-east-1",
        "hours_per_month": 730,
        "fargate": {"source": "f", "vcpu_hour": 0.04, "gb_hour": 0.004},
        "alb": {
            "source": "a",
            "hour": 0.02,
            "lcu_hour": 0.008,
            "lcu_new_connections_per_second": 25,
            "lcu_processed_gb_per_hour": 1.0,
            "lcu_rule_evaluations_per_second": 1000,
            "free_rules": 10,
        },
        "elasticache": {"source": "e", "node_hour": {"cache.test": 0.03}},
        "lambda": {"source": "l", "request": 2e-7, "gb_second": 1e-5, "billing_ms": 1},
        "api_gateway": {"source": "g", "tiers": [[math.inf, 1e-6]]},
        "personalize": {
            "source": "p",
            "min_provisioned_tps": 1,
            "tiers": [[20_000, 0.2], [200_000, 0.1], [math.inf, 0.05]],
        },
        "model": {
            "lambda_idle_reclaim_seconds": 600,
            "lambda_instance_lifetime_seconds": 3600,
            "lambda_full_vcpu_mb": 1769,
            "alb_new_connections_per_request": 1.0,
        },
    }
    raw.update(changes)
    return raw


@pytest.fixture
def hand() -> Prices:
    return prices.parse(price_file())


DEPLOYMENT = Deployment(
    vcpu=1.0,
    memory_gb=2.0,
    min_tasks=2,
    max_tasks=6,
    cpu_target=0.5,
    requests_per_target_per_second=50.0,
    redis_node_type="cache.test",
    redis_nodes=2,
)
FARGATE = FargateSetup(DEPLOYMENT, rps_per_task=100.0, rps_source="hand")


def test_fargate_bill_by_hand(hand: Prices) -> None:
    bill = cost.fargate(250, FARGATE, hand)

    # 250 req/s at 50 per task (100 at full CPU x the 50% target): 5 tasks of 1 vCPU + 2 GB.
    assert bill.units == 5
    assert bill.parts["tasks"] == pytest.approx(5 * (0.04 + 2 * 0.004))
    # The ALB hour plus one new connection per request: 250/25 = 10 LCUs.
    assert bill.parts["ALB"] == pytest.approx(0.02 + 10 * 0.008)
    assert bill.parts["Redis"] == pytest.approx(2 * 0.03)
    assert bill.per_million == pytest.approx(0.40 / (250 * 3600) * 1e6)
    # Below the minimum, the minimum runs: 2 tasks at 1 req/s.
    assert cost.fargate(1, FARGATE, hand).units == 2


def test_lambda_bill_by_hand(hand: Prices) -> None:
    # A zero-length request never overlaps another: one instance, kept warm by 10 req/s (never
    # idle 10 minutes), replaced once an hour by its lifetime: one cold start an hour.
    setup = LambdaSetup(
        memory_mb=1024,
        warm_seconds=0.0,
        billed_seconds=0.002,
        cold_seconds=10.0,
        redis_node_type="cache.test",
        redis_nodes=2,
    )
    bill = cost.lambda_(10, setup, hand)

    assert bill.parts["requests"] == pytest.approx(36_000 * 2e-7)
    assert bill.parts["duration"] == pytest.approx(36_000 * 0.002 * 1 * 1e-5)
    assert bill.parts["cold starts"] == pytest.approx(1 * 10 * 1 * 1e-5)
    assert bill.parts["API Gateway"] == pytest.approx(36_000 * 1e-6)
    assert bill.parts["Redis"] == pytest.approx(0.06)
    assert bill.units == pytest.approx(1.0)
    assert bill.cold_per_request == pytest.approx(1 / 36_000)
    assert bill.per_million == pytest.approx(0.10402 / 36_000 * 1e6)


def test_personalize_bill_by_hand(hand: Prices) -> None:
    # 100 TPS all month: 73,000 TPS-hours, 20,000 at $0.20 and 53,000 at $0.10.
    assert cost.personalize(100, hand).hourly == pytest.approx((4000 + 5300) / 730)
    # Below the minimum of 1 TPS the campaign still bills 1 TPS.
    assert cost.personalize(0.5, hand).hourly == pytest.approx(0.2)


def test_cold_starts_follow_idle_reclaim_and_lifetime() -> None:
    # Nothing kept warm: every episode of k concurrent requests starts instance k cold, and
    # those episodes add up to one per request.
    per_second, warm = cost.cold_starts(5.0, 0.3, idle_reclaim=0.0, lifetime=math.inf)
    assert per_second == pytest.approx(5.0) and warm == 0
    # Reclaimed after 10 idle minutes: at a mean concurrency of 1.5, instance k stays warm while
    # k requests overlap more often than every 10 minutes (k <= 7, and 8 most of the time);
    # cold starts are the lifetimes' plus the rarely used instances' re-creations.
    per_second, warm = cost.cold_starts(5.0, 0.3, idle_reclaim=600.0, lifetime=3600.0)
    assert 7.5 < warm < 9.5 and warm / 3600 < per_second < warm / 3600 + 0.002
    # More traffic, more instances, rarer cold starts per request.
    low, high = (cost.cold_starts(r, 0.001, 600, 14_400)[0] / r for r in (1.0, 1000.0))
    assert high < low / 100


def test_billed_duration_rounds_each_invocation_up() -> None:
    assert cost.billed_seconds([0.0004, 0.0010, 0.0011], 1) == pytest.approx(0.004 / 3)
    assert cost.lambda_memory_mb(627.4, prices.parse(price_file())) == 1769
    assert cost.lambda_memory_mb(2930.1, prices.parse(price_file())) == 2931


def test_crossings_are_computed_where_the_order_swaps(hand: Prices) -> None:
    assert cost.crossings(lambda x: 10 / x, lambda x: 1.0) == [pytest.approx(10.0)]
    assert cost.crossings(lambda x: 2.0, lambda x: 1.0) == []

    setup = LambdaSetup(1024, 0.001, 0.001, 5.0, "cache.test", 2)
    [x] = cost.crossings(
        lambda r: cost.fargate(r, FARGATE, hand).per_million,
        lambda r: cost.lambda_(r, setup, hand).per_million,
    )
    below, above = x / 1.01, x * 1.01
    assert (
        cost.fargate(below, FARGATE, hand).per_million
        > cost.lambda_(below, setup, hand).per_million
    )
    assert (
        cost.fargate(above, FARGATE, hand).per_million
        < cost.lambda_(above, setup, hand).per_million
    )


def test_the_price_file_is_dated_and_every_price_has_a_source() -> None:
    loaded = prices.load()

    assert isinstance(loaded.as_of, date) and loaded.region == "us-east-1"
    for section in prices.SECTIONS:
        assert loaded.sources[section].startswith("https://aws.amazon.com/")
    assert loaded.fargate_vcpu_hour > 0 and loaded.lambda_gb_second > 0
    raw = tomllib.loads(prices.PRICES.read_text("utf-8"))
    node = cost_inputs.deployment().redis_node_type
    assert node in raw["elasticache"]["node_hour"]  # the deployed node type is priced


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"as_of": "2026-12-05"}, "as_of must be a date"),
        ({"fargate": {"vcpu_hour": 0.04, "gb_hour": 0.004}}, "[fargate] needs a source"),
        ({"lambda": {"source": "l", "request": "0.2", "gb_second": 1, "billing_ms": 1}}, "request"),
        ({"personalize": {"source": "p", "min_provisioned_tps": 1, "tiers": [[1, 0.2]]}}, "inf"),
    ],
)
def test_a_price_file_without_a_date_source_or_number_is_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(PriceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        prices.parse(price_file(**change))


def test_tiers_charge_each_unit_at_its_own_tier() -> None:
    tiers = ((10.0, 1.0), (math.inf, 0.5))
    assert prices.tiered(4, tiers) == 4
    assert prices.tiered(30, tiers) == 10 + 20 * 0.5


def test_the_inputs_are_read_from_infra_and_the_serving_benchmark(tmp_path: Path) -> None:
    from infra.config import StageConfig

    config, deployed = StageConfig(), cost_inputs.deployment()
    assert deployed.vcpu == config.cpu / 1024 and deployed.memory_gb == config.memory_mib / 1024
    assert deployed.min_tasks == config.min_tasks
    assert deployed.redis_node_type == config.redis_node_type and deployed.redis_nodes == 2

    bench = tmp_path / "benchmarks.md"
    bench.write_text(
        "# Benchmarks\n\n## serving\n\ncommit abc · 2026-12-04\n\n"
        "| catalog, store | code | recs req/s |\n| --- | --- | ---: |\n"
        "| ml-latest-small, redis | this | 1,896 |\n"
        "| synthetic 1,000,000 (IVF), redis | this | 587 |\n\n## serving parts\n\n| a | 1 |\n"
    )
    measured = cost_inputs.throughput(bench)
    assert measured.provenance == "commit abc · 2026-12-04"
    assert cost_inputs.rps_for(measured.rows, 9742, False) == ("ml-latest-small, redis", 1896.0)
    assert cost_inputs.rps_for(measured.rows, 1_000_000, True)[1] == 587.0
    with pytest.raises(cost_inputs.InputError):
        cost_inputs.rps_for(measured.rows, 100_000, True)
    assert cost_inputs.throughput().rows["ml-latest-small, redis"] > 0  # the real table


def test_the_cost_command_writes_the_section_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    shutil.copy(PROJECT_ROOT / "reports" / "lambda-fit.json", out / "lambda-fit.json")
    done = subprocess.run(
        [sys.executable, "-m", "lambdafit", "cost", "--out", str(out)],
        capture_output=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    report = (out / "lambda-fit.md").read_text("utf-8")
    section = report[report.index("## 5. The cost of a million recommendations") :]
    section = section[: section.index("## This run")]
    assert f"Prices as of **{prices.load().as_of.isoformat()}**" in section
    assert "| 1.0 req/s |" in section and "| 1,000 req/s |" in section
    assert "Fargate and Lambda cross at" in section
    assert "ml-latest-small, redis" in section  # the throughput names its source
    # The claims are re-judged from the serving closure the command re-measured: no TensorFlow.
    standing = report[report.index("### Which of the article's claims still stand") :]
    assert "**moot for serving**" in standing and "tensorflow" not in standing.split("##")[0]
    assert "](lambda-fit-cost.png)" in section
    data = (out / "lambda-fit-cost.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000
