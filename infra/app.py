"""`python -m infra.app` (what `cdk` and `make synth` run): one stack for the chosen stage."""

from __future__ import annotations

import sys

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import StageConfig
from infra.stack import MovieRecsStack


def build(app: App, environ: dict[str, str] | None = None) -> MovieRecsStack:
    """The stack, and cdk-nag's AWS Solutions checks: synth fails on any unacknowledged rule.

    Each rule the stack does not follow is acknowledged, with its reason, next to the resource.
    """
    config = StageConfig.from_node(app.node, environ)
    stack = MovieRecsStack(
        app,
        config.stack_name,
        config=config,
        env=Environment(account=config.account or None, region=config.region),
        description=f"movie-recs API ({config.stage}): Fargate behind an ALB, ElastiCache Redis",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> None:
    """A setting that would deploy but not work stops synth with its one-line reason."""
    app = App()
    try:
        build(app)
    except ValueError as exc:
        sys.exit(f"movie-recs infra: {exc}")
    app.synth()


if __name__ == "__main__":
    main()
