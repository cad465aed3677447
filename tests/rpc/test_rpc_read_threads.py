"""The reads that walk many trie nodes (``state_getReadProof``, ``state_getKeysPaged``) or
decode a whole block (``chain_getBlock``) run on the RPC read threads (rpc.reads.run_read), not on the event loop that carries the node's
blocks, votes and peers; their answers are the same.

The real method table (rpc.namespaces.state) on a real chain in LevelDB; the test calls the
handlers on its event loop, as the server does, and records the thread each read ran on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from chain.blockchain import Blockchain
from chain.pallets import balances
from chain.state import StateDB
from chain.trie import verify_read_proof
from rpc.namespaces import chain as chain_namespace
from rpc.namespaces import state as state_namespace
from tests.chain.chainkit import ALICE, open_chain


async def test_read_proofs_and_key_pages_are_read_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:
    chain = open_chain(tmp_path / "db")
    threads: list[str] = []
    for name in ("prove", "keys_paged"):
        real = getattr(StateDB, name)

        def spy(self, *args, _real=real, **kwargs):
            threads.append(threading.current_thread().name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(StateDB, name, spy)
    try:
        table = state_namespace.build(SimpleNamespace(chain=chain))  # type: ignore[arg-type]
        key = balances.ACCOUNT.compute_keys([ALICE.public])[0]
        proof = await table.get_method("state_getReadProof").handler([["0x" + key.hex()]])
        nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
        assert verify_read_proof(chain.state.root(), key, nodes) == chain.state.get(key)
        page = await table.get_method("state_getKeysPaged").handler(["0x" + key[:16].hex(), 10])
        assert "0x" + key.hex() in page
        assert len(threads) == 2 and all(t.startswith("rpc-read") for t in threads), threads
        assert threading.current_thread().name not in threads
    finally:
        chain.db.close()


async def test_a_block_is_read_and_shaped_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:
    chain = open_chain(tmp_path / "db")
    threads: list[str] = []
    real = Blockchain.get_block

    def spy(self, block_hash):
        threads.append(threading.current_thread().name)
        return real(self, block_hash)

    monkeypatch.setattr(Blockchain, "get_block", spy)
    try:
        table = chain_namespace.build(SimpleNamespace(chain=chain))  # type: ignore[arg-type]
        answer = await table.get_method("chain_getBlock").handler([])
        assert answer["block"]["header"]["number"] == "0x0" and answer["block"]["extrinsics"] == []
        assert await table.get_method("chain_getBlock").handler(["0x" + "11" * 32]) is None  # unknown: null
        assert len(threads) == 1 and threads[0].startswith("rpc-read"), threads
    finally:
        chain.db.close()
