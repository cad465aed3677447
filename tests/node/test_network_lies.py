"""Peers that speak the protocol correctly and lie, against a real NodeService in process
(LevelDB, runtime, pool, a NetworkService on loopback): each lie is refused for its reason,
costs the liar where an honest peer could not have sent it, and leaves the node's best
block, finalized block and state as they were, or moving on with the honest peers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from netkit import FAST, Node, dial_until_banned, make_chain, running, start_node, wait_for

import node.service as node_service
from chain import calls
from chain.block import MAX_TRAIN_CALLS, Block, Body
from chain.blockchain import Blockchain
from chain.codec import encode, encode_versioned
from chain.config import SPEC_VERSION
from chain.crypto import Keypair, blake2_256, dev_keypair
from chain.errors import InvalidFraudProof
from chain.extrinsic import sign_extrinsic
from chain.fraud import (
    FAULT_SEGMENT,
    MAX_HEAD_ELEMENTS,
    compute_fraud_proof,
    compute_max_fraud_proof_size,
    decode_fraud_proof,
)
from chain.header import DigestItem
from chain.pallets.training import compute_job_at
from chain.proofs import TrainingClaim
from chain.pruning import prune_state
from chain.storage import Column, Database
from consensus.finality import (
    SET_ID,
    Checkpoint,
    Justification,
    Vote,
    decode_justification,
    sign_vote,
)
from genesis.spec import load_chain_spec
from node.network import sync as sync_module
from node.network.messages import BlockData, BlockRequest
from node.network.reputation import Misbehaviour
from node.network.service import NetworkConfig
from node.service import NodeConfig, NodeService, compute_fraud_evidence_key
from tests.forgery import forging_trainer

ALICE = dev_keypair("Alice")  # the dev chain's validator


def dev_node(network: NetworkConfig = FAST) -> AbstractAsyncContextManager[NodeService]:
    """A dev-chain node with no authoring key: it only imports what peers send."""
    return running(NodeService(NodeConfig(chain="dev", tmp=True, network=network), load_chain_spec("dev")))


def real_blocks(path: Path, count: int, slot_ms: int) -> tuple[list[Block], bytes]:
    """Genesis and ``count`` empty dev-chain blocks Alice sealed in the last slots; and the
    state root of the last."""
    spec = load_chain_spec("dev")
    now = int(time.time() * 1000) // slot_ms
    db = Database(path)
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        for k in range(count):
            builder.build_block([], ALICE, now - count - 1 + k)
        blocks = [builder.get_block(builder.get_hash(n)) for n in range(count + 1)]  # type: ignore[arg-type]
        return blocks, builder.best_header.state_root
    finally:
        db.close()


async def peer_with(node: NodeService, blocks: list[Block]) -> Node:
    peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
    peer.blocks = blocks
    return peer


async def test_a_peer_that_answers_slowly_does_not_hold_up_the_sync_from_another(tmp_path) -> None:
    """A peer may answer a block request at any time within the request timeout, each time,
    at no cost to its reputation (one block per answer is a valid answer). While its request
    was pending, the node's one sync lock was held, so every other peer's sync waited behind
    it: one such peer kept the node behind the chain for as long as it liked. The lock is
    now released while an answer is awaited, and the honest peer's blocks are imported."""
    async with dev_node(replace(FAST, request_timeout=30.0)) as node:
        assert node.network is not None and node.link is not None
        blocks, root = real_blocks(tmp_path / "builder", 3, node.slot_ms)
        slow = await peer_with(node, blocks)
        gate = asyncio.Event()
        asked: list[object] = []
        serve = slow.serve

        async def stalling(peer: object, req: BlockRequest) -> list[BlockData]:
            asked.append(req.start)
            await gate.wait()  # answered just before the timeout, or (here) not before the test ends
            return await serve(peer, req)  # type: ignore[arg-type]

        slow.service.handlers.serve_block_request = stalling
        honest = await peer_with(node, blocks)
        try:
            await slow.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: asked == [1])  # the sync on connect asks from #1 and waits
            await honest.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.chain.best_number == 3, timeout=5.0, what="the honest peer's blocks imported")
            assert node.chain.best_hash == blocks[-1].hash() and node.chain.best_header.state_root == root
            assert node.network.reputation.score(honest.id) == 0
        finally:
            gate.set()
            await slow.service.stop()
            await honest.service.stop()


def honest_training_block_and_false_proof(path: Path, slot: int) -> tuple[Block, bytes]:
    """A dev-chain block #1 (Alice, ``slot``) whose TRAIN call Bob sent and Alice ran honestly
    (6 segments of 10 steps), and a fraud proof claiming its segment 2 does not re-run: a
    false accusation any peer can build from the openings honest nodes serve."""
    spec = load_chain_spec("dev")
    db = Database(path)
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        call = calls.Train(0, 0, 60, 16, calls.compute_f32_bits(0.5), calls.compute_f32_bits(0.0001), 10)
        xt = sign_extrinsic(dev_keypair("Bob"), call, nonce=0, genesis_hash=builder.genesis_hash, spec_version=SPEC_VERSION)
        block = builder.build_block([xt], ALICE, slot).block
        parent = block.header.parent_hash
        job, parent_version, _ = compute_job_at(builder.state_at(parent), builder.config, call, parent, xt.hash(), block.header.number)
        claim = TrainingClaim(0, job, block.body.results[0], call.model, parent_version)
        openings = [builder.transcripts.get(block.hash(), 0, j) for j in (2, 3)]
        return block, compute_fraud_proof(block, claim, FAULT_SEGMENT, 2, openings).encode()  # type: ignore[arg-type]
    finally:
        db.close()


