"""Training results and openings: what a block carries for each TRAIN call, what its author
keeps and serves, and how an importer checks them.

What is where
-------------
A TRAIN call's job runs S segments and commits to S + 1 transcript entries (ml_runtime's
transcript: entry j = (j, hash of checkpoint j, loss of segment j - 1)), or to d + 1 entries
if training diverged in segment d. Of those, a block carries only what the state needs and
what every importer can check without the checkpoints, a :class:`TrainingResult`: the
transcript root, the losses of all entries (the model's lineage record stores them) and the
new weights (checkpoint n - 1, the new model version). The header's POL_ commitment is the
Merkle root (RFC 6962, raw leaves: ml_runtime.compute_merkle_root) over one
:class:`ResultCommitment` per result, so a header alone pins every transcript root and
every new weights vector, and one result can be shown to be in a block by an audit path.

The checkpoints themselves stay with the author (chain.transcripts, column OPENING) as
:class:`Opening` s: entry j, its audit path under the transcript root and, when asked for,
checkpoint j's weights. A verifier fetches the ones it needs through a
:class:`CheckpointSource` (the local store, or peers over the network) and checks each with
:func:`verify_opening` before it uses it: a peer can withhold an opening, never pass off a
wrong one.

Bytes and fees
--------------
A result is about 4 * param_count + 5 * (S + 1) bytes where a body carrying every
checkpoint took (S + 1) * 4 * param_count: :func:`compute_result_length` is the bound a
TRAIN call declares, pays for, and has counted against ``max_block_length`` before it runs.
What the author must store and serve, (S + 1) * 4 * param_count, is bounded separately by
the chain parameter ``max_transcript_bytes``.

Verification
------------
Executing a block checks each result cheaply (the TRAIN dispatch: entry count, weights
length, finite values, diverged segment in range) and records a :class:`TrainingClaim`.
Once the block's roots match its header, the chain hands the claims to a
:class:`TranscriptVerifier`. :class:`FullReexecution` (the auditor, ``--pol full``) fetches
every checkpoint and re-runs every segment; consensus/pol.py's sampled verifier re-runs a
few. Either raises a BlockError whose message names the fault (see :class:`FullReexecution`).
Both re-run a block's segments by :func:`map_reruns`: inline when the block's work is small
(POOL_MIN_UNITS), else on a pool of one thread a core (:func:`compute_rerun_threads`); the
kernels release the GIL and a re-run's bits do not depend on the thread that runs it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, Protocol, TypeVar

import msgspec
import numpy as np

import ml_runtime
from chain.codec import U32, Hash32, Wire, encode
from chain.config import MAX_SEGMENTS
from chain.crypto import blake2_256
from chain.errors import BlockError, CheckpointsUnavailable

if TYPE_CHECKING:
    from chain.block import Block

# ml_runtime's transcript entry (40 bytes: index u32 LE, weights hash, float32 loss LE) with
# the loss given as its bits; and the float32 exponent field, all ones for inf and NaN only.
_ENTRY_BITS = struct.Struct("<I32sI")
_F32_EXPONENT = 0x7F800000


# The deepest RFC 6962 audit path of a tree with at most 2**32 leaves (counts are u32). Every
# list a peer sends is bounded in items as well as in bytes: a list of one-byte items costs a
# decode per item, and 16 MiB of them cost a node a second of its event loop (round 15's N1).
MAX_PATH_LENGTH: Final = 32
AuditPath = Annotated[tuple[Hash32, ...], msgspec.Meta(max_length=MAX_PATH_LENGTH)]


class ResultCommitment(Wire, frozen=True):
    """One leaf of the header's POL_ transcripts root: what a block claims for one TRAIN call."""

    extrinsic_index: U32
    transcript_root: Hash32
    weights_hash: Hash32  # blake2b-256 of the new weights' float32 LE bytes (= entry n-1's hash)
    diverged_segment: U32 | None


