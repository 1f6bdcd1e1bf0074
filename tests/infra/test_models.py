"""The model registry's bucket: private, versioned, encrypted, TLS only, logged; what reads it."""

from __future__ import annotations

from typing import Any

import pytest

from infra.models import PREFIX
from tests.infra import tasks
from tests.infra.stages import NONCURRENT_DAYS
from tests.support.infra import Synth

# Synthesizes the whole CDK app (jsii + node): `make test` runs it, `make test-fast` skips it.
pytestmark = pytest.mark.slow


def bucket(synth: Synth) -> dict[str, Any]:
    """The models bucket's resource (DeletionPolicy included)."""
    return synth.resources("AWS::S3::Bucket")[synth.logical_id(synth.stack.models.bucket)]  # type: ignore[no-any-return]


def bucket_policy(synth: Synth, logical: str) -> list[dict[str, Any]]:
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical}
    ]
    return policy  # type: ignore[no-any-return]


def objects(synth: Synth) -> dict[str, Any]:
    """Every object under the registry's prefix, as the template names them."""
    arn = {"Fn::GetAtt": [synth.logical_id(synth.stack.models.bucket), "Arn"]}
    return {"Fn::Join": ["", [arn, f"/{PREFIX}/*"]]}


def listing(synth: Synth) -> dict[str, Any]:
    """ListBucket on the bucket, for keys under the prefix only."""
    return {
        "Action": "s3:ListBucket",
        "Condition": {"StringLike": {"s3:prefix": [f"{PREFIX}/*"]}},
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [synth.logical_id(synth.stack.models.bucket), "Arn"]},
    }


def test_the_bucket_is_private_versioned_encrypted_and_tls_only(synth: Synth) -> None:
    properties = bucket(synth)["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]  # ACLs off: only IAM decides
    }
    logical = synth.logical_id(synth.stack.models.bucket)
    (deny,) = [s for s in bucket_policy(synth, logical) if s["Effect"] == "Deny"]
    assert deny["Action"] == "s3:*" and deny["Principal"] == {"AWS": "*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The bucket policy allows nobody anything: the roles' own policies do (retainData=true).
    assert [s for s in bucket_policy(synth, logical) if s["Effect"] == "Allow"] == []


def test_access_to_the_bucket_is_logged_next_to_the_load_balancer_logs(synth: Synth) -> None:
    """Server access logs (who read or wrote which version) go to the access-log bucket under
    s3/models/, delivered by a bucket policy naming this bucket: no ACL is turned on there."""
    logs = synth.logical_id(synth.stack.load_balancer.access_logs)
    assert bucket(synth)["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs},
        "LogFilePrefix": f"s3/{PREFIX}/",
    }
    access_logs = synth.resources("AWS::S3::Bucket")[logs]["Properties"]
    assert "AccessControl" not in access_logs and "OwnershipControls" not in access_logs
    (delivery,) = [
        s
        for s in bucket_policy(synth, logs)
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [logs, "Arn"]}, f"/s3/{PREFIX}/*"]]
    }
    models = {"Fn::GetAtt": [synth.logical_id(synth.stack.models.bucket), "Arn"]}
    assert delivery["Condition"]["ArnLike"] == {"aws:SourceArn": models}


def lifecycle(synth: Synth) -> dict[str, Any]:
    (rule,) = bucket(synth)["Properties"]["LifecycleConfiguration"]["Rules"]
    return rule  # type: ignore[no-any-return]


def test_overwritten_and_deleted_objects_expire_after_the_configured_days(
    synth: Synth, prod: Synth
) -> None:
    rule = lifecycle(synth)
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rule["ExpiredObjectDeleteMarker"] is True
    assert "ExpirationInDays" not in rule  # a current version (a model) never expires
    assert lifecycle(prod)["NoncurrentVersionExpiration"] == {"NoncurrentDays": NONCURRENT_DAYS}


def test_the_bucket_outlives_the_stack_unless_retain_data_is_false(
    synth: Synth, prod: Synth
) -> None:
    """As every other piece of state (retainData). Without it, `cdk destroy` empties the bucket
    (every object version) first: CloudFormation cannot delete a bucket that holds objects."""
    assert (bucket(synth)["DeletionPolicy"], bucket(synth)["UpdateReplacePolicy"]) == (
        "Retain",
        "Retain",
    )
    assert not synth.resources("Custom::S3AutoDeleteObjects")
    assert bucket(prod)["DeletionPolicy"] == "Delete"
    (emptying,) = prod.resources("Custom::S3AutoDeleteObjects").values()
    assert emptying["Properties"]["BucketName"] == {
        "Ref": prod.logical_id(prod.stack.models.bucket)
    }


def test_replicas_may_read_the_prefix_and_nothing_else(synth: Synth) -> None:
    """GetObject under models/ and ListBucket for keys under it: no write, no other prefix."""
    role = tasks.role_of(synth, synth.stack.api, "TaskRoleArn")
    granted = [s for s in tasks.statements(synth, role) if "s3" in tasks.flat(s["Action"])]
    assert granted == [
        {"Action": "s3:GetObject", "Effect": "Allow", "Resource": objects(synth)},
        listing(synth),
    ]


def test_the_retrain_task_may_also_write_and_delete_under_the_prefix(synth: Synth) -> None:
    """Publishing puts files and removes an interrupted attempt's leftovers; never an object
    version (s3:DeleteObjectVersion), so what it overwrites or deletes stays restorable."""
    role = tasks.role_of(synth, synth.stack.retrain, "TaskRoleArn")
    assert tasks.statements(synth, role) == [
        {
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Effect": "Allow",
            "Resource": objects(synth),
        },
        listing(synth),
    ]
    assert "ManagedPolicyArns" not in synth.resources("AWS::IAM::Role")[role]["Properties"]


@pytest.mark.parametrize("fixture", ["synth", "prod"])
def test_both_tasks_are_told_the_same_registry(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    stack: Synth = request.getfixturevalue(fixture)
    url = {
        "Fn::Join": ["", ["s3://", {"Ref": stack.logical_id(stack.stack.models.bucket)}, "/models"]]
    }
    for owner in (stack.stack.api, stack.stack.retrain):
        environment = tasks.environment(stack, owner)
        assert environment["MOVIE_RECS_REGISTRY_URL"] == url
        # A read-only root: the cache is under /tmp, the task's writable ephemeral storage.
        assert environment["MOVIE_RECS_MODEL_CACHE_DIR"].startswith("/tmp/")
        container = tasks.container(stack, owner)
        assert container["ReadonlyRootFilesystem"] is True
        assert {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "tmp"} in container[
            "MountPoints"
        ]
    outputs = stack.template.to_json()["Outputs"]
    assert outputs["ModelRegistry"]["Value"] == url
