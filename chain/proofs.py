"""Training proofs: what a block body carries for each TRAIN call, and how an importer checks it.

A proof holds every checkpoint's weights (float32 LE bytes) and the mean batch loss of each
transcript entry (float32 bits); the transcript entries and their Merkle root follow from
them. The header's POL_ commitment holds the root over (extrinsic index, transcript root) of
all proofs in the block, so a header alone pins every checkpoint.

How much of a proof an importer re-executes is the consensus layer's choice, behind the
:class:`TranscriptVerifier` interface; :class:`FullReexecution` (re-run every segment) is the
default until proof-of-learning sampling is plugged in.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

import ml_runtime
from chain.codec import U32, Hash32, Wire, encode
from chain.errors import BlockError


class TrainingProof(Wire, frozen=True):
    """A job's transcript as the block carries it.

    If training diverged (a loss or weight became non-finite in segment d), the transcript
    stops at checkpoint d and ``diverged_segment`` is d: the call fails, and validators
    confirm the claim by re-running segment d, so an author cannot fake a divergence to
    skip the work.
    """

    extrinsic_index: U32
    checkpoints: tuple[bytes, ...]
    losses: tuple[U32, ...]
    transcript_root: Hash32
    diverged_segment: U32 | None = None

    def get_checkpoint(self, j: int) -> np.ndarray:
        return np.frombuffer(self.checkpoints[j], dtype="<f4").astype(np.float32)


def compute_proof_length(param_count: int, segments: int) -> int:
    """An upper bound of the encoded size of a proof for ``segments`` segments of a model with
    ``param_count`` parameters: what a TRAIN call declares, and pays for, before it runs.

    The MessagePack encoding (chain/codec.py) of a TrainingProof is a 5-element array (1 byte)
    of: the extrinsic index (at most 5 bytes as a u32); the checkpoints, an array header (at
    most 5 bytes) and ``segments + 1`` bin strings of ``4 * param_count`` bytes, each with a
    header of at most 5 bytes (bin32); the losses, an array header and ``segments + 1`` u32s
    of at most 5 bytes each; the transcript root (bin8: 2 + 32 bytes); the diverged segment
    (at most 5 bytes). A diverged proof has fewer checkpoints, so the bound covers it too.
    """
    count = segments + 1
    return 1 + 5 + 5 + count * (5 + 4 * param_count) + 5 + 5 * count + 34 + 5


def compute_proof(index: int, result: ml_runtime.JobResult) -> TrainingProof:
    """The proof an author puts in the block for one job result."""
    return TrainingProof(
        index,
        tuple(np.asarray(c, dtype="<f4").tobytes() for c in result.checkpoints),
        tuple(int(np.float32(e.loss).view(np.uint32)) for e in result.transcript.entries),
        result.transcript.root,
        None if result.finite else result.diverged_segment,
    )


def compute_entries(proof: TrainingProof) -> tuple[ml_runtime.TranscriptEntry, ...]:
    """The transcript entries a proof implies (hash of each checkpoint, its loss)."""
    return tuple(
        ml_runtime.TranscriptEntry(j, ml_runtime.hash_weights(proof.get_checkpoint(j)), float(np.uint32(bits).view(np.float32)))
        for j, bits in enumerate(proof.losses)
    )


def compute_proofs_root(proofs: tuple[TrainingProof, ...] | list[TrainingProof]) -> bytes:
    """The root the header commits to: a Merkle root over (extrinsic index, transcript root)."""
    return ml_runtime.compute_merkle_root([encode((p.extrinsic_index, p.transcript_root)) for p in proofs])


def verify_proof_links(job: ml_runtime.TrainingJob, proof: TrainingProof) -> tuple[ml_runtime.TranscriptEntry, ...]:
    """The checks every importer makes on every proof, before any re-execution.

    Shape (one checkpoint and one loss per entry), the first checkpoint equals the on-chain
    weights the job starts from, each checkpoint decodes to the model's parameter count, and
    the entries hash to the claimed transcript root. Returns the entries.
    """
    diverged = proof.diverged_segment
    if diverged is not None and diverged >= job.num_segments:
        raise BlockError(f"training proof #{proof.extrinsic_index}: diverged segment {diverged} of {job.num_segments}")
    count = job.num_segments + 1 if diverged is None else diverged + 1
    if len(proof.checkpoints) != count or len(proof.losses) != count:
        raise BlockError(
            f"training proof #{proof.extrinsic_index}: {len(proof.checkpoints)} checkpoints and "
            f"{len(proof.losses)} losses, expected {count} of each"
        )
    size = job.spec.param_count * 4
    for j, raw in enumerate(proof.checkpoints):
        if len(raw) != size:
            raise BlockError(f"training proof #{proof.extrinsic_index}: checkpoint {j} is {len(raw)} bytes, expected {size}")
    if proof.checkpoints[0] != np.asarray(job.weights, dtype="<f4").tobytes():
        raise BlockError(f"training proof #{proof.extrinsic_index}: checkpoint 0 is not the model's on-chain weights")
    entries = compute_entries(proof)
    root = ml_runtime.merkle_root(entries)
    if root != proof.transcript_root:
        raise BlockError(f"training proof #{proof.extrinsic_index}: entries hash to {root.hex()}, the proof claims {proof.transcript_root.hex()}")
    return entries


def verify_divergence(job: ml_runtime.TrainingJob, proof: TrainingProof) -> None:
    """Re-run the segment a proof says diverged; BlockError unless it really does."""
    d = proof.diverged_segment
    if d is None:
        return
    try:
        ml_runtime.recompute_segment(job, d, proof.get_checkpoint(d))
    except ml_runtime.NonFiniteWeights:
        return
    except ml_runtime.MLRuntimeError as exc:
        raise BlockError(f"training proof #{proof.extrinsic_index}: diverged segment {d}: {exc}") from None
    raise BlockError(f"training proof #{proof.extrinsic_index}: segment {d} does not diverge as claimed")


class TranscriptVerifier(Protocol):
    """Decides whether an author's training proof is to be believed (raises BlockError if not)."""

    def verify(self, job: ml_runtime.TrainingJob, proof: TrainingProof, job_seed: bytes) -> None: ...


class FullReexecution:
    """Re-run every segment and compare bits: the strongest and the slowest verifier."""

    def verify(self, job: ml_runtime.TrainingJob, proof: TrainingProof, job_seed: bytes) -> None:
        entries = verify_proof_links(job, proof)
        for j in range(len(entries) - 1):
            try:
                ml_runtime.verify_segment(job, j, proof.get_checkpoint(j), entries[j + 1])
            except ml_runtime.MLRuntimeError as exc:
                raise BlockError(f"training proof #{proof.extrinsic_index}: segment {j}: {exc}") from None
        verify_divergence(job, proof)
