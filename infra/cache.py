"""ElastiCache Redis: the catalog, the change log and the activity every replica shares.

A primary and a replica in two AZs with automatic failover, TLS in transit, encryption at
rest, an AUTH token from Secrets Manager, and a security group that admits nobody until
`allow_from` names the service.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from infra.config import StageConfig

PORT = 6379


class RedisCache(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        auth_token: sm.ISecret,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Redis: reachable from the API tasks only",
            allow_all_outbound=False,
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="Isolated subnets (no route to the internet) for Redis",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        # noeviction: a full Redis must fail writes loudly; evicting webhook dedupe keys or
        # change-log entries would break the guarantees the replicas rely on.
        parameters = elasticache.CfnParameterGroup(
            self,
            "Parameters",
            cache_parameter_group_family="redis7",
            description="movie-recs: never evict",
            properties={"maxmemory-policy": "noeviction"},
        )
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"movie-recs {config.stage}: catalog and change log",
            engine="redis",
            engine_version=config.redis_engine_version,
            cache_node_type=config.redis_node_type,
            num_cache_clusters=2,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            # A dynamic reference ({{resolve:secretsmanager:…}}): CloudFormation reads the
            # token at deploy time; the template holds only the reference.
            auth_token=auth_token.secret_value.unsafe_unwrap(),
            port=PORT,
            cache_subnet_group_name=subnets.ref,
            cache_parameter_group_name=parameters.ref,
            security_group_ids=[self.security_group.security_group_id],
            snapshot_retention_limit=7,
            auto_minor_version_upgrade=True,
        )
        Validations.of(self.replication_group).acknowledge(
            Acknowledgment(
                id="AwsSolutions-AEC5",
                reason="The default port hides nothing worth hiding: Redis sits in isolated "
                "subnets, its security group admits only the API tasks, and it requires TLS "
                "and an AUTH token.",
            )
        )
        # Deleting the stack keeps a final snapshot of the catalog, unless retainData=false.
        self.replication_group.apply_removal_policy(
            RemovalPolicy.SNAPSHOT if config.retain_data else RemovalPolicy.DESTROY
        )

    @property
    def url(self) -> str:
        """rediss:// (TLS) to the primary; the AUTH token is not in it, it comes as a secret."""
        host = self.replication_group.attr_primary_end_point_address
        port = self.replication_group.attr_primary_end_point_port
        return f"rediss://{host}:{port}/0"

    def allow_from(self, peer: ec2.IConnectable) -> None:
        self.security_group.connections.allow_from(
            peer, ec2.Port.tcp(PORT), "API tasks to Redis (TLS + AUTH)"
        )
