"""The scheduled retrain: an EventBridge rule starts `movie-recs retrain` as one Fargate task.

The task reads the catalog and the users' events from the store, trains with the code of
`movie-recs train`, publishes the candidate to the model registry and moves the store's serving
pointer only if the candidate passes the gate; the replicas then swap to it by themselves
(decision 26). It runs from the Dockerfile's `retrain` target (the serving image plus the
`train` extra), in the API's cluster and private subnets, with a security group that admits
nothing and reaches only Redis and HTTPS (S3, ECR, Secrets Manager and CloudWatch Logs
through NAT), its own log group, the Redis AUTH token as its only secret, and a task role that
may write the registry's prefix and nothing else (decision 24).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageConfig
from infra.models import ModelRegistry
from infra.secrets import AppSecrets
from infra.service import HTTPS_PORT, MODEL_CACHE_DIR

COMMAND = ["movie-recs", "retrain"]
# A start that EventBridge could not make (RunTask throttled, no capacity) is retried for an
# hour at most; past that the next scheduled run is as good.
START_RETRIES = 3
START_WITHIN_SECONDS = 3600


class ScheduledRetrain(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        cluster: ecs.ICluster,
        image: ecs.ContainerImage,
        secrets: AppSecrets,
        registry: ModelRegistry,
        store_url: str,
    ) -> None:
        super().__init__(scope, id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.retrain_cpu,
            memory_limit_mib=config.retrain_memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_definition.add_volume(name="tmp")  # task ephemeral storage, for /tmp
        self.container = self.task_definition.add_container(
            "retrain",
            image=image,
            essential=True,
            command=COMMAND,
            readonly_root_filesystem=True,
            environment={
                "MOVIE_RECS_STORE_URL": store_url,
                "MOVIE_RECS_REGISTRY_URL": registry.url,
                # The serving version the gate compares with, fetched from S3.
                "MOVIE_RECS_MODEL_CACHE_DIR": MODEL_CACHE_DIR,
            },
            secrets={
                "MOVIE_RECS_STORE_PASSWORD": ecs.Secret.from_secrets_manager(secrets.redis_auth),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="retrain", log_group=self.log_group),
        )
        self.container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)
        )
        registry.grant_publish(self.task_definition.task_role)
        Validations.of(self.task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The plain variables are the store's and the activity Redis's rediss:// "
                "URLs without credentials, a cluster flag, the registry's s3:// URL and a cache "
                "path; the Redis AUTH token is an ECS secret from Secrets Manager (tests/infra "
                "checks both).",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions, so AWS "
                "requires '*'; the execution role's other statements name the asset "
                "repository, the log group and the AUTH token's secret.",
            ),
        )
        # No ingress at all; Redis's port is opened on both sides by the caches' `allow_from`.
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Retrain task: no inbound; out to Redis and AWS APIs",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(HTTPS_PORT),
            "HTTPS to AWS APIs via NAT: S3, ECR, Secrets Manager, CloudWatch Logs",
        )
        self.subnet_type = ec2.SubnetType.PRIVATE_WITH_EGRESS  # the API's: NAT, no public IP
        # Its own role, allowed to start this revision of the task definition in this cluster
        # and to pass this task's two roles, nothing else. (CDK's EcsTask target would also
        # grant ecs:TagResource on every task of the cluster, for tags this rule never sets.)
        self.events_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="EventBridge: run the retrain task",
        )
        self.events_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[self.task_definition.task_definition_arn],
                conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
            )
        )
        self.events_role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[
                    self.task_definition.execution_role.role_arn,  # type: ignore[union-attr]
                    self.task_definition.task_role.role_arn,
                ],
            )
        )
        subnets = vpc.select_subnets(subnet_type=self.subnet_type).subnet_ids
        self.rule = events.CfnRule(
            self,
            "Schedule",
            description=f"movie-recs {config.stage}: movie-recs retrain",
            schedule_expression=config.retrain_schedule,
            state="ENABLED" if config.retrain_enabled else "DISABLED",
            targets=[
                events.CfnRule.TargetProperty(
                    id="retrain",
                    arn=cluster.cluster_arn,
                    role_arn=self.events_role.role_arn,
                    ecs_parameters=events.CfnRule.EcsParametersProperty(
                        task_definition_arn=self.task_definition.task_definition_arn,
                        task_count=1,
                        launch_type="FARGATE",
                        platform_version="LATEST",
                        network_configuration=events.CfnRule.NetworkConfigurationProperty(
                            aws_vpc_configuration=events.CfnRule.AwsVpcConfigurationProperty(
                                subnets=subnets,
                                security_groups=[self.security_group.security_group_id],
                                assign_public_ip="DISABLED",
                            )
                        ),
                    ),
                    retry_policy=events.CfnRule.RetryPolicyProperty(
                        maximum_retry_attempts=START_RETRIES,
                        maximum_event_age_in_seconds=START_WITHIN_SECONDS,
                    ),
                )
            ],
        )

    def run_task_command(self, vpc: ec2.IVpc, cluster: ecs.ICluster) -> str:
        """`aws ecs run-task …`: a retrain now, as the schedule starts it."""
        subnets = ",".join(vpc.select_subnets(subnet_type=self.subnet_type).subnet_ids)
        network = (
            f"awsvpcConfiguration={{subnets=[{subnets}],"
            f"securityGroups=[{self.security_group.security_group_id}],assignPublicIp=DISABLED}}"
        )
        return (
            f"aws ecs run-task --cluster {cluster.cluster_name} "
            f"--task-definition {self.task_definition.family} --launch-type FARGATE "
            f"--platform-version LATEST --network-configuration '{network}'"
        )
