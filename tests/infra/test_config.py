"""Per-environment settings come from context or the environment, and bad ones fail synth."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from aws_cdk import App

from infra.config import StageConfig


def config(context: Mapping[str, object] | None = None, **environ: str) -> StageConfig:
    return StageConfig.from_node(App(context=context or {}).node, environ)


def test_defaults_are_a_small_highly_available_stage() -> None:
    default = config()
    assert default.stack_name == "MovieRecs-dev"
    assert default.region == "us-east-1" and default.account == ""
    assert default.min_tasks == 2 and default.nat_gateways == 2 and default.retain_data


def test_context_wins_over_environment_and_strings_are_typed() -> None:
    chosen = config(
        {"stage": "prod", "maxTasks": "9", "retainData": "false"},
        MOVIE_RECS_INFRA_STAGE="staging",
        MOVIE_RECS_INFRA_MIN_TASKS="3",
        CDK_DEFAULT_REGION="eu-central-1",
        CDK_DEFAULT_ACCOUNT="123456789012",
    )
    assert chosen.stage == "prod"  # context beats MOVIE_RECS_INFRA_STAGE
    assert chosen.min_tasks == 3 and chosen.max_tasks == 9
    assert chosen.retain_data is False
    assert (chosen.region, chosen.account) == ("eu-central-1", "123456789012")


def test_json_context_values_keep_their_types() -> None:
    assert config({"retainData": False, "cpu": 2048}).retain_data is False
    assert config({"cpu": 2048}).cpu == 2048


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"minTasks": "5", "maxTasks": "2"}, "minTasks"),
        ({"stage": "prod/eu"}, "stage"),
        ({"logRetentionDays": "45"}, "logRetentionDays"),
        ({"natGateways": "3"}, "natGateways"),
        ({"retainData": "maybe"}, "retainData"),
        ({"healthCheckGraceSeconds": "30"}, "healthCheckGraceSeconds"),
    ],
)
def test_settings_that_would_not_work_fail_synth(context: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(context)


def test_cdk_json_runs_this_app_and_writes_to_the_repository_cdk_out() -> None:
    """The CLI runs `app` from infra/ and resolves `output` there; a `cd` would misplace it."""
    cdk_json = json.loads((Path(__file__).parents[2] / "infra" / "cdk.json").read_text())
    assert cdk_json["output"] == "../cdk.out"
    assert "cd " not in cdk_json["app"]
    assert cdk_json["app"].endswith("PYTHONPATH=.. ../.venv/bin/python -m infra.app")