async def test_a_false_fraud_proof_is_judged_without_holding_up_imports(tmp_path, monkeypatch, caplog) -> None:
    """Judging a fraud proof re-runs one segment of the accused job: up to a block's worth of
    training, chosen by whoever sent the TRAIN call. It ran under the node's lock, so a peer
    with a false proof about an honest block (charged after it is judged, banned after two)
    held up every import, vote and authored block meanwhile, and fresh identities could
    queue more. It is judged off the lock now, and the block that arrives meanwhile is
    imported; the false proof still costs its sender BAD_FRAUD_PROOF and changes nothing."""
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        now = int(time.time() * 1000) // node.slot_ms
        _, proof = honest_training_block_and_false_proof(tmp_path / "trainer", now - 3)
        blocks, root = real_blocks(tmp_path / "builder", 1, node.slot_ms)
        genesis_root = node.chain.best_header.state_root
        rerun_started, rerun_may_end = threading.Event(), threading.Event()
        judge = node_service.verify_fraud_proof

        def long_rerun(genesis_hash, state, config, p):  # type: ignore[no-untyped-def]
            rerun_started.set()
            rerun_may_end.wait(10.0)  # a long segment: it ends when the test has seen the import
            return judge(genesis_hash, state, config, p)

        monkeypatch.setattr(node_service, "verify_fraud_proof", long_rerun)
        peer = await peer_with(node, blocks[:1])
        honest = await peer_with(node, blocks[:1])
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await honest.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 2)  # type: ignore[union-attr]
            peer.service.broadcast_fraud_proof(proof)
            await wait_for(rerun_started.is_set)
            honest.blocks = blocks
            honest.service.broadcast_block(blocks[1].header)
            await wait_for(lambda: node.chain.best_number == 1, timeout=5.0, what="block #1 imported during the re-run")
            rerun_may_end.set()
            await wait_for(lambda: node.network.reputation.score(peer.id) < 0)  # type: ignore[union-attr]
            assert f"peer {peer.id}: {Misbehaviour.BAD_FRAUD_PROOF.reason} (no_fault: " in caplog.text
            # Judged false, it is remembered: the same bytes from another peer are charged
            # unjudged (each copy was hashed and dropped uncharged: a review's R2).
            honest.service.broadcast_fraud_proof(proof)
            await wait_for(lambda: node.network.reputation.score(honest.id) < 0)  # type: ignore[union-attr]
            assert f"peer {honest.id}: {Misbehaviour.BAD_FRAUD_PROOF.reason} (a proof judged false here already)" in caplog.text
            assert node.chain.best_hash == blocks[1].hash() and node.chain.best_header.state_root == root
            assert node.chain.get_header(node.chain.genesis_hash).state_root == genesis_root
            assert node.chain.finalized_number == 0 and not list(node.chain.iter_evidence(b""))
        finally:
            rerun_may_end.set()
            await peer.service.stop()
            await honest.service.stop()


def sole_justification(genesis: bytes, target: Block, round_number: int, key: Keypair = ALICE, *, forge: bool = False) -> bytes:
    """A dev-chain justification of ``target``: ``key``'s vote of the link from genesis to
    ``round_number`` (a sole validator's justified checkpoint is final); ``forge``: in
    Alice's name, signed by Ferdie."""
    vote = Vote(SET_ID, Checkpoint(genesis, 0, 0), Checkpoint(target.hash(), target.header.number, round_number))
    signed = sign_vote(dev_keypair("Ferdie") if forge else key, genesis, vote)
    if forge:
        signed = msgspec.structs.replace(signed, voter=ALICE.public)
    return Justification(target.hash(), target.header.number, SET_ID, round_number, Checkpoint(genesis, 0, 0), (signed,)).encode()


async def test_a_forged_justification_cannot_replace_the_one_waiting_for_its_block(tmp_path, caplog) -> None:
    """A justification for a block not imported yet is kept until the block arrives. It was
    kept unchecked, by target, the last one in place of the one before: any peer could send
    a forged one for the block an honest peer's justification waited for, and the node did
    not finalize it (the forgery failed when the block came; the honest one was gone and,
    seen, not taken again). Now what can be checked without the block is checked first: a
    bad signature costs the sender, votes of non-validators (maybe a set we have not
    reached) are dropped without blame; once one is kept, another for the same block is
    dropped unchecked; and the honest one finalizes the block."""
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        genesis = node.chain.genesis_hash
        blocks, root = real_blocks(tmp_path / "builder", 1, node.slot_ms)
        round_number = int(time.time() * 1000) // node.slot_ms
        good = sole_justification(genesis, blocks[1], round_number)
        honest = await peer_with(node, blocks[:1])
        liar = await peer_with(node, blocks[:1])
        try:
            await honest.service.dial(node.network.listen_addresses[0])
            await liar.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 2)  # type: ignore[union-attr]
            liar.service.broadcast_justification(sole_justification(genesis, blocks[1], round_number, dev_keypair("Ferdie")))
            liar.service.broadcast_justification(sole_justification(genesis, blocks[1], round_number, forge=True))
            await wait_for(lambda: node.network.reputation.score(liar.id) < 0)  # type: ignore[union-attr]
            assert f"peer {liar.id}: {Misbehaviour.BAD_VOTE.reason} (justification bad_signature: " in caplog.text
            assert blocks[1].hash() not in node._pending_justifications
            honest.service.broadcast_justification(good)
            await wait_for(lambda: blocks[1].hash() in node._pending_justifications)
            score = node.network.reputation.score(liar.id)  # type: ignore[union-attr]
            late = sole_justification(genesis, blocks[1], round_number + 1, forge=True)
            liar.service.broadcast_justification(late)
            await wait_for(lambda: blake2_256(b"\1" + late) in node.network._seen_votes)  # type: ignore[union-attr]
            async with node._lock:  # its handler has run (it takes the lock)
                assert node._pending_justifications[blocks[1].hash()].encode() == good
            assert node.network.reputation.score(liar.id) >= score  # type: ignore[union-attr]  # dropped unchecked
            assert node.network.reputation.score(honest.id) == 0  # type: ignore[union-attr]
            honest.blocks = blocks
            honest.service.broadcast_block(blocks[1].header)
            await wait_for(lambda: node.chain.finalized_number == 1, what="#1 finalized by the honest justification")
            assert node.chain.get_justification(blocks[1].hash()) == good
            assert node.chain.best_header.state_root == root
        finally:
            await honest.service.stop()
            await liar.service.stop()


