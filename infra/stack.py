"""One stack per stage: each concern is a construct, wired here by passing what it needs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.alarms import Alarms
from infra.cache import EVICT_OLD_HISTORIES, RedisCache
from infra.config import StageConfig
from infra.image import api_image, retrain_image
from infra.load_balancer import PublicLoadBalancer
from infra.models import ModelRegistry
from infra.network import Network
from infra.retrain import ScheduledRetrain
from infra.scaling import add_autoscaling
from infra.secrets import AppSecrets
from infra.service import CONTAINER_PORT, MODEL_CACHE_DIR, ApiService
from infra.snapshots import SnapshotStorage

# S3 server access logs are delivered under a bucket policy that names the logged bucket, not
# through the log-delivery ACL, which would turn ACLs back on for the access-log bucket.
S3_ACCESS_LOGS_BY_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


class MovieRecsStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.node.set_context(S3_ACCESS_LOGS_BY_POLICY, True)
        network = Network(self, "Network", config=config)
        self.secrets = secrets = AppSecrets(self, "Secrets", config=config)
        self.cache = RedisCache(
            self, "Redis", config=config, vpc=network.vpc, auth_token=secrets.redis_auth
        )
        self.api = ApiService(
            self,
            "Api",
            config=config,
            vpc=network.vpc,
            image=api_image(config),
            secrets=secrets,
            store_url=self.cache.url,
        )
        self.cache.allow_from(self.api.service)
        self.load_balancer = PublicLoadBalancer(
            self, "LoadBalancer", config=config, vpc=network.vpc
        )
        self.models = ModelRegistry(
            self, "Models", config=config, access_logs=self.load_balancer.access_logs
        )
        self.models.grant_read(self.api.task_definition.task_role)
        self.api.container.add_environment("MOVIE_RECS_REGISTRY_URL", self.models.url)
        self.api.container.add_environment("MOVIE_RECS_MODEL_CACHE_DIR", MODEL_CACHE_DIR)
        self.retrain = ScheduledRetrain(
            self,
            "Retrain",
            config=config,
            vpc=network.vpc,
            cluster=self.api.cluster,
            image=retrain_image(config),
            secrets=secrets,
            registry=self.models,
            store_url=self.cache.url,
        )
        self.cache.allow_from(self.retrain.security_group, "Retrain task to Redis (TLS + AUTH)")
        self.activity_cache: RedisCache | None = None
        if config.activity_cache:
            self.activity_cache = RedisCache(
                self,
                "ActivityRedis",
                config=config,
                vpc=network.vpc,
                auth_token=secrets.redis_auth,  # the service authenticates to both with it
                holds="user activity",
                eviction=EVICT_OLD_HISTORIES,
                node_type=config.activity_node_type,
                cluster_node_groups=(
                    config.activity_node_groups if config.activity_cluster_mode else None
                ),
            )
            self.activity_cache.allow_from(self.api.service)
            # Retraining learns from the users' events, which live here then.
            self.activity_cache.allow_from(
                self.retrain.security_group, "Retrain task to Redis (TLS + AUTH)"
            )
            for container in (self.api.container, self.retrain.container):
                container.add_environment("MOVIE_RECS_ACTIVITY_URL", self.activity_cache.url)
                container.add_environment(
                    "MOVIE_RECS_ACTIVITY_CLUSTER",
                    "true" if config.activity_cluster_mode else "false",
                )
        self.snapshots = SnapshotStorage(self, "Snapshots", vpc=network.vpc)
        self.api.container.add_environment(
            "MOVIE_RECS_SNAPSHOT_DIR",
            self.snapshots.mount_into(self.api.service, self.api.container),
        )
        target_group = self.load_balancer.route_to(self.api.service, CONTAINER_PORT)
        add_autoscaling(self.api.service, target_group, config)
        self.alarms = Alarms(
            self,
            "Alarms",
            config=config,
            target_group=target_group,
            cache=self.cache,
            log_group=self.api.log_group,
        )
        self.alarms.on_failed_retrain(self.retrain.task_definition, self.api.cluster, config.stage)

        CfnOutput(self, "Url", value=self.load_balancer.url)
        CfnOutput(self, "ApiKeysSecret", value=secrets.api_keys.secret_name)
        CfnOutput(self, "WebhookSecretsSecret", value=secrets.webhook_secrets.secret_name)
        CfnOutput(self, "LogGroup", value=self.api.log_group.log_group_name)
        CfnOutput(self, "AlarmTopic", value=self.alarms.topic.topic_arn)
        CfnOutput(self, "ModelRegistry", value=self.models.url)
        CfnOutput(self, "RetrainLogGroup", value=self.retrain.log_group.log_group_name)
        CfnOutput(
            self,
            "RetrainCommand",
            value=self.retrain.run_task_command(network.vpc, self.api.cluster),
        )
