"""Synths shared by the infra tests (jsii start-up and synth take seconds): one per session each."""

from __future__ import annotations

import pytest

from tests.infra.stages import PROD
from tests.support.infra import Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default stage, as `make synth` makes it with no overrides."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Another environment from context alone (tests/infra/stages.py): HTTPS, an alarm e-mail,
    a clustered activity Redis, data not retained, another retrain schedule (disabled) and
    size."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"), context=PROD)
