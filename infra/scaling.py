"""Autoscaling: by CPU (the user tower and FAISS are CPU-bound) and by ALB requests per task."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from infra.config import StageConfig

# Out fast, in slowly: a new task needs minutes to load the model and the index.
SCALE_OUT_COOLDOWN = Duration.seconds(60)
SCALE_IN_COOLDOWN = Duration.seconds(300)


def add_autoscaling(
    service: ecs.FargateService,
    target_group: elbv2.ApplicationTargetGroup,
    config: StageConfig,
) -> None:
    scaling = service.auto_scale_task_count(
        min_capacity=config.min_tasks, max_capacity=config.max_tasks
    )
    scaling.scale_on_cpu_utilization(
        "Cpu",
        target_utilization_percent=config.cpu_target_percent,
        scale_out_cooldown=SCALE_OUT_COOLDOWN,
        scale_in_cooldown=SCALE_IN_COOLDOWN,
    )
    scaling.scale_on_request_count(
        "Requests",
        requests_per_target=config.requests_per_target,
        target_group=target_group,
        scale_out_cooldown=SCALE_OUT_COOLDOWN,
        scale_in_cooldown=SCALE_IN_COOLDOWN,
    )
