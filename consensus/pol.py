"""Proof-of-learning verification by sampling, and fraud proofs.

An importing validator does not re-run every segment of every training job: the block's
execution has checked each result's shape (chain.pallets.training); the verifier fetches,
through a CheckpointSource, the openings its sample needs (each verified against the
committed transcript root), then re-runs ``m`` segments chosen by
a PRF keyed with its own secret and the block hash, so the author cannot know which
segments will be checked (Jia et al., "Proof-of-Learning: Definitions and Practice", IEEE
S&P 2021, §4: verification by re-running a random subset of the update steps). Its cost is
about m/S of the author's training work. An author who forges k of S segments escapes one
validator with probability C(S-k, m) / C(S, m), and every validator samples independently.

A mismatch yields a :class:`FraudProof`: the block hash, the extrinsic, the segment, the
checkpoint it starts from, the committed entries j and j+1 with their Merkle paths to the
transcript root. Anyone holding the job (the chain state at the block's parent) and the
transcript root (committed by the block header through the results root) checks it by
re-running that one segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import ml_runtime
from chain.errors import BlockError, CheckpointsUnavailable
from chain.proofs import CheckpointSource, Opening, TrainingClaim, verify_divergence
from consensus.errors import InvalidFraudProof

if TYPE_CHECKING:
    from chain.block import Block


@dataclass(frozen=True, slots=True)
class FraudProof:
    """Evidence that segment ``segment`` of a block's training proof does not re-run as claimed."""

    block_hash: bytes
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

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        fetched: list[tuple[int, Opening]] = []
        for claim in claims:
            fetched.extend((claim.extrinsic_index, o) for o in self._verify_claim(block_hash, claim, source))
        return fetched

    def _verify_claim(self, block_hash: bytes, claim: TrainingClaim, source: CheckpointSource) -> list[Opening]:
        job, result = claim.job, claim.result
        where = f"training result #{result.extrinsic_index}"
        finished = len(result.losses) - 1  # segments that ran to a finite checkpoint
        sample = ml_runtime.sample_segments(self.secret, block_hash, finished, self.samples) if finished else ()
        wanted: dict[int, bool] = {}
        for j in sample:
            wanted[j] = True
            wanted.setdefault(j + 1, False)
        if result.diverged_segment is not None:
            wanted[result.diverged_segment] = True
        got = source.fetch(block_hash, result, sorted(wanted.items()))
        missing = [j for j in sorted(wanted) if j not in got]
        if missing:
            raise CheckpointsUnavailable(f"{where}: checkpoints {missing} could not be obtained")
        if 0 in got and got[0].weights is not None and got[0].weights != np.asarray(job.weights, dtype="<f4").tobytes():
            raise BlockError(f"{where}: checkpoint 0 is not the model's on-chain weights")
        last = len(result.losses) - 1
        if last in got and got[last].weights_hash != result.commitment().weights_hash:
            raise BlockError(f"{where}: the result's weights are not checkpoint {last} of its transcript")
        if result.diverged_segment is not None:
            verify_divergence(job, result, got[result.diverged_segment])
        for j in sample:
            start, end = got[j], got[j + 1]
            try:
                ml_runtime.verify_segment(job, j, start.get_weights(), end.entry())
            except ml_runtime.MLRuntimeError as exc:
                evidence = FraudProof(
                    block_hash, result.extrinsic_index, j, start.weights or b"", start.entry(), end.entry(),
                    start.path, end.path,
                )
                raise SegmentFault(f"{where}: segment {j}: {exc}", evidence) from None
        return [got[j] for j in sorted(got)]


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