class TrainingResult(Wire, frozen=True):
    """A TRAIN call's outcome as the block body carries it.

    ``losses`` are the float32 bits of entries 0..n-1, where n = S + 1, or d + 1 if training
    diverged in segment d (``diverged_segment``): then the call fails, and the result stays
    in the block so that validators can confirm the divergence by re-running segment d (an
    author cannot fake one to skip the work). ``weights`` are checkpoint n - 1's float32 LE
    bytes: the new model version, or the last finite checkpoint of a diverged job.
    """

    extrinsic_index: U32
    transcript_root: Hash32
    losses: Annotated[tuple[U32, ...], msgspec.Meta(max_length=MAX_SEGMENTS + 1)]
    weights: bytes
    diverged_segment: U32 | None = None

    def commitment(self) -> ResultCommitment:
        return ResultCommitment(self.extrinsic_index, self.transcript_root, blake2_256(self.weights), self.diverged_segment)

    def get_weights(self) -> np.ndarray:
        return np.frombuffer(self.weights, dtype="<f4").astype(np.float32)


def compute_results_root(results: Sequence[TrainingResult]) -> bytes:
    """The header's POL_ transcripts root: RFC 6962 root over the results' commitments."""
    return ml_runtime.compute_merkle_root([encode(r.commitment()) for r in results])


def compute_result_length(param_count: int, segments: int) -> int:
    """An upper bound of the encoded size of a result for ``segments`` segments of a model with
    ``param_count`` parameters: what a TRAIN call declares, and pays for, before it runs.

    The MessagePack encoding (chain/codec.py) of a TrainingResult is a 5-element array (1
    byte) of: the extrinsic index (at most 5 bytes as a u32); the transcript root (bin8: 2 +
    32 bytes); the losses, an array header (at most 5 bytes) and ``segments + 1`` u32s of at
    most 5 bytes each; the weights, a bin string of ``4 * param_count`` bytes with a header
    of at most 5 bytes (bin32); the diverged segment (at most 5 bytes). A diverged result has
    fewer losses, so the bound covers it too.
    """
    return 1 + 5 + 34 + 5 + 5 * (segments + 1) + 5 + 4 * param_count + 5


def compute_transcript_bytes(param_count: int, segments: int) -> int:
    """The checkpoint bytes a job's author stores and serves: (S + 1) * 4 * param_count
    (bounded by the chain parameter ``max_transcript_bytes``)."""
    return (segments + 1) * 4 * param_count


def compute_result(index: int, result: ml_runtime.JobResult) -> TrainingResult:
    """The result an author puts in the block for one job's outcome."""
    return TrainingResult(
        index,
        result.transcript.root,
        tuple(_loss_bits(e.loss) for e in result.transcript.entries),
        np.asarray(result.weights, dtype="<f4").tobytes(),
        None if result.finite else result.diverged_segment,
    )


class Opening(Wire, frozen=True):
    """Transcript entry ``index`` of one job, with its audit path under the transcript root and,
    when asked for, the checkpoint's weights (float32 LE bytes)."""

    index: U32
    weights_hash: Hash32
    loss: U32  # float32 bits
    path: AuditPath
    weights: bytes | None = None

    def entry(self) -> ml_runtime.TranscriptEntry:
        return ml_runtime.TranscriptEntry(self.index, self.weights_hash, float(np.uint32(self.loss).view(np.float32)))

    def get_weights(self) -> np.ndarray:
        if self.weights is None:
            raise BlockError(f"opening {self.index} carries no weights")
        return np.frombuffer(self.weights, dtype="<f4").astype(np.float32)


def compute_openings(result: ml_runtime.JobResult) -> tuple[Opening, ...]:
    """Every entry of a job's transcript, with its audit path and weights: what its author stores."""
    entries = result.transcript.entries
    paths = ml_runtime.merkle_proofs(result.transcript)
    return tuple(
        Opening(e.index, e.weights_hash, _loss_bits(e.loss), paths[j], np.asarray(result.checkpoints[j], dtype="<f4").tobytes())
        for j, e in enumerate(entries)
    )


