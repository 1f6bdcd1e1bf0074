"""Experiments (admin scope): create, list, stop, and the report."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, status

from service.api.deps import AppStateDep
from service.api.errors import ERRORS, responses
from service.api.schemas import (
    ExperimentIn,
    ExperimentList,
    ExperimentName,
    ExperimentOut,
    ExperimentReport,
    VariantOut,
)
from service.experiments.lifecycle import check_models, new_experiment, stop
from service.experiments.report import build_report
from service.store.errors import ExperimentConflict, UnknownExperiment
from service.store.records import Experiment, Variant

router = APIRouter(tags=["experiments"])


def experiment_out(experiment: Experiment) -> ExperimentOut:
    return ExperimentOut(
        name=experiment.name,
        variants=[
            VariantOut(name=v.name, weight=v.weight, strategy=v.strategy, model=v.model)
            for v in experiment.variants
        ],
        created_at=experiment.created_at,
        ends_at=experiment.ends_at,
        stopped_at=experiment.stopped_at,
        running=experiment.active(time.time()),
    )


@router.post(
    "/experiments",
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, **responses(described={409: "The name is taken or one is running."})},
)
async def create_experiment(app_state: AppStateDep, body: ExperimentIn) -> ExperimentOut:
    """Start an experiment: from now on every replica assigns users to its variants by a hash
    of (experiment, user id). One runs at a time."""
    variants = [Variant(v.name, v.weight, v.strategy, v.model) for v in body.variants]
    experiment = new_experiment(app_state.settings, body.name, variants, body.days)
    await check_models(app_state.settings, variants, app_state.tracking.models.present())
    try:
        await app_state.store.create_experiment(experiment)
    except ExperimentConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await app_state.tracking.adopt(await app_state.store.experiments())
    return experiment_out(experiment)


@router.get("/experiments", responses=ERRORS)
async def list_experiments(app_state: AppStateDep) -> ExperimentList:
    """Every experiment kept, oldest first."""
    found = await app_state.store.experiments()
    return ExperimentList(experiments=[experiment_out(e) for e in found])


@router.post("/experiments/{name}/stop", responses={**ERRORS, **responses(404)})
async def stop_experiment(app_state: AppStateDep, name: ExperimentName) -> ExperimentOut:
    """Stop assigning (users get the default again); its counts stay for the report."""
    try:
        stopped = await stop(app_state.store, name)
    except UnknownExperiment as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    await app_state.tracking.adopt(await app_state.store.experiments())
    return experiment_out(stopped)


@router.get("/experiments/{name}/report", responses={**ERRORS, **responses(404)})
async def experiment_report(app_state: AppStateDep, name: ExperimentName) -> ExperimentReport:
    """Per variant: users, exposures, attributed events, the per-user and per-exposure rates,
    lifts against the control with 95 % intervals and p-values; the sample ratio mismatch
    check; a verdict once every variant has `MOVIE_RECS_EXPERIMENT_MIN_USERS` users."""
    found = {e.name: e for e in await app_state.store.experiments()}
    if name not in found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment named {name!r}")
    counts = await app_state.store.experiment_counts(name)
    report = build_report(found[name], counts, app_state.settings.experiment_min_users)
    return ExperimentReport.model_validate(report.to_dict())
