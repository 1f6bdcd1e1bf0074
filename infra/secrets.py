"""The three secrets the service needs, generated in Secrets Manager, never in the template.

ECS injects each one as an environment variable when a task starts (the execution role reads
them), so no secret value appears in the task definition, the image or CloudFormation.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from infra.config import StageConfig


class AppSecrets(Construct):
    """API keys, webhook signing secrets and the Redis AUTH token."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig) -> None:
        super().__init__(scope, id)
        prefix = f"movie-recs/{config.stage}"
        self.api_keys = _generated(
            self,
            "ApiKeys",
            f"{prefix}/api-keys",
            "MOVIE_RECS_API_KEYS: bearer keys for /v1, comma-separated (add new, then drop old).",
            length=48,
        )
        # 44 letters and digits are valid base64 (33 bytes): a Standard Webhooks secret as is.
        # The catalog owner gets it as `whsec_<value>`; libraries accept it with or without.
        self.webhook_secrets = _generated(
            self,
            "WebhookSecrets",
            f"{prefix}/webhook-secrets",
            "MOVIE_RECS_WEBHOOK_SECRETS: Standard Webhooks secrets, comma-separated.",
            length=44,
        )
        # ElastiCache AUTH tokens: 16-128 printable characters without @ \" / (alphanumeric here).
        self.redis_auth = _generated(
            self,
            "RedisAuth",
            f"{prefix}/redis-auth-token",
            "ElastiCache AUTH token; the service gets it as MOVIE_RECS_STORE_PASSWORD.",
            length=64,
        )
        for secret in (self.api_keys, self.webhook_secrets, self.redis_auth):
            secret.apply_removal_policy(config.removal_policy)
        for secret in (self.api_keys, self.webhook_secrets):
            Validations.of(secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason="Rotation involves the clients: add the new key next to the old one "
                    "(comma-separated), move the clients, then drop the old one (README). "
                    "Scheduled rotation would cut off clients that still hold the old value.",
                )
            )
        Validations.of(self.redis_auth).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The AUTH token rotates through ElastiCache's ROTATE/SET strategy together "
                "with a redeploy of the tasks (README runbook); a scheduled rotation of the "
                "secret alone would lock the service out of Redis.",
            )
        )

    @property
    def all(self) -> tuple[sm.Secret, ...]:
        return (self.api_keys, self.webhook_secrets, self.redis_auth)


def _generated(scope: Construct, id: str, name: str, description: str, length: int) -> sm.Secret:
    return sm.Secret(
        scope,
        id,
        secret_name=name,
        description=description,
        generate_secret_string=sm.SecretStringGenerator(
            password_length=length, exclude_punctuation=True, include_space=False
        ),
    )
