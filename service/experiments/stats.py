"""The statistics of the report, on per-user counts (users are what was randomised).

Two metrics per variant, each against the control:

- the per-user rate: the share of users with at least one attributed event; Welch's normal
  interval for the difference, the pooled two-proportion z-test for its p-value (the textbook
  pair, equal to Pearson's chi-square on the 2x2 table);
- the per-exposure rate: attributed events / exposures, a ratio of two per-user sums, whose
  variance comes from the delta method (Deng et al., "Applying the Delta Method in Metric
  Analytics", 2018; GrowthBook's ratio metrics), not from treating exposures as independent.

Relative lifts get their interval by the delta method on the ratio of the two means. The sample
ratio mismatch check is a chi-square goodness of fit of the users per variant to the weights.
The distributions come from the standard library's `statistics.NormalDist` and mpmath (the
normal tail through `erfc`, the chi-square's through the regularized upper incomplete gamma),
not SciPy: a replica would otherwise import 111 MB and ~78 MiB of RSS for one admin route
(docs/decisions/0028); tests hold them equal to SciPy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import mpmath
import numpy as np

ALPHA = 0.05
SRM_ALPHA = 0.001
NORMAL = NormalDist()
Z = NORMAL.inv_cdf(1 - ALPHA / 2)


def two_sided_p(z: float) -> float:
    """P(|N(0,1)| >= |z|), accurate far into the tail (erfc, not 1 - cdf)."""
    return float(mpmath.erfc(abs(z) / mpmath.sqrt(2)))


def chi_square_sf(statistic: float, df: int) -> float:
    """P(chi2(df) >= statistic): the regularized upper incomplete gamma Q(df/2, x/2)."""
    return float(mpmath.gammainc(df / 2, statistic / 2, mpmath.inf, regularized=True))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A rate and the variance of its estimate."""

    value: float
    variance: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """A variant against the control: absolute lift with its 95 % interval and p-value, and
    the relative lift (None when the control's rate is 0) with its own interval."""

    lift: float
    ci_low: float
    ci_high: float
    p_value: float
    relative_lift: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None


def per_user_rate(attributed: np.ndarray) -> Estimate:
    """Share of users with at least one attributed event; binomial variance p(1-p)/n."""
    users = len(attributed)
    if users == 0:
        return Estimate(math.nan, math.nan)
    p = float(np.count_nonzero(attributed)) / users
    return Estimate(p, p * (1 - p) / users)


def per_exposure_rate(attributed: np.ndarray, exposures: np.ndarray) -> Estimate:
    """sum(attributed) / sum(exposures) over users, with the delta method's variance:
    Var(a/n) ~ (Var a - 2 R Cov(a, n) + R^2 Var n) / (N mean(n)^2)."""
    users = len(exposures)
    if users < 2 or not exposures.any():
        return Estimate(math.nan, math.nan)
    a, n = attributed.astype(float), exposures.astype(float)
    ratio = a.sum() / n.sum()
    covariance = np.cov(a, n, ddof=1)
    var_a, cov_an, var_n = covariance[0, 0], covariance[0, 1], covariance[1, 1]
    spread = var_a - 2 * ratio * cov_an + ratio**2 * var_n
    return Estimate(float(ratio), float(max(spread, 0.0) / (users * n.mean() ** 2)))


def _relative(control: Estimate, treatment: Estimate) -> tuple[float | None, ...]:
    """treatment / control - 1, with Var(T/C) ~ (Var T + (T/C)^2 Var C) / C^2."""
    if not control.value > 0:
        return None, None, None
    ratio = treatment.value / control.value
    variance = (treatment.variance + ratio**2 * control.variance) / control.value**2
    half = Z * math.sqrt(variance)
    return ratio - 1, ratio - 1 - half, ratio - 1 + half


def compare(control: Estimate, treatment: Estimate, pooled_se: float | None = None) -> Comparison:
    """Normal interval on the difference; the p-value from `pooled_se` when given (the
    two-proportion test under the null), else from the unpooled standard error."""
    lift = treatment.value - control.value
    se = math.sqrt(control.variance + treatment.variance)
    test_se = se if pooled_se is None else pooled_se
    no_spread = 1.0 if lift == 0 else 0.0  # every user alike: certain either way
    p_value = two_sided_p(lift / test_se) if test_se > 0 else no_spread
    relative, low, high = _relative(control, treatment)
    return Comparison(lift, lift - Z * se, lift + Z * se, p_value, relative, low, high)


def compare_per_user(control: np.ndarray, treatment: np.ndarray) -> Comparison:
    """Per-user rates (attributed counts per user in, 0 for users who did nothing)."""
    c, t = per_user_rate(control), per_user_rate(treatment)
    n_c, n_t = len(control), len(treatment)
    pooled = (c.value * n_c + t.value * n_t) / (n_c + n_t)
    return compare(c, t, math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t)))


def compare_per_exposure(
    control: tuple[np.ndarray, np.ndarray], treatment: tuple[np.ndarray, np.ndarray]
) -> Comparison:
    """(attributed, exposures) per user of each variant."""
    return compare(per_exposure_rate(*control), per_exposure_rate(*treatment))


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-square goodness of fit of users per variant to the weights' shares."""
    observed = np.asarray(users, float)
    total = observed.sum()
    if total == 0:
        return 1.0
    expected = np.asarray(weights, float) / float(np.sum(weights)) * total
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return chi_square_sf(statistic, len(observed) - 1)


def power(p_control: float, p_treatment: float, n_control: int, n_treatment: int) -> float:
    """Chance that the two-sided test at ALPHA finds a true difference p_treatment - p_control
    with these many users per variant (normal approximation)."""
    se = math.sqrt(
        p_control * (1 - p_control) / n_control + p_treatment * (1 - p_treatment) / n_treatment
    )
    shift = abs(p_treatment - p_control) / se
    return NORMAL.cdf(shift - Z) + NORMAL.cdf(-shift - Z)
