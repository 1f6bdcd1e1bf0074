"""What differs between environments, read from CDK context or the environment, never edited in.

`cdk deploy -c stage=prod -c maxTasks=12` (or `"context"` in infra/cdk.json) wins; then an
environment variable `MOVIE_RECS_INFRA_<SNAKE_CASE>` (handy for `make synth`); then the default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

ENV_PREFIX = "MOVIE_RECS_INFRA_"
DEV_STAGE = "dev"  # the one stage that may serve plain HTTP (no certificate)
MAX_NODE_GROUPS = 45
RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


@dataclass(frozen=True)
class StageConfig:
    stage: str = DEV_STAGE
    # ALB access logging needs a concrete region; the account may stay open (offline synth).
    region: str = ""  # default: CDK_DEFAULT_REGION (set by the cdk CLI), else us-east-1
    account: str = ""  # default: CDK_DEFAULT_ACCOUNT, else an account-agnostic template
    # One uvicorn worker per task (bench.workers: a second worker needs a second core and
    # almost a second replica's memory, as a second task does; ARCHITECTURE decision 17).
    cpu: int = 1024  # Fargate units: one worker, one thread per pool
    memory_mib: int = 3072  # 1M movies: 1.6 GB once ready + a compaction's second base
    min_tasks: int = 2  # two AZs: never fewer than one replica in each
    max_tasks: int = 6
    cpu_target_percent: int = 60
    requests_per_target: int = 3000  # ALB requests per target per minute (50/s)
    health_check_grace_seconds: int = 240  # model load + index build on a cold replica
    redis_node_type: str = "cache.t4g.small"
    redis_engine_version: str = "7.1"
    nat_gateways: int = 2
    log_retention_days: int = 30
    # HTTPS when set (port 80 then only redirects). Required by every stage but dev: bearer keys
    # and signed webhooks must not travel in clear. Without it a dev stack serves plain HTTP.
    certificate_arn: str | None = None
    public_docs: bool = False  # the ALB forwards /docs and /openapi.json too (else /v1/* only)
    retain_data: bool = True  # Redis snapshot, secrets and logs survive `cdk destroy`
    model_version: str = "latest"  # which version under artifacts/ the image bakes in
    alarm_email: str | None = None  # subscribed to the alarm topic (AWS mails a confirmation)
    # User histories in a Redis of their own, which may evict them (volatile-lru: every history
    # key has a TTL) so activity can never fill the catalog's memory (decision 19). Off: they
    # share the catalog's Redis, which never evicts.
    activity_cache: bool = False
    activity_cluster_mode: bool = False  # that Redis as a Redis Cluster (ElastiCache cluster mode)
    activity_node_groups: int = 1  # its shards in cluster mode, each a primary and a replica
    activity_node_type: str = "cache.t4g.small"

    @property
    def stack_name(self) -> str:
        return f"MovieRecs-{self.stage}"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION[self.log_retention_days]

    @property
    def removal_policy(self) -> RemovalPolicy:
        """What `cdk destroy` does to state: keep it (or its final snapshot) unless told not to."""
        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @classmethod
    def from_node(cls, node: Node, environ: dict[str, str] | None = None) -> StageConfig:
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = node.try_get_context(_camel(field.name))
            if raw is None:
                raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _coerce(field.name, raw, type(getattr(cls(), field.name)))
        values.setdefault("region", environ.get("CDK_DEFAULT_REGION") or "us-east-1")
        values.setdefault("account", environ.get("CDK_DEFAULT_ACCOUNT", ""))
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Fail synth on settings that would deploy but not work."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,30}", self.stage):
            raise ValueError(f"stage {self.stage!r}: letters, digits and '-' only")
        if not 1 <= self.min_tasks <= self.max_tasks:
            raise ValueError("need 1 <= minTasks <= maxTasks")
        if not 60 <= self.health_check_grace_seconds <= 600:
            raise ValueError("healthCheckGraceSeconds must be 60..600")
        if self.nat_gateways not in (1, 2):
            raise ValueError("natGateways must be 1 (cheaper) or 2 (one per AZ)")
        if self.log_retention_days not in RETENTION:
            raise ValueError(f"logRetentionDays must be one of {sorted(RETENTION)}")
        self._check_https()
        if self.alarm_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.alarm_email):
            raise ValueError(f"alarmEmail {self.alarm_email!r} is not an e-mail address")
        self._check_activity()

    def _check_https(self) -> None:
        if not self.certificate_arn:
            if self.stage != DEV_STAGE:
                raise ValueError(
                    f"stage {self.stage!r} has no certificateArn: every stage but {DEV_STAGE!r} "
                    "serves HTTPS only, so that API keys and webhooks never travel in clear. "
                    "Pass -c certificateArn=arn:aws:acm:<region>:<account>:certificate/<id> "
                    f"(an ACM certificate in {self.region or 'the stack region'})"
                )
            return
        arn = r"arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[\w-]+"
        match = re.fullmatch(arn, self.certificate_arn)
        if not match:
            raise ValueError(
                f"certificateArn {self.certificate_arn!r} is not an ACM certificate ARN"
            )
        if self.region and match.group(1) != self.region:
            raise ValueError(
                f"certificateArn is in {match.group(1)}, the stack in {self.region}: "
                "a load balancer takes a certificate from its own region only"
            )

    def _check_activity(self) -> None:
        if self.activity_cluster_mode and not self.activity_cache:
            raise ValueError("activityClusterMode needs activityCache=true")
        if self.activity_node_groups != 1 and not self.activity_cluster_mode:
            raise ValueError("activityNodeGroups needs activityClusterMode=true")
        if not 1 <= self.activity_node_groups <= MAX_NODE_GROUPS:
            raise ValueError(
                f"activityNodeGroups must be 1..{MAX_NODE_GROUPS} (each shard is two nodes; "
                "ElastiCache allows 90 nodes a cluster by default)"
            )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _coerce(name: str, raw: object, kind: type) -> object:
    """`-c key=value` and environment variables arrive as strings."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{_camel(name)}: expected true or false, got {raw!r}")
        return str(raw).lower() in ("true", "1")
    if kind is int:
        return int(raw)  # type: ignore[call-overload]
    return str(raw)
