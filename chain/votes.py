"""Finality votes as wire objects: what a validator signs, and how anyone checks it.

These types live in chain/ rather than consensus/ because the runtime must check them too: a
``pol.report_vote_equivocation`` extrinsic carries two signed votes, and the runtime slashes
their voter only if both signatures verify (chain/ never imports consensus/; see
docs/architecture.md §1). consensus.finality builds, counts and justifies votes with them.

A :class:`Checkpoint` is a block with a round (Casper FFG's epoch is the Aura slot here). A
:class:`Vote` names a justified *source* checkpoint and a *target* (the voter's best block
at the vote's round); the voter signs ``VOTE_DOMAIN || genesis hash || encode(vote)``
(:func:`compute_vote_message`), so a vote cannot be replayed on another chain or mistaken for
another signed message.

FFG's two slashing conditions (Buterin & Griffith, *Casper the Friendly Finality Gadget*,
2017, §3) are pure functions of two votes, here so that the runtime and the collector agree:
a *double vote* is two different votes of one validator with the same target round; a
*surround vote* is two votes of one validator where one's (source round, target round)
strictly contains the other's.
"""

from __future__ import annotations

from chain.codec import U64, AccountId, BlockNumber, Hash32, Signature, Wire, decode, encode
from chain.crypto import Keypair, verify_signature
from chain.errors import CodecError

VOTE_DOMAIN = b"polchain/finality-vote/v2"
#: The validator set's id every vote names. No authority-set change bumps it yet, so it is 0;
#: the collector (consensus.finality) and the runtime (rewards.note_votes) both check it.
SET_ID = 0
#: A signed vote's encoding is at most this long (its fields are fixed-size or bounded ints).
MAX_VOTE_BYTES = 256


class Checkpoint(Wire, frozen=True):
    """Block ``block_hash`` (number ``block_number``) as of round ``round``."""

    block_hash: Hash32
    block_number: BlockNumber
    round: U64


class Vote(Wire, frozen=True):
    """A validator's link from a justified ``source`` to its best block ``target`` (whose
    round is the vote's round)."""

    set_id: U64
    source: Checkpoint
    target: Checkpoint

    @property
    def round(self) -> int:
        return self.target.round


class SignedVote(Wire, frozen=True):
    vote: Vote
    voter: AccountId
    signature: Signature


def compute_vote_message(genesis_hash: bytes, vote: Vote) -> bytes:
    """The bytes a validator signs (see the module docstring)."""
    return VOTE_DOMAIN + genesis_hash + encode(vote)


def sign_vote(key: Keypair, genesis_hash: bytes, vote: Vote) -> SignedVote:
    return SignedVote(vote, key.public, key.sign(compute_vote_message(genesis_hash, vote)))


def verify_signed_vote(genesis_hash: bytes, signed: SignedVote) -> None:
    """Raise chain.errors.InvalidSignature unless ``signed.voter`` signed ``signed.vote`` for
    the chain whose genesis is ``genesis_hash``."""
    verify_signature(signed.voter, compute_vote_message(genesis_hash, signed.vote), signed.signature)


def decode_signed_vote(data: bytes) -> SignedVote:
    """The signed vote ``data`` canonically encodes; CodecError if it is longer than
    :data:`MAX_VOTE_BYTES` (checked before decoding) or not a canonical SignedVote."""
    if len(data) > MAX_VOTE_BYTES:
        raise CodecError(f"SignedVote: a signed vote is at most {MAX_VOTE_BYTES} bytes, got {len(data)}")
    return decode(data, SignedVote)


def is_double_vote(first: Vote, second: Vote) -> bool:
    """Two different votes with one target round (FFG's first slashing condition)."""
    return first != second and first.target.round == second.target.round


def surrounds(outer: Vote, inner: Vote) -> bool:
    """``outer``'s link strictly contains ``inner``'s (FFG's second slashing condition, one way)."""
    return outer.source.round < inner.source.round and inner.target.round < outer.target.round
