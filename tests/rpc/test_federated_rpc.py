"""``fl_getRound``, ``fl_listRounds`` and ``fl_getUpdate`` over a real server on a real chain
that ran a federated round (one honest participant, one who never reveals)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rpc_fixtures import post

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
from chainkit import ALICE, open_chain
from fedkit import BOB, CHARLIE, Driver, Participant, open_call, split_digits

import ml_runtime
from chain import calls
from chain.crypto import ss58_encode
from rpc.namespaces import fl


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = open_chain(tmp_path_factory.mktemp("fl") / "db")
    d = Driver(c)
    shares, _ = split_digits(2, seed=9)
    bob, charlie = Participant(BOB, *shares[0]), Participant(CHARLIE, *shares[1])
    d.ok(ALICE, open_call(min_updates=1))
    d.ok(BOB, bob.train(c, 0))
    d.ok(CHARLIE, charlie.train(c, 0))
    d.until(5)
    d.ok(ALICE, calls.ChallengeRound(0))
    for reveal in bob.reveals(c, 0):
        d.ok(BOB, reveal)
    d.until(20)
    d.ok(ALICE, calls.CloseRound(0))
    c.bob = bob  # type: ignore[attr-defined]
    yield c
    c.db.close()


async def _call(start_server, session, chain, method: str, params: Any) -> dict[str, Any]:
    async with start_server(methods=fl.build(SimpleNamespace(chain=chain))) as server:
        _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    return json.loads(body)


async def test_get_round_shows_status_and_lineage(start_server, session, chain) -> None:
    got = (await _call(start_server, session, chain, "fl_getRound", [0]))["result"]
    assert got["status"] == "closed" and got["newVersion"] == 1 and got["segments"] == 8 and got["samples"] == 2
    assert got["participants"] == [ss58_encode(BOB.public), ss58_encode(CHARLIE.public)]
    assert got["forfeited"] == str(10**9) and got["lr"] == 0.5
    (entry,) = got["lineage"]
    assert entry["participant"] == ss58_encode(BOB.public)
    assert entry["dataRoot"] == "0x" + ml_runtime.compute_merkle_root(chain.bob.leaves).hex()
    assert entry["transcriptRoot"] == "0x" + chain.bob.result.transcript.root.hex()
    assert (await _call(start_server, session, chain, "fl_getRound", [1]))["result"] is None


async def test_list_rounds(start_server, session, chain) -> None:
    listed = (await _call(start_server, session, chain, "fl_listRounds", []))["result"]
    assert [r["id"] for r in listed] == [0]
    assert (await _call(start_server, session, chain, "fl_listRounds", [1]))["result"] == []


async def test_get_update_shows_challenges_and_exclusion(start_server, session, chain) -> None:
    bob = (await _call(start_server, session, chain, "fl_getUpdate", [0, ss58_encode(BOB.public)]))["result"]
    assert bob["status"] == "accepted" and bob["verified"] == bob["challenged"] and len(bob["challenged"]) == 2
    assert bob["reward"] == str(9 * 10**9 + 10**9) and bob["reason"] is None and len(bob["lossCurve"]) == 8
    charlie = (await _call(start_server, session, chain, "fl_getUpdate", {"round": 0, "account": ss58_encode(CHARLIE.public)}))["result"]
    assert charlie["status"] == "excluded" and "revealed 0 of 2" in charlie["reason"] and charlie["reward"] == "0"
    nobody = await _call(start_server, session, chain, "fl_getUpdate", [0, ss58_encode(ALICE.public)])
    assert nobody["result"] is None


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        ("fl_getRound", [-1], "param 0 'round'"),
        ("fl_getRound", [2**32], "param 0 'round'"),
        ("fl_getUpdate", [0, "not-an-account"], "param 1 'account'"),
        ("fl_listRounds", ["x"], "param 0 'start'"),
    ],
)
async def test_bad_params_are_refused_with_the_reason(start_server, session, chain, method: str, params: list, reason: str) -> None:
    error = (await _call(start_server, session, chain, method, params))["error"]
    assert error["code"] == -32602 and reason in error["message"], error
