"""What every recommendation route does after choosing its list: give it an id, record it as
shown (off the request's path), and say so in the response."""

from __future__ import annotations

import time
from collections.abc import Sequence

from service.api.schemas import Shown
from service.api.state import AppState
from service.experiments.assignment import Assignment
from service.experiments.exposures import new_recommendation_id
from service.recommender import Item
from service.store.records import Exposure


def show(
    app_state: AppState,
    subject: str | None,
    surface: str,
    strategy: str,
    model_version: str,
    items: Sequence[Item],
    assigned: Assignment | None,
) -> Shown:
    recommendation_id = new_recommendation_id()
    experiment = assigned.experiment if assigned else None
    variant = assigned.variant.name if assigned else None
    app_state.exposures.record(
        Exposure(
            recommendation_id,
            subject,
            tuple(item.movie_id for item in items),
            surface,
            strategy,
            model_version,
            time.time(),
            experiment,
            variant,
        )
    )
    return Shown(recommendation_id, experiment, variant)
