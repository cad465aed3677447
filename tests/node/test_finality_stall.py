"""A validator that missed the votes of a justifying link is sent their proof (an outside
tester's finding, 2026-11-29: one validator's event loop stalled under an RPC flood; it
processed the other validators' votes only once they were older than the KEPT_ROUNDS the
collector keeps, never learned of the checkpoint they justified, and went on voting from its
older source. The link had not finalized anything, so no finality justification could teach
it either; with 3 validators, whose threshold is all 3, no link formed again, for good,
restarts included).

Real NodeServices of the `local` chain (Alice, Bob, Charlie, Dave validate) in one process, on
loopback: Charlie validates; a full node holds the votes of Alice, Bob and Dave for a link from
genesis to a round well after it, which justifies block #1 and finalizes nothing. Charlie never
saw them, so he votes from genesis; his vote reaches the full node, which sends him the proof.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import msgspec
import pytest
from netkit import FAST, running, wait_for

from chain.crypto import dev_keypair
from consensus.errors import InvalidJustification
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    Vote,
    get_voters,
    justified_checkpoint,
    proves_finality,
    sign_vote,
)
from genesis.spec import load_chain_spec, with_slot_duration
from node.service import NodeConfig, NodeService

BLOCK_TIME_MS = 500
SPEC = with_slot_duration(load_chain_spec("local"), BLOCK_TIME_MS)


def _node(author: str | None, bootnodes: tuple = ()) -> NodeService:
    config = NodeConfig(chain="local", tmp=True, author=author, network=replace(FAST, bootnodes=bootnodes))
    return NodeService(config, SPEC)


async def _justify_one(full: NodeService) -> Checkpoint:
    """Votes of Alice, Bob and Dave (three of four) from genesis to block #1 in the current
    round, added at ``full``: block #1 is justified there, nothing is final."""
    chain = full.chain
    target = Checkpoint(chain.get_hash(1), 1, full._current_round())  # type: ignore[arg-type]
    source = Checkpoint(chain.genesis_hash, 0, 0)
    for name in ("Alice", "Bob", "Dave"):
        await full.add_vote(sign_vote(dev_keypair(name), chain.genesis_hash, Vote(SET_ID, source, target)))
    return target


