"""Set-up shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, started the way the CLI starts it (on loopback; this
    machine's CPUs, one per trial of the tests' spaces)."""
    import ray

    from orchestrator.sweep import init_ray

    started = init_ray(None)
    yield
    if started:
        ray.shutdown()
