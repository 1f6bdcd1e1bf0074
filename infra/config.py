"""What differs between environments, read from CDK context or the environment, never edited in.

`cdk deploy -c stage=prod -c maxTasks=12` (or `"context"` in infra/cdk.json) wins; then an
environment variable `MOVIE_RECS_INFRA_<SNAKE_CASE>` (handy for `make synth`); then the default.
"""

from __future__ import annotations

import math
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
# Fargate's task sizes: CPU units -> memory (MiB) from, to, in steps of.
FARGATE_MEMORY = {
    256: (512, 2048, 512),
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
# One worker's resident memory in MiB by catalog size, measured without TensorFlow (issue 27):
# steady is after 12 s of load once ready (`bench.startup --baseline`, docs/benchmarks.md "startup:
# before vs after"); peak is a model swap's, which holds a second index while the first serves
# (bench.swap, docs/benchmarks.md "swap, ...": the larger of promote and rollback). The task is
# sized for the peak.
MEASURED_MEMORY_MIB = {  # movies: (steady, peak)
    9_742: (206.0, 207.0),
    1_000_000: (1_532.0, 2_625.0),
}
SIZED_FOR_MOVIES = 1_000_000  # the catalog the default task must hold (the largest benchmarked)
MEMORY_HEADROOM = 0.10  # of the task left over at the peak: the OOM killer ends a task at 100 %
# EventBridge schedule expressions: cron(6 fields) or rate(N unit).
SCHEDULE = re.compile(
    r"cron\((\S+ ){5}\S+\)|rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)"
)


@dataclass(frozen=True)
class StageConfig:
    stage: str = DEV_STAGE
    # ALB access logging needs a concrete region; the account may stay open (offline synth).
    region: str = ""  # default: CDK_DEFAULT_REGION (set by the cdk CLI), else us-east-1
    account: str = ""  # default: CDK_DEFAULT_ACCOUNT, else an account-agnostic template
    # One uvicorn worker per task (bench.workers: a second worker needs a second core and
    # almost a second replica's memory, as a second task does; ARCHITECTURE decision 17).
    cpu: int = 1024  # Fargate units: one worker, one thread per pool
    # task_memory_mib(cpu, SIZED_FOR_MOVIES), a literal for lambdafit's cost model to read
    # (tests/infra holds the two equal).
    memory_mib: int = 3072
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
    # The model registry's bucket keeps every overwritten or deleted object this long (it is
    # versioned), so a version removed by mistake can be restored (decision 24).
    models_noncurrent_days: int = 30
    # The scheduled `movie-recs retrain`: an EventBridge rule starts one Fargate task. UTC,
    # EventBridge's syntax; retrainEnabled=false keeps the rule (disabled) and the task
    # definition, which `aws ecs run-task` still starts by hand (the stack's RetrainCommand).
    retrain_schedule: str = "cron(0 3 * * ? *)"  # daily at 03:00 UTC
    retrain_enabled: bool = True
    # Training is CPU-bound and runs on every core TensorFlow sees: 2 vCPU is what the training
    # figures were measured on (docs/benchmarks.md). Memory: MovieLens 25M peaked at 3.7 GB in
    # one process; retrain also holds the store's histories and the serving model it compares
    # with, so 8 GB leaves twice the measured peak (a killed run promotes nothing; the cost
    # difference to 4 GB is ~$0.02 an hour).
    retrain_cpu: int = 2048
    retrain_memory_mib: int = 8192

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
        self._check_retrain()

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

    def _check_retrain(self) -> None:
        _check_task_size("", self.cpu, self.memory_mib)
        _check_task_size("retrain", self.retrain_cpu, self.retrain_memory_mib)
        match = SCHEDULE.fullmatch(self.retrain_schedule)
        if not match:
            raise ValueError(
                f"retrainSchedule {self.retrain_schedule!r}: an EventBridge schedule, "
                "cron(minutes hours day-of-month month day-of-week year) or rate(N unit)"
            )
        if match.group(3) in ("minute", "minutes") and int(match.group(2)) < 60:
            raise ValueError(
                "retrainSchedule: at most one retrain an hour (a run takes minutes to an hour)"
            )
        if not 1 <= self.models_noncurrent_days <= 3650:
            raise ValueError("modelsNoncurrentDays must be 1..3650")


def _check_task_size(prefix: str, cpu: int, memory_mib: int) -> None:
    """Fargate accepts only some CPU and memory pairs; say which before a deploy fails."""
    names = (f"{prefix}Cpu", f"{prefix}MemoryMib") if prefix else ("cpu", "memoryMib")
    if cpu not in FARGATE_MEMORY:
        raise ValueError(f"{names[0]} must be one of {sorted(FARGATE_MEMORY)} (Fargate CPU units)")
    low, high, step = FARGATE_MEMORY[cpu]
    if not (low <= memory_mib <= high and memory_mib % step == 0):
        raise ValueError(
            f"{names[1]} {memory_mib} does not fit {names[0]} {cpu}: Fargate takes "
            f"{low}..{high} MiB in steps of {step}"
        )


def peak_memory_mib(movies: int) -> float:
    """One worker's measured peak, linear in the catalog between (and beyond) the measured
    sizes: the index and the movie metadata grow with it, the rest does not."""
    (small, (_, low)), (large, (_, high)) = sorted(MEASURED_MEMORY_MIB.items())
    return low + (high - low) * (movies - small) / (large - small)


def task_memory_mib(cpu: int, movies: int) -> int:
    """The smallest Fargate memory for `cpu` units that holds a worker's peak at `movies`
    with MEMORY_HEADROOM left over."""
    low, high, step = FARGATE_MEMORY[cpu]
    need = peak_memory_mib(movies) / (1 - MEMORY_HEADROOM)
    size = max(low, math.ceil(need / step) * step)
    if size > high:
        raise ValueError(f"{movies:,} movies need {need:,.0f} MiB: more than {cpu} CPU units allow")
    return size


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
