"""cdk-nag's AWS Solutions pack runs on every synth; each exception to it carries a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from tests.support.infra import Synth

# Synthesizes the whole CDK app (jsii + node): `make test` runs it, `make test-fast` skips it.
pytestmark = pytest.mark.slow


def acknowledged(synth: Synth) -> dict[str, set[str]]:
    """rule -> the constructs that acknowledge it, each with a reason of some length."""
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # a failure would have raised during synth
    found: dict[str, set[str]] = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                continue
            for rule, reason in entry.data.items():
                if "AwsSolutions-" in rule:
                    assert len(reason) >= 80, f"{rule}: say why, not just that"
                    path = construct.node.path.removeprefix(synth.stack.node.path + "/")
                    found.setdefault(rule.partition("::")[2], set()).add(path)
    return found


# A new acknowledgment is a decision: add it here, with its reason in the code.
ACKNOWLEDGED = {
    "AwsSolutions-SMG4": {"Secrets/ApiKeys", "Secrets/WebhookSecrets", "Secrets/RedisAuth"},
    "AwsSolutions-AEC5": {"Redis/ReplicationGroup"},
    "AwsSolutions-ECS2": {"Api/Task", "Retrain/Task"},
    "AwsSolutions-IAM5[Resource::*]": {"Api/Task", "Retrain/Task"},
    "AwsSolutions-EC23": {"LoadBalancer/SecurityGroup"},
    "AwsSolutions-S1": {"LoadBalancer/AccessLogs"},
}


def expected(synth: Synth) -> dict[str, set[str]]:
    """ACKNOWLEDGED, and the grants on every object under the model registry's prefix: the
    replicas read it, the retrain task writes it (the finding names the bucket's logical id)."""
    bucket = synth.logical_id(synth.stack.models.bucket)
    objects = f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/models/*]"
    return {**ACKNOWLEDGED, objects: {"Api/Task/TaskRole", "Retrain/Task/TaskRole"}}


def test_cdk_nag_passes_and_every_acknowledgment_says_why(synth: Synth) -> None:
    assert acknowledged(synth) == expected(synth)


def test_an_activity_redis_needs_no_other_exception(prod: Synth) -> None:
    """HTTPS, alarms to an encrypted topic, a clustered activity Redis, a model bucket emptied
    on `cdk destroy` (retainData=false): the same rules hold."""
    rules = expected(prod)
    rules["AwsSolutions-AEC5"] = {"Redis/ReplicationGroup", "ActivityRedis/ReplicationGroup"}
    assert acknowledged(prod) == rules


def test_cdk_nag_fails_synth_on_an_unacknowledged_rule(tmp_path: Path) -> None:
    """The check is live: the same plugin rejects a bucket without TLS or access logs."""
    app = App(outdir=str(tmp_path))
    s3.Bucket(Stack(app, "Careless"), "Bucket")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match=r"AwsSolutions-S10"):
        app.synth()