async def test_a_real_header_with_another_body_is_refused_before_the_body_runs(tmp_path, caplog) -> None:
    """A peer serves the real next header (Alice sealed it) with a body of its own: here 200
    valid transfers of Bob's, which could be 5 MiB of them, signed once and served again by
    every fresh identity. The import checked the body's signatures and executed it all, under
    the node's lock, before it compared the roots ("state root mismatch"): a block's worth of
    work for each connection the attacker opens. The extrinsics root, one hash over the body,
    is now compared first, from the body's bytes before they are decoded (retest28's W1); the
    peer is banned for it and the state is unchanged."""
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        blocks, _ = real_blocks(tmp_path / "builder", 1, node.slot_ms)
        bob = dev_keypair("Bob")
        body = tuple(
            sign_extrinsic(bob, calls.Transfer(ALICE.public, 10**6), nonce=n, genesis_hash=node.chain.genesis_hash,
                           spec_version=SPEC_VERSION)
            for n in range(200)
        )
        swapped = Block(blocks[1].header, Body(body, ()))
        root = node.chain.best_header.state_root
        peer = await peer_with(node, [blocks[0], swapped])
        try:
            await dial_until_banned(node, peer)
            assert (
                f"peer {peer.id}: {Misbehaviour.BAD_BLOCK.reason} (block #1 with a body its header's extrinsics root does not "
                "commit to)" in caplog.text
            )
            assert node.chain.best_number == 0 and node.chain.best_header.state_root == root
        finally:
            await peer.service.stop()


async def test_a_peer_that_announces_a_block_first_and_never_serves_it_does_not_silence_the_others(tmp_path, caplog) -> None:
    """Announcements were passed on once per node: the first peer to announce a block was the
    only one asked for it. A peer that relays every new header first (copied from the honest
    network) and then serves nothing was not blamed (an honest peer may have dropped the
    block since, proven invalid), and every honest peer's announcement of the block went
    unheard: the node fell behind until something else (a justification, a reconnect)
    started a sync. Each peer's first announcement of a block is now heard; the node fetches
    it from the honest peer."""
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        blocks, root = real_blocks(tmp_path / "builder", 1, node.slot_ms)
        first = await peer_with(node, blocks[:1])  # announces #1, serves only genesis
        honest = await peer_with(node, blocks[:1])
        try:
            await first.service.dial(node.network.listen_addresses[0])
            await honest.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 2)  # type: ignore[union-attr]
            first.service.broadcast_block(blocks[1].header)
            await wait_for(lambda: f"{first.id} does not serve block 0x{blocks[1].hash().hex()[:12]}" in caplog.text)
            honest.blocks = blocks
            honest.service.broadcast_block(blocks[1].header)
            await wait_for(lambda: node.chain.best_number == 1, timeout=5.0, what="#1 fetched from the honest peer")
            assert node.chain.best_hash == blocks[1].hash() and node.chain.best_header.state_root == root
            assert node.network.reputation.score(honest.id) == 0  # type: ignore[union-attr]
        finally:
            await first.service.stop()
            await honest.service.stop()


async def test_an_announced_header_far_larger_than_any_real_one_gets_the_peer_banned_unheard(caplog) -> None:
    """A header's digest had no bound of its own: an announcement could carry a header of up
    to 16 MiB, hashed on the event loop, checked, and kept (up to 8 a peer) as a target of
    the peer's next sync, with no blame for an author we do not know. A real header is a few
    hundred bytes, the largest that decodes 2,363 (chain.header's bounds): an announcement
    over that is refused before its header is looked at, as oversize."""
    caplog.set_level(logging.INFO)
    receiver = await start_node(blocks=1)
    sender = await start_node(blocks=1)
    try:
        await sender.service.dial(receiver.addr)
        await wait_for(lambda: len(receiver.service.peers()) == 1)
        real = make_chain(2)[1].header
        sender.service.broadcast_block(real)  # a real-sized one is heard
        assert (await asyncio.wait_for(receiver.announces.get(), 3))[1] == real
        huge = msgspec.structs.replace(real, digest=(DigestItem(4, b"junk", bytes(1 << 20)),))
        sender.service.broadcast_block(huge)
        await wait_for(lambda: receiver.service.reputation.banned_for(sender.id) > 0)
        assert f"peer {sender.id} misbehaved ({Misbehaviour.OVERSIZE.reason}: a block announcement of " in caplog.text
        assert receiver.announces.empty()
    finally:
        await sender.service.stop()
        await receiver.service.stop()


