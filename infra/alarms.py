"""CloudWatch alarms on what an operator must act on, sent to one SNS topic.

The service exports its own state as Prometheus metrics (`/metrics`, inside the VPC), which
nothing ships to CloudWatch. The alarms use what AWS already has instead, with no new service
code and no agent beside the app:

- the ALB's target metrics: the 5xx rate, the p99 response time, replicas out of rotation;
- ElastiCache's DatabaseMemoryUsagePercentage of the catalog's Redis (it never evicts: full
  means failed writes);
- a metric filter on the task logs: the refresher logs `refresher: Redis …` each time a store
  call fails, every ≤ 2 s while Redis is unreachable (`service/index/refresher.py`), whatever
  the traffic: that count is the store being down, as `movie_recs_store_up` 0 is.

Refresher lag has no log line. A replica whose index is behind the change log answers
`/readyz` 503 (`service/api/routes/health.py`), and the ALB takes it out of rotation after
three failed checks (30 s): a target unhealthy for longer than a cold start is a replica that
cannot catch up, or one without an index or a working model (its `/readyz` says which).

Every alarm says what missing data means for it (`treat_missing_data`), and notifies on OK too.

A scheduled retrain that fails has no metric: ECS says so as an event (the task stopped with an
exit code other than 0 or 1, or failed to start), which an EventBridge rule sends to the same
topic (`on_failed_retrain`); without it a broken retrain would only show as a model growing
stale. Exit 1 (the gate refused the candidate, or the pointer moved) is the gate doing its
job: the registry and the run's log say why, and it does not page anyone.
"""

from __future__ import annotations

import math

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.cache import RedisCache
from infra.config import StageConfig

