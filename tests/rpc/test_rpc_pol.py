"""``pol_getOffences`` over a real server on a real `local` chain: an Aura equivocation
reported by Eve shows as an offence with its exact slash, Bob as pending removal, and after
the era start as removed; a page of offences is bounded and pages on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from rpc_fixtures import post

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
from chainkit import ALICE, BOB, CHARLIE, open_chain, sign

from chain import calls
from chain.crypto import dev_keypair, ss58_encode
from chain.header import Header, seal_header
from chain.pallets import balances, pol, staking
from genesis.spec import load_chain_spec
from rpc.namespaces import pol as pol_rpc

DAVE, EVE = dev_keypair("Dave"), dev_keypair("Eve")
KEYS = {k.public: k for k in (ALICE, BOB, CHARLIE, DAVE)}


@pytest.fixture
def chain(tmp_path):
    c = open_chain(tmp_path / "db", load_chain_spec("local"))
    yield c
    c.db.close()


def _block(chain, slot: int, xts=()):
    validators = staking.get_validators(chain.state.overlay())
    return chain.build_block(list(xts), KEYS[validators[slot % len(validators)]], slot=slot)


async def _call(start_server, session, chain, params: Any) -> dict[str, Any]:
    async with start_server(methods=pol_rpc.build(SimpleNamespace(chain=chain))) as server:
        _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "pol_getOffences", "params": params}))
    return json.loads(body)


async def test_offences_pending_and_removed(start_server, session, chain) -> None:
    first = _block(chain, 1).block.header  # Bob's slot
    other = Header(first.parent_hash, 1, b"\x07" * 32, bytes(32), 1, BOB.public)
    other = seal_header(BOB, chain.genesis_hash, other)
    staked = balances.get_account(chain.state.overlay(), BOB.public).staked
    xt = sign(chain, EVE, calls.ReportEquivocation(first.encode(), other.encode()), 0)
    (receipt,) = _block(chain, 2, [xt]).receipts
    assert receipt.success, receipt.error
    got = (await _call(start_server, session, chain, []))["result"]
    slashed = staked // 2
    assert got["offences"] == [{
        "key": "0x" + pol.compute_offence_key(pol.OFFENCE_AURA, 1, BOB.public).hex(),
        "storageKey": "0x" + pol.OFFENCES.compute_key(pol.compute_offence_key(pol.OFFENCE_AURA, 1, BOB.public)).hex(),
        "kind": "aura", "offender": ss58_encode(BOB.public), "reporter": ss58_encode(EVE.public), "block": 2,
        "slashed": str(slashed), "reporterReward": str(slashed // 10), "burned": str(slashed - slashed // 10),
    }]
    assert got["next"] is None and got["pendingRemoval"] == [ss58_encode(BOB.public)] and got["removed"] == []
    at_two = chain.best_hash
    slot = 2
    while chain.best_number < chain.config.era_length:
        slot += 1
        validators = staking.get_validators(chain.state.overlay())
        if not staking.is_disabled(chain.state.overlay(), validators[slot % len(validators)]):  # Bob's slots stay empty
            _block(chain, slot)
    got = (await _call(start_server, session, chain, []))["result"]
    assert got["pendingRemoval"] == [] and ss58_encode(BOB.public) not in got["validators"]
    assert got["removed"] == [{"who": ss58_encode(BOB.public), "era": 1, "block": chain.config.era_length}]
    then = (await _call(start_server, session, chain, ["0x" + at_two.hex()]))["result"]
    assert then["pendingRemoval"] == [ss58_encode(BOB.public)] and then["removed"] == []
    # Past the only offence's storage key: an empty page.
    after = (await _call(start_server, session, chain, {"start_key": got["offences"][0]["storageKey"]}))["result"]
    assert after["offences"] == [] and after["next"] is None


async def test_an_unknown_block_is_invalid_params(start_server, session, chain) -> None:
    answer = await _call(start_server, session, chain, ["0x" + "ab" * 32])
    assert answer["error"]["code"] == -32602 and "unknown block" in answer["error"]["message"]


async def test_pages_of_offences(start_server, session, chain, monkeypatch) -> None:
    from chain.votes import Checkpoint, Vote, sign_vote

    monkeypatch.setattr(pol_rpc, "PAGE", 1)
    xts = []
    for nonce, key in enumerate((CHARLIE, DAVE)):
        votes = [
            msgspec.msgpack.encode(sign_vote(key, chain.genesis_hash, Vote(0, Checkpoint(chain.genesis_hash, 0, 0), Checkpoint(t, 1, 2))))
            for t in (b"\x01" * 32, b"\x02" * 32)
        ]
        xts.append(sign(chain, EVE, calls.ReportVoteEquivocation(*votes), nonce))
    assert all(r.success for r in _block(chain, 1, xts).receipts)
    first = (await _call(start_server, session, chain, []))["result"]
    assert len(first["offences"]) == 1 and first["next"] == first["offences"][0]["storageKey"]
    second = (await _call(start_server, session, chain, [None, first["next"]]))["result"]
    assert len(second["offences"]) == 1 and second["next"] is None
    assert {first["offences"][0]["offender"], second["offences"][0]["offender"]} == {ss58_encode(CHARLIE.public), ss58_encode(DAVE.public)}
