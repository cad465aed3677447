"""``pol_getRewards`` over a real server on a real `local` chain with rewards: each
validator's era points split into authored and voted, the two pots, the voters' credits,
and the same read at an older block."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rpc_fixtures import post

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
from chainkit import ALICE, BOB, CHARLIE, open_chain, sign

from chain import calls
from chain.crypto import dev_keypair, ss58_encode
from chain.pallets import balances, rewards, staking
from chain.votes import SET_ID, Checkpoint, Vote, sign_vote
from genesis.spec import load_chain_spec
from rpc.namespaces import pol as pol_rpc

DAVE, EVE = dev_keypair("Dave"), dev_keypair("Eve")
KEYS = {k.public: k for k in (ALICE, BOB, CHARLIE, DAVE)}


async def _call(start_server, session, chain, params: Any) -> dict[str, Any]:
    async with start_server(methods=pol_rpc.build(SimpleNamespace(chain=chain))) as server:
        _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "pol_getRewards", "params": params}))
    return json.loads(body)


async def test_points_split_into_authored_and_voted(start_server, session, tmp_path) -> None:
    spec = load_chain_spec("local")
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(
        spec.runtime_config, block_reward=1000, voter_reward_share_ppm=250_000, era_length=8,
    ))
    chain = open_chain(tmp_path / "db", spec)
    try:
        def block(slot: int, xts=()):
            validators = staking.get_validators(chain.state.overlay())
            return chain.build_block(list(xts), KEYS[validators[slot % len(validators)]], slot=slot)

        for slot in (1, 2, 3):
            block(slot)
        at_three = chain.best_hash
        genesis = Checkpoint(chain.genesis_hash, 0, 0)
        vote = sign_vote(CHARLIE, chain.genesis_hash, Vote(SET_ID, genesis, Checkpoint(chain.get_hash(2), 2, 9)))
        (receipt,) = block(4, [sign(chain, EVE, calls.NoteVotes((vote,)), 0)]).receipts
        assert receipt.success, receipt.error
        got = (await _call(start_server, session, chain, []))["result"]
        by_account = {v["account"]: v for v in got["validators"]}
        assert by_account[ss58_encode(CHARLIE.public)] == {
            "account": ss58_encode(CHARLIE.public), "authoredPoints": rewards.AUTHORING_POINTS, "votedPoints": 2, "creditedTo": 2,
        }  # Charlie owns slot 2 (validators[slot % 4]) and its vote covered blocks 1..2
        assert sum(v["authoredPoints"] for v in got["validators"]) == 4 * rewards.AUTHORING_POINTS
        assert by_account[ss58_encode(BOB.public)]["votedPoints"] == 0
        assert by_account[ss58_encode(BOB.public)]["creditedTo"] is None
        assert (got["block"], got["era"], got["nextPayout"], got["eraLength"]) == (4, 0, 8, 8)
        assert got["enabled"] is True and got["blockReward"] == "1000" and got["voterRewardSharePpm"] == 250_000
        state = chain.state.overlay()
        assert got["authorPot"] == str(4 * 750) == str(balances.get_account(state, rewards.POT_ACCOUNT).free)
        assert got["voterPot"] == str(4 * 250)
        then = (await _call(start_server, session, chain, ["0x" + at_three.hex()]))["result"]
        assert then["block"] == 3 and all(v["votedPoints"] == 0 for v in then["validators"])
    finally:
        chain.db.close()


async def test_the_block_reward_shown_is_what_the_next_block_mints_up_to_the_issuance_bound(start_server, session, tmp_path) -> None:
    """block_reward may be as large as any balance (2^63-1); the total issuance may not grow
    past it: the next block mints what is left, and pol_getRewards says so."""
    spec = load_chain_spec("dev")
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, block_reward=2**63 - 1))
    chain = open_chain(tmp_path / "db", spec)
    try:
        supply = balances.TOTAL_ISSUANCE.get(chain.state.overlay())
        genesis = chain.genesis_hash
        chain.build_block([], ALICE, slot=1)
        assert balances.TOTAL_ISSUANCE.get(chain.state.overlay()) == 2**63 - 1
        assert (await _call(start_server, session, chain, ["0x" + genesis.hex()]))["result"]["blockReward"] == str(2**63 - 1 - supply)
        got = (await _call(start_server, session, chain, []))["result"]
        assert (got["block"], got["blockReward"], got["authorPot"]) == (1, "0", str(2**63 - 1 - supply))
    finally:
        chain.db.close()