def forged_block_on_a_parent(path: Path, slot: int) -> tuple[Block, Block, bytes]:
    """Dev-chain blocks #1 (empty) and #2 (Bob's TRAIN call, checkpoint 3 forged by its author
    Alice) in ``slot`` and the next, and the valid fraud proof against #2 (segment 2)."""
    spec = load_chain_spec("dev")
    db = Database(path)
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis, trainer=forging_trainer("segment", 3))
        one = builder.build_block([], ALICE, slot).block
        call = calls.Train(0, 0, 60, 16, calls.compute_f32_bits(0.5), calls.compute_f32_bits(0.0001), 10)
        xt = sign_extrinsic(dev_keypair("Bob"), call, nonce=0, genesis_hash=builder.genesis_hash, spec_version=SPEC_VERSION)
        two = builder.build_block([xt], ALICE, slot + 1).block
        parent = two.header.parent_hash
        job, parent_version, _ = compute_job_at(builder.state_at(parent), builder.config, call, parent, xt.hash(), two.header.number)
        claim = TrainingClaim(0, job, two.body.results[0], call.model, parent_version)
        openings = [builder.transcripts.get(two.hash(), 0, j) for j in (2, 3)]
        return one, two, compute_fraud_proof(two, claim, FAULT_SEGMENT, 2, openings).encode()  # type: ignore[arg-type]
    finally:
        db.close()


async def test_a_fraud_proof_that_came_before_its_parent_is_checked_when_it_comes_again(tmp_path, caplog) -> None:
    """A fraud proof about a block whose parent the node lacks cannot be judged ("unknown_job",
    no blame: we may be behind), but it was marked seen, so every later copy was dropped
    unread: a peer sending it first to a node catching up kept the node from ever learning
    the block is invalid. Only a proof that was judged is marked seen now; the copy that
    comes once the parent is here is checked, and the block is invalidated."""
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        now = int(time.time() * 1000) // node.slot_ms
        genesis = node.chain.get_block(node.chain.genesis_hash)
        one, two, proof = forged_block_on_a_parent(tmp_path / "forger", now - 3)
        early = await peer_with(node, [genesis])
        honest = await peer_with(node, [genesis])
        try:
            await early.service.dial(node.network.listen_addresses[0])
            await honest.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 2)  # type: ignore[union-attr]
            early.service.broadcast_fraud_proof(proof)
            await wait_for(lambda: "not checked here: unknown_job" in caplog.text)
            honest.blocks = [genesis, one]
            honest.service.broadcast_block(one.header)
            await wait_for(lambda: node.chain.best_number == 1)
            honest.service.broadcast_fraud_proof(proof)
            await wait_for(lambda: node.chain.is_invalid(two.hash()), timeout=10.0, what="#2 invalidated by the proof")
            assert node.chain.best_hash == one.hash() and node.chain.best_header.state_root == one.header.state_root
            # Neither is charged: the early copy was true (a charge for it had a node that is
            # behind ban its honest relays: the second retest of round 15, Q3).
            assert node.network.reputation.score(early.id) == 0 and node.network.reputation.score(honest.id) == 0  # type: ignore[union-attr]
            # Another copy of the proven fault (other weights: another digest) is refused from
            # its header, before it is hashed or the rest read, and uncharged within the
            # address's budget (a relay may send its own proof of it). Hashed and decoded, then
            # dropped uncharged, 1 MB copies from one address took 68% of a core (retest36's AF2).
            real = decode_fraud_proof(proof)
            opening = msgspec.structs.replace(real.openings[0], weights=bytes(1024 * 1024))
            copy = encode_versioned(msgspec.structs.replace(real, openings=(opening, *real.openings[1:])))
            early.service.broadcast_fraud_proof(copy)
            await wait_for(lambda: f"fraud proof from {early.id} not checked here: proven: block #2 is invalid here already" in caplog.text)
            assert blake2_256(b"\2" + copy) not in node.network._peers[early.id].known_votes
            assert node.network.reputation.score(early.id) == 0
            # A fault proven in a block that stays (a final one: _on_fraud_found) is told by its
            # evidence, from the head.
            with node.chain.db.write_batch() as batch:
                batch.delete(Column.INVALID, two.hash())
            node.chain.put_evidence(compute_fraud_evidence_key(two.hash(), real.extrinsic_index), proof)
            with pytest.raises(InvalidFraudProof, match=r"^the fault of block #2's extrinsic #0 is proven here already$") as refused:
                node.read_fraud_proof_job(copy)
            assert refused.value.reason == "proven"
        finally:
            await early.service.stop()
            await honest.service.stop()


