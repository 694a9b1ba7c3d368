"""Shared fixtures: one real local Ray instance for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAYSWEEP_REF_PYTHON", str(REPO / ".venv-ref" / "bin" / "python"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start Ray once (2 CPUs, like CI) and share it between all integration tests."""
    import ray

    from raysweep.driver.cluster import connect

    connect(num_cpus=2)
    yield
    ray.shutdown()
