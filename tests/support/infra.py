"""The infra tests' synth of the real CDK app, and what it returns."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Node 20 prints an end-of-life banner on every jsii start; it says nothing about this project.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import build
from infra.stack import MovieRecsStack


@dataclass
class Synth:
    app: App
    stack: MovieRecsStack
    template: Template
    outdir: Path

    def resources(self, kind: str) -> dict[str, Any]:
        return dict(self.template.find_resources(kind))

    def one(self, kind: str) -> dict[str, Any]:
        found = self.resources(kind)
        assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
        return next(iter(found.values()))

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)


def synthesize(outdir: Path, context: dict[str, Any] | None = None) -> Synth:
    """Synth the real app with cdk-nag on: an unacknowledged finding raises here.

    The environment is empty, so a developer's CDK_DEFAULT_* or MOVIE_RECS_INFRA_* variables
    cannot change what the tests see.
    """
    app = App(outdir=str(outdir), context=context or {})
    stack = build(app, environ={})
    app.synth()
    return Synth(app, stack, Template.from_stack(stack), outdir)