async def test_fraud_proofs_the_node_cannot_judge_are_free_only_within_an_addresss_budget(tmp_path, caplog, monkeypatch) -> None:
    """Proofs the node cannot judge (their block's parent is not here) cost their senders
    nothing up to a budget per address, then BAD_FRAUD_PROOF each: uncharged, one identity sent
    1,500 different proofs of 2.3 MB about a block #1,000,000 in 60 s (an outside tester's T3,
    round 15), and with a budget per identity a fresh one after each ban went on (its retest's
    AC1). The budget holds what an honest relay can send a node that lags: a proof for each
    forged TRAIN of two blocks at once. Here a budget of 3 (and almost no refill): a peer's 4th
    proof charged, its 5th banned; a fresh identity from the same address charged at its first;
    a peer the node dialed (an address of its own) free within its own; state unchanged."""
    assert sync_module.UNJUDGED_PROOF_BURST >= 2 * MAX_TRAIN_CALLS
    monkeypatch.setattr(sync_module, "UNJUDGED_PROOF_BURST", 3.0)
    monkeypatch.setattr(sync_module, "UNJUDGED_PROOFS_PER_SECOND", 1e-6)
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None and node.link is not None
        now = int(time.time() * 1000) // node.slot_ms
        genesis = node.chain.get_block(node.chain.genesis_hash)
        root = node.chain.best_header.state_root
        _, _, proof = forged_block_on_a_parent(tmp_path / "forger", now - 3)
        real = decode_fraud_proof(proof)
        proofs = [encode_versioned(msgspec.structs.replace(real, extrinsic_index=i)) for i in range(7)]
        flooder, fresh, dialed = [await peer_with(node, [genesis]) for _ in range(3)]
        reputation = node.network.reputation
        try:
            await flooder.service.dial(node.network.listen_addresses[0])
            await node.network.dial(dialed.service.listen_addresses[0])  # outbound: its own group
            await wait_for(lambda: len(node.network.peers()) == 2)  # type: ignore[union-attr]
            for sent in proofs[:3]:
                flooder.service.broadcast_fraud_proof(sent)
            await wait_for(lambda: caplog.text.count(f"fraud proof from {flooder.id} not checked here: unknown_job") == 3)
            assert reputation.score(flooder.id) == 0
            # Told from their heads, before they were hashed (retest34's AD1: 2.6 ms a proof of
            # 2.3 MB): never marked known from the sender, as a proof read past its head is.
            known = node.network._peers[flooder.id].known_votes
            assert not any(blake2_256(b"\2" + sent) in known for sent in proofs[:3])
            flooder.service.broadcast_fraud_proof(proofs[3])
            await wait_for(lambda: reputation.score(flooder.id) < 0)
            assert (
                f"peer {flooder.id}: {Misbehaviour.BAD_FRAUD_PROOF.reason} (unknown_job: more than 3 proofs we cannot "
                "judge, faster than 1e-06 a second: block #2's parent is not stored here)" in caplog.text
            )
            flooder.service.broadcast_fraud_proof(proofs[4])
            await wait_for(lambda: reputation.banned_for(flooder.id) > 0)
            assert "parent is not stored here); banned" in caplog.text
            await fresh.service.dial(node.network.listen_addresses[0])  # the same address, another identity
            await wait_for(lambda: node.network.peer(fresh.id) is not None)  # type: ignore[union-attr]
            fresh.service.broadcast_fraud_proof(proofs[5])
            await wait_for(lambda: reputation.score(fresh.id) < 0)
            for sent in proofs[4:7]:  # three more, its own group's worth: the same proofs, another sender
                dialed.service.broadcast_fraud_proof(sent)
            await wait_for(lambda: caplog.text.count(f"fraud proof from {dialed.id} not checked here: unknown_job") == 3)
            assert reputation.score(dialed.id) == 0
            # A proof about a block on a parent the node holds is read on to its head, and
            # refused by its seal (the header was changed under it) before it is hashed: not
            # known from its sender (retest36's AF3: false proofs about real blocks were hashed
            # and their rest parsed first).
            on_genesis = encode_versioned(msgspec.structs.replace(
                real, header=msgspec.structs.replace(real.header, parent_hash=node.chain.genesis_hash)))
            dialed.service.broadcast_fraud_proof(on_genesis)
            await wait_for(lambda: reputation.score(dialed.id) < 0)
            assert f"peer {dialed.id}: {Misbehaviour.BAD_FRAUD_PROOF.reason} (bad_seal: block #2" in caplog.text
            assert blake2_256(b"\2" + on_genesis) not in node.network._peers[dialed.id].known_votes
            # A head whose next field nests 5,000 deep: msgspec's RecursionError escaped every
            # handler, uncharged (an outside tester's AE1, retest35); now a malformed proof,
            # read no further than a true head's elements.
            nested = on_genesis[:2] + encode(decode_fraud_proof(on_genesis).header) + b"\x91" * 5000 + b"\xc0" * 12
            dialed.service.broadcast_fraud_proof(nested)
            await wait_for(lambda: reputation.banned_for(dialed.id) > 0)
            assert (f"peer {dialed.id}: {Misbehaviour.BAD_FRAUD_PROOF.reason} (malformed: FraudProof: its head: the element "
                    f"at byte 2 holds more than {MAX_HEAD_ELEMENTS} elements); banned") in caplog.text
            # The address's budget outlives its peers; one handled after its peer left makes none.
            assert node.network.peer(flooder.id) is None
            assert await node.link._on_fraud_proof(flooder.id, proofs[6]) is None
            assert node.table_sizes()["unjudged_proof_budgets"] == 2
            assert node.chain.best_number == 0 and node.chain.best_header.state_root == root
        finally:
            for p in (flooder, fresh, dialed):
                await p.service.stop()


