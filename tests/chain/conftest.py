"""The ``chain`` fixture most tests here share: the dev chain in LevelDB in a temp directory,
closed after the test (a module that needs another chain defines its own ``chain``); and
``chains``, two of them: a builder and an importer (fedkit.Driver compares their state roots
after every block)."""

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


@pytest.fixture
def chains(tmp_path: Path) -> Iterator[tuple[Blockchain, Blockchain]]:
    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    yield a, b
    a.db.close()
    b.db.close()
