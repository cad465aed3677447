"""Proof-of-learning offences: fraud proofs, Aura equivocations and finality equivocations
reported by anyone, checked by the runtime, punished once.

Three calls carry evidence as bytes, each bounded by the call's codec before it is decoded
here canonically:

- ``report_fraud(proof)``: a chain.fraud.FraudProof; the runtime re-runs the one segment it
  names (chain.fraud.verify_fraud_proof). The call's weight includes that segment (ml_runtime's
  cost model x the segment's steps), so the reporter pays for the check. Offender: the
  block's author, a validator in this state (else "not_validator": a block a throwaway key
  sealed proves nothing, Aura would refuse it). Offence key: the block hash.
- ``report_equivocation(first, second)``: two sealed headers with one author and one slot
  and different hashes, both seals valid, the author a validator in this state or one
  removed for an offence (:func:`_check_validator`; Substrate's
  ``pallet-aura``/BABE equivocation report), and at least one header's parent a block of this
  chain among the last ``system.BLOCK_HASH_COUNT``. Key: (slot, author).
- ``report_vote_equivocation(first, second)``: two signed finality votes of one validator
  (a validator in this state, or one removed for an offence), both signatures valid under
  this chain's genesis hash, that break one of Casper FFG's slashing conditions
  (chain.votes): a double vote (two different votes with one target round) or a surround vote. Key: (set id, round, voter), the round
  being the target round of the double vote, or of the surrounding (outer) vote.

A valid report goes through :func:`apply_offence`, the one effect of all three: the offence
key is recorded (a second report of it is refused with DuplicateReport), the offender is
slashed and the reporter paid (chain.pallets.staking.apply_slash), and the offender is
queued to leave the validator set at the next era start (never the last validator). From
that block on it is disabled: consensus.aura refuses the blocks it seals until it leaves. An
invalid report fails with a DispatchError naming what is wrong; its fee is kept: its sender
made every node check it.

One slash per removal (:func:`is_punished`): once an offender is queued or removed, a report
of any other offence of it is refused (AlreadyPunished) before its costly checks, but for a
fraud proof of a block of this chain (the faulty block's own hash is this chain's of its
number): that one is checked and recorded with no slash, and marks its TRAIN's version forged
(models.FORGED), which voids a bounty claim resting on it (chain.pallets.bounties); refusing
it let an author forge a second block for a second bounty at no further cost (an outside
tester's finding, round 5). Every proven fraud in a block of this chain marks its version. Substrate
does the same with slashing spans: of the offences in one span only the largest is slashed,
and the offender is disabled at once (``pallet-staking``'s ``SlashingSpans``,
``DisabledValidators``). Every offence here takes the same fraction, so the largest is the
first. Before, each offence took half of what was left: an operator who ran two nodes on
one key (the classic validator accident) equivocated in every slot it had until the first
report landed, and lost 1 - 2^-k of its stake to k reports of one fault (an expert reviewer's
finding). Disabling is what makes the cap safe: without it, a slashed validator could go on
sealing forged or equivocating blocks for the rest of the era for free. Its finality votes
still count until it leaves, as a GRANDPA voter's do until its set ends; a further vote
equivocation adds nothing an attacker needs, since one double vote per validator is all a
conflicting finalization takes. The last validator is never queued (a chain must keep an
author): it is not disabled, and each of its offences is slashed.

Order of checks: decode, the cheap relations between the two pieces of evidence, the
offender's membership, the duplicate lookup, then signatures (and the segment re-run) last.

A header's seal names the chain: it signs ``SEAL_DOMAIN || genesis hash || pre-hash``
(chain.header.compute_seal_message), so a header another chain's block sealed fails here with
BadSeal, and a key run on two chains cannot be slashed with the other's header. (Until
2026-11-29 the seal signed the bare pre-hash, and a key that sealed one slot on two chains of
the same slot duration was slashable with the other chain's header: an outside tester's
finding.) The report must still show one header whose parent is among this chain's last
``system.BLOCK_HASH_COUNT`` blocks (NotOnThisChain otherwise): that is the window in which an
equivocation is punishable, as Substrate's reports are bounded to recent sessions. The other
header's parent is not asked for: the runtime knows only the best chain's blocks, and an author
that seals on two forks in one slot (the equivocation that matters) has one of them on a fork
that may die; requiring both let every such author go unpunished (tried on 2026-11-29, undone
after a reviewer's finding). An equivocation both of whose blocks sit on a branch that left the
best chain, or older than the window, is not punishable here. A fraud proof's block must
have its parent on this chain for another reason: its job is rebuilt from this chain's state (see apply_report_fraud).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

from chain.calls import ReportEquivocation, ReportFraud, ReportVoteEquivocation, Train
from chain.codec import U8, AccountId, Balance, BlockNumber, Wire, decode_versioned
from chain.crypto import blake2_256, ss58_encode
from chain.errors import ChainError, CodecError, DispatchError, InvalidFraudProof, InvalidSignature
from chain.fraud import (
    FAULT_DIVERGENCE,
    FAULT_SEGMENT,
    FraudProof,
    decode_fraud_proof,
    verify_fraud_proof,
)
from chain.header import Header, verify_seal
from chain.pallets import democracy, models, staking, system, training
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap
from chain.votes import (
    SignedVote,
    decode_signed_vote,
    is_double_vote,
    surrounds,
    verify_signed_vote,
)

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "pol"
Report = ReportFraud | ReportEquivocation | ReportVoteEquivocation

OFFENCE_FRAUD, OFFENCE_AURA, OFFENCE_VOTE = 0, 1, 2
#: The errors of a report that another report made stale: each was valid when its sender
#: signed it, and fails only because a report of the same offence (or one of the same
#: offender) came first. A node's author leaves such a report out of its block rather than
#: include it failed and charge its sender (chain.blockchain.Blockchain.build_block's
#: ``leave_out``); a block that includes one stays valid.
STALE_REPORT_ERRORS = frozenset({f"{PALLET}.DuplicateReport", f"{PALLET}.AlreadyPunished"})
_KEY_PREFIX = {OFFENCE_FRAUD: b"fraud/", OFFENCE_AURA: b"aura/", OFFENCE_VOTE: b"vote/"}

#: Work units of a report before any training: decoding, hashing and two signature checks.
REPORT_BASE_WEIGHT = 500_000


class Offence(Wire, frozen=True):
    """A punished offence: what, who, who reported it, in which block, and the slash."""

    kind: U8
    offender: AccountId
    reporter: AccountId
    block: BlockNumber
    slashed: Balance
    reporter_reward: Balance
    burned: Balance


#: Offence key (:func:`compute_offence_key`) -> the punished offence.
OFFENCES = StorageMap("Pol", "Offences", Offence)


def compute_offence_key(kind: int, *parts: bytes | int) -> bytes:
    """The key of one offence: a kind prefix, then each part (ints as u64 big-endian)."""
    raw = [p if isinstance(p, bytes) else struct.pack(">Q", p) for p in parts]
    return _KEY_PREFIX[kind] + b"".join(raw)


def get_offence(state: StateAccess, key: bytes) -> Offence | None:
    return OFFENCES.get(state, key)


# --- the effect ------------------------------------------------------------------------------
def apply_offence(ctx: CallContext, kind: int, key: bytes, offender: bytes) -> staking.Slash:
    """Punish a proven offence (the caller checked it with :func:`verify_new_offence` before
    its expensive checks): record it, slash the offender, pay the reporter (the sender), queue
    the offender's removal; emits staking.Slashed and, when the offender is the last
    validator, staking.ValidatorKept with the reason."""
    slash = staking.apply_slash(ctx.state, ctx.config, offender, ctx.sender)
    OFFENCES.apply_set(
        ctx.state,
        Offence(kind, offender, ctx.sender, ctx.block.number, slash.amount, slash.reporter_reward, slash.burned),
        key,
    )
    ctx.emit(staking.PALLET, "Slashed", who=offender, amount=slash.amount, reporter_reward=slash.reporter_reward, burned=slash.burned)
    outcome = staking.apply_queue_removal(ctx.state, offender)
    if outcome == "last_validator":
        ctx.emit(staking.PALLET, "ValidatorKept", who=offender, reason="the last validator is never removed")
    return slash


def verify_new_offence(state: StateAccess, key: bytes, offender: bytes, reporter: bytes) -> None:
    """SelfReport if the offender reports itself (it would get the reporter's share of its own
    slash back, and could race honest reporters to do so); DuplicateReport if the offence
    ``key`` is punished already; AlreadyPunished if the offender is (:func:`is_punished`)."""
    if reporter == offender:
        raise DispatchError(PALLET, "SelfReport", f"{ss58_encode(offender)} cannot report its own offence")
    if OFFENCES.get(state, key) is not None:
        raise DispatchError(PALLET, "DuplicateReport", f"this offence of {ss58_encode(offender)} is punished already")
    if is_punished(state, offender):
        raise DispatchError(
            PALLET, "AlreadyPunished",
            f"{ss58_encode(offender)} was slashed for an earlier offence and is disabled until it leaves the set, "
            "or has left it: one slash per removal",
        )


def is_punished(state: StateAccess, who: bytes) -> bool:
    """Whether ``who`` was slashed and queued to leave the set, or has left it, for an
    offence: a further report of it is refused, and Aura refuses its blocks (module docstring)."""
    return staking.is_disabled(state, who) or staking.REMOVED.get(state, who) is not None


def is_block_here(state: StateAccess, number: int, block_hash: bytes) -> bool:
    """Whether ``block_hash`` is this chain's block ``number`` (within the window of block
    hashes the state keeps): a fraud proven in such a block is proven whoever its author, for
    the versions it made (:func:`_verify_new_fraud`)."""
    return system.get_block_hash(state, number) == block_hash


def is_reportable(state: StateAccess, who: bytes) -> bool:
    """Whether ``who``'s offences can be reported: a validator, or one removed for an offence
    (staking.REMOVED), whose reports are then refused as AlreadyPunished (one slash per
    removal), not as NotValidator, which would be wrong about it. The node's reporter
    (node.offences) asks this and :func:`is_punished`."""
    return who in staking.get_validators(state) or staking.REMOVED.get(state, who) is not None


def _check_validator(state: StateAccess, who: bytes) -> None:
    if not is_reportable(state, who):
        raise DispatchError(PALLET, "NotValidator", f"{ss58_encode(who)} is not a validator (nor one removed for an offence)")


# --- report_fraud ----------------------------------------------------------------------------
def compute_report_fraud_weight(state: StateAccess, call: ReportFraud) -> int:
    """REPORT_BASE_WEIGHT plus reading the job's data set (the job is rebuilt from this
    state: datasets.compute_read_weight) and, for a segment or divergence fault, one segment
    of the proof's TRAIN call (ml_runtime's cost model for the model and batch size x
    min(segment_len, steps)), for a start or end fault one checkpoint's weights read and
    compared (no segment re-runs: an end-fault report paid 2 POL for a 1.6 ms check, an
    outside tester's finding, round 8); only the base weight for a proof that does not decode
    or names no known model (its dispatch fails at once)."""
    try:
        proof = decode_fraud_proof(call.proof)
    except ChainError:
        return REPORT_BASE_WEIGHT
    train = proof.extrinsic.call
    if not isinstance(train, Train):
        return REPORT_BASE_WEIGHT
    if proof.kind in (FAULT_SEGMENT, FAULT_DIVERGENCE):
        work = training.compute_segment_weight(state, train)
    else:
        work = training.compute_check_weight(state, train)
    return REPORT_BASE_WEIGHT + (work or 0)


class _NewFraud(NamedTuple):
    proof: FraudProof
    key: bytes  # the offence's
    here: bool  # the faulty block is this chain's
    training_hash: bytes
    slash: bool  # a proof would slash (_verify_new_fraud)


def _find_new_fraud(state: StateAccess, reporter: bytes, call: ReportFraud) -> _NewFraud:
    """A fraud report's checks before its costly ones (the seal, the paths, the re-run): the
    proof decodes, and the fraud is not proven already (:func:`_verify_new_fraud`)."""
    try:
        proof = decode_fraud_proof(call.proof)
    except InvalidFraudProof as exc:
        raise DispatchError(PALLET, "InvalidFraudProof", f"{exc.reason}: {exc}") from None
    block_hash = proof.block_hash()
    key = compute_offence_key(OFFENCE_FRAUD, block_hash)
    here = is_block_here(state, proof.header.number, block_hash)
    training_hash = blake2_256(proof.extrinsic.encode())
    return _NewFraud(proof, key, here, training_hash, _verify_new_fraud(state, key, proof.header.author, reporter, here, training_hash))


def verify_report_admissible(state: StateAccess, reporter: bytes, call: Report, _number: int, _config: RuntimeConfig) -> None:
    """A pool's check of an offence report (chain.runtime.CallRow.admit): its checks before the
    costly ones, so that a report of an offence punished already, which an author leaves out
    of its block at no fee to its sender (STALE_REPORT_ERRORS), is refused at once. It entered
    every pool at five times its declared fee in priority (runtime.OPERATIONAL_CALLS): 8,192
    of them, signed again with another tip each slot, kept a pool full for nothing (an outside
    tester's finding, round 9)."""
    if isinstance(call, ReportFraud):
        _find_new_fraud(state, reporter, call)
    elif isinstance(call, ReportEquivocation):
        _find_equivocation(state, reporter, call)
    else:
        _find_vote_equivocation(state, reporter, call)


def apply_report_fraud(ctx: CallContext, call: ReportFraud) -> None:
    proof, key, here, training_hash, slash = _find_new_fraud(ctx.state, ctx.sender, call)
    block_hash, offender = proof.block_hash(), proof.header.author
    if not _has_parent_here(ctx.state, proof.header):
        # The job is rebuilt from this chain's state, which is the faulty block's parent state
        # only if that parent is on this chain: on another fork a model version or data set id
        # may hold other data, and an honest block would look faulty (a framing).
        raise _not_on_this_chain(proof.header, "the faulty block")
    try:  # checks the header's seal, the paths, and re-runs the one segment
        verify_fraud_proof(
            ctx.genesis_hash, ctx.state, democracy.get_config_of_block(ctx.state, proof.header.number), proof,
            sealed_here=here,
        )
    except InvalidFraudProof as exc:
        raise DispatchError(PALLET, "InvalidFraudProof", f"{exc.reason}: {exc}") from None
    if slash:
        slashed = apply_offence(ctx, OFFENCE_FRAUD, key, offender).amount
    else:  # one slash per removal (or the block's first forgery was slashed already)
        slashed = 0
        if OFFENCES.get(ctx.state, key) is None:  # recorded, for DuplicateReport
            OFFENCES.apply_set(ctx.state, Offence(OFFENCE_FRAUD, offender, ctx.sender, ctx.block.number, 0, 0, 0), key)
    if here:
        models.FORGED.apply_set(ctx.state, True, training_hash)
    ctx.emit(
        PALLET, "FraudProven", block_hash=block_hash, block_number=proof.header.number, offender=offender,
        kind=proof.kind, segment=proof.segment, slashed=slashed,
    )


def is_fraud_proven(state: StateAccess, proof: FraudProof) -> bool:
    """Whether a report of ``proof`` would be refused as DuplicateReport here: in a block of
    this chain, its TRAIN is marked forged; in another, the block's offence is recorded. A
    node reports a proof from a peer unless it is (node.service)."""
    block_hash = proof.block_hash()
    if is_block_here(state, proof.header.number, block_hash):
        return models.FORGED.get(state, blake2_256(proof.extrinsic.encode())) is not None
    return OFFENCES.get(state, compute_offence_key(OFFENCE_FRAUD, block_hash)) is not None


def _verify_new_fraud(state: StateAccess, key: bytes, offender: bytes, reporter: bytes, here: bool, training_hash: bytes) -> bool:
    """Whether a fraud report may go on to its costly checks, and if it then slashes.

    A block of another fork: as any offence (:func:`verify_new_offence`: SelfReport,
    DuplicateReport, AlreadyPunished). A block of this chain (``here``): its TRAIN's version
    must be marked forged (models.FORGED) whoever its author and whatever else of the block
    was proven, since a bounty claim may rest on it (chain.pallets.bounties); so only
    SelfReport, and DuplicateReport for this very TRAIN, are refused. The block hash as the
    only key let a bait forgery's proof shut out the proof of a second forged TRAIN in the
    same block, and one slash per removal the proof of a second forged block (a reviewer's and
    an outside tester's findings, round 5). It slashes only if neither the block's offence nor
    the offender is punished yet."""
    if not here:
        verify_new_offence(state, key, offender, reporter)
        return True
    if reporter == offender:
        raise DispatchError(PALLET, "SelfReport", f"{ss58_encode(offender)} cannot report its own offence")
    if models.FORGED.get(state, training_hash) is not None:
        raise DispatchError(PALLET, "DuplicateReport", f"this forged TRAIN of {ss58_encode(offender)} is proven already")
    return OFFENCES.get(state, key) is None and not is_punished(state, offender)


# --- report_equivocation (Aura) --------------------------------------------------------------
def _decode_header(data: bytes, which: str) -> Header:
    try:
        return decode_versioned(data, Header)
    except CodecError as exc:
        raise DispatchError(PALLET, "MalformedHeader", f"{which} header: {exc}") from None


def _verify_seal(genesis_hash: bytes, header: Header, which: str) -> None:
    try:
        verify_seal(genesis_hash, header)
    except InvalidSignature as exc:
        raise DispatchError(PALLET, "BadSeal", f"{which} (#{header.number}): {exc}") from None


def _find_equivocation(state: StateAccess, reporter: bytes, call: ReportEquivocation) -> tuple[Header, Header, bytes, bytes]:
    """An equivocation report's checks before its seals: the two headers, their offender
    (a validator) and the offence's key, not punished already (:func:`verify_new_offence`)."""
    first, second = _decode_header(call.first, "the first"), _decode_header(call.second, "the second")
    if first.author != second.author:
        raise DispatchError(PALLET, "DifferentAuthors", "the two headers have different authors: no equivocation")
    if first.slot != second.slot:
        raise DispatchError(
            PALLET, "DifferentSlots", f"the headers are in slots {first.slot} and {second.slot}: no equivocation"
        )
    if first.hash() == second.hash():
        raise DispatchError(PALLET, "SameBlock", "the two headers are one block: no equivocation")
    offender = first.author
    _check_validator(state, offender)
    key = compute_offence_key(OFFENCE_AURA, first.slot, offender)
    verify_new_offence(state, key, offender, reporter)
    return first, second, offender, key


def apply_report_equivocation(ctx: CallContext, call: ReportEquivocation) -> None:
    first, second, offender, key = _find_equivocation(ctx.state, ctx.sender, call)
    _verify_seal(ctx.genesis_hash, first, "the first header")
    _verify_seal(ctx.genesis_hash, second, "the second header")
    if not (_has_parent_here(ctx.state, first) or _has_parent_here(ctx.state, second)):
        raise _not_on_this_chain(first, "neither header")  # two headers of another chain (module docstring)
    slash = apply_offence(ctx, OFFENCE_AURA, key, offender)
    ctx.emit(PALLET, "EquivocationProven", kind="aura", offender=offender, slot=first.slot, slashed=slash.amount)


def _has_parent_here(state: StateAccess, header: Header) -> bool:
    """Whether ``header``'s parent is this chain's block of its number, within the window
    system.BlockHash keeps."""
    return header.number > 0 and system.get_block_hash(state, header.number - 1) == header.parent_hash


def _not_on_this_chain(header: Header, which: str) -> DispatchError:
    return DispatchError(
        PALLET, "NotOnThisChain",
        f"{which}: block #{header.number}'s parent {header.parent_hash.hex()} is not one of this chain's last "
        f"{system.BLOCK_HASH_COUNT} blocks",
    )


# --- report_vote_equivocation (finality) -----------------------------------------------------
def _decode_vote(data: bytes, which: str) -> SignedVote:
    try:
        return decode_signed_vote(data)
    except CodecError as exc:
        raise DispatchError(PALLET, "MalformedVote", f"{which} vote: {exc}") from None


def _find_vote_equivocation(
    state: StateAccess, reporter: bytes, call: ReportVoteEquivocation
) -> tuple[SignedVote, SignedVote, str, int, bytes, bytes]:
    """A vote equivocation report's checks before its signatures: the two votes, what they
    are (a double or surround vote, and its round), their voter (a validator) and the
    offence's key, not punished already (:func:`verify_new_offence`)."""
    first, second = _decode_vote(call.first, "the first"), _decode_vote(call.second, "the second")
    a, b = first.vote, second.vote
    if first.voter != second.voter:
        raise DispatchError(PALLET, "DifferentVoters", "the two votes have different voters: no equivocation")
    if a.set_id != b.set_id:
        raise DispatchError(PALLET, "DifferentSets", f"the votes are for sets {a.set_id} and {b.set_id}: no equivocation")
    if is_double_vote(a, b):
        kind, round_number = "double_vote", a.target.round
    elif surrounds(a, b) or surrounds(b, a):
        kind, round_number = "surround_vote", max(a.target.round, b.target.round)
    else:
        raise DispatchError(
            PALLET, "NotEquivocation",
            f"links {a.source.round}->{a.target.round} and {b.source.round}->{b.target.round} are neither a double "
            "vote (two different votes with one target round) nor a surround vote",
        )
    offender = first.voter
    _check_validator(state, offender)
    key = compute_offence_key(OFFENCE_VOTE, a.set_id, round_number, offender)
    verify_new_offence(state, key, offender, reporter)
    return first, second, kind, round_number, offender, key


def apply_report_vote_equivocation(ctx: CallContext, call: ReportVoteEquivocation) -> None:
    first, second, kind, round_number, offender, key = _find_vote_equivocation(ctx.state, ctx.sender, call)
    for which, signed in (("first", first), ("second", second)):
        try:
            verify_signed_vote(ctx.genesis_hash, signed)
        except InvalidSignature as exc:
            raise DispatchError(PALLET, "BadSignature", f"the {which} vote: {exc}") from None
    slash = apply_offence(ctx, OFFENCE_VOTE, key, offender)
    ctx.emit(
        PALLET, "EquivocationProven", kind=kind, offender=offender, set_id=first.vote.set_id, round=round_number,
        slashed=slash.amount,
    )