async def test_a_fraud_proof_the_node_cannot_judge_is_not_decoded_past_its_header(tmp_path) -> None:
    """Whether a proof can be judged here (its block's parent is stored) is read off its header
    alone: a peer with a fresh identity every 19 proofs had a node decode 1,200 proofs of 2.3
    MB a minute, each in full before it was dropped as unknown (an outside tester's Q2, round
    15). A proof whose rest does not decode (a kind over a u8) is "unknown_job" while the
    parent is missing, and "malformed" once it is here; a proof whose header does not decode,
    or is not in canonical form, or that is not an array of a proof's fields, is "malformed",
    and one over the size bound "oversize", either way."""
    now = int(time.time() * 1000) // 6000
    one, _two, proof = forged_block_on_a_parent(tmp_path / "forger", now - 3)
    bad_rest = encode_versioned(msgspec.structs.replace(decode_fraud_proof(proof), kind=300))
    with pytest.raises(InvalidFraudProof, match="Expected `int` <= 255") as refused:
        decode_fraud_proof(bad_rest)
    bad_header = bad_rest[:3] + b"\xc1" + bad_rest[4:]  # (the header's first field)
    assert bad_rest[2:5] == b"\x98\xc4\x20" and bad_rest[37] == 2  # the header's array, its parent hash, its number
    wide_number = bad_rest[:37] + b"\xcc" + bad_rest[37:]  # 2 as a uint8: not the canonical form
    async with dev_node() as node:
        assert not node.chain.has_block(one.hash())
        with pytest.raises(InvalidFraudProof, match="parent is not stored here") as refused:
            await node.import_fraud_proof(bad_rest)
        assert refused.value.reason == "unknown_job"
        with pytest.raises(InvalidFraudProof) as refused:
            await node.import_fraud_proof(bad_header)
        assert refused.value.reason == "malformed"
        with pytest.raises(InvalidFraudProof, match="its header: Header: bytes are not in canonical form") as refused:
            await node.import_fraud_proof(wide_number)
        assert refused.value.reason == "malformed"
        # Nothing after the header is parsed to tell the job unknown: skipping a last field of
        # 2.3 million one-byte integers cost 7 ms. A rest that is not MessagePack at all is
        # "unknown_job" too while the parent is missing (and "malformed" once it is here, below).
        header_end = 2 + len(encode(decode_fraud_proof(proof).header))  # (a version byte, the array's)
        not_msgpack = bad_rest[:header_end] + b"\xc1" + bad_rest[header_end + 1 :]
        with pytest.raises(InvalidFraudProof, match="parent is not stored here") as refused:
            await node.import_fraud_proof(not_msgpack)
        assert refused.value.reason == "unknown_job"
        openings = encode(decode_fraud_proof(proof).openings)
        assert bad_rest.endswith(openings)
        short = bad_rest[:1] + bytes([bad_rest[1] - 1]) + bad_rest[2 : -len(openings)]  # its last field left out
        with pytest.raises(InvalidFraudProof, match="not a fraud proof: a proof opens with version 1 and an array of 13") as refused:
            await node.import_fraud_proof(short)
        assert refused.value.reason == "malformed"
        too_long = bad_rest + bytes(compute_max_fraud_proof_size(node.chain.config.max_model_params))
        with pytest.raises(InvalidFraudProof, match=r"fraud proof is \d+ bytes; the limit is") as refused:
            await node.import_fraud_proof(too_long)
        assert refused.value.reason == "oversize"
        node.chain.import_block(one)
        with pytest.raises(InvalidFraudProof, match="Expected `int` <= 255") as refused:
            await node.import_fraud_proof(bad_rest)
        assert refused.value.reason == "malformed"
        with pytest.raises(InvalidFraudProof, match=f"^FraudProof: its head: byte {header_end} is 0xc1, which MessagePack never uses$") as refused:
            await node.import_fraud_proof(not_msgpack)
        assert refused.value.reason == "malformed"
        # With the parent here, what ties the proof to a real block's real extrinsic is checked
        # from its head too, before the rest is decoded (T2: false proofs about real blocks
        # were each decoded in full first): a seal not its author's, another extrinsic's index.
        real = decode_fraud_proof(proof)
        unsealed = msgspec.structs.replace(real, header=msgspec.structs.replace(real.header, seal=bytes(64)), kind=300)
        moved = msgspec.structs.replace(real, extrinsic_index=real.extrinsic_index + 1, kind=300)
        for false, reason in ((unsealed, "bad_seal"), (moved, "bad_extrinsic_path")):
            with pytest.raises(InvalidFraudProof) as refused:
                await node.import_fraud_proof(encode_versioned(false))
            assert refused.value.reason == reason, refused.value


def _final_past_a_forged_blocks_parent(tmp_path):  # type: ignore[no-untyped-def]
    """A dev node's database under ``tmp_path / "base"`` holding #1, the parent of a forged
    block, and three final blocks after it (so #1's state goes with a keep of 0); the forged
    block, its fraud proof, the spec and the database's path."""
    one, two, proof = forged_block_on_a_parent(tmp_path / "forger", int(time.time() * 1000) // 6000 - 10)
    spec = load_chain_spec("dev")
    path = tmp_path / "base" / "chains" / spec.id / "db"
    path.parent.mkdir(parents=True)
    chain = Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis)
    chain.import_block(one)
    for k in range(3):
        chain.build_block([], ALICE, one.header.slot + 2 + k)
    chain.set_finalized(chain.best_hash)
    chain.db.close()
    return two, proof, spec, path


async def test_a_fraud_proof_about_a_block_whose_parent_state_is_pruned_is_not_judged(tmp_path) -> None:
    """After ``polchain prune-state`` the parent's state of an old block is gone: a fraud proof
    about a child of it cannot be judged ("unknown_job": no blame, the proof may be true), and
    the node says why rather than failing on the missing trie."""
    two, proof, spec, path = _final_past_a_forged_blocks_parent(tmp_path)
    with Database(path, create=False) as db:
        assert prune_state(db, keep=0).lowest_kept == 4
    async with running(NodeService(NodeConfig(chain="dev", base_path=tmp_path / "base", network=FAST), spec)) as node:
        assert node.chain.has_block(two.header.parent_hash) and not node.chain.has_state(two.header.parent_hash)
        with pytest.raises(InvalidFraudProof, match="parent state is pruned here") as refused:
            await node.import_fraud_proof(proof)
        assert refused.value.reason == "unknown_job"


