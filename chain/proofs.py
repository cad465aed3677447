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
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

import ml_runtime
from chain.codec import U32, Hash32, Wire, encode
from chain.crypto import blake2_256
from chain.errors import BlockError, CheckpointsUnavailable

if TYPE_CHECKING:
    from chain.block import Block

# ml_runtime's transcript entry (40 bytes: index u32 LE, weights hash, float32 loss LE) with
# the loss given as its bits; and the float32 exponent field, all ones for inf and NaN only.
_ENTRY_BITS = struct.Struct("<I32sI")
_F32_EXPONENT = 0x7F800000


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
    losses: tuple[U32, ...]
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
    path: tuple[Hash32, ...]
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

    For each claim, in order, BlockError (the message says which) if: checkpoint 0 is not
    the model's on-chain weights; checkpoint n-1 is not the result's weights; segment j does
    not re-run from checkpoint j to entry j + 1's weights hash, or to its loss; the segment
    the result says diverged runs to finite weights. CheckpointsUnavailable (from the source)
    if an opening cannot be obtained. Segments are re-run in order, so the first fault found
    is the earliest one.
    """

    def verify_block(
        self, block: Block, block_hash: bytes, claims: Sequence[TrainingClaim], source: CheckpointSource
    ) -> list[tuple[int, Opening]]:
        fetched: list[tuple[int, Opening]] = []
        for claim in claims:
            openings = self._verify_claim(block_hash, claim, source)
            fetched.extend((claim.extrinsic_index, o) for o in openings)
        return fetched

    @staticmethod
    def _verify_claim(block_hash: bytes, claim: TrainingClaim, source: CheckpointSource) -> list[Opening]:
        job, result = claim.job, claim.result
        where = f"training result #{result.extrinsic_index}"
        count = len(result.losses)
        got = source.fetch(block_hash, result, [(j, True) for j in range(count)])
        missing = [j for j in range(count) if j not in got]
        if missing:
            raise CheckpointsUnavailable(f"{where}: checkpoints {missing} could not be obtained")
        openings = [got[j] for j in range(count)]
        for o in openings:  # a source is trusted to verify; an auditor checks again (cheap next to training)
            verify_opening(result, o, need_weights=True)
        if openings[0].weights != np.asarray(job.weights, dtype="<f4").tobytes():
            raise BlockError(f"{where}: checkpoint 0 is not the model's on-chain weights")
        if openings[-1].weights != result.weights:
            raise BlockError(f"{where}: the result's weights are not checkpoint {count - 1} of its transcript")
        for j in range(count - 1):
            verify_segment(job, result, j, openings[j], openings[j + 1])
        if result.diverged_segment is not None:
            verify_divergence(job, result, openings[result.diverged_segment])
        return openings


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
