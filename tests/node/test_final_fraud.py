"""A forged block that escaped the validators' samples and was finalized, met later by a node
that checks it (an outside tester's finding, round 6a): an auditor (``--pol full``) joining
late, or a validator resyncing with a sample that hits the forged segment.

Finality is never reverted (docs/architecture.md §2.7): the challenge window is the time a
fraud proof has to arrive. Such a node found the fraud, marked the block invalid and refused
it from every peer for good, while the network had moved on: it never synced past it, and
an auditor's plain BlockError banned every honest peer that relayed the final chain. Now the
auditor's fault is a fraud proof like a sampling validator's; a block proven forged is still
imported when a verified finality proof covers it, its fraud kept, gossiped and reported
(the runtime slashes an author not punished yet); a mark left by an earlier check or a
peer's proof gives way to the finality proof too. Without a finality proof (or with one
below the threshold) the block stays refused, as before.

Real parts: a NodeService on its own LevelDB, the builder's LevelDB as the checkpoint
source, real signatures in blocks and votes.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from netkit import FAST, running

import ml_runtime
from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.errors import FraudFound, InvalidBlockAncestry
from chain.extrinsic import sign_extrinsic
from chain.pallets.staking import get_validators
from chain.storage import Database
from chain.transcripts import LocalSource
from consensus.aura import compute_slot_author
from consensus.errors import InvalidJustification
from consensus.finality import SET_ID, Checkpoint, Justification, Vote, sign_vote
from consensus.pol import EVERY_SEGMENT, SampledVerifier
from genesis.spec import load_chain_spec, with_slot_duration
from node.service import NodeConfig, NodeService, compute_fraud_evidence_key
from tests.forgery import forging_trainer

BLOCK_TIME_MS = 500
SPEC = with_slot_duration(load_chain_spec("local"), BLOCK_TIME_MS)
KEYS = {dev_keypair(n).public: dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")}


def _forged_chain(path: Path, *, forged: bool = True) -> tuple[Blockchain, list[Block]]:
    """Genesis, a block #1 whose TRAIN forges checkpoint 3 of 6 (every commitment recomputed,
    sealed by its slot's author; honest with ``forged=False``), and two empty blocks on it.
    The builder stays open: its store serves the checkpoints."""
    builder = Blockchain(
        Database(path), chain_id=SPEC.id, build_genesis=SPEC.apply_genesis,
        trainer=forging_trainer("segment", 3) if forged else ml_runtime.run_job,
    )
    validators = get_validators(builder.state.overlay())
    train = sign_extrinsic(
        dev_keypair("Ferdie"), calls.Train(0, 0, 60, 16, calls.compute_f32_bits(0.5), 0, 10), nonce=0,
        genesis_hash=builder.genesis_hash, spec_version=builder.runtime.spec_version,
    )
    first = int(time.time() * 1000) // BLOCK_TIME_MS - 20
    blocks = [builder.get_block(builder.genesis_hash)]
    for k, slot in enumerate(range(first, first + 3)):
        built = builder.build_block([train] if k == 0 else [], KEYS[compute_slot_author(validators, slot)], slot)
        blocks.append(built.block)
    assert blocks[1].body.results and built.receipts == ()
    return builder, blocks


def _finality_proof(target: Block, voters: tuple[str, ...], genesis: bytes) -> Justification:
    source = Checkpoint(target.hash(), target.header.number, 6)
    vote = Vote(SET_ID, source, Checkpoint(target.hash(), target.header.number, 7))
    return Justification(
        target.hash(), target.header.number, SET_ID, 7, source, tuple(sign_vote(dev_keypair(n), genesis, vote) for n in voters)
    )


def _logged(caplog, pattern: str) -> bool:
    """Whether a whole log message matches ``pattern`` (its words and every argument, not a
    part of it)."""
    return any(re.fullmatch(pattern, record.getMessage()) for record in caplog.records)


def _fraud_line(block: Block, final: bool) -> str:
    """The exact warning of a fraud found in ``block`` (the forgery of _forged_chain)."""
    h = block.hash().hex()
    return (
        rf"Fraud in block #1 \(0x{h[:12]}…\) by {block.header.author.hex()[:16]}{', final' if final else ''}: block {h} "
        r"extrinsic #0: segment 2 re-runs to weights [0-9a-f]{64}, entry 3 claims [0-9a-f]{64}"
    )


def _auditor() -> NodeService:
    return NodeService(NodeConfig(chain="local", tmp=True, pol="full", network=FAST), SPEC)


def test_the_auditor_verifies_every_segment_with_fraud_proofs() -> None:
    """--pol full is the sampled verifier sampling every segment: a fault it finds is a
    FraudFound with a proof (before, chain.proofs.FullReexecution's plain BlockError, which
    nothing turned into a proof and sync charged to the relaying peer as a bad block)."""
    service = _auditor()
    try:
        inner = service.verifier.inner
        assert isinstance(inner, SampledVerifier) and inner.samples == EVERY_SEGMENT and inner.samples_for is None
    finally:
        service.db.close()


async def test_an_auditor_proves_a_forgery_it_finds_and_refuses_the_block(tmp_path: Path, caplog) -> None:
    """Without a finality proof, or with one below the threshold: FraudFound, the proof kept
    as evidence, the block marked invalid, the state untouched."""
    caplog.set_level(logging.INFO)
    builder, blocks = _forged_chain(tmp_path / "builder")
    try:
        genesis = blocks[0].hash()
        async with running(_auditor()) as node:
            root = node.chain.get_header(genesis).state_root
            # checkpoint 3 forged: segment 2 does not re-run to it
            with pytest.raises(FraudFound, match=r"extrinsic #0: segment 2 re-runs to weights [0-9a-f]{64}, entry 3 claims"):
                await node.import_block(blocks[1], LocalSource(builder.transcripts))
            assert node.chain.is_invalid(blocks[1].hash())
            assert _logged(caplog, _fraud_line(blocks[1], final=False))
            # A proof below the threshold: still refused (marked by the first check).
            with pytest.raises(InvalidBlockAncestry, match="is invalid: fraud: extrinsic #0"):
                await node.import_block(blocks[1], LocalSource(builder.transcripts), _finality_proof(blocks[3], ("Alice", "Bob"), genesis))
            assert node.chain.is_invalid(blocks[1].hash()) and not node.chain.has_block(blocks[1].hash())
            assert node.chain.get_evidence(compute_fraud_evidence_key(blocks[1].hash(), 0)) is not None
            assert node.chain.best_number == 0 and node.chain.get_header(genesis).state_root == root
    finally:
        builder.db.close()


async def test_a_final_block_proven_forged_is_imported_and_its_fraud_reported(tmp_path: Path, caplog) -> None:
    """With a verified finality proof of a descendant (3 of 4 validators), the forged block is
    imported, then its descendants, and the chain finalizes past it; the fraud proof is kept
    (evidence), and the block is not invalidated."""
    caplog.set_level(logging.INFO)
    builder, blocks = _forged_chain(tmp_path / "builder")
    try:
        genesis = blocks[0].hash()
        proof = _finality_proof(blocks[3], ("Alice", "Bob", "Charlie"), genesis)
        async with running(_auditor()) as node:
            imported = await node.import_block(blocks[1], LocalSource(builder.transcripts), proof)
            assert imported is not None and imported.is_best
            assert node.chain.get_evidence(compute_fraud_evidence_key(blocks[1].hash(), 0)) is not None
            assert not node.chain.is_invalid(blocks[1].hash())
            assert _logged(caplog, _fraud_line(blocks[1], final=True))
            for block in blocks[2:]:
                await node.import_block(block, LocalSource(builder.transcripts), proof)
            assert await node.import_justification(proof)
            assert node.chain.finalized_hash == blocks[3].hash()
    finally:
        builder.db.close()


async def test_a_block_marked_forged_here_gives_way_to_a_finality_proof(tmp_path: Path, caplog) -> None:
    """The node proved the fraud first (no finality proof yet: marked invalid, as a peer's
    gossiped proof would mark it), then syncs the final chain: the mark of the unstored block
    gives way to the verified finality proof, and the block is imported. A proof below the
    threshold does not lift it."""
    caplog.set_level(logging.INFO)
    builder, blocks = _forged_chain(tmp_path / "builder")
    try:
        genesis = blocks[0].hash()
        async with running(_auditor()) as node:
            source = LocalSource(builder.transcripts)
            with pytest.raises(FraudFound):
                await node.import_block(blocks[1], source)
            assert node.chain.is_invalid(blocks[1].hash())
            with pytest.raises(InvalidBlockAncestry, match="is invalid: fraud: extrinsic #0"):  # below the threshold
                await node.import_block(blocks[1], source, _finality_proof(blocks[3], ("Alice", "Bob"), genesis))
            assert node.chain.is_invalid(blocks[1].hash())
            proof = _finality_proof(blocks[3], ("Alice", "Bob", "Charlie"), genesis)
            assert await node.import_block(blocks[1], source, proof) is not None
            assert not node.chain.is_invalid(blocks[1].hash()) and node.chain.best_hash == blocks[1].hash()
            assert _logged(caplog, (
                rf"block #1 \(0x{blocks[1].hash().hex()[:12]}…\) was proven forged here, but block #3 is final, which it "
                r"leads to: importing it \(finality is never reverted; the fraud stays reported\)"
            ))
    finally:
        builder.db.close()


async def test_a_stored_block_invalidated_by_a_late_proof_gives_way_to_its_finality_proof(tmp_path: Path, caplog) -> None:
    """A node held the block and its descendants when a fraud proof arrived (a proof that came
    after the rest of the network had finalized the block, while this node's finality lagged):
    the proof invalidated them here and moved the best chain off them. The justification of #3
    then came and was refused ("invalid_block", charged to the peer that sent it), and the node
    stayed off the final chain for good. Now a verified finality proof lifts the marks of the
    invalid block's subtree, and the node finalizes #3; a proof below the threshold does not."""
    caplog.set_level(logging.INFO)
    builder, blocks = _forged_chain(tmp_path / "builder", forged=False)
    try:
        genesis = blocks[0].hash()
        async with running(_auditor()) as node:
            for block in blocks[1:]:
                await node.import_block(block, LocalSource(builder.transcripts))
            node.chain.invalidate(blocks[1].hash(), "fraud proof: extrinsic #0")  # as import_fraud_proof does
            assert node.chain.best_hash == genesis and node.chain.is_invalid(blocks[3].hash())
            with pytest.raises(InvalidJustification, match=r"more than 2/3 is 3"):
                await node.import_justification(_finality_proof(blocks[3], ("Alice", "Bob"), genesis))
            assert node.chain.is_invalid(blocks[1].hash()) and node.chain.best_hash == genesis
            assert await node.import_justification(_finality_proof(blocks[3], ("Alice", "Bob", "Charlie"), genesis))
            assert node.chain.finalized_hash == blocks[3].hash() and node.chain.best_hash == blocks[3].hash()
            assert not any(node.chain.is_invalid(b.hash()) for b in blocks)
            assert _logged(caplog, (
                rf"block #1 \(0x{blocks[1].hash().hex()[:12]}…\) and its descendants were proven forged here, but block #3 "
                r"is final, which descends from it: following it \(finality is never reverted; the fraud stays reported\)"
            ))
    finally:
        builder.db.close()
