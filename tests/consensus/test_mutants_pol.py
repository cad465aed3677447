"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/pol.py: the sampled verifier's parameters, a job that diverged in its
first segment, a faked divergence, the fraud proof's fields and the bracket check. Forged
transcripts are told consistently (tests/forgery.py: the author's openings and transcript
root recomputed), so only re-running a segment shows the lie.

(Ported to the result/opening API of issue 9; the sampled verifier itself is rewritten on
the polverify branch, whose mutation run will refresh the survivors' list.)
"""

from __future__ import annotations

import dataclasses

import pytest
from consensuskit import train_on_dev

from chain.errors import BlockError
from consensus.errors import InvalidFraudProof
from consensus.pol import SampledVerifier, SegmentFault, verify_fraud_proof
from tests.forgery import forged_claim

SEED = bytes(range(32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    author, built, job = train_on_dev(tmp_path_factory.mktemp("trained") / "a")
    yield built, job
    author.db.close()


def test_sampled_verifier_parameters() -> None:
    assert SampledVerifier(b"k" * 32).samples == 4
    assert SampledVerifier(b"k" * 32, samples=1).samples == 1
    with pytest.raises(ValueError, match=r"^a sampled verifier re-runs at least one segment per job$"):
        SampledVerifier(b"k" * 32, samples=0)


def test_a_job_that_diverged_in_its_first_segment_is_accepted(tmp_path) -> None:
    """Nothing finished, so nothing is sampled; the divergence itself is re-run."""
    author, built, job = train_on_dev(tmp_path / "d", lr=1e30)
    result = built.block.body.results[0]
    assert result.diverged_segment == 0 and len(result.losses) == 1
    claim, source = forged_claim(job, "honest", 0)
    assert claim.result == result
    fetched = SampledVerifier(b"k" * 32, samples=3).verify_block(built.block, SEED, [claim], source)
    assert [o.index for _, o in fetched] == [0]
    author.db.close()


def test_a_faked_divergence_is_refused_by_the_sampled_verifier(trained) -> None:
    built, job = trained
    claim, source = forged_claim(job, "divergence", 2)
    with pytest.raises(BlockError, match=r"^training result #0: segment 2 does not diverge as claimed$"):
        SampledVerifier(b"k" * 32, samples=6).verify_block(built.block, SEED, [claim], source)


def test_a_segment_fault_names_the_segment_and_carries_the_block(trained) -> None:
    built, job = trained
    for segment in range(1, job.num_segments):
        claim, source = forged_claim(job, "segment", segment)  # checkpoint `segment` forged
        with pytest.raises(SegmentFault, match=rf"^training result #0: segment {segment - 1}: ") as caught:
            SampledVerifier(b"k" * 32, samples=job.num_segments).verify_block(built.block, SEED, [claim], source)
        fraud = caught.value.proof
        assert (fraud.block_hash, fraud.extrinsic_index, fraud.segment) == (SEED, 0, segment - 1)
        verify_fraud_proof(job, claim.result.transcript_root, fraud)  # the fault at every position checks
        if segment == 1:
            # entries that do not bracket the segment: refused for that, whichever is off
            for start, claimed in ((fraud.claimed, fraud.claimed), (fraud.start, fraud.start)):
                bad = dataclasses.replace(fraud, start=start, claimed=claimed)
                with pytest.raises(InvalidFraudProof, match=r"^entries (\d), (\d) do not bracket segment 0$"):
                    verify_fraud_proof(job, claim.result.transcript_root, bad)
