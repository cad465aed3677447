"""Sampled proof-of-learning verification and fraud proofs, on real blocks."""

from __future__ import annotations

import dataclasses
from math import comb

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


def _binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The narrowest [lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2, X ~ B(n, p)."""
    pmf = [comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    lo = next(j for j in range(n + 1) if sum(pmf[: j + 1]) > alpha / 2)
    hi = next(j for j in range(n, -1, -1) if sum(pmf[j:]) > alpha / 2)
    return lo, hi


def test_sampling_catches_a_forgery_with_the_expected_frequency(trained) -> None:
    """Validators with independent secrets catch the forgery at the rate sampling predicts.

    Forging checkpoint 5 makes two segments re-run wrong: segment 4 (its output is the
    forged checkpoint) and segment 5 (its input is; entry 5 was recomputed to match, so the
    link checks pass, but re-running from it does not reach the committed checkpoint 6).
    With k = 2 faulty segments of S = 6 and m = 2 distinct ones sampled, a validator
    misses both with probability C(S-k, m) / C(S, m) = C(4, 2) / C(6, 2) = 6/15, so it
    catches the forgery with p = 1 - 6/15 = 0.6. Over n = 400 validators the count is
    Binomial(400, 0.6) (mean 240, sd 9.8); the bounds are its exact central interval with
    tails of 0.5e-9 each, [179, 298] (a false failure once in 10**9 runs). The bits are fixed,
    so the run is deterministic anyway; the bounds say what any correct sampler must meet.
    They exclude the 1/3 of sampling one segment (m = 1) or of a single faulty segment
    (mean 133), and "always" or "never".
    """
    _, built, job = trained
    forged = _forge_segment(job, built.block.body.proofs[0], segment=4)
    segments, sampled, faulty, n = job.num_segments, 2, 2, 400
    assert segments == 6
    p = 1 - comb(segments - faulty, sampled) / comb(segments, sampled)
    lo, hi = _binomial_bounds(n, p, alpha=1e-9)
    assert (lo, hi) == (179, 298)
    caught = 0
    for i in range(n):
        try:
            SampledVerifier(i.to_bytes(2, "little") * 16, samples=sampled).verify(job, forged, bytes(32))
        except SegmentFault as fault:
            assert fault.proof.segment in (4, 5)
            caught += 1
    assert lo <= caught <= hi, f"{caught} of {n} validators caught the forgery; expected {n * p:.0f}"


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
