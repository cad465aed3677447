"""Sampled proof-of-learning verification and fraud proofs, on real blocks."""

from __future__ import annotations

import dataclasses

import msgspec
import numpy as np
import pytest
from chainkit import ALICE, BOB, open_chain, sign, train_call

import ml_runtime
from chain.block import Block, Body
from chain.pallets.context import BlockInfo, CallContext
from chain.pallets.training import compute_job
from chain.proofs import compute_entries
from consensus.errors import InvalidFraudProof
from consensus.pol import FraudProof, SampledVerifier, SegmentFault, verify_fraud_proof


def _forge_segment(job: ml_runtime.TrainingJob, proof, segment: int):
    """A consistent lie: checkpoint segment+1 altered, entries and root recomputed to match."""
    cps = list(proof.checkpoints)
    w = np.frombuffer(cps[segment + 1], "<f4").copy()
    w[3] += np.float32(0.25)
    cps[segment + 1] = w.astype("<f4").tobytes()
    forged = msgspec.structs.replace(proof, checkpoints=tuple(cps))
    root = ml_runtime.merkle_root(compute_entries(forged))
    return msgspec.structs.replace(forged, transcript_root=root)


@pytest.fixture
def trained(tmp_path):
    author = open_chain(tmp_path / "a")
    parent = author.best_hash
    before = author.state.overlay()
    xt = sign(author, BOB, train_call(steps=60, segment=10), 0)
    built = author.build_block([xt], ALICE, slot=1)
    # The job as the importer reconstructs it from the parent state.
    info = BlockInfo(1, parent, ALICE.public, False, None)  # type: ignore[arg-type]
    ctx = CallContext(before, BOB.public, 0, xt.hash(), 0, info, author.config)
    job, _, _ = compute_job(ctx, xt.call)
    yield author, built, job
    author.db.close()


def test_sampling_accepts_an_honest_proof(trained) -> None:
    _, built, job = trained
    SampledVerifier(b"v" * 32, samples=2).verify(job, built.block.body.proofs[0], bytes(32))


def test_a_forged_segment_is_caught_when_sampled_and_its_fraud_proof_checks(trained) -> None:
    _, built, job = trained
    forged = _forge_segment(job, built.block.body.proofs[0], segment=2)
    with pytest.raises(SegmentFault) as caught:
        SampledVerifier(b"v" * 32, samples=job.num_segments).verify(job, forged, bytes(32))
    fraud = caught.value.proof
    assert fraud.segment == 2
    verify_fraud_proof(job, forged.transcript_root, fraud)  # anyone re-running segment 2 sees the fault
    with pytest.raises(InvalidFraudProof, match="not committed"):
        verify_fraud_proof(job, built.block.body.proofs[0].transcript_root, fraud)  # the honest root
    tampered = dataclasses.replace(fraud, checkpoint=built.block.body.proofs[0].checkpoints[1])
    with pytest.raises(InvalidFraudProof, match="not the one committed"):
        verify_fraud_proof(job, forged.transcript_root, tampered)


def test_a_fraud_proof_against_an_honest_segment_is_refused(trained) -> None:
    _, built, job = trained
    proof = built.block.body.proofs[0]
    entries = compute_entries(proof)
    transcript = ml_runtime.Transcript.build(entries)
    honest = FraudProof(
        bytes(32), 0, 3, proof.checkpoints[3], entries[3], entries[4],
        ml_runtime.merkle_proof(transcript, 3), ml_runtime.merkle_proof(transcript, 4),
    )
    with pytest.raises(InvalidFraudProof, match="no fault"):
        verify_fraud_proof(job, proof.transcript_root, honest)


def test_sampling_catches_a_forgery_with_the_expected_frequency(trained) -> None:
    _, built, job = trained
    forged = _forge_segment(job, built.block.body.proofs[0], segment=4)
    caught = 0
    for i in range(30):
        try:
            SampledVerifier(bytes([i]) * 32, samples=2).verify(job, forged, bytes(32))
        except SegmentFault:
            caught += 1
    # S = 6 segments, m = 2: a validator samples the forged one with probability 1/3.
    assert 3 <= caught <= 20


def test_an_importer_with_the_sampled_verifier_rejects_the_forged_block(tmp_path, trained) -> None:
    _, built, job = trained
    forged = _forge_segment(job, built.block.body.proofs[0], segment=0)
    validator = open_chain(tmp_path / "v")
    validator.verifier = SampledVerifier(b"k" * 32, samples=job.num_segments)
    root = validator.state.root()
    with pytest.raises(SegmentFault):
        validator.import_block(Block(built.block.header, Body(built.block.body.extrinsics, (forged,))))
    assert validator.state.root() == root and validator.best_number == 0
    validator.import_block(built.block)
    validator.db.close()
