"""Proof-of-learning verification by sampling, and fraud proofs.

An importing validator does not re-run every segment of every training job: it checks the
transcript's links (shape, first checkpoint = the on-chain weights, entries hashed from the
checkpoints, their Merkle root = the committed root), then re-runs ``m`` segments chosen by
a PRF keyed with its own secret and the job seed, so the author cannot know which
segments will be checked (Jia et al., "Proof-of-Learning: Definitions and Practice", IEEE
S&P 2021, §4: verification by re-running a random subset of the update steps). Its cost is
about m/S of the author's training work. An author who forges k of S segments escapes one
validator with probability C(S-k, m) / C(S, m), and every validator samples independently.

A mismatch yields a :class:`FraudProof`: the job seed, the extrinsic, the segment, the
checkpoint it starts from, the committed entries j and j+1 with their Merkle paths to the
transcript root. Anyone holding the job (the chain state at the block's parent) and the
transcript root (committed by the block header through the proofs root) checks it by
re-running that one segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import ml_runtime
from chain.errors import BlockError
from chain.proofs import TrainingProof, verify_divergence, verify_proof_links
from consensus.errors import InvalidFraudProof


@dataclass(frozen=True, slots=True)
class FraudProof:
    """Evidence that segment ``segment`` of a block's training proof does not re-run as claimed."""

    job_seed: bytes  # the training job's seed (blake2_256(parent hash || extrinsic hash))
    extrinsic_index: int
    segment: int
    checkpoint: bytes  # the float32 LE weights the segment starts from
    start: ml_runtime.TranscriptEntry  # committed entry j: the checkpoint's hash
    claimed: ml_runtime.TranscriptEntry  # committed entry j + 1: what the segment should give
    start_path: tuple[bytes, ...]
    claimed_path: tuple[bytes, ...]


class SegmentFault(BlockError):
    """A sampled segment did not re-run to the committed entry; ``proof`` says which."""

    def __init__(self, message: str, proof: FraudProof) -> None:
        super().__init__(message)
        self.proof = proof


class SampledVerifier:
    """The consensus verifier: links always, then ``samples`` segments per job chosen secretly."""

    def __init__(self, secret: bytes, samples: int = 4) -> None:
        if samples < 1:
            raise ValueError("a sampled verifier re-runs at least one segment per job")
        self.secret = secret
        self.samples = samples

    def verify(self, job: ml_runtime.TrainingJob, proof: TrainingProof, job_seed: bytes) -> None:
        entries = verify_proof_links(job, proof)
        verify_divergence(job, proof)
        finished = len(entries) - 1  # segments that ran to a finite checkpoint
        sample = ml_runtime.sample_segments(self.secret, job_seed, finished, self.samples) if finished else ()
        for j in sample:
            try:
                ml_runtime.verify_segment(job, j, proof.get_checkpoint(j), entries[j + 1], entries[j])
            except ml_runtime.MLRuntimeError as exc:
                transcript = ml_runtime.Transcript.build(entries)
                evidence = FraudProof(
                    job_seed, proof.extrinsic_index, j, proof.checkpoints[j], entries[j], entries[j + 1],
                    ml_runtime.merkle_proof(transcript, j), ml_runtime.merkle_proof(transcript, j + 1),
                )
                raise SegmentFault(f"training proof #{proof.extrinsic_index}: segment {j}: {exc}", evidence) from None


def verify_fraud_proof(job: ml_runtime.TrainingJob, transcript_root: bytes, fraud: FraudProof) -> None:
    """Return if ``fraud`` shows a fault in the transcript under ``transcript_root``.

    Raises InvalidFraudProof if the evidence is not committed (a bad path, a checkpoint that is
    not entry j's) or if the segment re-runs to the committed entry (no fault).
    """
    count = job.num_segments + 1
    if fraud.start.index != fraud.segment or fraud.claimed.index != fraud.segment + 1:
        raise InvalidFraudProof(f"entries {fraud.start.index}, {fraud.claimed.index} do not bracket segment {fraud.segment}")
    try:
        ml_runtime.verify_merkle_proof(transcript_root, fraud.start, fraud.start_path, count)
        ml_runtime.verify_merkle_proof(transcript_root, fraud.claimed, fraud.claimed_path, count)
    except ml_runtime.MLRuntimeError as exc:
        raise InvalidFraudProof(f"the entries are not committed by the transcript root: {exc}") from None
    checkpoint = np.frombuffer(fraud.checkpoint, dtype="<f4").astype(np.float32)
    if ml_runtime.hash_weights(checkpoint) != fraud.start.weights_hash:
        raise InvalidFraudProof(f"the checkpoint is not the one committed in entry {fraud.segment}")
    try:
        ml_runtime.verify_segment(job, fraud.segment, checkpoint, fraud.claimed)
    except ml_runtime.MLRuntimeError:
        return  # the committed segment does not re-run to the committed entry: a fault
    raise InvalidFraudProof(
        f"segment {fraud.segment} of extrinsic #{fraud.extrinsic_index} re-runs to the committed entry: no fault"
    )
