"""Proof-of-learning verification by sampling: what a validator checks on every import.

An importing validator does not re-run every segment of every training job. For each TRAIN
call the block ran (a :class:`~chain.proofs.TrainingClaim`: the job rebuilt from the parent
state and the author's :class:`~chain.proofs.TrainingResult`), it asks the checkpoint
source once for the openings it needs, and checks, cheapest first:

1. the links: entry 0 commits to the model's on-chain weights with loss +0.0, and entry
   n-1 to the new weights the block stores (two Merkle paths, no weights fetched);
2. a claimed divergence: segment d re-run from checkpoint d must diverge;
3. ``m`` sampled segments: segment j re-run from checkpoint j must give entry j+1, bit for
   bit (checkpoint j fetched with its weights, entry j+1 without).

The sample is drawn by ml_runtime.sample_segments from a PRF keyed with the validator's own
secret and bound to the block hash and the extrinsic index (hashed together, so two jobs of
one block get independent samples and no choice of index or block maps onto another's), so
the author cannot know it when it seals the block (Jia et al., "Proof-of-Learning:
Definitions and Practice", IEEE S&P 2021, §4: verification by re-running a random subset
of the update steps). Its cost is about m/S of the author's training work, on every core
(ml_runtime.recompute_segments). An author who forges k of a job's S segments escapes one
validator with probability C(S-k, m) / C(S, m), and V validators sampling independently with
probability (C(S-k, m) / C(S, m))^V.

A mismatch raises :class:`~chain.errors.FraudFound` carrying a
:class:`~chain.fraud.FraudProof` any node checks by re-running at most one segment; openings
that cannot be obtained raise :class:`~chain.errors.CheckpointsUnavailable` (the block is
neither accepted nor judged). ``chain.proofs.FullReexecution`` is the auditor's verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import ml_runtime
from chain.crypto import blake2_256
from chain.errors import BlockError, CheckpointsUnavailable, FraudFound
from chain.fraud import (
    FAULT_DIVERGENCE,
    FAULT_END,
    FAULT_SEGMENT,
    FAULT_START,
    compute_end_fault,
    compute_entry_count,
    compute_entry_fault,
    compute_fraud_proof,
    compute_segment_fault,
    compute_start_fault,
)
from chain.proofs import CheckpointSource, Opening, TrainingClaim, verify_opening

if TYPE_CHECKING:
    from chain.block import Block

_SAMPLE_DOMAIN: Final = b"polchain/pol/sample"


def compute_sample_binding(block_hash: bytes, extrinsic_index: int) -> bytes:
    """The 32 bytes a validator's sample PRF is bound to for one job: blake2_256 over a domain
    tag, the block hash and the extrinsic index (u32 LE)."""
    return blake2_256(_SAMPLE_DOMAIN + block_hash + extrinsic_index.to_bytes(4, "little"))


def compute_sample(secret: bytes, block_hash: bytes, extrinsic_index: int, finished: int, samples: int) -> tuple[int, ...]:
    """The segments a validator with ``secret`` re-runs of a job with ``finished`` segments
    claimed finite (sorted, distinct; all of them if ``samples`` >= ``finished``)."""
    if finished == 0:
        return ()
    return ml_runtime.sample_segments(secret, compute_sample_binding(block_hash, extrinsic_index), finished, samples)


class SampledVerifier:
    """The validator's verifier (module docstring): links, divergence, ``samples`` segments a job."""

    def __init__(self, secret: bytes, samples: int = 4) -> None:
        if not isinstance(secret, bytes) or not 16 <= len(secret) <= 64:
            raise ValueError("a validator secret is 16..64 bytes")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError("a sampled verifier re-runs at least one segment per job")
        self.secret = secret
        self.samples = samples

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        """Check every claim; return (extrinsic index, opening) for every opening fetched."""
        fetched: list[tuple[int, Opening]] = []
        for claim in claims:
            openings = self._verify_claim(block, block_hash, claim, source)
            fetched.extend((claim.extrinsic_index, openings[j]) for j in sorted(openings))
        return fetched

    def _verify_claim(
        self, block: Block, block_hash: bytes, claim: TrainingClaim, source: CheckpointSource
    ) -> dict[int, Opening]:
        job, result, index = claim.job, claim.result, claim.extrinsic_index
        n = compute_entry_count(job, result.diverged_segment)
        sample = compute_sample(self.secret, block_hash, index, n - 1, self.samples)
        wanted = {0: False, n - 1: result.diverged_segment is not None}
        for j in sample:
            wanted[j] = True
            wanted.setdefault(j + 1, False)
        openings = _fetch(source, block_hash, claim, wanted)
        where = f"block {block_hash.hex()} extrinsic #{index}"

        def fraud(kind: int, segment: int, fault: str, used: Sequence[Opening]) -> FraudFound:
            return FraudFound(f"{where}: {fault}", compute_fraud_proof(block, claim, kind, segment, used))

        fault = compute_start_fault(job, openings[0])
        if fault is not None:
            raise fraud(FAULT_START, 0, fault, [openings[0]])
        fault = compute_end_fault(result.commitment(), openings[n - 1])
        if fault is not None:
            raise fraud(FAULT_END, n - 1, fault, [openings[n - 1]])
        d = result.diverged_segment
        if d is not None:
            fault = compute_segment_fault(job, d, openings[d].get_weights(), None)
            if fault is not None:
                raise fraud(FAULT_DIVERGENCE, d, fault, [openings[d]])
        checkpoints = [openings[j].get_weights() for j in sample]
        try:
            reruns = ml_runtime.recompute_segments(job, sample, checkpoints)
        except ml_runtime.MLRuntimeError as exc:
            failure: ml_runtime.MLRuntimeError | None = exc
        else:
            failure = None
        for position, j in enumerate(sample):
            # A segment that raised (diverged, a non-finite checkpoint) is re-run alone to say
            # which; the rest compare their results with the claimed entries.
            if failure is None:
                fault = compute_entry_fault(j, reruns[position][0], openings[j + 1])
            else:
                fault = compute_segment_fault(job, j, checkpoints[position], openings[j + 1])
            if fault is not None:
                raise fraud(FAULT_SEGMENT, j, fault, [openings[j], openings[j + 1]])
        if failure is not None:
            raise BlockError(f"{where}: re-running the sampled segments failed: {failure}")
        return openings


def _fetch(source: CheckpointSource, block_hash: bytes, claim: TrainingClaim, wanted: dict[int, bool]) -> dict[int, Opening]:
    """The wanted openings from ``source`` in one request, each checked again against the
    result (a source that hands over something else is unavailable, not evidence)."""
    result = claim.result
    openings = source.fetch(block_hash, result, sorted(wanted.items()))
    for j, with_weights in wanted.items():
        opening = openings.get(j)
        if opening is None or opening.index != j:
            raise CheckpointsUnavailable(f"extrinsic #{claim.extrinsic_index}: the source did not give entry {j}")
        try:
            verify_opening(result, opening, need_weights=with_weights)
        except BlockError as exc:
            raise CheckpointsUnavailable(f"extrinsic #{claim.extrinsic_index}: the source gave a bad entry {j}: {exc}") from None
    return openings
