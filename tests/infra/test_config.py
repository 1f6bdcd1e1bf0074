"""Per-environment settings come from context or the environment, and bad ones fail synth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from aws_cdk import App

from infra.config import StageConfig

CERT_EU = "arn:aws:acm:eu-central-1:123456789012:certificate/1b2c3d4e-0000-0000-0000-000000000000"


def config(context: Mapping[str, object] | None = None, **environ: str) -> StageConfig:
    return StageConfig.from_node(App(context=context or {}).node, environ)


def test_defaults_are_a_small_highly_available_stage() -> None:
    default = config()
    assert default.stack_name == "MovieRecs-dev"
    assert default.region == "us-east-1" and default.account == ""
    assert default.min_tasks == 2 and default.nat_gateways == 2 and default.retain_data


def test_context_wins_over_environment_and_strings_are_typed() -> None:
    chosen = config(
        {"stage": "prod", "maxTasks": "9", "retainData": "false", "certificateArn": CERT_EU},
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
    assert config({"retainData": False, "cpu": 2048, "memoryMib": 4096}).retain_data is False
    assert config({"cpu": 2048, "memoryMib": 4096}).cpu == 2048


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"minTasks": "5", "maxTasks": "2"}, "minTasks"),
        ({"stage": "prod/eu"}, "stage"),
        ({"logRetentionDays": "45"}, "logRetentionDays"),
        ({"natGateways": "3"}, "natGateways"),
        ({"retainData": "maybe"}, "retainData"),
        ({"healthCheckGraceSeconds": "30"}, "healthCheckGraceSeconds"),
        ({"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"}, "certificateArn"),
        ({"region": "us-east-1", "certificateArn": CERT_EU}, "own region"),
        ({"alarmEmail": "oncall"}, "alarmEmail"),
        ({"activityClusterMode": "true"}, "activityCache"),
        ({"activityCache": "true", "activityNodeGroups": "2"}, "activityClusterMode"),
        (
            {"activityCache": "true", "activityClusterMode": "true", "activityNodeGroups": "0"},
            "activityNodeGroups",
        ),
        ({"retrainSchedule": "daily"}, "retrainSchedule"),
        ({"retrainSchedule": "cron(0 3 * * *)"}, "retrainSchedule"),  # EventBridge has 6 fields
        ({"retrainSchedule": "rate(0 days)"}, "retrainSchedule"),
        ({"retrainSchedule": "rate(30 minutes)"}, "one retrain an hour"),
        ({"retrainEnabled": "sometimes"}, "retrainEnabled"),
        ({"retrainCpu": "3000"}, "retrainCpu must be one of"),
        ({"retrainMemoryMib": "2048"}, "retrainMemoryMib 2048 does not fit retrainCpu 2048"),
        ({"retrainCpu": "8192", "retrainMemoryMib": "18000"}, "steps of 4096"),
        ({"cpu": "2048"}, "memoryMib 3072 does not fit cpu 2048"),
        ({"modelsNoncurrentDays": "0"}, "modelsNoncurrentDays"),
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


@pytest.mark.parametrize("stage", ["prod", "staging", "Dev"])
def test_every_stage_but_dev_needs_a_certificate(stage: str) -> None:
    """One message saying what is missing, why, and how to give it: without a certificate the
    listener is plain HTTP, and bearer keys and signed webhooks would travel in clear."""
    with pytest.raises(ValueError) as refused:
        config({"stage": stage, "region": "eu-central-1"})
    message = str(refused.value)
    assert f"stage {stage!r} has no certificateArn" in message
    assert "-c certificateArn=arn:aws:acm:" in message and "eu-central-1" in message
    assert config({"stage": stage, "region": "eu-central-1", "certificateArn": CERT_EU})
    assert config({"stage": "dev"}).certificate_arn is None  # dev alone may stay plain HTTP


@pytest.mark.slow  # starts jsii (node)
def test_synth_stops_with_that_one_line(tmp_path: Path) -> None:
    """`make synth` / `cdk synth` for prod without a certificate: no traceback, one line."""
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=Path(__file__).parents[2],
        env={
            "PATH": os.environ["PATH"],
            "CDK_OUTDIR": str(tmp_path),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "MOVIE_RECS_INFRA_STAGE": "prod",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "movie-recs infra: stage 'prod' has no certificateArn: every stage but 'dev' serves "
        "HTTPS only, so that API keys and webhooks never travel in clear. Pass "
        "-c certificateArn=arn:aws:acm:<region>:<account>:certificate/<id> (an ACM certificate "
        "in us-east-1)"
    ]


def test_activity_cache_settings() -> None:
    assert not config().activity_cache  # one Redis for everything unless asked
    chosen = config(
        {"activityCache": "true", "activityClusterMode": "true", "activityNodeGroups": "4"}
    )
    assert (chosen.activity_cache, chosen.activity_cluster_mode) == (True, True)
    assert chosen.activity_node_groups == 4


def test_retrain_settings() -> None:
    """Daily at 03:00 UTC on 2 vCPU / 8 GB, overwritten model files kept 30 days; each from
    context, and an hourly or daily rate accepted."""
    default = config()
    assert (default.retrain_schedule, default.retrain_enabled) == ("cron(0 3 * * ? *)", True)
    assert (default.retrain_cpu, default.retrain_memory_mib) == (2048, 8192)
    assert default.models_noncurrent_days == 30
    chosen = config(
        {
            "retrainSchedule": "rate(6 hours)",
            "retrainEnabled": "false",
            "retrainCpu": "4096",
            "retrainMemoryMib": "30720",
            "modelsNoncurrentDays": "90",
        }
    )
    assert (chosen.retrain_schedule, chosen.retrain_enabled) == ("rate(6 hours)", False)
    assert (chosen.retrain_cpu, chosen.retrain_memory_mib) == (4096, 30720)
    assert chosen.models_noncurrent_days == 90
    for schedule in ("rate(1 day)", "rate(60 minutes)", "cron(15 */6 ? * MON-FRI *)"):
        assert config({"retrainSchedule": schedule}).retrain_schedule == schedule


def test_the_default_task_is_sized_from_a_workers_measured_peak() -> None:
    """The task holds one worker's measured peak (a model swap's) at the catalog it is sized
    for, with the headroom left; a smaller Fargate step would not."""
    from infra.config import (
        FARGATE_MEMORY,
        MEMORY_HEADROOM,
        SIZED_FOR_MOVIES,
        peak_memory_mib,
        task_memory_mib,
    )

    default = StageConfig()
    assert default.memory_mib == task_memory_mib(default.cpu, SIZED_FOR_MOVIES)
    peak = peak_memory_mib(SIZED_FOR_MOVIES)
    assert peak <= default.memory_mib * (1 - MEMORY_HEADROOM)
    low, _, step = FARGATE_MEMORY[default.cpu]
    smaller = default.memory_mib - step
    assert smaller < low or peak > smaller * (1 - MEMORY_HEADROOM)
    # MovieLens alone needs the smallest task there is (0.25 vCPU, 512 MiB).
    assert task_memory_mib(256, 9_742) == 512
    with pytest.raises(ValueError, match="more than 256 CPU units allow"):
        task_memory_mib(256, 1_000_000)
