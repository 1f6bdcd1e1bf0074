"""An experiment's report from its per-user counts: per variant users, exposures, attributed
events, both rates, lifts against the control with intervals and p-values; for the whole, the
sample ratio mismatch check; a verdict only once every variant has the minimum sample."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from service.experiments import stats
from service.store.records import Experiment


@dataclass(frozen=True, slots=True)
class VariantReport:
    name: str
    strategy: str
    model: str | None  # the registry version it serves; None: the promoted one
    weight: float
    users: int  # users shown at least one list of this variant
    exposures: int
    attributed: int
    converted_users: int  # users with at least one attributed event
    per_user_rate: float | None
    per_exposure_rate: float | None
    per_user: stats.Comparison | None  # vs the control (None for the control)
    per_exposure: stats.Comparison | None
    verdict: str | None


@dataclass(frozen=True, slots=True)
class Report:
    experiment: str
    running: bool
    control: str
    min_users: int
    enough_data: bool
    srm_p_value: float
    srm: bool  # the split is not what the weights say: no verdict
    note: str
    variants: list[VariantReport]

    def to_dict(self) -> dict[str, Any]:
        finite: dict[str, Any] = _finite(asdict(self))
        return finite


def _finite(value: Any) -> Any:
    """NaN (a rate of no users) is JSON null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _verdict(comparison: stats.Comparison) -> str:
    if comparison.p_value >= stats.ALPHA:
        return "no difference detected"
    return "better" if comparison.lift > 0 else "worse"


def build_report(
    experiment: Experiment,
    counts: Mapping[tuple[str, str], tuple[int, int]],
    min_users: int,
    now: float | None = None,
) -> Report:
    """`counts`: (variant, subject) -> (exposures, attributed), as the store keeps them."""
    now = time.time() if now is None else now
    columns: dict[str, tuple[list[int], list[int]]] = {
        v.name: ([], []) for v in experiment.variants
    }
    for (name, _), (shown, led) in counts.items():
        if name in columns and shown > 0:
            columns[name][0].append(shown)
            columns[name][1].append(led)
    arrays = {
        name: (np.asarray(e, np.int64), np.asarray(a, np.int64)) for name, (e, a) in columns.items()
    }
    control = experiment.control.name
    users = [len(arrays[v.name][0]) for v in experiment.variants]
    srm_p = stats.srm_p_value(users, [v.weight for v in experiment.variants])
    srm = srm_p < stats.SRM_ALPHA
    enough = min(users) >= min_users
    c_exposures, c_attributed = arrays[control]
    variants: list[VariantReport] = []
    for variant in experiment.variants:
        exposures, attributed = arrays[variant.name]
        per_user = per_exposure = None
        verdict = None
        if variant.name != control and len(exposures) > 1 and len(c_exposures) > 1:
            per_user = stats.compare_per_user(c_attributed, attributed)
            per_exposure = stats.compare_per_exposure(
                (c_attributed, c_exposures), (attributed, exposures)
            )
            if enough and not srm:
                verdict = _verdict(per_user)
        rate = stats.per_user_rate(attributed).value
        ratio = stats.per_exposure_rate(attributed, exposures).value
        variants.append(
            VariantReport(
                name=variant.name,
                strategy=variant.strategy,
                model=variant.model,
                weight=variant.weight,
                users=len(exposures),
                exposures=int(exposures.sum()),
                attributed=int(attributed.sum()),
                converted_users=int(np.count_nonzero(attributed)),
                per_user_rate=None if math.isnan(rate) else rate,
                per_exposure_rate=None if math.isnan(ratio) else ratio,
                per_user=per_user,
                per_exposure=per_exposure,
                verdict=verdict,
            )
        )
    if srm:
        note = (
            f"sample ratio mismatch (p = {srm_p:.2g} < {stats.SRM_ALPHA}): users did not split "
            "as the weights say, so the comparison is not trustworthy; no verdict"
        )
    elif not enough:
        note = f"no verdict until every variant has {min_users} users (smallest: {min(users)})"
    else:
        note = (
            "verdict by the per-user rate, two-sided at 5 %; intervals are 95 %, not corrected "
            "for several variants or for looking more than once"
        )
    return Report(
        experiment=experiment.name,
        running=experiment.active(now),
        control=control,
        min_users=min_users,
        enough_data=enough,
        srm_p_value=srm_p,
        srm=srm,
        note=note,
        variants=variants,
    )