@pytest.mark.parametrize("during", ["verify_sealed_extrinsic", "verify_fraud_proof"])
async def test_a_parent_state_pruned_while_its_fraud_proof_is_judged_makes_it_unknown_not_an_error(
    tmp_path, monkeypatch, during: str
) -> None:
    """Online pruning may take the parent's state while a proof is judged off the lock: the
    proof is then "unknown_job" (no blame, it may be true), as for a state pruned before, and
    not an uncaught MissingTrieNode that drops it unjudged (a reviewer's finding). So too while
    its head is checked, before the rest is decoded (retest25's T2)."""
    from chain.pruning import LivePrune

    two, proof, spec, _path = _final_past_a_forged_blocks_parent(tmp_path)
    async with running(NodeService(NodeConfig(chain="dev", base_path=tmp_path / "base", network=FAST), spec)) as node:
        judge = getattr(node_service, during)

        def pruned_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
            LivePrune(node.db, node.chain.state, keep=0).run()  # the run takes #1's state now
            return judge(*args, **kwargs)

        monkeypatch.setattr(node_service, during, pruned_meanwhile)
        assert node.chain.has_state(two.header.parent_hash)
        with pytest.raises(InvalidFraudProof, match="parent state was pruned here while the proof was judged") as refused:
            await node.import_fraud_proof(proof)
        assert refused.value.reason == "unknown_job" and not node.chain.has_state(two.header.parent_hash)


def _histories(tmp_path: Path, *runs: tuple[str, int, int]) -> list[list[Block]]:
    """Dev chains from one genesis, one a ``(name, slots ago of its first block, blocks)``: its
    genesis and empty blocks Alice sealed a slot apart (branches differ by their slots)."""
    spec = load_chain_spec("dev")
    now = int(time.time() * 1000) // spec.runtime_config.slot_duration_ms
    out = []
    for name, ago, count in runs:
        db = Database(tmp_path / name)
        try:
            builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
            for k in range(count):
                builder.build_block([], ALICE, now - ago + k)
            out.append([builder.get_block(builder.get_hash(n)) for n in range(count + 1)])  # type: ignore[arg-type]
        finally:
            db.close()
    return out


async def test_a_node_with_a_checkpoint_finalizes_nothing_below_it_before_it_and_authors_no_block_of_its_number(
    tmp_path, caplog
) -> None:
    """``--checkpoint 3:A3``, a long-range attacker's B1, B2 synced first (old keys sign them):
    its justification of B2 finalized it, and the honest chain then conflicted with finality
    for good (an outside tester's finding, round 9). Now it is not applied (its sender is not
    blamed: the node cannot show it wrong yet), the node does not author a block #3 on B2, and
    once the honest chain and its checkpoint are imported its justification finalizes."""
    caplog.set_level(logging.INFO)
    spec = load_chain_spec("dev")
    (_, *honest), (_, *attacker) = _histories(tmp_path, ("honest", 9, 3), ("attacker", 6, 2))
    slot_ms = spec.runtime_config.slot_duration_ms
    node = NodeService(NodeConfig(chain="dev", tmp=True, checkpoint=(3, honest[2].hash())), spec)
    try:
        genesis = node.chain.genesis_hash
        for block in attacker:
            await node.import_block(block)
        assert node.chain.best_hash == attacker[1].hash()
        round_number = int(time.time() * 1000) // slot_ms
        stale = decode_justification(sole_justification(genesis, attacker[1], round_number))
        assert await node.import_justification(stale) is False
        assert node.chain.finalized_number == 0
        assert f"a justification is not applied: block #2 {attacker[1].hash().hex()} is below the checkpoint #3 0x{honest[2].hash().hex()}, which is not imported yet: not finalized before it is" in [
            record.getMessage() for record in caplog.records
        ]
        for block in honest:
            await node.import_block(block)
        assert node.chain.best_hash == honest[2].hash()
        good = decode_justification(sole_justification(genesis, honest[2], round_number + 1))
        assert await node.import_justification(good) is True
        assert node.chain.finalized_hash == honest[2].hash()
    finally:
        node.close()
    # The validator itself, at #2 with the checkpoint #3 not seen yet, does not author a #3.
    checkpoint = (3, honest[2].hash())
    author = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True, checkpoint=checkpoint), spec)
    try:
        for number in (1, 2):
            imported = await author.author_block()
            assert imported is not None and imported.block.header.number == number
        root = author.chain.state.root()
        assert await author.author_block() is None
        assert await author.author_block() is None  # (said once, not every slot)
        assert (author.chain.best_number, author.chain.state.root()) == (2, root)
        said = f"Not authoring block #3: it is the checkpoint 0x{honest[2].hash().hex()}, awaited from peers"
        assert [record.getMessage() for record in caplog.records].count(said) == 1
    finally:
        author.close()


async def test_a_node_below_its_checkpoint_on_a_long_range_fork_syncs_the_checkpoints_chain_from_its_finalized_block(
    tmp_path, caplog, monkeypatch
) -> None:
    """``--checkpoint 14:A14``: a node that synced a long-range fork B1..B12 first (nothing
    below the checkpoint is finalized: it holds no A14) then meets an honest peer: the honest
    A13's branch did not join its chain within MAX_FORK_DEPTH blocks (8 here, 256 on a node),
    and it sat on the fork for good, at INFO (the retest of an outside tester's round 9). It now
    asks the peer's chain again from its finalized block up, imports it as a side branch, and
    moves to it: its block #14 is the checkpoint, and the fork is off its best chain."""
    import node.network.sync as sync_module

    monkeypatch.setattr(sync_module, "MAX_FORK_DEPTH", 8)
    caplog.set_level(logging.INFO)
    spec = load_chain_spec("dev")
    honest, attacker = _histories(tmp_path, ("honest", 60, 16), ("attacker", 30, 12))
    checkpoint = (14, honest[14].hash())
    async with running(NodeService(NodeConfig(chain="dev", tmp=True, network=FAST, checkpoint=checkpoint), spec)) as node:
        assert node.network is not None
        for block in attacker[1:]:
            await node.import_block(block)
        assert node.chain.best_hash == attacker[12].hash()
        peer = await peer_with(node, honest)
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.chain.best_hash == honest[16].hash(), timeout=15, what="the checkpoint's chain")
            assert node.chain.get_hash(14) == checkpoint[1] and node.chain.get_hash(12) == honest[12].hash()
            assert "our chain may be a long fork (a network split healed, or a long-range fork below a checkpoint); asking" in caplog.text
        finally:
            await peer.service.stop()


