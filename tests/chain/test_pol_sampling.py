"""Sampled proof-of-learning verification and fraud proofs, on real jobs."""

from __future__ import annotations

import dataclasses
from math import comb

import pytest
from chainkit import ALICE, BOB, open_chain, sign, train_call

import ml_runtime
from chain.pallets.training import compute_job_at
from consensus.errors import InvalidFraudProof
from consensus.pol import FraudProof, SampledVerifier, SegmentFault, verify_fraud_proof
from tests.forgery import forged_claim, forging_trainer

BLOCK = bytes(32)  # the block hash the samples are keyed with


@pytest.fixture
def trained(tmp_path):
    author = open_chain(tmp_path / "a")
    xt = sign(author, BOB, train_call(steps=60, segment=10), 0)
    # The job as the importer reconstructs it from the parent state.
    job, _, _ = compute_job_at(author.state.overlay(), author.config, xt.call, author.best_hash, xt.hash())
    built = author.build_block([xt], ALICE, slot=1)
    yield author, built, job
    author.db.close()


def test_sampling_accepts_an_honest_result(trained) -> None:
    _, built, job = trained
    claim, source = forged_claim(job, "honest", 0)
    fetched = SampledVerifier(b"v" * 32, samples=2).verify_block(built.block, BLOCK, [claim], source)
    assert fetched and all(index == 0 for index, _ in fetched)


def test_a_forged_segment_is_caught_when_sampled_and_its_fraud_proof_checks(trained) -> None:
    _, _, job = trained
    claim, source = forged_claim(job, "segment", 3)  # checkpoint 3 forged: segments 2 and 3 fail
    honest, _ = forged_claim(job, "honest", 0)
    with pytest.raises(SegmentFault) as caught:
        SampledVerifier(b"v" * 32, samples=job.num_segments).verify_block(None, BLOCK, [claim], source)  # type: ignore[arg-type]
    fraud = caught.value.proof
    assert fraud.segment == 2
    verify_fraud_proof(job, claim.result.transcript_root, fraud)  # anyone re-running segment 2 sees the fault
    with pytest.raises(InvalidFraudProof, match="not committed"):
        verify_fraud_proof(job, honest.result.transcript_root, fraud)  # the honest root
    tampered = dataclasses.replace(fraud, checkpoint=source.openings[1].weights)
    with pytest.raises(InvalidFraudProof, match="not the one committed"):
        verify_fraud_proof(job, claim.result.transcript_root, tampered)


def test_a_fraud_proof_against_an_honest_segment_is_refused(trained) -> None:
    _, _, job = trained
    claim, source = forged_claim(job, "honest", 0)
    start, end = source.openings[3], source.openings[4]
    honest = FraudProof(BLOCK, 0, 3, start.weights or b"", start.entry(), end.entry(), start.path, end.path)
    with pytest.raises(InvalidFraudProof, match="no fault"):
        verify_fraud_proof(job, claim.result.transcript_root, honest)


def _binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The narrowest [lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2, X ~ B(n, p)."""
    pmf = [comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    lo = next(j for j in range(n + 1) if sum(pmf[: j + 1]) > alpha / 2)
    hi = next(j for j in range(n, -1, -1) if sum(pmf[j:]) > alpha / 2)
    return lo, hi


def test_sampling_catches_a_forgery_with_the_expected_frequency(trained) -> None:
    """Validators with independent secrets catch the forgery at the rate sampling predicts.

    Forging checkpoint 5 makes two segments re-run wrong: segment 4 (its output is the
    forged checkpoint) and segment 5 (its input is; entry 5 was recomputed to match, so
    its opening verifies, but re-running from it does not reach the committed checkpoint 6).
    With k = 2 faulty segments of S = 6 and m = 2 distinct ones sampled, a validator
    misses both with probability C(S-k, m) / C(S, m) = C(4, 2) / C(6, 2) = 6/15, so it
    catches the forgery with p = 1 - 6/15 = 0.6. Over n = 400 validators the count is
    Binomial(400, 0.6) (mean 240, sd 9.8); the bounds are its exact central interval with
    tails of 0.5e-9 each, [179, 298] (a false failure once in 10**9 runs). The bits are fixed,
    so the run is deterministic anyway; the bounds say what any correct sampler must meet.
    They exclude the 1/3 of sampling one segment (m = 1) or of a single faulty segment
    (mean 133), and "always" or "never".
    """
    _, _, job = trained
    claim, source = forged_claim(job, "segment", 5)
    segments, sampled, faulty, n = job.num_segments, 2, 2, 400
    assert segments == 6
    p = 1 - comb(segments - faulty, sampled) / comb(segments, sampled)
    lo, hi = _binomial_bounds(n, p, alpha=1e-9)
    assert (lo, hi) == (179, 298)
    caught = 0
    for i in range(n):
        try:
            SampledVerifier(i.to_bytes(2, "little") * 16, samples=sampled).verify_block(None, BLOCK, [claim], source)  # type: ignore[arg-type]
        except SegmentFault as fault:
            assert fault.proof.segment in (4, 5)
            caught += 1
    assert lo <= caught <= hi, f"{caught} of {n} validators caught the forgery; expected {n * p:.0f}"


def test_an_importer_with_the_sampled_verifier_rejects_the_forged_block(tmp_path) -> None:
    from chain.transcripts import LocalSource

    forger = open_chain(tmp_path / "f", trainer=forging_trainer("segment", 1))
    built = forger.build_block([sign(forger, BOB, train_call(steps=60, segment=10), 0)], ALICE, slot=1)
    validator = open_chain(tmp_path / "v", verifier=SampledVerifier(b"k" * 32, samples=6))
    root = validator.state.root()
    with pytest.raises(SegmentFault, match=r"^training result #0: segment 0: "):
        validator.import_block(built.block, LocalSource(forger.transcripts))
    assert validator.state.root() == root and validator.best_number == 0
    validator.db.close()
    forger.db.close()


def test_job_rebuilt_outside_a_dispatch_is_the_dispatch_job(trained) -> None:
    _, built, job = trained
    assert job.num_segments == 6 and ml_runtime.run_job(job).transcript.root == built.block.body.results[0].transcript_root
