"""The public entry: an internet-facing ALB in the public subnets, with access logs.

HTTPS when a certificate ARN is configured, which every stage but dev must (infra/config.py):
port 80 then only answers 301 to HTTPS and forwards nothing, so every request reaches the tasks
over HTTPS, with the `X-Forwarded-Proto: https` the app answers with Strict-Transport-Security.
Plain HTTP is for a first look at a dev stack, never for real API keys.

Only the API is public: the listener forwards `/v1/*` (and the docs when `publicDocs` is set)
and answers anything else 404 itself. `/metrics`, `/healthz` and `/readyz` stay inside the
VPC: the target group's health check reaches the tasks directly, not through the listener.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StageConfig

IDLE_TIMEOUT_SECONDS = 60  # below uvicorn's 75 s keep-alive, so the ALB closes idle ones first
READINESS_PATH = "/readyz"
API_PATHS = ["/v1/*"]
DOCS_PATHS = ["/docs*", "/openapi.json", "/redoc"]
NOT_FOUND = elbv2.ListenerAction.fixed_response(
    404, content_type="application/json", message_body='{"detail": "Not Found"}'
)


class PublicLoadBalancer(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, vpc: ec2.IVpc) -> None:
        super().__init__(scope, id)
        self.public_paths = API_PATHS + (DOCS_PATHS if config.public_docs else [])
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="ALB: HTTP(S) from the internet, out to the API tasks only",
            allow_all_outbound=False,
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.security_group,
            idle_timeout=Duration.seconds(IDLE_TIMEOUT_SECONDS),
            drop_invalid_header_fields=True,
            deletion_protection=config.retain_data,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only kind ALB log delivery writes
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,  # audit data outlives the stack
        )
        self.alb.log_access_logs(self.access_logs, prefix="alb")
        Validations.of(self.access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket holds the ALB's access logs; logging access to it would "
                "need yet another bucket. It is private, TLS-only and expires objects "
                "after 90 days.",
            )
        )
        Validations.of(self.security_group).acknowledge(
            Acknowledgment(
                id="AwsSolutions-EC23",
                reason="A public API: the listener port is open to any client, which then "
                "needs an API key. The group's only egress is to the API tasks.",
            )
        )
        self.scheme = "https" if config.certificate_arn else "http"
        if config.certificate_arn:
            self.listener = self.alb.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(config.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                open=True,
                default_action=NOT_FOUND,
            )
            # :80 -> 301 https://…:443, its only action: no rule is ever added to it.
            self.alb.add_redirect(source_port=80, target_port=443)
        else:
            Annotations.of(self).add_warning_v2(
                "movie-recs:no-https",
                "no certificateArn: the API is served over plain HTTP (dev only)",
            )
            self.listener = self.alb.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                open=True,
                default_action=NOT_FOUND,
            )

    def route_to(
        self, target: elbv2.IApplicationLoadBalancerTarget, port: int
    ) -> elbv2.ApplicationTargetGroup:
        """Send the public paths to a target once it is ready (its readiness route answers 200)."""
        return self.listener.add_targets(
            "Api",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(self.public_paths)],
            port=port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[target],
            health_check=elbv2.HealthCheck(
                path=READINESS_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            # Requests take milliseconds; a short drain keeps rolling deploys quick.
            deregistration_delay=Duration.seconds(20),
            load_balancing_algorithm_type=(
                elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS
            ),
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.alb.load_balancer_dns_name}"
