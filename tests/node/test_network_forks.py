"""Forks, partitions and finality messages between real NodeServices in one process (LevelDB,
runtime, pool, Noise connections on loopback) on the 4-validator `local` chain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from msgspec.structs import replace as struct_replace
from netkit import FAST, build_sealed_chain, running, start_node, wait_for

from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.codec import decode, encode
from chain.config import SPEC_VERSION
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets.staking import get_validators
from chain.storage import Database
from consensus.aura import compute_slot_author
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    SignedVote,
    Vote,
    decode_justification,
    get_vote_equivocations,
    sign_vote,
)
from genesis.spec import load_chain_spec, with_slot_duration
from node.network.messages import BlockData
from node.network.reputation import Misbehaviour
from node.service import NodeConfig, NodeService
from node.voter_record import load_record

BLOCK_TIME_MS = 500
SPEC = with_slot_duration(load_chain_spec("local"), BLOCK_TIME_MS)


def local_node(author: str | None = None, **network: object) -> AbstractAsyncContextManager[NodeService]:
    config = NodeConfig(
        chain="local", tmp=True, author=author, network=replace(FAST, **network),  # type: ignore[arg-type]
    )
    return running(NodeService(config, SPEC))


def _is_fork(a: NodeService, b: NodeService) -> bool:
    ha, hb = a.chain.best_hash, b.chain.best_hash
    return not a.chain.has_block(hb) and not b.chain.has_block(ha)


async def test_a_partition_heals_and_fork_choice_reconciles_the_branches(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with local_node("//Alice") as a:
        assert a.network is not None
        async with local_node("//Bob", bootnodes=(a.network.listen_addresses[0],)) as b:
            assert b.network is not None
            id_a, id_b = a.network.local_peer_id, b.network.local_peer_id
            await wait_for(lambda: a.chain.best_number >= 2 and a.chain.best_hash == b.chain.best_hash, 20)
            # Two of four validators: blocks but no finality, so either branch may still win.
            assert a.chain.finalized_number == 0
            base = a.chain.best_number
            a.network.drop_peer(id_b, seconds=60)
            b.network.drop_peer(id_a, seconds=60)
            await wait_for(lambda: not a.network.peers() and not b.network.peers())  # type: ignore[union-attr]
            # A transfer only Alice's side sees: if her branch loses, it must come back.
            xt = sign_extrinsic(
                dev_keypair("Eve"), calls.Transfer(dev_keypair("Ferdie").public, 10**9), nonce=0,
                genesis_hash=a.chain.genesis_hash, spec_version=SPEC_VERSION,
            )
            a.submit(xt.encode())
            await wait_for(lambda: a.chain.best_number >= base + 2 and b.chain.best_number >= base + 2 and _is_fork(a, b), 20)
            # Heal: both sides accept each other again; Bob redials his bootnode.
            a.network.drop_peer(id_b, seconds=0.01)
            b.network.drop_peer(id_a, seconds=0.01)
            await wait_for(lambda: a.network.peers() != [] and b.network.peers() != [], 10)  # type: ignore[union-attr]
            top = max(a.chain.best_number, b.chain.best_number)
            await wait_for(lambda: a.chain.best_hash == b.chain.best_hash and a.chain.best_number > top, 20)
            assert a.chain.best_header.state_root == b.chain.best_header.state_root
            assert "reorg:" in caplog.text  # one side (or both) moved to the other's branch
            # The transfer ends on the common chain whichever branch won.
            await wait_for(lambda: a.chain.get_extrinsic_location(xt.hash()) is not None, 20)
            block_hash, _ = a.chain.get_extrinsic_location(xt.hash())  # type: ignore[misc]
            await wait_for(lambda: b.chain.has_block(block_hash) and b.chain.is_descendant(b.chain.best_hash, block_hash), 10)
            assert a.network.reputation.score(id_b) == 0 and b.network.reputation.score(id_a) == 0


async def test_finality_votes_and_justifications_from_peers_are_checked_and_bad_ones_cost_reputation(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with local_node() as node:
        assert node.network is not None
        genesis = node.chain.genesis_hash
        peer = await start_node(genesis=genesis, blocks=1)
        peer.blocks = [node.chain.get_block(genesis)]
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 1)  # type: ignore[union-attr]
            now = int(time.time() * 1000) // BLOCK_TIME_MS
            source = Checkpoint(genesis, 0, 0)
            stale = sign_vote(dev_keypair("Alice"), genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, now - 100)))
            peer.service.broadcast_vote(encode(stale))  # a round long past: dropped without blame
            await asyncio.sleep(0.3)
            assert node.network.reputation.score(peer.id) == 0
            # A voter outside our finalized set: maybe one removed in a block the relay has not
            # finalized yet (the set only shrinks), so an honest relay a few blocks behind
            # passes it on; 5 of them banned it (an outside tester's suspicion, round 4).
            # Dropped without blame, as a stale vote: the check comes before the signature's.
            for name in ("Ferdie", "Eve", "One", "Two", "Three", "Four"):
                outsider = sign_vote(dev_keypair(name), genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, now)))
                peer.service.broadcast_vote(encode(outsider))
            peer.service.broadcast_vote(b"\x93garbage")
            await wait_for(lambda: "(vote malformed:" in caplog.text)
            # One charge, the garbage's (less what the score recovered since):
            assert Misbehaviour.BAD_VOTE.cost <= node.network.reputation.score(peer.id) < Misbehaviour.BAD_VOTE.cost / 2
            assert "(vote not_validator:" not in caplog.text
            forged = sign_vote(dev_keypair("Ferdie"), genesis, Vote(SET_ID, source, Checkpoint(genesis, 0, now)))
            peer.service.broadcast_vote(encode(struct_replace(forged, voter=dev_keypair("Alice").public)))
            await wait_for(lambda: "(vote bad_signature:" in caplog.text)
            # Two votes of Alice with one target round for different blocks (a double vote):
            # kept as evidence, the relay not blamed (an honest peer passes on the copy it saw
            # first).
            score = node.network.reputation.score(peer.id)
            for block_hash, number in ((genesis, 0), (b"\x05" * 32, 1)):
                double = Vote(SET_ID, source, Checkpoint(block_hash, number, now + 1))
                peer.service.broadcast_vote(encode(sign_vote(dev_keypair("Alice"), genesis, double)))
            await wait_for(lambda: len(get_vote_equivocations(node.chain)) == 1)
            assert get_vote_equivocations(node.chain)[0].kind == "double_vote"
            assert node.network.reputation.score(peer.id) >= score - 1  # decay only, no charge
            # Alice caught, a third vote of hers in that round is not checked: a forged one is
            # neither charged as a bad signature nor stored (a relay may not have seen her first).
            caplog.set_level(logging.DEBUG)
            third = Vote(SET_ID, source, Checkpoint(b"\x06" * 32, 2, now + 1))
            forged = sign_vote(dev_keypair("Ferdie"), genesis, third)
            peer.service.broadcast_vote(encode(struct_replace(forged, voter=dev_keypair("Alice").public)))
            await wait_for(lambda: f"equivocated in round {now + 1}: its other votes of it are not read" in caplog.text)
            assert caplog.text.count("(vote bad_signature:") == 1 and len(get_vote_equivocations(node.chain)) == 1
            assert node.network.reputation.score(peer.id) >= score - 1
            caplog.set_level(logging.INFO)
            # A gossiped justification that does not verify costs its sender.
            peer.service.broadcast_justification(_justification(node.chain.get_block(genesis), ("Alice",), genesis))
            await wait_for(lambda: "(justification below_threshold:" in caplog.text)
            assert node.chain.finalized_number == 0
        finally:
            await peer.service.stop()


def _future_block(tmp: Path, slots_ahead: int) -> Block:
    """A real block on genesis, sealed by the owner of a slot ahead of the clock."""
    return build_sealed_chain(tmp, SPEC, [int(time.time() * 1000) // BLOCK_TIME_MS + slots_ahead])[1]


def _justification(target: Block, voters: tuple[str, ...], genesis: bytes) -> bytes:
    """A finality proof for ``target``: votes of the link (target, round 6) -> round 7."""
    source = Checkpoint(target.hash(), target.header.number, 6)
    vote = Vote(SET_ID, source, Checkpoint(target.hash(), target.header.number, 7))
    votes = tuple(sign_vote(dev_keypair(n), genesis, vote) for n in voters)
    return Justification(target.hash(), target.header.number, SET_ID, 7, source, votes).encode()


@asynccontextmanager
async def _syncing_from(blocks: list[Block], attached: dict[bytes, bytes]) -> AsyncIterator[tuple[NodeService, Any]]:
    """A fresh local node dialed by a peer serving ``blocks`` with the justifications
    ``attached`` gives (:func:`_peer_serving`): (node, peer); the peer stops at the end."""
    async with local_node() as node:
        assert node.network is not None
        peer = await _peer_serving(blocks, attached)
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            yield node, peer
        finally:
            await peer.service.stop()


async def _peer_serving(blocks: list[Block], attached: dict[bytes, bytes]):  # type: ignore[no-untyped-def]
    """A peer on ``blocks``' genesis serving them, each with the justification ``attached``
    gives its hash (none otherwise)."""
    peer = await start_node(genesis=blocks[0].hash(), blocks=1)
    peer.blocks = blocks
    serve = peer.serve

    async def serve_with_justifications(who, req):  # type: ignore[no-untyped-def]
        return [BlockData(d.block, attached.get(d.block.hash())) for d in await serve(who, req)]

    peer.service.handlers.serve_block_request = serve_with_justifications
    return peer


async def test_justifications_served_with_blocks_are_checked_while_syncing(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 10
    blocks = build_sealed_chain(tmp_path, SPEC, range(first, first + 3))
    genesis = blocks[0].hash()
    good = _justification(blocks[2], ("Alice", "Bob", "Charlie"), genesis)
    forged = _justification(blocks[3], ("Alice",), genesis)  # 1 vote of 4: below the threshold
    attached = {blocks[2].hash(): good, blocks[3].hash(): forged}

    async with local_node() as node:
        assert node.network is not None
        root = node.chain.get_header(genesis).state_root
        peer = await _peer_serving(blocks, attached)
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.network.reputation.score(peer.id) < 0)  # type: ignore[union-attr]
            assert node.chain.finalized_hash == blocks[2].hash()  # the good one, verified, finalized #2
            assert node.chain.get_justification(blocks[2].hash()) == good
            assert f"peer {peer.id}: {Misbehaviour.WRONG_RESPONSE.reason} (justification below_threshold:" in caplog.text
            assert node.chain.get_justification(blocks[3].hash()) is None
            assert node.chain.get_header(genesis).state_root == root
        finally:
            await peer.service.stop()


async def test_a_block_from_a_future_slot_is_deferred_not_blamed(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with local_node() as node:
        assert node.network is not None
        block = _future_block(tmp_path, slots_ahead=5)  # the node allows 2 slots of clock skew
        peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
        peer.blocks = [node.chain.get_block(node.chain.genesis_hash), block]
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: "is ahead of our clock, retried in a slot" in caplog.text)
            assert node.chain.best_number == 0
            assert node.network.reputation.score(peer.id) == 0
            # Its slot comes (within the allowance) and the retry imports it.
            await wait_for(lambda: node.chain.best_hash == block.hash(), 10)
            assert node.network.reputation.score(peer.id) == 0
        finally:
            await peer.service.stop()


async def test_a_restarted_validator_does_not_vote_in_the_round_it_starts_in() -> None:
    # It may have voted in that round before a restart, for another block: a second vote
    # would be an equivocation. Start at the beginning of a round, so its middle (when a
    # validator without a block of the round votes) comes while the node runs.
    slot_ms = 2000
    await asyncio.sleep((slot_ms - time.time() * 1000 % slot_ms) / 1000 + 0.02)
    start_round = int(time.time() * 1000) // slot_ms
    config = NodeConfig(chain="local", tmp=True, author="//Alice", network=FAST)
    # No challenge window, so that a vote has a target at once (Alice alone seals one slot in
    # four): this test is about the round, the window is tests/consensus/test_finality_window.py.
    node = NodeService(config, replace(SPEC, runtime_config=replace(SPEC.runtime_config, challenge_blocks=0, slot_duration_ms=slot_ms)))
    run = asyncio.create_task(node.run())
    try:
        await wait_for(lambda: node.network is not None and bool(node.network.listen_addresses))
        assert node.network is not None
        peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
        peer.blocks = [node.chain.get_block(node.chain.genesis_hash)]
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: bool(peer.votes), 2 * slot_ms / 1000 + 1)
            rounds = [decode(raw, SignedVote).vote.target.round for raw in peer.votes]
            assert start_round not in rounds and min(rounds) == start_round + 1, (start_round, rounds)
            # The round it voted in is persisted before the vote left (a restart cannot vote
            # in it again), with the source it voted from.
            state = load_record(node._voter_record)
            assert state is not None
            assert state.voted_round >= start_round + 1
            assert state.justified == decode(peer.votes[0], SignedVote).vote.source
        finally:
            await peer.service.stop()
    finally:
        node.request_stop()
        await run


# Mutation testing of the import under a finality proof (2026-11-29): the mutants of
# node/network/sync.py's _find_final_proofs and of the lines this change added to
# NodeLink._import, _import_block, _fetch_branch and NodeService.import_block, 155 picked by
# their diffs (30 of them on older lines, left to the existing suites). mutmut's forked runners
# hang in LevelDB (see tests/chain/test_pruning.py), so each was applied with `mutmut apply` and
# the tests below plus tests/node/test_pol_nodes.py's unavailable-sample test run in a fresh
# process. 125 in scope: 104 killed by the first tests, 6 more by the ancestor, garbage, foreign
# proof, non-validator and two-block branch cases added after (13, 20, 21 of _find_final_proofs,
# 63 of _fetch_branch, 47, 48 of import_block), one gone with its code (target_known, now the
# literal False), 14 left, none unsound:
# - import_block's proves_finality pre-check and verify_justification's final=True each make
#   the other redundant (a link that is not a finality link is refused by both): mutating one
#   (25; final=None, omitted or False: 38, 43, 45) changes only whether the refused proof costs
#   signature checks and blame;
# - zip(..., strict=True) -> False, None or omitted (66, 69, 71): the lists are one per block;
# - fetched[::-1] -> [::+1] (62): _import fetches a missing parent itself, so a branch imported
#   newest first still imports (with a second fetch);
# - _import(None, ...) in _fetch_branch (73) and number - 1 -> + 1 in _import's branch fetch (17):
#   the peer and depth arguments predate this change; with nobody serving checkpoints (these
#   tests) the peer is never asked, and the depth only bounds the walk;
# - the log line's words and arguments (55, 62 of import_block, 64, 65).


def _chain_with_training(tmp: Path, slots: range, training: int = 0) -> list[Block]:
    """Genesis and a local-chain block in each of ``slots``, the one in ``slots[training]``
    with Bob's TRAIN call (its checkpoints kept by its builder alone, served to nobody)."""
    from chain.blockchain import Blockchain
    from chain.pallets.staking import get_validators
    from chain.storage import Database
    from consensus.aura import compute_slot_author

    db = Database(tmp / "builder")
    try:
        builder = Blockchain(db, chain_id=SPEC.id, build_genesis=SPEC.apply_genesis)
        validators = get_validators(builder.state.overlay())
        by_key = {dev_keypair(n).public: dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")}
        call = calls.Train(0, 0, 60, 16, calls.compute_f32_bits(0.5), calls.compute_f32_bits(0.0001), 10)
        train = sign_extrinsic(dev_keypair("Bob"), call, nonce=0, genesis_hash=builder.genesis_hash, spec_version=SPEC_VERSION)
        blocks = [builder.get_block(builder.genesis_hash)]
        for k, slot in enumerate(slots):
            built = builder.build_block([train] if k == training else [], by_key[compute_slot_author(validators, slot)], slot)
            assert built.receipts == () or built.receipts[0].success, built.receipts
            blocks.append(built.block)
        assert blocks[1 + training].body.results, "that block trains"
        return blocks
    finally:
        db.close()


async def test_a_final_block_whose_checkpoints_nobody_serves_is_imported_under_its_finality_proof(tmp_path, caplog) -> None:
    """Only a block's author holds all its checkpoints (each validator keeps its own sample), so
    a node that could not reach the author (gone, purged, or withholding from it alone) never
    imported the block, nor anything after it, however final (an outside tester's finding: one
    validator of four withholding from one other stopped finality for good). A range that
    carries a finality proof of a descendant now brings it in: the proof verified, the block
    stored without its training checked here. A proof below the threshold does not."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = _chain_with_training(tmp_path, range(first, first + 3))
    genesis = blocks[0].hash()
    good = _justification(blocks[3], ("Alice", "Bob", "Charlie"), genesis)
    proof = decode_justification(good)
    dave = sign_vote(dev_keypair("Dave"), genesis, proof.votes[2].vote)
    forged = struct_replace(proof, votes=(*proof.votes[:2], struct_replace(dave, voter=proof.votes[2].voter))).encode()
    cases = (
        (_justification(blocks[3], ("Alice",), genesis), False),  # below the threshold
        (_justification(blocks[3], ("Eve", "Ferdie", "Alice"), genesis), False),  # non-validators: a set not reached?
        (forged, None),
        (good, True),
    )
    for attached_proof, imported in cases:
        attached = {blocks[3].hash(): attached_proof}
        caplog.clear()
        async with _syncing_from(blocks, attached) as (node, peer):
            root = node.chain.get_header(genesis).state_root
            if imported:
                await wait_for(lambda: node.chain.finalized_hash == blocks[3].hash(), 30, "#3 final")
                assert node.chain.best_hash == blocks[3].hash()
                assert "block #1 (0x" in caplog.text and "imported without its training checked here" in caplog.text
            elif imported is None:  # a forged signature: the peer that sent it is charged
                await wait_for(lambda: node.network.reputation.score(peer.id) < 0, 30, "the peer charged")  # type: ignore[union-attr]
                assert "final proof of #1: bad_signature" in caplog.text
                assert node.chain.best_number == 0 and node.chain.get_header(genesis).state_root == root
            else:  # below the threshold or non-validators: perhaps a validator set not reached yet, no blame
                await wait_for(lambda: "not imported: " in caplog.text, 30, "#1 refused")
                assert node.chain.best_number == 0 and node.chain.get_header(genesis).state_root == root
                assert node.network.reputation.score(peer.id) == 0  # type: ignore[union-attr]


async def test_a_branch_fetched_for_a_parent_takes_the_final_proof_of_the_child(tmp_path, caplog) -> None:
    """A node on its own #1 and #2 syncs from #3: #3's parent and grandparent (#2 and the
    training block #1, whose checkpoints nobody serves) are fetched as a branch and imported
    oldest first, and the finality proof the range carries for #4 covers them (the branch leads
    to #3, the range links #3 to #4)."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = _chain_with_training(tmp_path, range(first, first + 4))
    genesis = blocks[0].hash()
    others = build_sealed_chain(tmp_path / "other", SPEC, [first + 6, first + 7])[1:]  # another #1 and #2, on this node only
    attached = {blocks[4].hash(): _justification(blocks[4], ("Alice", "Bob", "Charlie"), genesis)}
    async with local_node() as node:
        assert node.network is not None
        for block in others:
            await node.import_block(block)
        assert node.chain.best_hash == others[-1].hash()
        peer = await _peer_serving(blocks, attached)
        try:
            await peer.service.dial(node.network.listen_addresses[0])  # a branch of two blocks (#1, #2) to fetch
            await wait_for(lambda: node.chain.finalized_hash == blocks[4].hash(), 30, "#4 final")
            assert node.chain.best_hash == blocks[4].hash()
            assert f"block #1 (0x{blocks[1].hash().hex()[:12]}…) imported without its training checked here" in caplog.text
        finally:
            await peer.service.stop()


async def test_a_final_proof_of_an_ancestor_does_not_cover_a_later_block(tmp_path, caplog) -> None:
    """Only a proof at or after a block (its own or a descendant's) stands for it: with the
    proof on #1 and the training block #2 after it, #1 is final and #2 waits for its
    checkpoints (a proof of an earlier block says nothing of a later one)."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = _chain_with_training(tmp_path, range(first, first + 2), training=1)
    genesis = blocks[0].hash()
    attached = {blocks[1].hash(): _justification(blocks[1], ("Alice", "Bob", "Charlie"), genesis)}
    async with _syncing_from(blocks, attached) as (node, _peer):
        await wait_for(lambda: "block #2 (0x" in caplog.text and "not imported: " in caplog.text, 30, "#2 refused")
        assert node.chain.finalized_hash == blocks[1].hash() and node.chain.best_hash == blocks[1].hash()
        assert "imported without its training checked here" not in caplog.text


async def test_a_range_with_a_garbage_or_foreign_proof_brings_no_unchecked_block_in(tmp_path, caplog) -> None:
    """What a range carries that is not a finality proof of one of its blocks stands for
    nothing: garbage bytes as a block's justification are passed over while the range is
    scanned (not a crash of the sync task), and a valid finality proof of another block (the
    genesis, which #1 does not lead to) does not bring the training block #1 in."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = _chain_with_training(tmp_path, range(first, first + 3))
    genesis = blocks[0].hash()
    foreign = _justification(blocks[0], ("Alice", "Bob", "Charlie"), genesis)  # final genesis, sent with #3
    for attached in ({blocks[1].hash(): b"\x01garbage"}, {blocks[3].hash(): foreign}):
        caplog.clear()
        async with _syncing_from(blocks, attached) as (node, _peer):
            root = node.chain.get_header(genesis).state_root
            await wait_for(lambda: "block #1 (0x" in caplog.text and "not imported: " in caplog.text, 30, "#1 refused")
            assert node.chain.best_number == 0 and node.chain.get_header(genesis).state_root == root
            assert "imported without its training checked here" not in caplog.text
            assert "Task exception was never retrieved" not in caplog.text


async def test_a_block_marked_forged_here_is_synced_under_the_finality_proof_of_its_range(tmp_path, caplog) -> None:
    """A node that marked a block invalid (its own check, or a peer's fraud proof, before it
    held the block) and then syncs the final chain: the range's finality proof lifts the mark,
    and the block and its descendants come in (an outside tester's finding, 2026-11-30: a
    validator whose sample hit a forged segment that every other sample missed stayed behind
    the final chain for good, and finality stopped once the forger left the set)."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = _chain_with_training(tmp_path, range(first, first + 3))
    genesis = blocks[0].hash()
    attached = {blocks[3].hash(): _justification(blocks[3], ("Alice", "Bob", "Charlie"), genesis)}
    async with local_node() as node:
        assert node.network is not None
        node.chain.invalidate(blocks[1].hash(), "fraud proof: extrinsic #0")  # not stored: marked only
        peer = await _peer_serving(blocks, attached)
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.chain.finalized_hash == blocks[3].hash(), 30, "#3 final")
            assert not node.chain.is_invalid(blocks[1].hash()) and node.chain.best_hash == blocks[3].hash()
            assert f"block #1 (0x{blocks[1].hash().hex()[:12]}…) was proven forged here, but block #3 is final" in caplog.text
        finally:
            await peer.service.stop()


async def test_a_burst_of_submissions_is_gossiped_in_few_messages() -> None:
    """Submissions that arrive one event-loop turn apart (RPC calls) were gossiped one message
    each: a burst of 8,192 in 2.3 s was over 2,000 frames a second, and a peer banned the
    honest relay for flooding (an outside tester's G2, round 12). The node gathers what its
    pool accepts for TX_GOSSIP_WINDOW before it sends."""
    from node.network import sync

    async with local_node() as node:
        assert node.network is not None
        peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
        peer.regossip = False
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 1)  # type: ignore[union-attr]
            alice = dev_keypair("Alice")
            genesis, version = node.chain.genesis_hash, node.chain.runtime.spec_version
            for nonce in range(40):
                xt = sign_extrinsic(alice, calls.Transfer(dev_keypair("Bob").public, 10**9), nonce=nonce,
                                    genesis_hash=genesis, spec_version=version)
                node.submit(xt.encode())
                await asyncio.sleep(0)  # the next one in another turn of the loop, as RPC calls come
            await wait_for(lambda: sum(len(xts) for _, xts in peer.txs) == 40, 5)
            assert len(peer.txs) <= 3, [len(xts) for _, xts in peer.txs]
            assert sync.TX_GOSSIP_WINDOW <= 0.05  # a submission waits that long at most to be sent
        finally:
            await peer.service.stop()


async def test_a_peer_is_noted_useful_for_a_block_we_import_and_a_transaction_our_pool_takes(tmp_path) -> None:
    """What keeps an inbound peer from eviction (node.network.service.choose_evictee): a block
    from it that we imported, a transaction from it that our pool took; one the pool refuses
    (unpayable: its sender has nothing) notes nothing."""
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 10
    blocks = build_sealed_chain(tmp_path, SPEC, range(first, first + 2))
    genesis = blocks[0].hash()

    def transfer(signer: str) -> bytes:
        return sign_extrinsic(
            dev_keypair(signer), calls.Transfer(dev_keypair("Charlie").public, 10**9), nonce=0,
            genesis_hash=genesis, spec_version=SPEC_VERSION,
        ).encode()

    async with local_node() as node:
        assert node.network is not None
        peer = await _peer_serving(blocks, {})
        peer.regossip = False
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.chain.best_hash == blocks[2].hash())
            noted = node.network._peers[peer.id].useful
            assert set(noted) == {"block"}
            peer.service.broadcast_transactions((transfer("Nobody"),))
            await asyncio.sleep(0.5)
            assert set(noted) == {"block"} and len(node.pool) == 0
            peer.service.broadcast_transactions((transfer("Bob"),))
            await wait_for(lambda: "transaction" in noted)
            assert len(node.pool) == 1
        finally:
            await peer.service.stop()


async def _serve_tree(node: NodeService, blocks: list[Block]) -> tuple[Any, Any]:
    """A peer on ``blocks[0]`` (genesis) dialed into ``node``, serving ``blocks`` (a tree:
    siblings of one height) by hash down to their parents, and by number along the chain of the
    block it announced last; returns it (stop its service) and ``announce(block)``, which gossips
    ``block``'s header."""
    assert node.network is not None
    peer = await start_node(genesis=blocks[0].hash(), blocks=1)
    peer.blocks = blocks[:1]
    await peer.service.dial(node.network.listen_addresses[0])
    await wait_for(lambda: len(node.network.peers()) == 1)  # type: ignore[union-attr]
    by_hash = {block.hash(): block for block in blocks}
    tip = [blocks[0]]

    async def serve(who, req):  # type: ignore[no-untyped-def]
        if isinstance(req.start, int):
            line = [tip[0]]
            while line[0].header.number:
                line.insert(0, by_hash[line[0].header.parent_hash])
            return [BlockData(block) for block in line[req.start : req.start + req.count]]
        block, out = by_hash.get(req.start), []
        while block is not None and len(out) < req.count:
            out.append(BlockData(block))
            block = None if req.direction == 0 else by_hash.get(block.header.parent_hash)
        return out

    def announce(block: Block) -> None:
        tip[0] = block
        peer.service.broadcast_block(block.header)

    peer.service.handlers.serve_block_request = serve
    return peer, announce


async def test_a_third_block_of_one_authors_slot_is_imported_only_as_the_parent_of_another(tmp_path, caplog) -> None:
    """Two blocks of one author's slot prove its equivocation (stored as evidence). A third,
    announced, is not imported on its own: a byzantine validator re-sealed full blocks 20
    times a slot on an old parent, each imported in 2-4 s, and 35-42% of honest slots were
    missed (retest45's F0). A block that builds on it brings it in as its parent, so a node
    that saw the other siblings first still follows the chain built on it."""
    caplog.set_level(logging.INFO)
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 10
    keys = {k.public: k for k in map(dev_keypair, ("Alice", "Bob", "Charlie", "Dave"))}

    def branch(name: str, remark: bytes | None, length: int) -> list[Block]:
        """#1 in slot ``first`` (with a remark, or none), then empty blocks in the next slots."""
        builder = Blockchain(Database(tmp_path / name), chain_id=SPEC.id, build_genesis=SPEC.apply_genesis)
        try:
            validators = get_validators(builder.state.overlay())
            xts = [] if remark is None else [sign_extrinsic(
                dev_keypair("Eve"), calls.Remark(remark), nonce=0, genesis_hash=builder.genesis_hash, spec_version=SPEC_VERSION,
            )]
            out = [builder.build_block(xts, keys[compute_slot_author(validators, first)], slot=first).block]
            out += [builder.build_block([], keys[compute_slot_author(validators, first + n)], slot=first + n).block for n in range(1, length)]
            return out
        finally:
            builder.db.close()

    a, b, (c, child) = branch("a", b"a", 1), branch("b", b"b", 1), branch("c", None, 2)
    async with local_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        peer, announce = await _serve_tree(node, [genesis, a[0], b[0], c, child])
        try:
            for block in (a[0], b[0]):
                announce(block)
                await wait_for(lambda block=block: node.chain.has_block(block.hash()))
            root = node.chain.best_header.state_root
            announce(c)
            await wait_for(lambda: "is a third block of slot" in caplog.text)
            assert not node.chain.has_block(c.hash()) and node.chain.best_header.state_root == root
            assert node.network.reputation.score(peer.id) == 0  # type: ignore[union-attr]
            announce(child)
            await wait_for(lambda: node.chain.best_hash == child.hash())
            assert node.chain.has_block(c.hash())
        finally:
            await peer.service.stop()


async def test_a_side_block_by_a_validator_disabled_on_the_best_chain_is_imported_only_as_a_parent(tmp_path, caplog) -> None:
    """Dave's double vote is reported in #1 of the best chain, which disables him. A block he
    seals on a side branch (off genesis, where he is not disabled) is not fetched on its own
    when announced: the slashed validator of retest45's F0 kept building one full block a slot
    on its old parent, each imported (14-19% of a core, 0.7 MB/s of disk). A block that builds
    on it brings it in, as its parent."""
    import msgspec

    from chain.pallets import balances, staking
    from consensus.finality import Checkpoint as VoteCheckpoint

    caplog.set_level(logging.INFO)
    keys = {k.public: k for k in map(dev_keypair, ("Alice", "Bob", "Charlie", "Dave"))}
    dave, eve = dev_keypair("Dave"), dev_keypair("Eve")
    now_slot = int(time.time() * 1000) // BLOCK_TIME_MS
    first = now_slot - 20

    def builder(name: str) -> Blockchain:
        return Blockchain(Database(tmp_path / name), chain_id=SPEC.id, build_genesis=SPEC.apply_genesis)

    def owner(chain: Blockchain, slot: int) -> bytes:
        return compute_slot_author(get_validators(chain.state.overlay()), slot)

    main = builder("main")
    genesis_hash = main.genesis_hash

    def dave_vote(target: bytes) -> bytes:
        vote = Vote(SET_ID, VoteCheckpoint(genesis_hash, 0, 0), VoteCheckpoint(target, 1, 3))
        return msgspec.msgpack.encode(sign_vote(dave, genesis_hash, vote))

    report = sign_extrinsic(
        eve, calls.ReportVoteEquivocation(dave_vote(b"\xaa" * 32), dave_vote(b"\xbb" * 32)),
        nonce=balances.get_account(main.state.overlay(), eve.public).nonce, genesis_hash=genesis_hash, spec_version=SPEC_VERSION,
    )
    slot = first
    while owner(main, slot) == dave.public:
        slot += 1
    built = main.build_block([report], keys[owner(main, slot)], slot=slot)
    assert all(r.success for r in built.receipts) and staking.is_disabled(main.state.overlay(), dave.public)
    best = [built.block]
    main.db.close()
    side = builder("side")
    dave_slot = next(s for s in range(slot + 1, now_slot) if owner(side, s) == dave.public)
    mine = side.build_block([], dave, slot=dave_slot).block
    child_slot = next(s for s in range(dave_slot + 1, now_slot) if owner(side, s) != dave.public)
    child = side.build_block([], keys[owner(side, child_slot)], slot=child_slot).block
    side.db.close()

    async with local_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        peer, announce = await _serve_tree(node, [genesis, *best, mine, child])
        try:
            announce(best[0])
            await wait_for(lambda: node.chain.best_hash == best[0].hash())
            announce(mine)
            await wait_for(lambda: "disabled or removed for an offence on our best chain: imported only as the parent" in caplog.text)
            assert not node.chain.has_block(mine.hash())
            announce(child)
            await wait_for(lambda: node.chain.has_block(child.hash()))
            assert node.chain.has_block(mine.hash()) and node.network.reputation.score(peer.id) == 0  # type: ignore[union-attr]
        finally:
            await peer.service.stop()
