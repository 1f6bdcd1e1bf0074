"""The scheduled retrain: what runs, when, with which size, reaching what, allowed to do what."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cache import PORT as REDIS_PORT
from tests.infra import tasks
from tests.infra.stages import RETRAIN_SCHEDULE
from tests.support.infra import Synth

# Synthesizes the whole CDK app (jsii + node): `make test` runs it, `make test-fast` skips it.
pytestmark = pytest.mark.slow


def rule(synth: Synth) -> dict[str, Any]:
    """The schedule (the other rule, on a failed retrain, is the alarms')."""
    (found,) = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    return found  # type: ignore[no-any-return]


def test_retrain_runs_movie_recs_retrain_at_its_own_size(synth: Synth, prod: Synth) -> None:
    """2 vCPU / 8 GB by default (training is CPU-bound; MovieLens 25M peaked at 3.7 GB); the
    size comes from context like every setting."""
    task = tasks.task(synth, synth.stack.retrain)
    assert (task["Cpu"], task["Memory"]) == ("2048", "8192")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    other = tasks.task(prod, prod.stack.retrain)
    assert (other["Cpu"], other["Memory"]) == ("4096", "16384")
    container = tasks.container(synth, synth.stack.retrain)
    assert container["Command"] == ["movie-recs", "retrain"]
    assert container["ReadonlyRootFilesystem"] is True
    assert container["MountPoints"] == [
        {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "tmp"}
    ]
    assert "PortMappings" not in container  # it serves nothing


def test_retrain_logs_to_a_log_group_of_its_own(synth: Synth) -> None:
    options = tasks.container(synth, synth.stack.retrain)["LogConfiguration"]["Options"]
    retrain_logs = synth.logical_id(synth.stack.retrain.log_group)
    assert options["awslogs-group"] == {"Ref": retrain_logs}
    assert retrain_logs != synth.logical_id(synth.stack.api.log_group)
    outputs = synth.template.to_json()["Outputs"]
    assert outputs["RetrainLogGroup"]["Value"] == {"Ref": retrain_logs}


def test_retrain_reads_the_store_with_the_auth_token_and_no_other_secret(synth: Synth) -> None:
    container = tasks.container(synth, synth.stack.retrain)
    api = tasks.container(synth, synth.stack.api)
    environment = tasks.environment(synth, synth.stack.retrain)
    assert (
        environment["MOVIE_RECS_STORE_URL"]
        == tasks.environment(synth, synth.stack.api)["MOVIE_RECS_STORE_URL"]
    )
    assert set(environment) == {
        "MOVIE_RECS_STORE_URL",
        "MOVIE_RECS_REGISTRY_URL",
        "MOVIE_RECS_MODEL_CACHE_DIR",
    }
    (secret,) = container["Secrets"]
    (api_secret,) = [s for s in api["Secrets"] if s["Name"] == "MOVIE_RECS_STORE_PASSWORD"]
    assert secret == api_secret
    # The execution role may read that secret only (and pull the image, write the logs).
    role = tasks.role_of(synth, synth.stack.retrain, "ExecutionRoleArn")
    statements = tasks.statements(synth, role)
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Resource"] for s in reads] == [secret["ValueFrom"]]
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert wildcard == [{"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"}]


@pytest.mark.parametrize("fixture", ["synth", "prod"])
def test_retrain_admits_nothing_and_reaches_redis_and_https_only(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    stack: Synth = request.getfixturevalue(fixture)
    group = stack.logical_id(stack.stack.retrain.security_group)
    properties = stack.resources("AWS::EC2::SecurityGroup")[group]["Properties"]
    assert "SecurityGroupIngress" not in properties
    assert tasks.ingress(stack, group) == []
    assert [
        (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIp"])
        for rule in properties["SecurityGroupEgress"]
    ] == [("tcp", 443, 443, "0.0.0.0/0")]
    caches = [stack.stack.cache, stack.stack.activity_cache]
    assert tasks.egress(stack, group) == {
        (stack.logical_id(cache.security_group), "tcp", REDIS_PORT, REDIS_PORT)
        for cache in caches
        if cache is not None
    }
    for cache in caches:
        if cache is not None:
            sources = [
                r["SourceSecurityGroupId"]
                for r in tasks.ingress(stack, stack.logical_id(cache.security_group))
            ]
            assert {"Fn::GetAtt": [group, "GroupId"]} in sources


def test_the_schedule_starts_one_task_daily_in_the_private_subnets(synth: Synth) -> None:
    schedule = rule(synth)
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["State"] == "ENABLED"
    (target,) = schedule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synth.logical_id(synth.stack.api.cluster), "Arn"]}
    parameters = target["EcsParameters"]
    task = synth.logical_id(synth.stack.retrain.task_definition)
    assert parameters["TaskDefinitionArn"] == {"Ref": task}
    assert (parameters["TaskCount"], parameters["LaunchType"]) == (1, "FARGATE")
    network = parameters["NetworkConfiguration"]["AwsVpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    group = synth.logical_id(synth.stack.retrain.security_group)
    assert network["SecurityGroups"] == [{"Fn::GetAtt": [group, "GroupId"]}]
    service = synth.one("AWS::ECS::Service")["Properties"]
    assert network["Subnets"] == service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    assert target["RoleArn"] == {
        "Fn::GetAtt": [synth.logical_id(synth.stack.retrain.events_role), "Arn"]
    }


def test_a_disabled_schedule_keeps_the_task_to_run_by_hand(prod: Synth) -> None:
    """retrainEnabled=false: the rule stays (disabled) and so does the task definition, which
    the RetrainCommand output starts."""
    schedule = rule(prod)
    assert (schedule["ScheduleExpression"], schedule["State"]) == (RETRAIN_SCHEDULE, "DISABLED")
    command = tasks.flat(prod.template.to_json()["Outputs"]["RetrainCommand"]["Value"])
    assert "aws ecs run-task --cluster " in command
    assert prod.stack.retrain.task_definition.family in command
    assert prod.logical_id(prod.stack.retrain.security_group) in command
    assert "assignPublicIp=DISABLED" in command and "--launch-type FARGATE" in command


def test_eventbridge_may_only_run_this_task_and_pass_its_two_roles(synth: Synth) -> None:
    role = synth.logical_id(synth.stack.retrain.events_role)
    properties = synth.resources("AWS::IAM::Role")[role]["Properties"]
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert "ManagedPolicyArns" not in properties and "Policies" not in properties
    task = synth.logical_id(synth.stack.retrain.task_definition)
    cluster = synth.logical_id(synth.stack.api.cluster)

    def role_arn(which: str) -> dict[str, Any]:
        return {"Fn::GetAtt": [tasks.role_of(synth, synth.stack.retrain, which), "Arn"]}

    assert tasks.statements(synth, role) == [
        {
            "Action": "ecs:RunTask",
            "Condition": {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}},
            "Effect": "Allow",
            "Resource": {"Ref": task},  # this revision of this task definition
        },
        {
            "Action": "iam:PassRole",
            "Effect": "Allow",
            "Resource": [role_arn("ExecutionRoleArn"), role_arn("TaskRoleArn")],
        },
    ]