@asynccontextmanager
async def _forks_deeper_than_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, node_has_the_longer: bool
) -> AsyncIterator[tuple[NodeService, Node, list[Block], list[Block]]]:
    """Two dev chains from one genesis, apart from #1 up: the longer (16 blocks) and the
    shorter (12). A running node (MAX_FORK_DEPTH 8, so the walk down by hash cannot join them)
    holds one, and a peer, dialled, serves the other. Yields (node, peer, longer, shorter)."""
    import node.network.sync as sync_module

    monkeypatch.setattr(sync_module, "MAX_FORK_DEPTH", 8)
    longer, shorter = _histories(tmp_path, ("longer", 60, 16), ("shorter", 30, 12))
    ours, theirs = (longer, shorter) if node_has_the_longer else (shorter, longer)
    async with running(NodeService(NodeConfig(chain="dev", tmp=True, network=FAST), load_chain_spec("dev"))) as node:
        assert node.network is not None
        for block in ours[1:]:
            await node.import_block(block)
        assert node.chain.best_hash == ours[-1].hash() and node.chain.finalized_number == 0
        peer = await peer_with(node, theirs)
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            yield node, peer, longer, shorter
        finally:
            await peer.service.stop()


async def test_a_node_on_a_fork_deeper_than_the_branch_walk_syncs_the_longer_chain_from_its_finalized_block(
    tmp_path, caplog, monkeypatch
) -> None:
    """A network split in two halves for more than MAX_FORK_DEPTH blocks above their last
    finalized block (8 here, 256 on a node): once healed, each half's branch did not join the
    other's chain within the walk down by hash, every node refused it at INFO, the halves never
    joined again and finality never resumed (an outside tester's finding, round 13: a 2|2 split
    of 290 blocks; each announcement also re-fetched 256 blocks). The node now asks the longer
    chain's blocks from its finalized block up, by number, imports them as a side branch and
    moves to it, as a checkpointed node on a long-range fork does (above)."""
    caplog.set_level(logging.INFO)
    async with _forks_deeper_than_the_walk(tmp_path, monkeypatch, node_has_the_longer=False) as (node, _, longer, shorter):
        await wait_for(lambda: node.chain.best_hash == longer[16].hash(), timeout=15, what="the longer chain")
        assert node.chain.get_hash(12) == longer[12].hash() and node.chain.has_block(shorter[12].hash())
        assert "does not join our chain within 8 blocks of its tip" in caplog.text


async def test_an_announced_branch_deeper_than_the_walk_is_imported_beside_a_longer_chain(tmp_path, caplog, monkeypatch) -> None:
    """The other half of a healed split announces its blocks whatever its length: a branch
    that did not join within MAX_FORK_DEPTH was walked down again at each announcement (256
    blocks fetched for nothing: 30-50% of a core at 300 ms slots, round 13) and never stored,
    so a tie or a turn of the fork choice found nothing to move to. It is now imported from the
    finalized block up as a side branch; the node stays on its longer chain, and the next
    announcement joins at once."""
    caplog.set_level(logging.INFO)
    async with _forks_deeper_than_the_walk(tmp_path, monkeypatch, node_has_the_longer=True) as (node, peer, longer, shorter):
        await wait_for(lambda: node.network.peer(peer.id) is not None)  # type: ignore[union-attr]
        peer.service.broadcast_block(shorter[12].header)
        await wait_for(lambda: node.chain.has_block(shorter[12].hash()), timeout=15, what="the announced branch")
        assert node.chain.best_hash == longer[16].hash()
        assert "does not join our chain within 8 blocks of its tip" in caplog.text


async def test_a_bad_block_that_joins_our_chain_does_not_send_a_checkpointed_node_back_to_its_finalized_block(
    tmp_path, caplog
) -> None:
    """The ask from the finalized block up (Sync._rejoins_from_finalized) is for a peer's chain
    that does not join ours. A block that joins it and is bad itself is no sign of a fork:
    were it taken as one, a peer could make a checkpointed node ask for its whole chain again
    with one bad block above the node's best. The peer is charged for the block, the node stays
    where it was, and no fork is suspected."""
    caplog.set_level(logging.INFO)
    (honest,) = _histories(tmp_path, ("honest", 20, 6))
    bob = dev_keypair("Bob")
    async with running(NodeService(NodeConfig(chain="dev", tmp=True, network=FAST, checkpoint=(5, honest[5].hash())),
                                   load_chain_spec("dev"))) as node:
        assert node.network is not None
        for block in honest[1:4]:
            await node.import_block(block)
        remark = sign_extrinsic(bob, calls.Remark(b"x"), nonce=0, genesis_hash=node.chain.genesis_hash, spec_version=SPEC_VERSION)
        bad = Block(honest[4].header, Body((remark,), ()))
        peer = await peer_with(node, [*honest[:4], bad, *honest[5:]])
        try:
            await dial_until_banned(node, peer)
            assert (
                f"peer {peer.id}: {Misbehaviour.BAD_BLOCK.reason} (block #4 with a body its header's extrinsics root does not "
                "commit to)" in caplog.text
            )
            assert node.chain.best_hash == honest[3].hash()
            assert "long-range fork" not in caplog.text
        finally:
            await peer.service.stop()
