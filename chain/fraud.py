"""Fraud proofs: a self-contained claim that one block's training transcript is false.

A validator that re-runs a sampled segment (consensus/pol.py) and finds a mismatch builds a
:class:`FraudProof`; every node, and the runtime's ``pol.report_fraud`` call, checks it with
:func:`verify_fraud_proof` against any state that holds the model version the job started
from and its (complete, hence immutable) data set. The proof carries what ties the fault to
one sealed block and nothing more:

* the block's sealed header (its hash names the block, its seal binds the author);
* the TRAIN extrinsic with its RFC 6962 audit path under ``header.extrinsics_root``, so the
  job is the one the block ran (the job seed is blake2_256(parent hash || extrinsic hash),
  chain/pallets/training.py);
* the job's :class:`~chain.proofs.ResultCommitment` with its audit path under the POL_
  digest's ``transcripts_root``: the transcript root, the hash of the new weights and the
  claimed divergence the author committed to;
* the model version the job trained from (a call naming no version would resolve differently
  on a later state; for a start fault, the only fault that depends on it, a call naming no
  version trained the latest version made before its block, not one made in it:
  :func:`_verify_latest_version`);
* the fault's kind, its segment, and the transcript openings (entry, Merkle path under the
  transcript root, and the checkpoint's weights where a segment must be re-run).

The faults, with the openings each needs (n transcript entries: S + 1, or d + 1 if the job
is claimed to have diverged in segment d):

=================  ========  ===========================================  ============================
kind               segment   openings                                     fault
=================  ========  ===========================================  ============================
FAULT_START        0         entry 0                                      not the on-chain weights, or
                                                                          a loss other than +0.0
FAULT_SEGMENT      j < n-1   entry j with weights, entry j+1              re-running segment j from
                                                                          checkpoint j does not give
                                                                          entry j+1 (bits), diverges,
                                                                          or checkpoint j is not finite
FAULT_END          n - 1     entry n-1                                    its weights hash is not the
                                                                          committed new weights' hash
FAULT_DIVERGENCE   d         entry d with weights                         segment d re-runs without
                                                                          diverging (or checkpoint d is
                                                                          not finite)
=================  ========  ===========================================  ============================

A proof has exactly these openings, weights exactly where the table says: one encoding per
fault, and no bytes a checker would hash for nothing. Entries committed as finite are never
non-finite in an honest run (ml_runtime.run_job stops before committing one), so a committed
checkpoint that is not finite is a fault too. Checking costs one segment's re-execution at
most (Jia et al., "Proof-of-Learning: Definitions and Practice", IEEE S&P 2021, §4: a
dispute is settled by re-running the disputed update steps).

Which state to check against: the job is rebuilt from the model version and data set the
call names, read from ``state``. Versions and complete data sets never change on one chain,
so any state of a chain that contains the block's parent gives the block's job; a state of
another fork may hold a different version or data set under the same number, and would
then see a "fault" in an honest block. A node therefore checks a proof with the state at
``header.parent_hash`` (and fetches the parent first if it lacks it); the runtime's
``pol.report_fraud`` must only accept proofs about blocks whose parent is an ancestor of the
block that includes them.

Every way a proof can fail to show a fault raises :class:`~chain.errors.InvalidFraudProof`
with a specific ``reason``: "oversize", "malformed", "unknown_kind", "bad_seal",
"not_validator" (the author is not a validator of ``state``: Aura would refuse the block),
"bad_extrinsic_path", "not_training", "bad_header", "bad_result_path", "bad_parent_version",
"unknown_job", "too_heavy" (one segment of the job weighs more than a block of its time held:
no block carried it, and a report re-runs at most a block's weight), "bad_result",
"bad_segment", "bad_opening", "no_fault".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Final

import msgspec
import numpy as np

import ml_runtime
from chain.block import verify_extrinsic_path
from chain.calls import Train
from chain.codec import (
    CODEC_VERSION,
    U8,
    U32,
    Wire,
    compute_element_end,
    decode,
    decode_versioned,
    encode,
    encode_versioned,
)
from chain.crypto import blake2_256, ss58_encode
from chain.errors import BlockError, CodecError, DispatchError, InvalidFraudProof, InvalidSignature
from chain.extrinsic import MAX_EXTRINSIC_SIZE, Era, Extrinsic
from chain.header import Header, compute_largest_header, verify_seal
from chain.pallets import models
from chain.pallets.staking import get_validators
from chain.pallets.training import compute_job_at, compute_segment_weight
from chain.proofs import MAX_PATH_LENGTH, AuditPath, Opening, ResultCommitment, TrainingClaim
from ml_runtime.spec import MAX_PARAMS
from ml_runtime.transcript import compute_leaf_path, float32_bytes, verify_leaf_path

if TYPE_CHECKING:
    from chain.block import Block
    from chain.config import RuntimeConfig
    from chain.pallets.items import StateAccess

FAULT_START: Final = 0
FAULT_SEGMENT: Final = 1
FAULT_END: Final = 2
FAULT_DIVERGENCE: Final = 3
FAULT_NAMES: Final = {FAULT_START: "start", FAULT_SEGMENT: "segment", FAULT_END: "end", FAULT_DIVERGENCE: "divergence"}

# A header a real block carries is a few hundred bytes (chain.block.BLOCK_OVERHEAD); the
# largest that decodes at all (chain.header's bounds on its digest and seal) is this.
MAX_HEADER_SIZE: Final = len(compute_largest_header().encode())


def compute_max_fraud_proof_size(max_params: int) -> int:
    """An upper bound of the encoded (versioned) size of a proof for a model of at most
    ``max_params`` parameters, checked before decoding.

    MessagePack (chain/codec.py): the version byte and the proof's array header (1 + 1); the
    header (MAX_HEADER_SIZE); the extrinsic (at most MAX_EXTRINSIC_SIZE, its versioned size);
    three u32s and two audit paths (5 each; an array header of 3 and MAX_PATH_LENGTH bin8
    hashes of 34 bytes); the result commitment (array header 1, u32 5, two bin8 hashes 68,
    u32 5); the parent version, kind and segment (5 + 2 + 5); the openings (array header 1)
    of which at most two: each an array header 1, index 5, hash 34, loss 5, a path, and
    weights (bin32 header 5 + 4 bytes a parameter) in one of them, nil (1 byte) in the other.
    """
    path = 3 + MAX_PATH_LENGTH * 34
    opening = 1 + 5 + 34 + 5 + path
    return (
        2 + MAX_HEADER_SIZE + MAX_EXTRINSIC_SIZE + 3 * 5 + 2 * path + (1 + 5 + 68 + 5) + 12
        + 1 + 2 * opening + (5 + 4 * max_params) + 1
    )


MAX_FRAUD_PROOF_SIZE: Final = compute_max_fraud_proof_size(MAX_PARAMS)


def compute_max_head_elements() -> int:
    """The most MessagePack elements a true proof's head (:class:`FraudProofHead`) holds: the
    largest header, a TRAIN extrinsic with every optional field set, two u32s and an audit path
    of MAX_PATH_LENGTH hashes (an array is one element and its items; a bin is one). A head with
    more is no TRAIN's, so no proof's, and is refused after reading these few: read by
    msgspec, the rest of a proof whose extrinsic was 3 MB of one-byte integers cost 7 ms to
    skip, and its hash 2.6 ms, before any check (an outside tester's AF3, retest36)."""
    train = Train(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # (a number is one element whatever its size)
    xt = Extrinsic(bytes(32), bytes(64), 0, 0, Era(0, 0), train)
    path = tuple(bytes(32) for _ in range(MAX_PATH_LENGTH))
    head = FraudProofHead(compute_largest_header(), msgspec.Raw(encode(xt)), 0, 0, path)
    return len(_elements(msgspec.msgpack.decode(encode(head)))) - 1  # (its own array is the proof's, not read)


def _elements(value: object) -> list[object]:
    """Every element of a value decoded without a type, arrays and their items alike."""
    items = [value]
    for item in value if isinstance(value, list) else ():
        items += _elements(item)
    return items


class FraudProof(Wire, frozen=True):
    """Evidence that a sealed block's training transcript is false (module docstring)."""

    header: Header
    extrinsic: Extrinsic
    extrinsic_index: U32
    extrinsic_count: U32
    extrinsic_path: AuditPath
    result: ResultCommitment
    result_count: U32
    result_position: U32  # the leaf's index under the transcripts root (results are in extrinsic order)
    result_path: AuditPath
    parent_version: U32
    kind: U8
    segment: U32
    openings: Annotated[tuple[Opening, ...], msgspec.Meta(max_length=2)]  # a start and an end at most

    def block_hash(self) -> bytes:
        """The faulty block's hash (its sealed header's)."""
        return self.header.hash()

    def encode(self) -> bytes:
        return encode_versioned(self)


def decode_fraud_proof(data: bytes, max_size: int = MAX_FRAUD_PROOF_SIZE) -> FraudProof:
    """A fraud proof from its versioned canonical bytes, refused before decoding if longer than
    ``max_size`` ("oversize"), and "malformed" if not the canonical encoding of a FraudProof."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidFraudProof("malformed", f"a fraud proof is bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise InvalidFraudProof("oversize", f"fraud proof is {len(data)} bytes; the limit is {max_size}")
    try:
        return decode_versioned(bytes(data), FraudProof)
    except CodecError as exc:
        raise InvalidFraudProof("malformed", str(exc)) from None


class FraudProofHead(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A fraud proof's first fields, all that tie it to a block: the header, the extrinsic's
    bytes (not decoded) and its path under the header's extrinsics root. The proof's other
    fields are not read (:func:`read_fraud_proof_head`)."""

    header: Header
    extrinsic: msgspec.Raw
    extrinsic_index: U32
    extrinsic_count: U32
    extrinsic_path: AuditPath


_FIELDS: Final = len(FraudProof.__struct_fields__)
_head_decoder = msgspec.msgpack.Decoder(FraudProofHead)
MAX_HEAD_ELEMENTS: Final = compute_max_head_elements()
#: The most bytes a true proof's head holds: the largest header, the largest extrinsic (its
#: versioned size, a byte over), two u32s and a full path (as compute_max_fraud_proof_size
#: counts them). Bounded in elements alone, a head whose extrinsic was one bin of most of a
#: proof's 18.9 MB was copied and hashed before its path was found false (retest37).
MAX_HEAD_SIZE: Final = MAX_HEADER_SIZE + MAX_EXTRINSIC_SIZE + 2 * 5 + 3 + MAX_PATH_LENGTH * 34


def _check_opening(data: bytes, max_size: int) -> None:
    if len(data) > max_size:
        raise InvalidFraudProof("oversize", f"fraud proof is {len(data)} bytes; the limit is {max_size}")
    if len(data) < 2 or data[0] != CODEC_VERSION or data[1] != 0x90 + _FIELDS:  # a version byte, a fixarray
        raise InvalidFraudProof("malformed", f"not a fraud proof: a proof opens with version {CODEC_VERSION} and an array of {_FIELDS}")


def read_fraud_proof_header(data: bytes, max_size: int = MAX_FRAUD_PROOF_SIZE) -> Header:
    """The header of the fraud proof ``data``, in canonical form, read without a parse of
    anything after it: all a node needs to tell whether it can judge the proof (its block's
    parent state is here). Even the head's read parses the rest to skip it, and a proof whose
    last field was 2.3 million one-byte integers cost 7 ms to skip, on the event loop, for a
    proof the node then dropped unjudged (found re-reading retest34's AD1 fix).
    "oversize" and "malformed" as :func:`read_fraud_proof_head`."""
    _check_opening(data, max_size)
    try:
        end = compute_element_end(data, 2, MAX_HEADER_SIZE)
        return decode(bytes(data[2:end]), Header)
    except CodecError as exc:
        raise InvalidFraudProof("malformed", f"FraudProof: its header: {exc}") from None


def read_fraud_proof_head(data: bytes, max_size: int = MAX_FRAUD_PROOF_SIZE) -> FraudProofHead:
    """The head of the fraud proof ``data`` (:class:`FraudProofHead`), its header in canonical
    form, read without a parse of the rest: where it ends is read off its types and lengths
    (at most :data:`MAX_HEAD_ELEMENTS` elements and :data:`MAX_HEAD_SIZE` bytes), so whether the proof is about a real block's
    real extrinsic (:func:`verify_sealed_extrinsic`) costs a header's decode, a signature and
    a hash path, whatever follows. Proofs about blocks whose parent a node lacked were each
    decoded in full first, 24 ms for 2.3 MB (an outside tester's Q2, round 15); false proofs
    about real blocks, 95% of a core (T2); then msgspec, reading the head, still parsed the
    rest to skip it (AF3). "oversize" and "malformed" as :func:`decode_fraud_proof`, which
    checks the whole."""
    _check_opening(data, max_size)
    try:
        end = compute_element_end(data, 2, MAX_HEAD_SIZE, count=len(FraudProofHead.__struct_fields__), steps=MAX_HEAD_ELEMENTS)
        head = _head_decoder.decode(bytes((0x90 + len(FraudProofHead.__struct_fields__),)) + data[2:end])
    except CodecError as exc:
        raise InvalidFraudProof("malformed", f"FraudProof: its head: {exc}") from None
    except msgspec.MsgspecError as exc:
        raise InvalidFraudProof("malformed", f"FraudProof: its head: {exc}") from None
    if not data.startswith(encode(head.header), 2):
        raise InvalidFraudProof("malformed", "FraudProof: its header is not in canonical form")
    return head


def verify_sealed_extrinsic(
    genesis_hash: bytes, state: StateAccess, header: Header, extrinsic: bytes, path: Sequence[bytes], index: int,
    count: int, *, sealed_here: bool = False,
) -> None:
    """InvalidFraudProof unless ``header`` is sealed by its author for the chain of
    ``genesis_hash``, the author is one of ``state``'s validators (unless ``sealed_here``: see
    :func:`verify_fraud_proof`), and ``extrinsic`` (its encoded, versioned bytes) is the
    block's extrinsic ``index`` of ``count`` by ``path``: what ties a proof to a real block's
    real extrinsic, checked by a node from a proof's head before the rest is decoded."""
    try:
        verify_seal(genesis_hash, header)
    except InvalidSignature as exc:
        raise InvalidFraudProof("bad_seal", f"block #{header.number}: the seal is not its author's: {exc}") from None
    if not sealed_here and header.author not in get_validators(state):
        # Aura refuses such a block: a "fault" in it slashes no one, and accepted, a throwaway
        # key's forgeries would cost every node a re-run and every validator a report's fee.
        raise InvalidFraudProof("not_validator", f"block #{header.number} is sealed by {ss58_encode(header.author)}, not a validator")
    try:
        verify_extrinsic_path(header.extrinsics_root, extrinsic, path, index, count)
    except ml_runtime.ProofError as exc:
        raise InvalidFraudProof("bad_extrinsic_path", f"extrinsic #{index}: {exc}") from None


def compute_entry_count(job: ml_runtime.TrainingJob, diverged_segment: int | None) -> int:
    """n, the transcript's entry count: S + 1, or d + 1 for a divergence claimed in segment d.
    BlockError for a claimed divergence in a segment the job does not have."""
    if diverged_segment is None:
        return job.num_segments + 1
    if not 0 <= diverged_segment < job.num_segments:
        raise BlockError(f"divergence claimed in segment {diverged_segment}; the job has {job.num_segments}")
    return diverged_segment + 1


def compute_start_fault(job: ml_runtime.TrainingJob, entry0: Opening) -> str | None:
    """What is wrong with entry 0 (it must commit to the job's on-chain weights with loss +0.0,
    ml_runtime.run_job), or None."""
    if entry0.weights_hash != ml_runtime.hash_weights(job.weights):
        return "checkpoint 0 is not the model's on-chain weights"
    if entry0.loss != 0:
        return f"entry 0 has loss bits {entry0.loss:#010x}, not +0.0"
    return None


def compute_end_fault(commitment: ResultCommitment, last: Opening) -> str | None:
    """What is wrong with the last entry (it must hash to the committed new weights), or None."""
    if last.weights_hash != commitment.weights_hash:
        return f"entry {last.index} is not the committed new weights"
    return None


# What re-running a segment gives: entry j + 1, or the error that stopped it.
Rerun = ml_runtime.TranscriptEntry | ml_runtime.NonFiniteWeights | ml_runtime.InvalidCheckpoint


def compute_rerun(job: ml_runtime.TrainingJob, j: int, checkpoint: np.ndarray) -> Rerun:
    """Segment j re-run from ``checkpoint``: entry j + 1, or the divergence (NonFiniteWeights) or
    the refusal of a checkpoint that cannot be run (InvalidCheckpoint: not finite, wrong length)
    that stopped it. Returned, not raised, so that re-runs on a thread pool report every one."""
    try:
        return ml_runtime.recompute_segment(job, j, checkpoint)[0]
    except (ml_runtime.NonFiniteWeights, ml_runtime.InvalidCheckpoint) as exc:
        return exc


def compute_segment_fault(j: int, rerun: Rerun, claimed: Opening | None) -> str | None:
    """What is wrong with the claim about segment j, given its re-run from checkpoint j
    (checked against entry j), or None. ``claimed`` is entry j + 1; None claims that the
    segment diverges."""
    if isinstance(rerun, ml_runtime.NonFiniteWeights):
        return None if claimed is None else f"segment {j} diverges ({rerun}), the transcript claims entry {j + 1}"
    if isinstance(rerun, ml_runtime.InvalidCheckpoint):
        return f"checkpoint {j} cannot be re-run: {rerun}"
    if claimed is None:
        return f"segment {j} re-runs without diverging; the transcript claims it diverged"
    if rerun.weights_hash != claimed.weights_hash:
        return f"segment {j} re-runs to weights {rerun.weights_hash.hex()}, entry {j + 1} claims {claimed.weights_hash.hex()}"
    bits = int.from_bytes(float32_bytes(rerun.loss), "little")
    if bits != claimed.loss:
        return f"segment {j} re-runs to loss bits {bits:#010x}, entry {j + 1} claims {claimed.loss:#010x}"
    return None


def compute_fraud_proof(
    block: Block, claim: TrainingClaim, kind: int, segment: int, openings: Sequence[Opening]
) -> FraudProof:
    """The proof of a fault found in ``claim`` (recorded when ``block`` was executed): the
    audit paths computed from the block, the openings stripped of weights the kind does not
    need (module docstring)."""
    index = claim.extrinsic_index
    extrinsics = block.body.extrinsics
    results = block.body.results
    position = next(p for p, r in enumerate(results) if r.extrinsic_index == index)
    keep = 0 if kind in (FAULT_SEGMENT, FAULT_DIVERGENCE) else None
    return FraudProof(
        block.header, extrinsics[index], index, len(extrinsics),
        compute_leaf_path([xt.encode() for xt in extrinsics], index),
        claim.result.commitment(), len(results), position,
        compute_leaf_path([encode(r.commitment()) for r in results], position),
        claim.parent_version, kind, segment,
        tuple(o if i == keep else msgspec.structs.replace(o, weights=None) for i, o in enumerate(openings)),
    )


def verify_fraud_proof(
    genesis_hash: bytes, state: StateAccess, config: RuntimeConfig, proof: FraudProof, *, sealed_here: bool = False
) -> None:
    """Return if ``proof`` shows a fault in a block its author sealed for the chain whose genesis
    is ``genesis_hash``; InvalidFraudProof
    (with the reason, module docstring) otherwise. ``state`` is any state holding the job's
    model version and data set, whose validators must include the block's author (a node
    passes the parent state: the set Aura checked the author against; the runtime its own,
    so an author that has left the set since is not slashed, as for equivocations);
    ``config`` the runtime limits the job is rebuilt under. ``sealed_here``: the block is the
    state's own chain's block of its number (pol.is_block_here), whose author Aura checked when
    it was imported: it need not be a validator any more (an author removed since for another
    offence still made the block, and a bounty claim may rest on its forgery)."""
    if not isinstance(proof, FraudProof):
        raise InvalidFraudProof("malformed", f"expected a FraudProof, got {type(proof).__name__}")
    if proof.kind not in FAULT_NAMES:
        raise InvalidFraudProof("unknown_kind", f"fault kind {proof.kind} is not one of {sorted(FAULT_NAMES)}")
    header = proof.header
    verify_sealed_extrinsic(
        genesis_hash, state, header, proof.extrinsic.encode(), proof.extrinsic_path, proof.extrinsic_index,
        proof.extrinsic_count, sealed_here=sealed_here,
    )
    call = proof.extrinsic.call
    if not isinstance(call, Train):
        raise InvalidFraudProof("not_training", f"extrinsic #{proof.extrinsic_index} is a {type(call).__name__} call, not TRAIN")
    try:
        transcripts_root = header.get_pol_commitment().transcripts_root
    except (BlockError, CodecError) as exc:
        raise InvalidFraudProof("bad_header", str(exc)) from None
    if proof.result.extrinsic_index != proof.extrinsic_index:
        raise InvalidFraudProof(
            "bad_result_path", f"the result is extrinsic #{proof.result.extrinsic_index}'s, not #{proof.extrinsic_index}'s"
        )
    try:
        verify_leaf_path(transcripts_root, encode(proof.result), proof.result_path, proof.result_position, proof.result_count)
    except ml_runtime.ProofError as exc:
        raise InvalidFraudProof("bad_result_path", f"result of extrinsic #{proof.extrinsic_index}: {exc}") from None
    work = compute_segment_weight(state, call)
    if work is not None and work > config.max_block_weight:
        # Before the job is rebuilt (which reads its data set) or anything re-runs: a report
        # declares at most a block's weight (chain.runtime.SETTLING_CALLS), so what it may
        # make every node do is bounded here, by the limit of the block's own time.
        raise InvalidFraudProof(
            "too_heavy",
            f"one segment of extrinsic #{proof.extrinsic_index} with its data set's read is {work:,} work units, more "
            f"than a block #{header.number} could hold ({config.max_block_weight:,}): no block of this chain carried it",
        )
    job = _rebuild_job(state, config, proof, call)
    try:
        n = compute_entry_count(job, proof.result.diverged_segment)
    except BlockError as exc:
        raise InvalidFraudProof("bad_result", str(exc)) from None
    wanted = _compute_wanted(proof, n)
    _verify_openings(proof, job, wanted, n)
    fault = _compute_fault(proof, job)
    if fault is None:
        raise InvalidFraudProof(
            "no_fault",
            f"block {proof.block_hash().hex()} extrinsic #{proof.extrinsic_index}: no {FAULT_NAMES[proof.kind]} "
            f"fault at {proof.segment}",
        )


def _rebuild_job(state: StateAccess, config: RuntimeConfig, proof: FraudProof, call: Train) -> ml_runtime.TrainingJob:
    """The job as the block ran it: the call pinned to the proof's parent version, whose
    weights are read for a start fault only (training.compute_job_at)."""
    if call.from_version is not None and call.from_version != proof.parent_version:
        raise InvalidFraudProof(
            "bad_parent_version", f"the call trains version {call.from_version}, the proof says {proof.parent_version}"
        )
    if call.from_version is None:
        _verify_latest_version(state, call.model, proof.parent_version, proof.header.number)
    pinned = msgspec.structs.replace(call, from_version=proof.parent_version)
    try:
        job, _, _ = compute_job_at(
            state, config, pinned, proof.header.parent_hash, proof.extrinsic.hash(), proof.header.number,
            read_weights=proof.kind == FAULT_START,  # no other fault starts from the version's weights
        )
    except DispatchError as exc:
        raise InvalidFraudProof("unknown_job", f"the job cannot be rebuilt: {exc.error}: {exc}") from None
    return job


def _verify_latest_version(state: StateAccess, model: int, version: int, number: int) -> None:
    """"bad_parent_version" ("unknown_job" if there is no such version) unless ``version`` is
    the one a TRAIN call naming no version trained in block #``number``.

    Such a call trains the model's latest version made before its block
    (models.compute_latest_before): not one an earlier call of the same block made, so its job
    is the one the block's parent state describes. The proof says which version that was
    (``parent_version``), and only the start fault depends on it (checkpoint 0 against that
    version's weights; every other fault re-runs from committed checkpoints with the job's
    data and seed, which no version changes). Unchecked, a proof naming an older version of
    the model showed a start fault in any honest block that trained a later one: a way to
    have an honest author's block invalidated and its bond slashed. Versions are made in
    block order (``ModelVersion.block``), so the latest before the block is the version made
    before it whose successor was not: made in the block or after it, or not at all on the
    parent state. Until runtime version 7 a call trained a version an earlier call of its block
    had made, and this check, which accepted the version before the block whatever its
    successor's place, framed the honest author of any block with two such calls of one model
    (tester17's H1, round 12). Two reads whatever the model's history, so a report's weight
    covers it. A version made in the block itself is refused: no call naming none trains one,
    version 0 of a model registered in the block included (no TRAIN of that block may train
    that model: training.verify_job_inputs, "ModelTooNew"). Checked for
    every fault, though only a start fault reads the version's weights: a proof names the
    version its call trained, not any number (one fault, one proof).
    """
    made = models.VERSIONS.get(state, model, version)
    if made is None:
        raise InvalidFraudProof("unknown_job", f"the job cannot be rebuilt: UnknownVersion: model {model} has no version {version}")
    if made.block == number:
        raise InvalidFraudProof(
            "bad_parent_version",
            f"version {version} was made in block #{number} itself: a call naming no version trains the latest "
            "made before its block",
        )
    if made.block > number:
        raise InvalidFraudProof("bad_parent_version", f"version {version} was made in block #{made.block}, after block #{number}")
    later = models.VERSIONS.get(state, model, version + 1)
    if later is not None and later.block < number:
        raise InvalidFraudProof(
            "bad_parent_version",
            f"the call names no version, so it trained the latest before block #{number}: version {version + 1} "
            f"(made in block #{later.block}) is later than version {version}",
        )


def _compute_wanted(proof: FraudProof, n: int) -> tuple[tuple[int, bool], ...]:
    """The (entry index, with weights) openings the kind needs; "bad_segment" if the segment
    does not fit the kind and the transcript."""
    j, kind = proof.segment, proof.kind
    d = proof.result.diverged_segment
    if kind == FAULT_START and j == 0:
        return ((0, False),)
    if kind == FAULT_SEGMENT and j < n - 1:
        return ((j, True), (j + 1, False))
    if kind == FAULT_END and j == n - 1:
        return ((j, False),)
    if kind == FAULT_DIVERGENCE and d is not None and j == d:
        return ((j, True),)
    raise InvalidFraudProof(
        "bad_segment", f"a {FAULT_NAMES[kind]} fault at {j} does not fit a transcript of {n} entries (diverged: {d})"
    )


def _verify_openings(proof: FraudProof, job: ml_runtime.TrainingJob, wanted: Sequence[tuple[int, bool]], n: int) -> None:
    if len(proof.openings) != len(wanted):
        raise InvalidFraudProof("bad_opening", f"{len(proof.openings)} openings; a {FAULT_NAMES[proof.kind]} fault needs {len(wanted)}")
    size = 4 * job.spec.param_count
    for opening, (index, with_weights) in zip(proof.openings, wanted, strict=True):
        if opening.index != index:
            raise InvalidFraudProof("bad_opening", f"opening of entry {opening.index} where entry {index} is needed")
        if (opening.weights is not None) != with_weights:
            raise InvalidFraudProof(
                "bad_opening", f"opening of entry {index} must {'' if with_weights else 'not '}carry weights"
            )
        try:
            ml_runtime.verify_merkle_proof(proof.result.transcript_root, opening.entry(), opening.path, n)
        except ml_runtime.ProofError as exc:
            raise InvalidFraudProof("bad_opening", f"entry {index} is not committed by the transcript root: {exc}") from None
        if opening.weights is not None:
            if len(opening.weights) != size:
                raise InvalidFraudProof("bad_opening", f"checkpoint {index} is {len(opening.weights)} bytes, expected {size}")
            if blake2_256(opening.weights) != opening.weights_hash:
                raise InvalidFraudProof("bad_opening", f"checkpoint {index} does not hash to entry {index}")


def _compute_fault(proof: FraudProof, job: ml_runtime.TrainingJob) -> str | None:
    first = proof.openings[0]
    if proof.kind == FAULT_START:
        return compute_start_fault(job, first)
    if proof.kind == FAULT_END:
        return compute_end_fault(proof.result, first)
    claimed = proof.openings[1] if proof.kind == FAULT_SEGMENT else None
    return compute_segment_fault(proof.segment, compute_rerun(job, proof.segment, first.get_weights()), claimed)
