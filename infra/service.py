"""The API as an ECS Fargate service: task definition, container, security group, deployment.

Timings fit together: uvicorn drains for 20 s on SIGTERM, inside the 30 s stop timeout; the
grace period covers the model and index load of a cold task; a deployment whose new tasks
never turn ready stops and rolls back by itself.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Size, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageConfig
from infra.secrets import AppSecrets

CONTAINER_PORT = 8000
HTTPS_PORT = 443
STOP_TIMEOUT_SECONDS = 30  # ECS's SIGTERM -> SIGKILL; above uvicorn's graceful shutdown (20 s)
# Where a replica keeps the versions it fetched from the S3 registry: the task's ephemeral
# storage (/tmp, the one writable path of a read-only root), 20 GiB by default.
MODEL_CACHE_DIR = "/tmp/models"
LIVENESS = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/healthz', timeout=2)"
)


class ApiService(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        image: ecs.ContainerImage,
        secrets: AppSecrets,
        store_url: str,
    ) -> None:
        super().__init__(scope, id)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        # The task role mounts the snapshot file system (infra/snapshots.py) and reads the
        # model registry's prefix (infra/models.py), nothing else. Pulling the image, writing
        # logs and reading the three secrets are the execution role's, which CDK scopes to them.
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.cpu,
            memory_limit_mib=config.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_definition.add_volume(name="tmp")  # task ephemeral storage, for /tmp
        self.container = self.task_definition.add_container(
            "api",
            image=image,
            essential=True,
            readonly_root_filesystem=True,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")],
            # Only the store's address, no credentials; everything secret comes below.
            environment={"MOVIE_RECS_STORE_URL": store_url},
            secrets={
                "MOVIE_RECS_API_KEYS": ecs.Secret.from_secrets_manager(secrets.api_keys),
                "MOVIE_RECS_WEBHOOK_SECRETS": ecs.Secret.from_secrets_manager(
                    secrets.webhook_secrets
                ),
                "MOVIE_RECS_STORE_PASSWORD": ecs.Secret.from_secrets_manager(secrets.redis_auth),
            },
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="api",
                log_group=self.log_group,
                # A slow log pipeline must never block a request.
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
            # Liveness (never touches the store); readiness is the load balancer's check.
            health_check=ecs.HealthCheck(
                command=["CMD", "/opt/venv/bin/python", "-c", LIVENESS],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(min(config.health_check_grace_seconds, 300)),
            ),
            stop_timeout=Duration.seconds(STOP_TIMEOUT_SECONDS),
        )
        Validations.of(self.task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The plain variables are MOVIE_RECS_STORE_URL and MOVIE_RECS_ACTIVITY_URL, "
                "Redis hosts and ports without credentials, MOVIE_RECS_ACTIVITY_CLUSTER, a flag, "
                "MOVIE_RECS_REGISTRY_URL, the models' s3:// prefix, and MOVIE_RECS_SNAPSHOT_DIR "
                "and MOVIE_RECS_MODEL_CACHE_DIR, paths; the API keys, webhook secrets and AUTH "
                "token are ECS secrets from Secrets Manager (tests/infra checks both).",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions, so AWS "
                "requires '*'; the execution role's other statements name the asset "
                "repository, the log group and the three secrets.",
            ),
        )
        self.container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)
        )
        # No egress but what the task needs. Redis (6379) and EFS (2049) are added to their
        # own security groups by `allow_from`, which opens this side too. (The description
        # stays as it was: changing it would replace the group.)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="API tasks: HTTP from the load balancer; out to Redis and AWS APIs",
            allow_all_outbound=False,
        )
        # On Fargate the image pull (ECR and its S3 layers), the secrets (Secrets Manager) and
        # the logs (CloudWatch Logs) leave through the task's own interface. The VPC has no
        # interface endpoints, so these reach AWS's public endpoints through the NAT gateways,
        # whose addresses AWS changes at will: 443 to anywhere, and nothing else.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(HTTPS_PORT),
            "HTTPS to AWS APIs via NAT: ECR, Secrets Manager, CloudWatch Logs",
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            # No desired count: autoscaling owns it (a deploy must not reset it).
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(config.health_check_grace_seconds),
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
