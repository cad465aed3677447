"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in chain/proofs.py: the declared proof length (a fee input, so consensus data), the
proofs root's dependence on every (index, transcript root), and the specific reason of each
refused proof. Forged proofs keep their transcript root consistent (entries recomputed), so
only the one rule under test is broken.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``x_compute_proof__mutmut_13``, ``_15`` and ``x_verify_proof_links__mutmut_27``, ``_29``:
  ``np.asarray(w, dtype=None)`` instead of ``dtype="<f4"``. The runtime's weights and
  checkpoints are float32 arrays already (TrainingJob stores its weights as float32, and
  run_job's checkpoints are copies of them: ml_runtime/job.py), and on a little-endian host
  (x86-64, AArch64: every platform numba targets here) their native bytes are the "<f4"
  bytes, so no byte differs.
- ``x_compute_proof__mutmut_22``: ``diverged_segment`` is written even for a finite run; a
  finite JobResult's ``diverged_segment`` is None (its default, ml_runtime/job.py), so the
  proof is the same.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from consensuskit import train_on_dev

import ml_runtime
from chain.codec import encode
from chain.errors import BlockError
from chain.proofs import (
    FullReexecution,
    TrainingProof,
    compute_entries,
    compute_proof_length,
    compute_proofs_root,
    verify_divergence,
    verify_proof_links,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    author, built, job = train_on_dev(tmp_path_factory.mktemp("trained") / "a")
    yield built.block.body.proofs[0], job
    author.db.close()


def _rerooted(proof: TrainingProof, **changes) -> TrainingProof:
    """``proof`` changed, with its transcript root recomputed so the links still hold."""
    changed = msgspec.structs.replace(proof, **changes)
    return msgspec.structs.replace(changed, transcript_root=ml_runtime.merkle_root(compute_entries(changed)))


def test_the_declared_proof_length_is_pinned_and_bounds_a_real_proof(trained) -> None:
    proof, job = trained
    # 1 + 5 + 5 + (S + 1)(5 + 4P) + 5 + 5(S + 1) + 34 + 5 (the docstring's layout)
    assert compute_proof_length(0, 0) == 65
    assert compute_proof_length(1, 0) == 69
    assert compute_proof_length(3, 5) == 1 + 5 + 5 + 6 * 17 + 5 + 30 + 34 + 5
    assert len(encode(proof)) <= compute_proof_length(job.spec.param_count, job.num_segments)


def test_the_proofs_root_commits_to_each_index_and_transcript_root() -> None:
    a = TrainingProof(0, (), (), bytes(32))
    b = TrainingProof(1, (), (), bytes(32))
    c = TrainingProof(0, (), (), b"\x01" * 32)
    roots = {compute_proofs_root(p) for p in ([a], [b], [c], [a, b], [b, a])}
    assert len(roots) == 5
    assert compute_proofs_root([a]) == ml_runtime.compute_merkle_root([encode((0, bytes(32)))])


def test_each_broken_link_is_refused_with_its_cause(trained) -> None:
    proof, job = trained
    s = job.num_segments
    size = job.spec.param_count * 4
    cases = [
        (_rerooted(proof, diverged_segment=s), f"training proof #0: diverged segment {s} of {s}$"),
        (msgspec.structs.replace(proof, losses=proof.losses[:-1]), f"{s + 1} checkpoints and {s} losses, expected {s + 1} of each"),
        (msgspec.structs.replace(proof, checkpoints=proof.checkpoints[:-1]), f"{s} checkpoints and {s + 1} losses, expected {s + 1} of each"),
        (_rerooted(proof, checkpoints=(*proof.checkpoints[:2], proof.checkpoints[2] + bytes(4), *proof.checkpoints[3:])),
         f"checkpoint 2 is {size + 4} bytes, expected {size}"),
        (_rerooted(proof, checkpoints=(proof.checkpoints[1], *proof.checkpoints[1:])), "checkpoint 0 is not the model's on-chain weights"),
    ]
    for forged, message in cases:
        with pytest.raises(BlockError, match=message):
            verify_proof_links(job, forged)
        with pytest.raises(BlockError, match=message):
            FullReexecution().verify(job, forged, bytes(32))
    assert verify_proof_links(job, proof) == compute_entries(proof)


def test_a_faked_divergence_is_refused_for_that_reason(trained) -> None:
    """An honest run cut after checkpoint 1 and claimed to diverge in segment 1, root
    recomputed: the links hold, and only re-running segment 1 shows the lie."""
    proof, job = trained
    cut = _rerooted(proof, checkpoints=proof.checkpoints[:2], losses=proof.losses[:2], diverged_segment=1)
    verify_proof_links(job, cut)
    with pytest.raises(BlockError, match=r"^training proof #0: segment 1 does not diverge as claimed$"):
        FullReexecution().verify(job, cut, bytes(32))


def test_a_divergence_claimed_from_a_non_finite_checkpoint_is_refused(trained) -> None:
    """Checkpoint 1 forged to hold an infinity, claimed to diverge in segment 1, root
    recomputed: re-running segment 1 refuses the checkpoint itself."""
    proof, job = trained
    w = np.frombuffer(proof.checkpoints[1], "<f4").copy()
    w[0] = np.inf
    cut = _rerooted(proof, checkpoints=(proof.checkpoints[0], w.tobytes()), losses=proof.losses[:2], diverged_segment=1)
    verify_proof_links(job, cut)
    with pytest.raises(BlockError, match=r"^training proof #0: diverged segment 1: checkpoint contains NaN or infinity$"):
        verify_divergence(job, cut)
