"""The stack's two ECS tasks (the API service and the scheduled retrain), read from a synth."""

from __future__ import annotations

import json
from typing import Any, Protocol

from tests.support.infra import Synth


class HasTask(Protocol):
    """ApiService and ScheduledRetrain: a construct with a task definition."""

    @property
    def task_definition(self) -> Any: ...


def flat(value: Any) -> str:
    """A CloudFormation value (with Fn::Join, Ref...) as text, for substring checks."""
    return json.dumps(value)


def task(synth: Synth, owner: HasTask) -> dict[str, Any]:
    """The properties of `owner`'s AWS::ECS::TaskDefinition."""
    logical = synth.logical_id(owner.task_definition)
    return synth.resources("AWS::ECS::TaskDefinition")[logical]["Properties"]  # type: ignore[no-any-return]


def container(synth: Synth, owner: HasTask) -> dict[str, Any]:
    (definition,) = task(synth, owner)["ContainerDefinitions"]
    return definition  # type: ignore[no-any-return]


def environment(synth: Synth, owner: HasTask) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container(synth, owner).get("Environment", [])}


def role_of(synth: Synth, owner: HasTask, which: str) -> str:
    """The logical id of the task's "TaskRoleArn" or "ExecutionRoleArn"."""
    return task(synth, owner)[which]["Fn::GetAtt"][0]  # type: ignore[no-any-return]


def statements(synth: Synth, role: str) -> list[dict[str, Any]]:
    """Every statement of every inline policy attached to the role `role` (a logical id)."""
    found = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def egress(synth: Synth, group: str) -> set[tuple[str, str, int, int]]:
    """The separate egress rules of security group `group`: (to group, protocol, ports)."""
    return {
        (
            rule["Properties"]["DestinationSecurityGroupId"]["Fn::GetAtt"][0],
            rule["Properties"]["IpProtocol"],
            rule["Properties"]["FromPort"],
            rule["Properties"]["ToPort"],
        )
        for rule in synth.resources("AWS::EC2::SecurityGroupEgress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    }


def ingress(synth: Synth, group: str) -> list[dict[str, Any]]:
    """The separate ingress rules into security group `group`."""
    return [
        rule["Properties"]
        for rule in synth.resources("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
