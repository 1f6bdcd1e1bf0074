"""ElastiCache Redis: the catalog and change log every replica shares, and user activity.

Each cache is a replication group in two AZs with automatic failover, TLS in transit,
encryption at rest, an AUTH token from Secrets Manager, and a security group that admits
nobody until `allow_from` names the API service and the retrain task (its description, "from
the API tasks only", predates the retrain and stays: a new description would replace the group).
The catalog's never evicts; a separate activity cache (`activityCache`) evicts the least
recently used histories, and may be a Redis Cluster (decision 19).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Fn, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from infra.config import StageConfig

PORT = 6379
NODES_PER_GROUP = 2  # a primary and one replica, in two AZs
# noeviction: a full Redis must fail writes loudly; evicting webhook dedupe keys or change-log
# entries would break the guarantees the replicas rely on.
NEVER_EVICT = "noeviction"
# volatile-lru: every history key carries a TTL (refreshed on each write), so under memory
# pressure the histories read or written least recently go first; a key without a TTL is never
# dropped (decision 19).
EVICT_OLD_HISTORIES = "volatile-lru"


class RedisCache(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        auth_token: sm.ISecret,
        holds: str = "catalog and change log",
        eviction: str = NEVER_EVICT,
        node_type: str | None = None,
        cluster_node_groups: int | None = None,
    ) -> None:
        """`cluster_node_groups`: a Redis Cluster of that many shards; None, one primary."""
        super().__init__(scope, id)
        self.cluster_mode = cluster_node_groups is not None
        self.eviction = eviction
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
        properties = {"maxmemory-policy": eviction}
        if self.cluster_mode:
            properties["cluster-enabled"] = "yes"
        parameters = elasticache.CfnParameterGroup(
            self,
            "Parameters",
            cache_parameter_group_family="redis7",
            description="movie-recs: never evict"
            if eviction == NEVER_EVICT
            else f"movie-recs: {eviction}",
            properties=properties,
        )
        nodes = range(1, NODES_PER_GROUP + 1)
        if cluster_node_groups is None:
            self.node_ids = [f"{node:03d}" for node in nodes]
        else:
            groups = range(1, cluster_node_groups + 1)
            self.node_ids = [f"{group:04d}-{node:03d}" for group in groups for node in nodes]
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"movie-recs {config.stage}: {holds}",
            engine="redis",
            engine_version=config.redis_engine_version,
            cache_node_type=node_type or config.redis_node_type,
            # One shard of NODES_PER_GROUP nodes, or that many in each of the cluster's shards.
            num_cache_clusters=None if self.cluster_mode else NODES_PER_GROUP,
            cluster_mode="enabled" if self.cluster_mode else None,
            num_node_groups=cluster_node_groups,
            replicas_per_node_group=NODES_PER_GROUP - 1 if self.cluster_mode else None,
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
                "subnets, its security group admits only the API and retrain tasks, and it "
                "requires TLS and an AUTH token.",
            )
        )
        # Deleting the stack keeps a final snapshot, unless retainData=false.
        self.replication_group.apply_removal_policy(
            RemovalPolicy.SNAPSHOT if config.retain_data else RemovalPolicy.DESTROY
        )

    @property
    def url(self) -> str:
        """rediss:// (TLS) to the primary, or to a cluster's configuration endpoint (no
        database number: a cluster has only 0); the AUTH token is not in it, it comes as a
        secret."""
        group = self.replication_group
        if self.cluster_mode:
            host = group.attr_configuration_end_point_address
            port = group.attr_configuration_end_point_port
            return f"rediss://{host}:{port}"
        host = group.attr_primary_end_point_address
        port = group.attr_primary_end_point_port
        return f"rediss://{host}:{port}/0"

    @property
    def member_ids(self) -> list[str]:
        """The nodes' CacheClusterId, the dimension of ElastiCache's per-node metrics:
        `<group>-001` and `-002`, or `<group>-0001-001`… in cluster mode."""
        return [Fn.join("-", [self.replication_group.ref, node]) for node in self.node_ids]

    def allow_from(
        self, peer: ec2.IConnectable, description: str = "API tasks to Redis (TLS + AUTH)"
    ) -> None:
        """Redis's port from `peer` only (and, as `peer` allows no other egress, to Redis)."""
        self.security_group.connections.allow_from(peer, ec2.Port.tcp(PORT), description)
