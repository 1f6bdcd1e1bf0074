"""The CDK context of the non-default stage the infra tests synthesize (conftest's `prod`)."""

from __future__ import annotations

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-0"
ALARM_EMAIL = "oncall@example.com"
ACTIVITY_NODE_GROUPS = 3
RETRAIN_SCHEDULE = "rate(12 hours)"
NONCURRENT_DAYS = 7
PROD = {
    "stage": "prod",
    "region": "eu-west-1",
    "certificateArn": CERTIFICATE,
    "maxTasks": "12",
    "retainData": "false",
    "publicDocs": "true",
    "alarmEmail": ALARM_EMAIL,
    "activityCache": "true",
    "activityClusterMode": "true",
    "activityNodeGroups": str(ACTIVITY_NODE_GROUPS),
    "retrainSchedule": RETRAIN_SCHEDULE,
    "retrainEnabled": "false",
    "retrainCpu": "4096",
    "retrainMemoryMib": "16384",
    "modelsNoncurrentDays": str(NONCURRENT_DAYS),
}
