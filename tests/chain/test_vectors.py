"""Golden vectors pin the chain's bits across versions: genesis hash and a block with training."""

from __future__ import annotations

import json
from pathlib import Path

from chainkit import open_chain
from make_vectors import VECTORS, compute_vectors

from chain.block import decode_block
from chain.codec import decode
from chain.proofs import Opening
from tests.forgery import MemorySource


def _load(name: str) -> dict:
    path = VECTORS / name
    assert path.is_file(), f"golden vector {path} is missing (python tests/chain/make_vectors.py writes it)"
    return json.loads(path.read_text())


def test_dev_genesis_hash_and_block_are_reproduced() -> None:
    genesis, block = compute_vectors()
    assert genesis == _load("dev_genesis.json")
    assert block == _load("block_transfer_train.json")


def test_the_stored_block_imports_on_a_fresh_node(tmp_path: Path) -> None:
    vector = _load("block_transfer_train.json")
    chain = open_chain(tmp_path)
    openings = [decode(bytes.fromhex(o[2:]), Opening) for o in vector["openings"]]
    imported = chain.import_block(decode_block(bytes.fromhex(vector["block"][2:])), MemorySource(openings))
    assert "0x" + chain.best_hash.hex() == vector["block_hash"]
    assert "0x" + chain.state.root().hex() == vector["state_root"]
    assert [r.success for r in imported.receipts] == vector["receipts_success"] == [True, True]
    chain.db.close()
