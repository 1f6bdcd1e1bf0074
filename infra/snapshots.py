"""Where replicas share index snapshots: an encrypted EFS file system, mounted into the task.

A replica that full-synced or compacted writes its index there, and a new one starts from it
(service/index/snapshot_file.py). EFS rather than S3: a POSIX directory gives the atomic
rename the writers rely on (the image has carried an AWS SDK since the model registry, decision
23, so that is the reason that remains), and at a 1M catalog (~300 MB a snapshot, three kept)
the storage costs cents a month. The mount needs the task role (IAM authorization) and goes
through an access point that runs every access as the image's user (uid 10001) in its own
directory; only the API tasks reach the NFS port.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from constructs import Construct

APP_UID = "10001"  # the Dockerfile's runtime user
MOUNT_PATH = "/var/snapshots"
VOLUME = "snapshots"


class SnapshotStorage(Construct):
    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Snapshot file system: NFS from the API tasks only",
            allow_all_outbound=False,
        )
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_group=self.security_group,
            encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            # Pay per byte moved: a replica start reads one snapshot, a compaction writes one.
            throughput_mode=efs.ThroughputMode.ELASTIC,
            # Snapshots are rebuilt from the store by any full sync: nothing here to keep.
            removal_policy=RemovalPolicy.DESTROY,
            enable_automatic_backups=False,
        )
        self.access_point = self.file_system.add_access_point(
            "AccessPoint",
            path="/snapshots",
            create_acl=efs.Acl(owner_uid=APP_UID, owner_gid=APP_UID, permissions="750"),
            posix_user=efs.PosixUser(uid=APP_UID, gid=APP_UID),
        )

    def mount_into(self, service: ecs.FargateService, container: ecs.ContainerDefinition) -> str:
        """Mount it into `container` (TLS, IAM), let `service` reach it; returns the path."""
        task = service.task_definition
        task.add_volume(
            name=VOLUME,
            efs_volume_configuration=ecs.EfsVolumeConfiguration(
                file_system_id=self.file_system.file_system_id,
                transit_encryption="ENABLED",
                authorization_config=ecs.AuthorizationConfig(
                    access_point_id=self.access_point.access_point_id, iam="ENABLED"
                ),
            ),
        )
        container.add_mount_points(
            ecs.MountPoint(container_path=MOUNT_PATH, source_volume=VOLUME, read_only=False)
        )
        self.file_system.grant_read_write(task.task_role)
        self.file_system.connections.allow_default_port_from(service)
        return MOUNT_PATH