def verify_opening(result: TrainingResult, opening: Opening, *, need_weights: bool) -> None:
    """Return if ``opening`` is entry ``opening.index`` of ``result``'s transcript.

    BlockError naming the fault: the index is outside 0..n-1 (n: the result's entry count);
    the loss is not ``result.losses[index]``; the weights hash is not 32 bytes (an Opening
    decoded from bytes always has 32, Hash32; one built in process might not); the audit
    path does not lead to the transcript root; the weights are missing (``need_weights``),
    or, when present, not 4 bytes per parameter or not hashing to the entry's weights hash.
    Weights are checked whenever they are present, so nothing unverified is ever stored or
    served. No TranscriptEntry is built on the common path (a finite loss): every sampled
    opening passes here once, and the entry's own checks cost a quarter of the call.
    """
    where = f"training result #{result.extrinsic_index}: opening {opening.index}"
    count = len(result.losses)
    if not 0 <= opening.index < count:
        raise BlockError(f"{where} is outside entries 0..{count - 1}")
    if opening.loss != result.losses[opening.index]:
        raise BlockError(f"{where}: loss bits {opening.loss:#010x}, the result has {result.losses[opening.index]:#010x}")
    if len(opening.weights_hash) != 32:
        raise BlockError(f"{where}: weights hash is {len(opening.weights_hash)} bytes, not 32")
    try:
        if opening.loss & _F32_EXPONENT != _F32_EXPONENT:
            # A finite loss: its bits are the float32 the entry encodes, so the entry's 40
            # bytes are packed from them directly (the leaf ml_runtime.TranscriptEntry.encode
            # gives, without its float round trip); a NaN's bits might not survive that trip,
            # so anything else takes the entry's own path.
            leaf = _ENTRY_BITS.pack(opening.index, opening.weights_hash, opening.loss)
            ml_runtime.verify_leaf_path(result.transcript_root, leaf, opening.path, opening.index, count)
        else:
            ml_runtime.verify_merkle_proof(result.transcript_root, opening.entry(), opening.path, count)
    except ml_runtime.ProofError as exc:
        raise BlockError(f"{where}: not under the transcript root: {exc}") from None
    if opening.weights is None:
        if need_weights:
            raise BlockError(f"{where} carries no weights")
        return
    if len(opening.weights) != len(result.weights):
        raise BlockError(f"{where}: weights are {len(opening.weights)} bytes, expected {len(result.weights)}")
    if blake2_256(opening.weights) != opening.weights_hash:
        raise BlockError(f"{where}: weights do not hash to the entry's weights hash")


class CheckpointSource(Protocol):
    """Where a verifier gets openings: the node's own store, or peers over the network."""

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        """Verified openings (verify_opening) for each (entry index, need weights);
        CheckpointsUnavailable if not obtainable in time."""
        ...


@dataclass(frozen=True, slots=True)
class TrainingClaim:
    """What the TRAIN dispatch recorded on import: the job, as the chain defines it, and the
    result the block claims for it (checked cheaply; the verifier checks the rest)."""

    extrinsic_index: int
    job: ml_runtime.TrainingJob
    result: TrainingResult
    model: int
    parent_version: int


class TranscriptVerifier(Protocol):
    """Decides whether a block's training results are to be believed (raises BlockError if not)."""

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        """Returns (extrinsic index, opening) for every opening fetched, to store and serve."""
        ...


