"""One synth per session (jsii start-up and synth take seconds), shared by the infra tests."""

from __future__ import annotations

import pytest

from tests.support.infra import Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default stage, as `make synth` makes it with no overrides."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))
