"""Settings for the whole suite.

The processes the tests start (nodes, devnets, the CLI: some 350 a run) write and reuse the
project's bytecode, as Python does by default, even where the environment sets
PYTHONDONTWRITEBYTECODE (this machine's does): with it, each of them compiled every project
module it imported from source, about 0.2 s of CPU for a node and 10 % of the CPU of
tests/node/test_cli.py. The bytecode goes to ``__pycache__`` beside the sources, which git
ignores and where numba keeps its kernel cache already. The pytest process itself is left as
configured.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
