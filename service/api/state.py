"""What the lifespan builds and every route uses, held on `app.state.app_state`."""

from __future__ import annotations

from dataclasses import dataclass

from service.api.access import Access
from service.api.admission import Admission
from service.api.offload import Offload
from service.config import Settings
from service.experiments.assignment import Experiments
from service.experiments.exposures import ExposureRecorder
from service.experiments.tracking import Tracking
from service.index.view import IndexView
from service.metrics import Metrics
from service.recommender import Recommender
from service.store import Store


@dataclass(eq=False)
class AppState:
    settings: Settings
    store: Store
    index: IndexView  # the refresher's published live index, read-only
    metrics: Metrics
    recommender: Recommender
    access: Access
    admission: Admission
    offload: Offload
    experiments: Experiments
    exposures: ExposureRecorder
    tracking: Tracking  # owns `experiments` and the model versions they name
