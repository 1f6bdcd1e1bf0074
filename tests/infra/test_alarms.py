"""The alarms: what each watches, what missing data means to it, and where it sends."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from infra.alarms import STORE_ERROR_PATTERN
from service.cli import log_config
from service.store.errors import StoreUnavailable
from tests.infra.stages import ALARM_EMAIL
from tests.support.infra import Synth

# Synthesizes the whole CDK app (jsii + node): `make test` runs it, `make test-fast` skips it.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ALARMS = {
    "TargetErrorRate",
    "TargetP99",
    "RedisMemory",
    "StoreDown",
    "ReplicaBehind",
    "NoReadyReplica",
}


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Each alarm's properties by its construct id."""
    return {
        alarm.node.id: synth.resources("AWS::CloudWatch::Alarm")[
            synth.stack.get_logical_id(alarm.node.default_child)  # type: ignore[arg-type]
        ]["Properties"]
        for alarm in synth.stack.alarms.alarms
    }


def metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics an alarm reads, by id (a plain alarm's one metric as 'metric')."""
    if "Metrics" not in alarm:
        return {"metric": {k: alarm.get(k) for k in ("MetricName", "Namespace", "Dimensions")}}
    return {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}


def expression(alarm: dict[str, Any]) -> str:
    (expr,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    return str(expr)


@pytest.mark.parametrize("fixture", ["synth", "prod"])
def test_every_alarm_notifies_the_topic_and_says_what_missing_data_means(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    stack: Synth = request.getfixturevalue(fixture)
    found = alarms(stack)
    assert set(found) == ALARMS
    assert len(stack.resources("AWS::CloudWatch::Alarm")) == len(ALARMS)
    topic = {"Ref": stack.logical_id(stack.stack.alarms.topic)}
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name  # and when it is over
        assert alarm["TreatMissingData"] in ("breaching", "notBreaching"), name
        assert len(alarm["AlarmDescription"]) > 40, name


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use(synth: Synth) -> None:
    topic = synth.one("AWS::SNS::Topic")["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    grants = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grants and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grants[0]["Action"])
    (policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]  # the failed-retrain rule
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"


def test_a_failed_retrain_is_told_to_the_alarm_topic(synth: Synth) -> None:
    """ECS's event for this retrain task definition, stopped with an exit code other than 0
    (promoted or told not to) and 1 (the gate refused), or failed to start, reaches the topic,
    whose key lets EventBridge encrypt."""
    rules = synth.resources("AWS::Events::Rule")
    (failed,) = [r["Properties"] for r in rules.values() if "EventPattern" in r["Properties"]]
    pattern = failed["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    detail = pattern["detail"]
    retrain = synth.logical_id(synth.stack.retrain.task_definition)
    assert detail["taskDefinitionArn"] == [{"Ref": retrain}]
    assert detail["lastStatus"] == ["STOPPED"]
    assert detail["$or"] == [
        {"containers": {"exitCode": [{"anything-but": [0, 1]}]}},
        {"stopCode": ["TaskFailedToStart"]},
    ]
    (target,) = failed["Targets"]
    topic = synth.logical_id(synth.stack.alarms.topic)
    assert target["Arn"] == {"Ref": topic}
    message = target["InputTransformer"]
    assert message["InputPathsMap"] == {
        "detail-containers-0--exitCode": "$.detail.containers[0].exitCode",
        "detail-stoppedReason": "$.detail.stoppedReason",
    }
    assert "exit code <detail-containers-0--exitCode>" in message["InputTemplate"]
    key_id = synth.one("AWS::SNS::Topic")["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    statements = synth.resources("AWS::KMS::Key")[key_id]["Properties"]["KeyPolicy"]["Statement"]
    (events,) = [s for s in statements if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(events["Action"])


def test_the_alarm_email_is_subscribed_when_configured(synth: Synth, prod: Synth) -> None:
    assert not synth.resources("AWS::SNS::Subscription")
    (subscription,) = prod.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == ALARM_EMAIL


def test_target_5xx_rate(synth: Synth) -> None:
    alarm = alarms(synth)["TargetErrorRate"]
    read = metrics(alarm)
    assert read["errors"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert read["requests"]["MetricName"] == "RequestCount"
    (target_group,) = synth.resources("AWS::ElasticLoadBalancingV2::TargetGroup")
    for metric in read.values():
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert set(dimensions) == {"LoadBalancer", "TargetGroup"}
        assert dimensions["TargetGroup"] == {"Fn::GetAtt": [target_group, "TargetGroupFullName"]}
    assert "100 * FILL(errors, 0) / requests" in expression(alarm)
    assert alarm["Threshold"] == 5
    assert alarm["TreatMissingData"] == "notBreaching"  # no requests is no error rate


def test_p99_response_time(synth: Synth) -> None:
    alarm = alarms(synth)["TargetP99"]
    assert alarm["MetricName"] == "TargetResponseTime"
    assert alarm["ExtendedStatistic"] == "p99"
    assert 0.2 < alarm["Threshold"] < 1.0  # past the measured p99, short of the store deadline


def test_catalog_redis_memory_on_every_node(synth: Synth, prod: Synth) -> None:
    """The fullest node of the catalog's Redis (the one that never evicts), not activity's."""
    for stack in (synth, prod):
        alarm = alarms(stack)["RedisMemory"]
        assert expression(alarm) == "MAX([node0, node1])"
        group = stack.stack.get_logical_id(stack.stack.cache.replication_group)
        members = []
        for metric in metrics(alarm).values():
            assert metric["MetricName"] == "DatabaseMemoryUsagePercentage"
            assert metric["Namespace"] == "AWS/ElastiCache"
            ((dimension),) = metric["Dimensions"]
            assert dimension["Name"] == "CacheClusterId"
            members.append(dimension["Value"])
        assert members == [
            {"Fn::Join": ["-", [{"Ref": group}, "001"]]},
            {"Fn::Join": ["-", [{"Ref": group}, "002"]]},
        ]
        assert alarm["TreatMissingData"] == "breaching"  # ElastiCache reports every minute


def test_store_down_counts_the_refreshers_error_lines(synth: Synth) -> None:
    (metric_filter,) = synth.resources("AWS::Logs::MetricFilter").values()
    props = metric_filter["Properties"]
    assert props["LogGroupName"] == {"Ref": synth.logical_id(synth.stack.api.log_group)}
    assert props["FilterPattern"] == STORE_ERROR_PATTERN
    (transform,) = props["MetricTransformations"]
    alarm = alarms(synth)["StoreDown"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        transform["MetricNamespace"],
        transform["MetricName"],
    )
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 60
    assert alarm["TreatMissingData"] == "notBreaching"  # no line, no error


def test_refresher_lag_is_a_replica_out_of_rotation_longer_than_a_cold_start(
    synth: Synth,
) -> None:
    alarm = alarms(synth)["ReplicaBehind"]
    assert alarm["MetricName"] == "UnHealthyHostCount"
    assert alarm["Statistic"] == "Minimum"  # unhealthy through each whole minute
    grace = synth.one("AWS::ECS::Service")["Properties"]["HealthCheckGracePeriodSeconds"]
    assert alarm["EvaluationPeriods"] * alarm["Period"] > grace
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    # Unhealthy means /readyz failing, which is "not caught up with the change log".
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/readyz"}
    )


def test_no_ready_replica(synth: Synth) -> None:
    alarm = alarms(synth)["NoReadyReplica"]
    assert alarm["MetricName"] == "HealthyHostCount"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"


def _refresher_error_template() -> str:
    """The message the refresher logs when a step fails with a store error."""
    tree = ast.parse((ROOT / "service" / "index" / "refresher.py").read_text("utf-8"))
    found = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "error"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).startswith("refresher: %s")
    ]
    assert len(found) == 1, found
    return str(found[0])


def _matches(pattern: str, line: str) -> bool:
    """CloudWatch Logs' quoted-term patterns: every quoted phrase occurs in the line."""
    terms = re.findall(r'"([^"]*)"', pattern)
    assert terms and pattern == " ".join(f'"{t}"' for t in terms), "quoted terms only"
    return all(term in line for term in terms)


@pytest.mark.parametrize(
    "cause", ["Redis did not answer xread within 2s", "Redis xread failed (ConnectionError)"]
)
def test_the_store_down_pattern_matches_what_the_service_logs(cause: str) -> None:
    """The line as the task writes it: the service's log format, the refresher's message, the
    store's StoreUnavailable text (both kinds its deadline raises)."""
    store_code = "".join(p.read_text("utf-8") for p in (ROOT / "service" / "store").glob("*.py"))
    assert 'StoreUnavailable(f"Redis did not answer {' in store_code
    assert 'StoreUnavailable(f"Redis {what} failed (' in store_code
    formatter = logging.Formatter(log_config()["formatters"]["plain"]["format"])
    record = logging.LogRecord(
        "service.index.refresher",
        logging.ERROR,
        __file__,
        0,
        _refresher_error_template(),
        (StoreUnavailable(cause), 0.4),
        None,
    )
    line = formatter.format(record)
    assert _matches(STORE_ERROR_PATTERN, line), line
    assert log_config()["loggers"]["service"]["level"] in ("INFO", "WARNING", "ERROR")  # logged
    # A recovery line or a catalog refusal is not an outage.
    for other in ("store answers again; refresher resumed", "refresher: catalog lost"):
        assert not _matches(STORE_ERROR_PATTERN, f"ERROR:     service.index.refresher: {other}")
    assert "\n" not in line  # one log event
