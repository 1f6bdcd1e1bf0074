"""The model registry on AWS: one private, versioned, encrypted S3 bucket (decision 24).

`movie-recs retrain` publishes versions under `s3://<bucket>/models/` and the replicas read
them from there (embeddings/registry/s3.py; decision 23). Only two roles touch the prefix: the
API tasks may read it, the retrain task may also write and delete it; neither may touch an
object version, so whatever a run overwrites or deletes stays restorable for
`modelsNoncurrentDays`.

Encryption is SSE-S3: a model holds movie vectors, tower weights and vocabularies of movie
features, no user id or history, and who may read it is decided by the two roles' grants on the
prefix. A customer-managed KMS key would add a key policy to keep in step, a charge per
request on every replica's download, and nothing that IAM on the prefix does not already decide.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StageConfig

PREFIX = "models"  # every version lives under s3://<bucket>/models/<version>/
READ = ["s3:GetObject"]
# The registry's calls: put_object (each file, then the completion record), get_object,
# list_objects_v2 and delete_objects (an interrupted attempt's leftovers, `models delete`).
WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]


class ModelRegistry(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: StageConfig, access_logs: s3.IBucket
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,  # no ACLs at all
            enforce_ssl=True,
            # Who read or wrote which version, next to the load balancer's logs (same expiry).
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"s3/{PREFIX}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="old-versions",
                    noncurrent_version_expiration=Duration.days(config.models_noncurrent_days),
                    # A delete marker whose versions have all expired keeps nothing.
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=config.removal_policy,
            # retainData=false: `cdk destroy` empties the bucket (every version) and deletes it.
            auto_delete_objects=not config.retain_data,
        )
        self.url = f"s3://{self.bucket.bucket_name}/{PREFIX}"

    def grant_read(self, role: iam.IRole) -> None:
        """Fetch versions and list them: GetObject and ListBucket under the prefix only."""
        self._grant(role, READ, "read")

    def grant_publish(self, role: iam.IRole) -> None:
        """Also publish versions and delete them (never an object version: those expire)."""
        self._grant(role, WRITE, "read, write and delete")

    def _grant(self, role: iam.IRole, object_actions: list[str], verbs: str) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=object_actions,
                resources=[self.bucket.arn_for_objects(f"{PREFIX}/*")],
            )
        )
        # S3 authorizes ListBucket with the requested key as s3:prefix when a GET finds no
        # object, so a missing completion record is a 404 (not a version yet), not a 403.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{PREFIX}/*"]}},
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=self._objects_finding,
                reason=f"A version's files are objects under {PREFIX}/<version>/, named at run "
                f"time by training: this role may {verbs} objects under that prefix of this "
                "one bucket, and nothing else (no object versions, no bucket settings).",
            )
        )

    @property
    def _objects_finding(self) -> str:
        """cdk-nag's IAM5 finding for the grants on every object under the prefix."""
        logical = Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        return f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{PREFIX}/*]"
