"""The report's statistics: known cases, the delta method against a bootstrap, and calibration
by simulation (A/A false positives, power at an injected lift, the SRM check)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from service.experiments import stats
from service.experiments.report import build_report
from service.store.records import Experiment, Variant

EXPERIMENTS = 1000


def users(converted: int, total: int) -> np.ndarray:
    """Attributed events per user: `converted` users with one, the rest with none."""
    return np.array([1] * converted + [0] * (total - converted))


def test_two_proportions_as_the_textbook_computes_them() -> None:
    # 100 of 1000 users convert in the control, 130 of 1000 in the treatment.
    result = stats.compare_per_user(users(100, 1000), users(130, 1000))
    pooled = 230 / 2000
    z = 0.03 / math.sqrt(pooled * (1 - pooled) * 2 / 1000)  # 2.1027
    assert z == pytest.approx(2.1027, abs=1e-4)
    assert result.p_value == pytest.approx(0.03549, abs=1e-4)
    # the pooled z-test is Pearson's chi-square on the 2x2 table, without continuity correction
    table = [[100, 900], [130, 870]]
    assert result.p_value == pytest.approx(chi2_contingency(table, correction=False).pvalue)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000)  # Wald, unpooled
    assert (result.lift, result.ci_low, result.ci_high) == pytest.approx(
        (0.03, 0.03 - 1.959964 * se, 0.03 + 1.959964 * se), abs=1e-6
    )
    assert result.ci_low == pytest.approx(0.00207, abs=1e-5)
    assert result.relative_lift == pytest.approx(0.3)
    # relative: Var(T/C) ~ (Var T + (T/C)^2 Var C) / C^2, the control's noise included
    half = 1.959964 * math.sqrt((0.13 * 0.87 / 1000 + 1.3**2 * 0.1 * 0.9 / 1000) / 0.1**2)
    assert (result.relative_ci_low, result.relative_ci_high) == pytest.approx(
        (0.3 - half, 0.3 + half), abs=1e-5
    )


def simulate(
    rng: np.random.Generator, n: int, p: float, exposures_mean: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """(attributed, exposures) per user: 1 + Poisson lists each; a user converts with
    probability p, then has 1 + Binomial(lists - 1, 0.2) attributed events."""
    exposures = 1 + rng.poisson(exposures_mean - 1, n)
    converted = rng.random(n) < p
    attributed = converted * (1 + rng.binomial(exposures - 1, 0.2))
    return attributed, exposures


def test_the_delta_method_matches_a_bootstrap_on_the_same_data() -> None:
    rng = np.random.default_rng(7)
    attributed, exposures = simulate(rng, 4000, 0.3)
    delta = math.sqrt(stats.per_exposure_rate(attributed, exposures).variance)
    picks = rng.integers(0, 4000, size=(2000, 4000))
    ratios = attributed[picks].sum(axis=1) / exposures[picks].sum(axis=1)
    bootstrap = float(np.std(ratios, ddof=1))
    assert delta == pytest.approx(bootstrap, rel=0.08)
    naive = math.sqrt(0.1 * 0.9 / exposures.sum())  # exposures as independent trials
    assert abs(naive - bootstrap) / bootstrap > 0.1  # what the delta method is for


def test_a_a_experiments_reject_at_five_percent() -> None:
    """1,000 experiments, the same arm twice: each test should reject 5 % +- 1.5 %."""
    rng = np.random.default_rng(2025)
    per_user = per_exposure = srm = 0
    for _ in range(EXPERIMENTS):
        control, treatment = simulate(rng, 2000, 0.3), simulate(rng, 2000, 0.3)
        per_user += stats.compare_per_user(control[0], treatment[0]).p_value < 0.05
        per_exposure += stats.compare_per_exposure(control, treatment).p_value < 0.05
        split = rng.binomial(4000, 0.5)
        srm += stats.srm_p_value([split, 4000 - split], [1, 1]) < stats.SRM_ALPHA
    assert abs(per_user / EXPERIMENTS - 0.05) <= 0.015, per_user
    assert abs(per_exposure / EXPERIMENTS - 0.05) <= 0.015, per_exposure
    assert srm <= 5  # 0.1 % expected: one or two


def test_an_injected_five_percent_lift_is_found_at_the_predicted_power() -> None:
    rng = np.random.default_rng(11)
    n, p_control, p_treatment = 10_000, 0.3, 0.315
    predicted = stats.power(p_control, p_treatment, n, n)
    assert 0.6 < predicted < 0.75
    found = 0
    for _ in range(EXPERIMENTS):
        control, treatment = simulate(rng, n, p_control), simulate(rng, n, p_treatment)
        result = stats.compare_per_user(control[0], treatment[0])
        found += result.p_value < 0.05 and result.lift > 0
    sd = math.sqrt(predicted * (1 - predicted) / EXPERIMENTS)
    assert abs(found / EXPERIMENTS - predicted) <= 3 * sd, (found, predicted)


def test_a_45_55_split_is_flagged_and_gets_no_verdict() -> None:
    rng = np.random.default_rng(3)
    experiment = Experiment(
        "e", (Variant("a", 1, "personalized"), Variant("b", 1, "popular")), 0, 4e9, 5e9
    )
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for i in range(4000):
        variant = "a" if rng.random() < 0.45 else "b"
        counts[(variant, str(i))] = (3, int(rng.random() < 0.3))
    report = build_report(experiment, counts, min_users=100)
    assert report.srm and report.srm_p_value < 0.001
    assert report.variants[1].per_user is not None and report.variants[1].verdict is None
    assert "sample ratio mismatch" in report.note
    even = {(("a", "b")[i % 2], str(i)): (3, 1) for i in range(4000)}
    assert not build_report(experiment, even, min_users=100).srm


def test_the_distributions_equal_scipys() -> None:
    """mpmath and the standard library stand in for SciPy in a replica: same numbers."""
    from scipy import stats as reference

    assert pytest.approx(reference.norm.ppf(0.975), rel=1e-14) == stats.Z
    for z in (0.0, 0.3, 1.96, 3.1, 6.0, 9.5, -2.2):
        expected = 2 * reference.norm.sf(abs(z))
        assert stats.two_sided_p(z) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(3)
    for k in range(2, 8):
        for _ in range(20):
            users = rng.integers(0, 5000, k).tolist()
            weights = rng.uniform(0.5, 3, k).tolist()
            expected = np.asarray(weights) / sum(weights) * sum(users)
            scipy_p = reference.chisquare(users, expected).pvalue
            assert stats.srm_p_value(users, weights) == pytest.approx(scipy_p, rel=1e-9, abs=1e-300)
    assert stats.power(0.1, 0.12, 3000, 3000) == pytest.approx(
        reference.norm.cdf(0.02 / math.sqrt(0.09 / 3000 + 0.1056 / 3000) - stats.Z)
        + reference.norm.cdf(-0.02 / math.sqrt(0.09 / 3000 + 0.1056 / 3000) - stats.Z),
        rel=1e-12,
    )


def test_a_replica_never_imports_scipy() -> None:
    """The app, its experiments and their report load without SciPy (111 MB not in the image)."""
    code = (
        "import sys, service.api.app, service.experiments.report, service.cli; "
        "print('scipy' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