class FullReexecution:
    """Fetch every checkpoint and re-run every segment: the auditor (``--pol full``).

    For each claim, in order, BlockError (the message says which) if: an opening does not
    verify (verify_opening) or carries no weights; checkpoint 0 is not the model's on-chain
    weights; checkpoint n-1 is not the result's weights; segment j does not re-run from
    checkpoint j to entry j + 1's weights hash, or to its loss; the segment the result says
    diverged runs to finite weights. CheckpointsUnavailable (from the source) if an opening
    cannot be obtained.

    The fault reported is the earliest one in that order (claims in order; within a claim its
    openings and links, then its segments in order, then its divergence), the one a serial
    check finds first: the claims' openings are fetched and their links checked in claim
    order until one fails; the re-runs of the claims before it then go to :func:`map_reruns`
    (one thread a core when the block's work is large, as for the sampled verifier) and are
    judged in order, so a segment of an earlier claim is blamed before a later claim's
    missing checkpoint or broken link. The first fault cancels the re-runs not yet started.
    """

    def __init__(self, threads: int | None = None) -> None:
        """``threads``: re-run every block on this many threads (1: inline; tests force a pool
        on blocks too small for one); None: :func:`compute_rerun_threads` decides per block."""
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"re-run threads must be a positive int or None, got {threads!r}")
        self.threads = threads

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        fetched: list[tuple[int, Opening]] = []
        reruns: list[_SegmentCheck] = []
        refused: BlockError | None = None
        for claim in claims:
            try:
                openings = self._verify_links(block_hash, claim, source)
            except BlockError as exc:  # reported once the earlier claims' segments are judged
                refused = exc
                break
            fetched.extend((claim.extrinsic_index, o) for o in openings)
            reruns.extend(_compute_segment_checks(claim, openings))
        threads = compute_rerun_threads([(c.job, c.segment) for c in reruns]) if self.threads is None else self.threads
        faults = map_reruns(_judge, reruns, threads)
        try:
            for fault in faults:
                if fault is not None:
                    raise fault
        finally:
            faults.close()
        if refused is not None:
            raise refused
        return fetched

    @staticmethod
    def _verify_links(block_hash: bytes, claim: TrainingClaim, source: CheckpointSource) -> list[Opening]:
        """Every opening of the claim, each verified, with checkpoint 0 and n-1 checked."""
        job, result = claim.job, claim.result
        where = f"training result #{result.extrinsic_index}"
        count = len(result.losses)
        wanted = compute_wanted(count, result.diverged_segment is not None)
        got = source.fetch(block_hash, result, sorted(wanted.items()))
        missing = [j for j in range(count) if j not in got]
        if missing:
            raise CheckpointsUnavailable(f"{where}: checkpoints {missing} could not be obtained")
        openings = [got[j] for j in range(count)]
        for o in openings:  # a source is trusted to verify; an auditor checks again (cheap next to training)
            verify_opening(result, o, need_weights=wanted[o.index])
        if openings[0].weights != np.asarray(job.weights, dtype="<f4").tobytes():
            raise BlockError(f"{where}: checkpoint 0 is not the model's on-chain weights")
        if openings[-1].weights_hash != blake2_256(result.weights):
            raise BlockError(f"{where}: the result's weights are not checkpoint {count - 1} of its transcript")
        return openings


def compute_wanted(entries: int, diverged: bool) -> dict[int, bool]:
    """What a validator asks for a job of ``entries`` transcript entries, entry -> with its
    weights, whatever it will re-run (consensus.pol's sampled verifier and the auditor alike):
    every segment's input checkpoint with them; the last entry with them only if the job
    claims a divergence, whose re-run starts there (else its hash is all a re-run, and the
    result's weights, are compared with). A request that depends on what the validator
    re-runs tells the author whom to refuse (consensus.pol's module docstring); the auditor's
    asked for the last entry's weights too, which set it apart (a reviewer's finding)."""
    wanted = dict.fromkeys(range(entries - 1), True)
    wanted[entries - 1] = diverged
    return wanted


@dataclass(frozen=True, slots=True)
class _SegmentCheck:
    """One re-run of the auditor's: segment ``segment`` of a claim from ``start``, to give
    ``end`` (verify_segment), or, with ``end`` None, to diverge (verify_divergence)."""

    job: ml_runtime.TrainingJob
    result: TrainingResult
    segment: int
    start: Opening
    end: Opening | None


def _compute_segment_checks(claim: TrainingClaim, openings: Sequence[Opening]) -> list[_SegmentCheck]:
    """A claim's re-runs in the order a serial check makes them: its segments, then its divergence."""
    job, result = claim.job, claim.result
    checks = [_SegmentCheck(job, result, j, openings[j], openings[j + 1]) for j in range(len(openings) - 1)]
    d = result.diverged_segment
    if d is not None:
        checks.append(_SegmentCheck(job, result, d, openings[d], None))
    return checks


def _judge(check: _SegmentCheck) -> BlockError | None:
    """The BlockError a check finds, returned (it may run on a pool thread; the caller raises
    the earliest), or None."""
    try:
        if check.end is None:
            verify_divergence(check.job, check.result, check.start)
        else:
            verify_segment(check.job, check.result, check.segment, check.start, check.end)
    except BlockError as exc:
        return exc
    return None