async def test_a_validator_voting_from_an_older_source_is_sent_the_proof_and_votes_from_it(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with running(_node("//Charlie")) as charlie:
        assert charlie.network is not None
        async with running(_node(None, (charlie.network.listen_addresses[0],))) as full:
            await wait_for(lambda: full.chain.best_number >= 1 and full.network is not None and full.network.peers() != [], 30)
            justified = await _justify_one(full)
            assert full.collector.highest_justified() == justified and full.chain.finalized_number == 0
            proof = full.collector.justified_proof()
            assert proof is not None and justified_checkpoint(proof) == justified
            assert not proves_finality(full.chain, proof)  # a proof of justification, not of finality
            assert charlie._voter.justified.block_number == 0  # he votes from genesis
            # His next vote, a full round after the link's, reaches the full node, which sends
            # him the proof: he checks it, follows it, raises his record, and votes from it.
            await wait_for(lambda: charlie._voter.justified == justified, 15, "the proof to reach Charlie")
            await wait_for(
                lambda: any(v.vote.source == justified for v in charlie._signed_votes.values()), 10, "a vote from it"
            )
            assert "is justified (a peer sent the votes of its link): votes go from it" in caplog.text
            assert charlie.chain.finalized_number == 0  # a justified checkpoint is not final


def _forge(proof: Justification, chain_genesis: bytes) -> dict[str, Callable[[], Justification]]:
    """The strongest forgeries of a proof of justification, each with every other part genuine."""
    votes = list(proof.votes)
    return {
        # one vote re-signed by an outsider under a validator's name
        "bad_signature": lambda: msgspec.structs.replace(
            proof, votes=(*votes[:-1], msgspec.structs.replace(
                sign_vote(dev_keypair("Ferdie"), chain_genesis, votes[-1].vote), voter=votes[-1].voter
            )),
        ),
        # two genuine votes of the three: below the threshold
        "below_threshold": lambda: msgspec.structs.replace(proof, votes=tuple(votes[:2])),
        # a higher round than the votes' (every vote genuine, the claim not theirs)
        "mixed_rounds": lambda: msgspec.structs.replace(proof, round=proof.round + 1),
        # a block the votes do not contain (#2 on top of #1): the ancestry does not link them
        "bad_ancestry": lambda: msgspec.structs.replace(proof, target_number=2),
    }


async def test_forged_proofs_of_justification_are_refused_with_their_reason_and_change_nothing() -> None:
    async with running(_node("//Charlie")) as charlie:
        assert charlie.network is not None
        async with running(_node(None, (charlie.network.listen_addresses[0],))) as full:
            await wait_for(lambda: full.chain.best_number >= 2 and charlie.chain.best_number >= 2, 30)
            full._proof_sent_round = 1 << 62  # the full node sends nothing: only the forgeries reach Charlie
            await _justify_one(full)
            proof = full.collector.justified_proof()
            assert proof is not None
            for case, forge in _forge(proof, full.chain.genesis_hash).items():
                forged = forge()
                if case == "bad_ancestry":
                    forged = msgspec.structs.replace(forged, target_hash=full.chain.get_hash(2))
                before = (charlie._voter.justified, charlie.collector.highest_justified(), charlie.chain.finalized_hash)
                with pytest.raises(InvalidJustification) as err:
                    await charlie.import_justification(forged)
                assert err.value.reason == case, str(err.value)
                assert before == (charlie._voter.justified, charlie.collector.highest_justified(), charlie.chain.finalized_hash)
            # The genuine proof is taken (so each forgery was refused for its own flaw only).
            assert await charlie.import_justification(proof)
            assert charlie._voter.justified == justified_checkpoint(proof)
            assert not await charlie.import_justification(proof)  # known now: nothing checked again


async def test_a_validator_whose_justified_source_is_proven_invalid_votes_from_the_valid_part(tmp_path, caplog) -> None:
    """A fraud proof after the link that justified (B6, r) and before the next link finalized
    it invalidates B5: nothing valid descends from Alice's recorded source any more. She votes
    again from (B4, r), the same round's checkpoint on the valid part (her earlier votes'
    sources are of round r at most: none is surrounded), and a restart keeps it. Before, she
    never voted again, and with every validator so, finality stopped for good (the reviewer's
    F1, review45)."""
    caplog.set_level(logging.WARNING)
    import time

    from chain import votes as chain_votes
    from consensus import finality

    spec = with_slot_duration(load_chain_spec("local"), 1000)
    keys = [dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")]
    base = int(time.time())
    now = [float(base - 45)]

    def node() -> NodeService:
        config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice")
        return NodeService(config, spec, clock=lambda: now[0])

    alice = node()
    try:
        chain = alice.chain
        s0 = base - 40
        blocks = [chain.build_block([], keys[(s0 + i) % 4], slot=s0 + i).block for i in range(10)]
        r = s0 + 10
        now[0] = r + 0.1
        genesis = Checkpoint(chain.genesis_hash, 0, 0)
        for key in keys[1:]:  # Bob, Charlie and Dave justify B6 in round r (B10 less the window of 4)
            vote = finality.make_vote(chain, key, r, genesis)
            assert vote is not None and vote.vote.target.block_hash == blocks[5].hash()
            await alice.add_vote(vote)
        b6, b4 = Checkpoint(blocks[5].hash(), 6, r), Checkpoint(blocks[3].hash(), 4, r)
        assert alice._voter.justified == b6
        chain.build_block([], keys[(r + 1) % 4], slot=r + 1)
        now[0] = r + 1.5
        async with alice._lock:
            await alice._vote_if_due()
        (signed,) = [v for v in alice.collector.recent_votes() if v.voter == keys[0].public]
        assert signed.vote.source == b6 and signed.vote.round == r + 1
        chain.invalidate(blocks[4].hash(), "fraud: a late proof")  # B5, and so B6..
        for i in range(2, 10):  # the chain goes on from B4; Alice votes again, from (B4, r), once its window passes B4
            chain.build_block([], keys[(r + i) % 4], slot=r + i)
            now[0] = r + i + 0.5
            async with alice._lock:
                await alice._finalize_collected(alice.collector.check())
                await alice._vote_if_due()
        assert alice._voter.justified == b4
        mine = sorted((v for v in alice.collector.recent_votes() if v.voter == keys[0].public), key=lambda v: v.vote.round)
        assert [v.vote.round for v in mine] == [r + 1, r + 5, r + 6, r + 7, r + 8, r + 9]  # (targets B4, then #5' to #8')
        assert all(v.vote.source == b4 for v in mine[1:])
        assert not any(chain_votes.surrounds(a.vote, b.vote) for a in mine for b in mine)
        assert "was proven invalid: its link's votes justify #4 of that round" in caplog.text
    finally:
        alice.close()
    restarted = node()  # the votes of the link are gone; the record and the stored proof are not
    try:
        assert restarted._voter.justified == b4 and restarted.collector.highest_justified() == b4
    finally:
        restarted.close()


@pytest.mark.parametrize("now", [102.5, 130.5], ids=["votes-counted", "votes-too-old-to-count"])
async def test_a_validator_that_finalizes_past_a_set_change_from_a_justification_counts_its_link_with_the_old_set(
    tmp_path, now: float
) -> None:
    """Dave's double vote is reported in #1 and he leaves the set at #8 (era_length 8). The
    link that finalizes #10 in round 101 (Alice, Bob, Dave: Charlie's vote was late) justifies
    (#12, 101) at Alice and Bob. Charlie, who finalizes #10 from its justification, notes
    (#12, 101) as well, counted with the set that verified it, and votes from it. Before, its
    votes were added after #10 was final, with the new set: Dave's refused, the two others
    below the threshold of three, and Charlie's source stayed (#10, 101) for good (the
    reviewer's F3, review45). Both when the collector counts the votes themselves and when
    they are older than the rounds it keeps (round 130: what the link justifies is taken from
    the justification, VoteCollector.note_link)."""
    import msgspec

    from chain import calls
    from chain.blockchain import Blockchain
    from chain.extrinsic import sign_extrinsic
    from chain.pallets import balances, staking
    from chain.storage import Database

    spec = with_slot_duration(load_chain_spec("local"), 1000)
    spec = replace(spec, runtime_config=replace(spec.runtime_config, era_length=8, challenge_blocks=0))
    keys = {k.public: k for k in (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave"))}
    alice, bob, _, dave = keys.values()
    builder = Blockchain(Database(tmp_path / "builder"), chain_id=spec.id, build_genesis=spec.apply_genesis)
    genesis = builder.genesis_hash

    def dave_vote(target: bytes) -> bytes:
        return msgspec.msgpack.encode(sign_vote(dave, genesis, Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(target, 1, 3))))

    eve = dev_keypair("Eve")
    pending = [sign_extrinsic(
        eve, calls.ReportVoteEquivocation(dave_vote(b"\xaa" * 32), dave_vote(b"\xbb" * 32)),
        nonce=balances.get_account(builder.state.overlay(), eve.public).nonce,
        genesis_hash=genesis, spec_version=builder.runtime.spec_version,
    )]
    blocks, slot = [], 0
    while builder.best_number < 12:
        slot += 1
        state = builder.state.overlay()
        validators = staking.get_validators(state)
        owner = keys[validators[slot % len(validators)]]
        if staking.is_disabled(state, owner.public):
            continue
        built = builder.build_block(pending, owner, slot=slot)
        assert all(r.success for r in built.receipts)
        pending = []
        blocks.append(built.block)
    h10, h12 = blocks[9].hash(), blocks[11].hash()
    first = Checkpoint(h10, 10, 100)
    round_101 = [sign_vote(k, genesis, Vote(SET_ID, first, Checkpoint(h12, 12, 101))) for k in (alice, bob, dave)]
    final = Justification(
        h10, 10, SET_ID, 101, first, tuple(sorted(round_101, key=lambda v: v.voter)), (blocks[10].header, blocks[11].header),
    )
    builder.db.close()
    node = NodeService(NodeConfig(chain="local", base_path=tmp_path / "charlie", author="//Charlie"), spec, clock=lambda: now)
    try:
        for block in blocks:
            assert await node.import_block(block) is not None
        node.collector.note_justified(first)  # round 100's link, whose votes Charlie saw
        assert await node.import_justification(final)
        assert node.chain.finalized_hash == h10 and dave.public not in get_voters(node.chain)
        assert node.collector.highest_justified() == Checkpoint(h12, 12, 101)
        assert node._voter.justified == Checkpoint(h12, 12, 101)
    finally:
        node.close()
