"""Shared fixtures of the ml_runtime tests."""

from __future__ import annotations

import pytest

import ml_runtime as mr


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    """Compile (or load from numba's cache) every kernel once per session."""
    mr.warm_up()