# Work units (ml_runtime.step_cost) below which a block's re-runs run on the importing thread:
# about 5 ms of today's kernels (softmax 64->10 at batch 32 runs 175,000 steps/s, 48,788 units
# a step; bench kernels), where starting a pool and handing work to it cost about 0.6 ms of
# CPU (measured when a pool was made per block; the pool is now kept, ml_runtime.get_rerun_pool,
# and the threshold not re-measured) and, on a loaded machine, rarely buys a core (README, Performance). A sample of 2 of 32
# segments of 4 softmax jobs of 25-step segments is 9.8 million units; re-running all of them
# (the auditor) is 156 million.
POOL_MIN_UNITS: Final = 50_000_000

_Task = TypeVar("_Task")
_Out = TypeVar("_Out")


def compute_rerun_threads(segments: Sequence[tuple[ml_runtime.TrainingJob, int]]) -> int:
    """Threads to re-run a block's ``segments`` (job, segment index) on: 1 (inline) when their
    work is under POOL_MIN_UNITS or there is one segment, else one a core (1 if the core count
    is unknown). The policy of both verifiers."""
    units = sum(ml_runtime.step_cost(job.spec, job.batch_size) * len(job.segment_steps(j)) for job, j in segments)
    if len(segments) <= 1 or units < POOL_MIN_UNITS:
        return 1
    return os.cpu_count() or 1


def map_reruns(rerun: Callable[[_Task], _Out], tasks: Sequence[_Task], threads: int) -> Generator[_Out, None, None]:
    """``rerun(task)`` for each task, yielded in task order: on the calling thread, one task
    as each result is asked for, when ``threads`` is 1; else all submitted to a pool of
    ``threads`` threads (ml_runtime.get_rerun_pool: kept for the process, shared with other
    checks, which each wait for their own tasks only). An
    exception a task raises surfaces at its place in the order, after the results before it,
    as inline. Closing the iterator early (the caller found a fault) cancels the tasks not
    yet started; the running ones finish on the pool's threads and their results are dropped. The kernels release the GIL, and a re-run's
    bits do not depend on its thread (tests/consensus/test_mutants_pol.py)."""
    if threads <= 1:
        for task in tasks:
            yield rerun(task)
        return
    pool = ml_runtime.get_rerun_pool(threads)
    futures = [pool.submit(rerun, task) for task in tasks]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def verify_segment(job: ml_runtime.TrainingJob, result: TrainingResult, j: int, start: Opening, end: Opening) -> None:
    """Re-run segment j from ``start``'s checkpoint (entry j, weights verified) and compare with
    ``end`` (entry j + 1): BlockError naming the weights or the loss that differ."""
    where = f"training result #{result.extrinsic_index}: segment {j}"
    try:
        entry, _ = ml_runtime.recompute_segment(job, j, start.get_weights())
    except ml_runtime.NonFiniteWeights:
        raise BlockError(f"{where} diverges on re-execution; the transcript claims finite weights") from None
    except ml_runtime.MLRuntimeError as exc:
        raise BlockError(f"{where}: {exc}") from None
    if entry.weights_hash != end.weights_hash:
        raise BlockError(f"{where} re-runs to other weights than entry {j + 1}'s")
    if _loss_bits(entry.loss) != end.loss:
        raise BlockError(f"{where} re-runs to loss bits {_loss_bits(entry.loss):#010x}, entry {j + 1} claims {end.loss:#010x}")


def verify_divergence(job: ml_runtime.TrainingJob, result: TrainingResult, start: Opening) -> None:
    """Re-run the segment ``result`` says diverged from its checkpoint; BlockError unless it
    really does."""
    d = result.diverged_segment
    if d is None:
        return
    try:
        ml_runtime.recompute_segment(job, d, start.get_weights())
    except ml_runtime.NonFiniteWeights:
        return
    except ml_runtime.MLRuntimeError as exc:
        raise BlockError(f"training result #{result.extrinsic_index}: diverged segment {d}: {exc}") from None
    raise BlockError(f"training result #{result.extrinsic_index}: segment {d} does not diverge as claimed")


def _loss_bits(loss: float) -> int:
    return int(np.float32(loss).view(np.uint32))
