"""Fixtures of the tests that start Flower processes."""

from __future__ import annotations

import pytest

from tests.app.deployment_runs import Evidence, run_honest_and_corrupt


@pytest.fixture(scope="session")
def shared_deployment(tmp_path_factory) -> tuple[Evidence, Evidence]:
    """The honest and the corrupt run on the one shared insecure deployment.

    Both run as soon as one test asks for either (so running only one module's
    tests still costs both runs); the cluster is stopped before any test reads them.
    """
    return run_honest_and_corrupt(tmp_path_factory.mktemp("honest-deployment"))