MINUTE = Duration.minutes(1)
# Target 5xx (store outages answer 503, overload sheds 503) above this share of the requests in
# 3 of 5 minutes; minutes with fewer requests than MIN_REQUESTS do not count (2 of 3 is no rate).
ERROR_PERCENT = 5
MIN_REQUESTS = 20
# The p99 measured under churn with compactions is ~0.2 s (docs/benchmarks.md, freshness); 0.5 s
# for 5 minutes is well past it, and half the store's 1 s deadline.
P99_SECONDS = 0.5
REDIS_MEMORY_PERCENT = 80  # of maxmemory; at 100 the catalog's Redis refuses every write
# The refresher retries a failed store call at most 2 s apart: one replica logs ~15 a minute
# while Redis is down, a blip one or two.
STORE_ERRORS_PER_MINUTE = 10
STORE_ERROR_PATTERN = '"refresher: Redis"'  # the refresher's StoreUnavailable line


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        target_group: elbv2.ApplicationTargetGroup,
        cache: RedisCache,
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, id)
        # CloudWatch publishes to an encrypted topic only with a key whose policy lets it.
        key = kms.Key(
            self,
            "TopicKey",
            description=f"movie-recs {config.stage}: the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # it encrypts messages in flight only
            pending_window=Duration.days(7),
        )
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.key = key
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"movie-recs {config.stage} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.namespace = f"MovieRecs/{config.stage}"
        metrics = target_group.metrics
        requests = metrics.request_count(period=MINUTE)
        errors = metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=MINUTE)
        self.alarms = [
            self._alarm(
                "TargetErrorRate",
                cloudwatch.MathExpression(
                    expression=f"IF(requests >= {MIN_REQUESTS}, "
                    "100 * FILL(errors, 0) / requests, 0)",
                    using_metrics={"requests": requests, "errors": errors},
                    label="target 5xx, % of requests",
                    period=MINUTE,
                ),
                threshold=ERROR_PERCENT,
                evaluate=5,
                breaching=3,
                # No requests, no rate: an idle API is not failing (NoReadyReplica covers a
                # load balancer with nothing behind it).
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,
                description=f"{ERROR_PERCENT}% or more of API requests answered 5xx by the "
                "tasks in 3 of 5 minutes: the store (503 + store_error), overload (shed 503), "
                "or a bug; the task logs say which.",
            ),
            self._alarm(
                "TargetP99",
                metrics.target_response_time(period=MINUTE, statistic="p99"),
                threshold=P99_SECONDS,
                evaluate=5,
                breaching=5,
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,  # no requests, no latency
                description=f"API p99 above {P99_SECONDS} s for 5 minutes: CPU saturated "
                "(scale-out at its maximum?), a slow store, or compactions.",
            ),
            self._alarm(
                "RedisMemory",
                self._redis_memory(cache),
                threshold=REDIS_MEMORY_PERCENT,
                evaluate=3,
                breaching=3,
                # ElastiCache publishes every minute: silence from every node means they are
                # gone, or these dimensions no longer name them.
                missing=cloudwatch.TreatMissingData.BREACHING,
                description=f"The catalog's Redis is above {REDIS_MEMORY_PERCENT}% of its "
                "memory. It never evicts: at 100% webhooks and events fail. Scale the node "
                "type up, or move activity to a Redis of its own (activityCache=true).",
            ),
            self._alarm(
                "StoreDown",
                self._store_errors(log_group),
                threshold=STORE_ERRORS_PER_MINUTE,
                evaluate=2,
                breaching=2,
                # The filter counts error lines; no line is no error.
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,
                description="The replicas cannot reach Redis (movie_recs_store_up 0): they "
                "keep serving their index and answer 503 to what needs the store.",
            ),
            self._alarm(
                "ReplicaBehind",
                metrics.unhealthy_host_count(period=MINUTE, statistic="Minimum"),
                threshold=1,
                # Longer than a cold start may take (the health check grace period).
                evaluate=math.ceil(config.health_check_grace_seconds / 60) + 2,
                breaching=math.ceil(config.health_check_grace_seconds / 60) + 2,
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,  # no targets: NoReadyReplica
                description="A replica has been out of the load balancer longer than a cold "
                "start: its /readyz says 503, behind the change log (refresher lag: "
                "movie_recs_replica_lag), or without an index or a working model.",
            ),
            self._alarm(
                "NoReadyReplica",
                metrics.healthy_host_count(period=MINUTE, statistic="Maximum"),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluate=2,
                breaching=2,
                # The ALB reports its healthy targets every minute: silence is no target at all.
                missing=cloudwatch.TreatMissingData.BREACHING,
                description="No replica is ready: the load balancer answers every request 503 "
                "itself (these are not target 5xx).",
            ),
        ]

    def on_failed_retrain(
        self, task_definition: ecs.TaskDefinition, cluster: ecs.ICluster, stage: str
    ) -> events.Rule:
        """A retrain task that stopped with an exit code other than 0 and 1, or never started,
        is told to the alarm topic with its reason and exit code."""
        self.key.grant(
            iam.ServicePrincipal("events.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        rule = events.Rule(
            self,
            "RetrainFailed",
            description=f"movie-recs {stage}: a retrain task failed",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [cluster.cluster_arn],
                    "taskDefinitionArn": [task_definition.task_definition_arn],
                    "lastStatus": ["STOPPED"],
                    "$or": [
                        {"containers": {"exitCode": [{"anything-but": [0, 1]}]}},
                        {"stopCode": ["TaskFailedToStart"]},
                    ],
                },
            ),
        )
        reason = events.EventField.from_path("$.detail.stoppedReason")
        code = events.EventField.from_path("$.detail.containers[0].exitCode")
        rule.add_target(
            targets.SnsTopic(
                self.topic,
                message=events.RuleTargetInput.from_text(
                    f"movie-recs {stage}: the retrain task failed (exit code {code}; {reason}). "
                    "The serving model is unchanged; see the retrain log group."
                ),
            )
        )
        return rule

    @staticmethod
    def _redis_memory(cache: RedisCache) -> cloudwatch.IMetric:
        """The fullest node's: ElastiCache publishes memory per node, primary or replica."""
        nodes = {
            f"node{i}": cloudwatch.Metric(
                namespace="AWS/ElastiCache",
                metric_name="DatabaseMemoryUsagePercentage",
                dimensions_map={"CacheClusterId": member},
                statistic="Maximum",
                period=MINUTE,
            )
            for i, member in enumerate(cache.member_ids)
        }
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(nodes)}])",
            using_metrics=nodes,
            label="catalog Redis memory, % of maxmemory (fullest node)",
            period=MINUTE,
        )

    def _store_errors(self, log_group: logs.ILogGroup) -> cloudwatch.IMetric:
        metric_filter = logs.MetricFilter(
            self,
            "StoreErrorLines",
            log_group=log_group,
            filter_pattern=logs.FilterPattern.literal(STORE_ERROR_PATTERN),
            metric_namespace=self.namespace,
            metric_name="StoreErrors",
            metric_value="1",
        )
        return metric_filter.metric(period=MINUTE, statistic="Sum")

    def _alarm(
        self,
        id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluate: int,
        breaching: int,
        missing: cloudwatch.TreatMissingData,
        description: str,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluate,
            datapoints_to_alarm=breaching,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        return alarm
