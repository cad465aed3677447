"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/pol.py: the sampled verifier's parameters, a job that diverged in its
first segment, a faked divergence, the fraud proof's fields and the bracket check. Forged
transcripts keep their root consistent (entries recomputed), so only re-running a segment
shows the lie.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``xǁSampledVerifierǁverify__mutmut_28`` and ``_33``: verify_segment without
  ``previous_entry`` skips the check that checkpoint j hashes to entry j. Here the entries
  are computed from the proof's own checkpoints (verify_proof_links -> compute_entries), so
  that check cannot fail: the mutant refuses exactly what the original refuses.
"""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from consensuskit import train_on_dev

import ml_runtime
from chain.errors import BlockError
from chain.proofs import compute_entries
from consensus.errors import InvalidFraudProof
from consensus.pol import SampledVerifier, SegmentFault, verify_fraud_proof

SEED = bytes(range(32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    author, built, job = train_on_dev(tmp_path_factory.mktemp("trained") / "a")
    yield built.block.body.proofs[0], job
    author.db.close()


def _forge_output(proof, segment: int):
    """Checkpoint segment+1 altered, entries and root recomputed: segment re-runs wrong."""
    cps = list(proof.checkpoints)
    raw = bytearray(cps[segment + 1])
    raw[13] ^= 0x40
    cps[segment + 1] = bytes(raw)
    forged = msgspec.structs.replace(proof, checkpoints=tuple(cps))
    return msgspec.structs.replace(forged, transcript_root=ml_runtime.merkle_root(compute_entries(forged)))


def test_sampled_verifier_parameters() -> None:
    assert SampledVerifier(b"k" * 32).samples == 4
    assert SampledVerifier(b"k" * 32, samples=1).samples == 1
    with pytest.raises(ValueError, match=r"^a sampled verifier re-runs at least one segment per job$"):
        SampledVerifier(b"k" * 32, samples=0)


def test_a_job_that_diverged_in_its_first_segment_is_accepted(tmp_path) -> None:
    """Nothing finished, so nothing is sampled; the divergence itself is re-run."""
    author, built, job = train_on_dev(tmp_path / "d", lr=1e30)
    proof = built.block.body.proofs[0]
    assert proof.diverged_segment == 0 and len(proof.checkpoints) == 1
    SampledVerifier(b"k" * 32, samples=3).verify(job, proof, SEED)
    author.db.close()


def test_a_faked_divergence_is_refused_by_the_sampled_verifier(trained) -> None:
    proof, job = trained
    cut = msgspec.structs.replace(proof, checkpoints=proof.checkpoints[:3], losses=proof.losses[:3], diverged_segment=2)
    cut = msgspec.structs.replace(cut, transcript_root=ml_runtime.merkle_root(compute_entries(cut)))
    with pytest.raises(BlockError, match=r"^training proof #0: segment 2 does not diverge as claimed$"):
        SampledVerifier(b"k" * 32, samples=6).verify(job, cut, SEED)


def test_a_segment_fault_names_the_segment_and_carries_the_job(trained) -> None:
    proof, job = trained
    for segment in range(job.num_segments):
        forged = _forge_output(proof, segment)
        with pytest.raises(SegmentFault, match=rf"^training proof #0: segment {segment}: ") as caught:
            SampledVerifier(b"k" * 32, samples=job.num_segments).verify(job, forged, SEED)
        fraud = caught.value.proof
        assert (fraud.job_seed, fraud.extrinsic_index, fraud.segment) == (SEED, 0, segment)
        verify_fraud_proof(job, forged.transcript_root, fraud)  # the fault at every position checks
        if segment == 0:
            # entries that do not bracket the segment: refused for that, whichever is off
            for start, claimed in ((fraud.claimed, fraud.claimed), (fraud.start, fraud.start)):
                bad = dataclasses.replace(fraud, start=start, claimed=claimed)
                with pytest.raises(InvalidFraudProof, match=r"^entries (\d), (\d) do not bracket segment 0$"):
                    verify_fraud_proof(job, forged.transcript_root, bad)
