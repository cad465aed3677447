"""RPC calls at a block whose state ``polchain prune-state`` deleted: a clean -32602 naming the
block and the pruning, over a real server, for every reader of old states (state_root_at,
state_at). ``ml_getTrainingReceipt`` is not one: a receipt is stored with its block and never
pruned, and the training record it adds is written once and read at the best state when the
block's is gone (it answered -32602 for every receipt older than the pruning window, tester18's
F2; before that -32603 with a traceback, a reviewer's finding)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rpc_fixtures import post

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
from chainkit import ALICE, BOB, open_chain, sign, train_call

from chain import calls
from chain.pruning import LivePrune, prune_state
from chain.storage import Column, Database
from rpc.methods import MethodTable
from rpc.namespaces import ml as ml_rpc
from rpc.namespaces import state as state_rpc


async def test_calls_at_a_pruned_block_are_refused_by_name(tmp_path, start_server, session) -> None:
    path = tmp_path / "db"
    chain = open_chain(path)
    xt = sign(chain, ALICE, calls.Transfer(BOB.public, 10**9), 0)
    one = chain.build_block([xt], ALICE, slot=1).block
    for slot in range(2, 6):
        chain.build_block([], ALICE, slot=slot)
    chain.set_finalized(chain.best_hash)
    chain.db.close()
    with Database(path, create=False) as db:
        prune_state(db, keep=0)
    chain = open_chain(path)
    try:
        methods = MethodTable()
        for build in (ml_rpc.build, state_rpc.build):
            methods.merge(build(SimpleNamespace(chain=chain)))  # type: ignore[arg-type]
        pruned = f"Invalid params: the state of block #1 0x{one.hash().hex()} is pruned on this node (--state-pruning, or polchain prune-state); ask an archive node"

        async def call(method: str, params: list[Any]) -> dict[str, Any]:
            async with start_server(methods=methods) as server:
                _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            return json.loads(body)

        at = "0x" + one.hash().hex()
        for method, params in (
            ("state_getStorage", ["0x00", at]),
            ("state_getKeysPaged", ["0x", 10, None, at]),
            ("state_getReadProof", [["0x00"], at]),
        ):
            answer = await call(method, params)
            assert answer.get("error") == {"code": -32602, "message": pruned}, (method, answer)
        assert (await call("state_getStorage", ["0x00", "0x" + chain.best_hash.hex()]))["result"] is None  # a kept state answers
        receipt = (await call("ml_getTrainingReceipt", ["0x" + xt.hash().hex()]))["result"]  # a receipt is never pruned
        stored = chain.get_receipts(one.hash())[0]
        assert receipt["blockHash"] == at and receipt["blockNumber"] == 1 and receipt["index"] == 0
        assert receipt["success"] is True and receipt["fee"] == str(stored.fee) and len(receipt["events"]) == len(stored.events)
    finally:
        chain.db.close()


async def test_a_training_receipt_at_a_pruned_block_is_served_whole(tmp_path, start_server, session) -> None:
    """tester18's F2, the strongest form: a TRAIN extrinsic's receipt, whose training record
    (model, version, steps, transcript root, loss curve) lives in the state, after its block's
    state was taken by online pruning (what ``polchain node --state-pruning`` runs). The answer
    is the one the node gave while the state was held, field for field; the stored receipt and
    the best state are unchanged by reading it."""
    chain = open_chain(tmp_path / "db")
    try:
        xt = sign(chain, BOB, train_call(steps=20, batch=8, segment=10), 0)
        one = chain.build_block([xt], ALICE, slot=1).block
        for slot in range(2, 6):
            chain.build_block([], ALICE, slot=slot)
        chain.set_finalized(chain.best_hash)
        methods = MethodTable()
        methods.merge(ml_rpc.build(SimpleNamespace(chain=chain)))  # type: ignore[arg-type]
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ml_getTrainingReceipt", "params": ["0x" + xt.hash().hex()]})
        async with start_server(methods=methods) as server:
            _, body = await post(session, server, request)
            held = json.loads(body)["result"]
            assert held["success"] is True and held["model"] == 0 and held["version"] == 1 and held["steps"] == 20, held
            LivePrune(chain.db, chain.state, keep=0).run()
            assert not chain.has_state(one.hash())
            receipts, best_root = chain.db.get(Column.RECEIPT, one.hash()), chain.state.root()
            _, body = await post(session, server, request)
        answer = json.loads(body)
        assert answer.get("result") == held, answer
        assert chain.db.get(Column.RECEIPT, one.hash()) == receipts and chain.state.root() == best_root
    finally:
        chain.db.close()


def test_a_read_under_way_when_online_pruning_takes_its_state_is_refused_by_name(tmp_path) -> None:
    """A reader that checked the state was held (state_at) and then lost it to a live pruning
    run gets -32602 naming the state, not -32603 with a traceback; a node missing from a state
    still held is a damaged database and stays an internal error."""
    import pytest

    from chain.errors import MissingTrieNode
    from chain.pruning import LivePrune
    from rpc import errors
    from rpc.reads import pruned_while_read, state_at

    chain = open_chain(tmp_path / "db")
    try:
        xt = sign(chain, ALICE, calls.Transfer(BOB.public, 10**9), 0)
        one = chain.build_block([xt], ALICE, slot=1).block
        for slot in range(2, 6):
            chain.build_block([], ALICE, slot=slot)
        chain.set_finalized(chain.best_hash)
        reader = state_at(chain, one.hash())  # checked: held
        key = b"\x00" * 32
        LivePrune(chain.db, chain.state, keep=0).run()  # takes #1's state meanwhile
        with pytest.raises(errors.InvalidParams, match=rf"^Invalid params: the state 0x{one.header.state_root.hex()} was pruned on this node while it was read"):
            reader.get(key)
        with pytest.raises(errors.InvalidParams, match="was pruned on this node while it was read"):
            reader.keys_paged(b"", 10)  # (pol_getOffences' walks: a -32603 before, tester22's S4)
        with pytest.raises(errors.InvalidParams, match="was pruned on this node while it was read"), \
                pruned_while_read(chain, one.header.state_root):
            raise MissingTrieNode("a node below the root, gone mid-read")  # the root had been read
        with pytest.raises(MissingTrieNode), pruned_while_read(chain, chain.state.root()):
            raise MissingTrieNode("a node of the best state is gone")
    finally:
        chain.db.close()
