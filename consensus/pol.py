"""Proof-of-learning verification by sampling: what a validator checks on every import.

An importing validator does not re-run every segment of every training job. For each TRAIN
call the block ran (a :class:`~chain.proofs.TrainingClaim`: the job rebuilt from the parent
state and the author's :class:`~chain.proofs.TrainingResult`), it asks the checkpoint
source once for every entry of the job, each segment's input checkpoint with its weights,
and checks, cheapest first:

1. the links: entry 0 commits to the model's on-chain weights with loss +0.0, and entry
   n-1 to the new weights the block stores (two Merkle paths, their weights not needed);
2. a claimed divergence: segment d re-run from checkpoint d must diverge;
3. ``m`` sampled segments: segment j re-run from checkpoint j must give entry j+1, bit for
   bit.

Why every checkpoint and not only the sample's: the request goes to the author first, and a
request naming the sample tells the author which validators would catch its forgery. Only
the author holds a forged segment's input checkpoint, so it refused exactly those (no fraud
proof without the checkpoint; withholding proves nothing), the others voted the block final,
and the refused ones then imported it under its finality proof: one forged segment of 32
with m = 4 went final in 95% of trials at 4 validators and always at 100, against the
analytic 67% and 2e-6 (an outside reviewer's finding, 2026-11-29). A request that is the same
for every validator leaves the author only refusals that do not depend on the sample, so
each validator that is served catches k forged segments of S with the probability below.
The price is bandwidth: the whole transcript, not m/S of it, reaches every validator (its
bytes are paid for at ``byte_fee``), and every validator then holds and serves all of it, so
the author's copy is no longer the only one. Polkadot's approval checking makes the same
choice: a block's data is made available before checkers are assigned, and a checker that
cannot get it is a no-show (Polkadot SDK guide, "Availability" and "Approval Voting").

The sample is drawn by ml_runtime.sample_segments from a PRF keyed with the validator's own
secret and bound to the block hash and the extrinsic index (hashed together, so two jobs of
one block get independent samples and no choice of index or block maps onto another's), so
the author cannot know it when it seals the block (Jia et al., "Proof-of-Learning:
Definitions and Practice", IEEE S&P 2021, §4: verification by re-running a random subset
of the update steps). Its cost is about m/S of the author's training work: the sampled
segments of all the block's jobs run on one thread pool of as many threads as cores (the
kernels release the GIL; each re-run is bit-identical to a serial one), or inline when
their work is too small to pay for the pool (chain.proofs.map_reruns and POOL_MIN_UNITS: the
auditor's policy too). An author who forges k of a job's S segments escapes one
validator with probability C(S-k, m) / C(S, m), and V validators sampling independently with
probability (C(S-k, m) / C(S, m))^V.

The largest update
------------------
Besides its random sample, a validator re-runs the job's segment whose update (the L2 norm
of its output checkpoint minus its input) is the largest (:func:`compute_largest_update`):
the "top-Q" verification of Jia et al. (cited above: their verifier re-runs, of each epoch,
the Q updates of largest magnitude), here with Q = 1 a job, which needs no secret. A forged
segment's output fixes every weight after it, so forging the last of S segments alone set a
new version to any weights at all: 60 of 60 sampling validators imported a block whose new
version was 650 weights of 0.123, each catching it with probability m/S, 0.4% at the largest
S a call may ask (an outside tester's P2, round 14). Such a jump, larger than any honest
step of its job, is the largest update, and is now always re-run. It bounds nothing more: a
forger who keeps each forged step below the job's largest honest step escapes it, and in a
TRAIN of its own it can make the honest steps large (lr 1,000: one forged segment reached the
same weights and escaped 100 of 100 validators; the retest's R1), so beyond the naive jump
what catches a forgery is still the random sample, m/S per validator. The cost: at most one
segment more a job per validator (none when it is in the sample already), and one pass over
the checkpoints the validator fetched anyway.

A mismatch raises :class:`~chain.errors.FraudFound` carrying a
:class:`~chain.fraud.FraudProof` any node checks by re-running at most one segment; openings
that cannot be obtained raise :class:`~chain.errors.CheckpointsUnavailable` (the block is
neither accepted nor judged). A source verifies every opening it hands over (the
CheckpointSource contract, chain/proofs.py), so the verifier does not hash them again on the
common path; before it accuses an author it re-verifies the openings its proof carries, so a
faulty source can make a block unavailable, never an honest author guilty.

The auditor (``polchain node --pol full``) is this verifier with ``m`` = :data:`EVERY_SEGMENT`:
it re-runs every segment, and a fault it finds is a fraud proof like a sampling validator's.
It was ``chain.proofs.FullReexecution``, whose faults are plain BlockErrors: nothing turned them
into proofs, so an auditor that caught a forgery the samples missed could neither stop nor
punish it, and its sync charged every honest peer that relayed the block as a sender of a bad
block (an outside tester's finding, 2026-11-30). FullReexecution stays the chain layer's
default check (chain.blockchain, without a node).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

import ml_runtime
from chain.crypto import blake2_256
from chain.errors import BlockError, CheckpointsUnavailable, FraudFound
from chain.fraud import (
    FAULT_DIVERGENCE,
    FAULT_END,
    FAULT_SEGMENT,
    FAULT_START,
    Rerun,
    compute_end_fault,
    compute_entry_count,
    compute_fraud_proof,
    compute_rerun,
    compute_segment_fault,
    compute_start_fault,
)
from chain.proofs import (
    CheckpointSource,
    Opening,
    TrainingClaim,
    TrainingResult,
    compute_rerun_threads,
    compute_wanted,
    map_reruns,
    verify_opening,
)

if TYPE_CHECKING:
    from chain.block import Block

_SAMPLE_DOMAIN: Final = b"polchain/pol/sample"
#: ``m`` of the auditor: above any job's segment count (ml_runtime.sample_segments takes m up to
#: 2^31 and clips it to S), so every segment is re-run.
EVERY_SEGMENT: Final = 2**31


def compute_sample_binding(block_hash: bytes, extrinsic_index: int) -> bytes:
    """The 32 bytes a validator's sample PRF is bound to for one job: blake2_256 over a domain
    tag, the block hash and the extrinsic index (u32 LE)."""
    return blake2_256(_SAMPLE_DOMAIN + block_hash + extrinsic_index.to_bytes(4, "little"))


def compute_sample(secret: bytes, block_hash: bytes, extrinsic_index: int, finished: int, samples: int) -> tuple[int, ...]:
    """The segments a validator with ``secret`` re-runs of a job with ``finished`` segments
    claimed finite (sorted, distinct; all of them if ``samples`` >= ``finished``)."""
    if finished == 0:
        return ()
    if samples >= finished:  # what sample_segments returns then, without drawing S distinct indices
        return tuple(range(finished))
    return ml_runtime.sample_segments(secret, compute_sample_binding(block_hash, extrinsic_index), finished, samples)


def compute_largest_update(openings: Mapping[int, Opening], result: TrainingResult, n: int) -> int:
    """The segment of a job of ``n`` entries whose update is the largest: the squared L2 norm
    of its output checkpoint minus its input, in float64 (a non-finite one counts as infinite);
    the first of equals. Its output is entry n - 1, the result's weights, for the last segment
    of a job that did not diverge (entry n - 1's weights are not fetched then: the end link
    checks them against the result). Weights of another length than their input's (a source's
    bad opening) count as an infinite update: re-run, the opening is refused as it was before.

    Every validator re-runs it besides its random sample (module docstring, "The largest
    update"). A local choice, not a consensus rule: each validator ranks with its own floats,
    and only a fraud proof, checked bit for bit, accuses anyone."""
    largest, chosen = -1.0, 0
    before = _as_float64(openings[0].weights or b"")
    for j in range(n - 1):
        output = openings[j + 1].weights
        after = _as_float64(output if output is not None else result.weights)
        if after.shape != before.shape:  # a bad opening from a hostile source: re-run, it is refused there
            size = math.inf
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                size = float(np.square(after - before).sum())
        if math.isnan(size):
            size = math.inf
        if size > largest:
            largest, chosen = size, j
        before = after
    return chosen


def _as_float64(weights: bytes) -> np.ndarray:
    """float32 LE weights widened in one copy (Opening.get_weights copies once more)."""
    return np.frombuffer(weights, dtype="<f4").astype(np.float64)


@dataclass(frozen=True, slots=True)
class _Check:
    """One claim being verified: its sample and the openings fetched for it."""

    block: Block
    where: str
    claim: TrainingClaim
    sample: tuple[int, ...]
    openings: dict[int, Opening]

    def fraud(self, kind: int, segment: int, fault: str, used: Sequence[Opening]) -> BlockError:
        """FraudFound for ``fault``, once the openings the proof carries are verified again;
        CheckpointsUnavailable if they do not verify (the source's fault, not the author's)."""
        for opening in used:  # weights, where the fault needed them, are there (_fetch) and checked
            try:
                verify_opening(self.claim.result, opening, need_weights=False)
            except BlockError as exc:
                return CheckpointsUnavailable(f"{self.where}: the source gave a bad entry {opening.index}: {exc}")
        return FraudFound(f"{self.where}: {fault}", compute_fraud_proof(self.block, self.claim, kind, segment, used))


class SampledVerifier:
    """The validator's verifier (module docstring): links, divergence, ``samples`` segments a job."""

    def __init__(self, secret: bytes, samples: int = 4, *, samples_for: Callable[[Block], int] | None = None) -> None:
        """``samples_for``: m for a block, when it is a chain parameter that can change (the node
        passes its parent state's ``pol_samples``); else ``samples`` for every block."""
        if not isinstance(secret, bytes) or not 16 <= len(secret) <= 64:
            raise ValueError("a validator secret is 16..64 bytes")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError("a sampled verifier re-runs at least one segment per job")
        self.secret = secret
        self.samples = samples
        self.samples_for = samples_for

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        """Check every claim; return (extrinsic index, opening) for every opening fetched.

        The links and claimed divergences of every job first, then the sampled segments of all
        jobs at once; faults are reported in claim order, then segment order."""
        samples = self.samples if self.samples_for is None or not claims else max(1, self.samples_for(block))
        checks = [self._verify_links(block, block_hash, claim, source, samples) for claim in claims]
        tasks = [(check, j) for check in checks for j in check.sample]
        reruns = _rerun_all([(check.claim.job, j, check.openings[j].get_weights()) for check, j in tasks])
        for (check, j), rerun in zip(tasks, reruns, strict=True):
            fault = compute_segment_fault(j, rerun, check.openings[j + 1])
            if fault is not None:
                raise check.fraud(FAULT_SEGMENT, j, fault, [check.openings[j], check.openings[j + 1]])
        return [(check.claim.extrinsic_index, check.openings[j]) for check in checks for j in sorted(check.openings)]

    def _verify_links(
        self, block: Block, block_hash: bytes, claim: TrainingClaim, source: CheckpointSource, samples: int
    ) -> _Check:
        """Fetch every entry of the claim (the request must not depend on the sample: module
        docstring); check the links and a claimed divergence."""
        job, result, index = claim.job, claim.result, claim.extrinsic_index
        n = compute_entry_count(job, result.diverged_segment)
        sample = compute_sample(self.secret, block_hash, index, n - 1, samples)
        wanted = compute_wanted(n, result.diverged_segment is not None)
        where = f"block {block_hash.hex()} extrinsic #{index}"
        openings = _fetch(source, block_hash, where, result, wanted)
        if len(sample) < n - 1:
            sample = tuple(sorted({*sample, compute_largest_update(openings, result, n)}))
        check = _Check(block, where, claim, sample, openings)
        first, last = check.openings[0], check.openings[n - 1]
        fault = compute_start_fault(job, first)
        if fault is not None:
            raise check.fraud(FAULT_START, 0, fault, [first])
        fault = compute_end_fault(result.commitment(), last)
        if fault is not None:
            raise check.fraud(FAULT_END, n - 1, fault, [last])
        d = result.diverged_segment
        if d is not None:
            fault = compute_segment_fault(d, compute_rerun(job, d, last.get_weights()), None)
            if fault is not None:
                raise check.fraud(FAULT_DIVERGENCE, d, fault, [last])
        return check


def _rerun_all(tasks: Sequence[tuple[ml_runtime.TrainingJob, int, np.ndarray]]) -> list[Rerun]:
    """compute_rerun for each task, in order, by chain.proofs.map_reruns: inline when the work is
    small, else on the process's kept pool of one thread a core (compute_rerun_threads, the
    auditor's policy too; ml_runtime.get_rerun_pool). Either way the results are those of the
    serial calls, bit for bit."""
    return list(map_reruns(_rerun, tasks, compute_rerun_threads([(job, j) for job, j, _ in tasks])))


def _rerun(task: tuple[ml_runtime.TrainingJob, int, np.ndarray]) -> Rerun:
    return compute_rerun(*task)


def _fetch(
    source: CheckpointSource, block_hash: bytes, where: str, result: TrainingResult, wanted: dict[int, bool]
) -> dict[int, Opening]:
    """The wanted openings from ``source`` in one request: each there, for its entry, with
    weights where they are needed (else the block is unavailable from this source)."""
    openings = source.fetch(block_hash, result, sorted(wanted.items()))
    for j, with_weights in wanted.items():
        opening = openings.get(j)
        if opening is None or opening.index != j or (with_weights and opening.weights is None):
            raise CheckpointsUnavailable(f"{where}: the source did not give entry {j}")
    return openings
