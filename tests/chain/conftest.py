"""The ``chain`` fixture most tests here share: the dev chain in LevelDB in a temp directory,
closed after the test (a module that needs another chain defines its own ``chain``)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from chainkit import open_chain

from chain.blockchain import Blockchain


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Blockchain]:
    c = open_chain(tmp_path / "db")
    yield c
    c.db.close()
