"""Finality, GRANDPA-style but simple: signed votes, justifications, and their checks.

Each validator signs a :class:`Vote` for its best imported block once per round (the node
uses the Aura slot as the round). A vote for a block counts for every ancestor of it too, as
a GRANDPA precommit does. When the votes of one round from more than 2/3 of the validator
set (3 of 4, 5 of 7: ``2n // 3 + 1``) all contain a block, that block is final together with
its ancestors (Stewart & Kokoris-Kogias, *GRANDPA: a Byzantine Finality Gadget*, 2020, §3:
the supermajority threshold, and precommits for descendants counting for the ancestor).

A :class:`Justification` proves it to anyone: the target block, the round's signed votes,
and the headers that link each voted block down to the target (GRANDPA's
``votes_ancestries``). :func:`verify_justification` checks the set id, one round for all
votes, no voter twice, every voter a validator, the threshold, the ancestry (each vote's
block reaches the target through the given headers, every header is used) and every
signature; a target that conflicts with the node's finalized chain is refused with reason
"conflicts_with_finalized" (if the votes are genuine, more than 1/3 of the validators
equivocated). A syncing node checks each justification it receives this way before
:func:`import_justification` finalizes.

What a validator signs is domain-separated and bound to the chain: ``VOTE_DOMAIN ||
genesis hash || encode(Vote(set_id, round, block hash, block number))``, so a vote cannot be
replayed on another chain, in another round, or mistaken for any other signed message.

Two votes of one validator in one round for different blocks are an equivocation: the
collector keeps both signed votes in the chain's EVIDENCE column (key ``vote/`` + set id +
round + voter) and refuses the second.

The validator set is the one in the finalized block's state, with set id 0: the set does not
change yet (an authority-set change would bump the set id, as GRANDPA's does).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Annotated

import msgspec

from chain.blockchain import Blockchain, TreeRoute
from chain.codec import (
    U64,
    AccountId,
    BlockNumber,
    Hash32,
    Signature,
    Wire,
    decode,
    decode_versioned,
    encode,
    encode_versioned,
)
from chain.crypto import Keypair, ss58_encode, verify_signature
from chain.errors import ChainError, CodecError, InvalidSignature
from chain.header import Header
from chain.pallets.staking import get_validators
from consensus import fork_choice
from consensus.errors import InvalidJustification, InvalidVote, VoteEquivocation

SET_ID = 0
VOTE_DOMAIN = b"polchain/finality-vote/v1"
EVIDENCE_PREFIX = b"vote/"
#: Bounds on a justification from a peer, checked before any work: votes (one per validator),
#: ancestry headers, and encoded bytes.
MAX_VOTES = 1024
MAX_ANCESTRY = 4096
MAX_JUSTIFICATION_BYTES = 4 << 20
MAX_VOTE_BYTES = 256
#: Rounds the collector keeps votes for, and how far ahead of the local round it accepts them.
KEPT_ROUNDS = 16
MAX_FUTURE_ROUNDS = 2


class Vote(Wire, frozen=True):
    """A validator's vote for block ``block_hash`` (number ``block_number``) in ``round``."""

    set_id: U64
    round: U64
    block_hash: Hash32
    block_number: BlockNumber


class SignedVote(Wire, frozen=True):
    vote: Vote
    voter: AccountId
    signature: Signature


class Justification(Wire, frozen=True):
    """Votes of one round that make ``target_hash`` final, with the linking headers."""

    target_hash: Hash32
    target_number: BlockNumber
    set_id: U64
    round: U64
    votes: Annotated[tuple[SignedVote, ...], msgspec.Meta(max_length=MAX_VOTES)]
    ancestry: Annotated[tuple[Header, ...], msgspec.Meta(max_length=MAX_ANCESTRY)] = ()

    def encode(self) -> bytes:
        return encode_versioned(self)


class VoteEquivocationEvidence(Wire, frozen=True):
    """Two votes of one validator in one round for different blocks: first seen, then second."""

    first: SignedVote
    second: SignedVote


def compute_vote_message(genesis_hash: bytes, vote: Vote) -> bytes:
    """The bytes a validator signs (see the module docstring)."""
    return VOTE_DOMAIN + genesis_hash + encode(vote)


def sign_vote(key: Keypair, genesis_hash: bytes, vote: Vote) -> SignedVote:
    return SignedVote(vote, key.public, key.sign(compute_vote_message(genesis_hash, vote)))


def make_vote(chain: Blockchain, key: Keypair, round_number: int) -> SignedVote:
    """This validator's vote for its best block in ``round_number``."""
    return sign_vote(key, chain.genesis_hash, Vote(SET_ID, round_number, chain.best_hash, chain.best_number))


def compute_threshold(validators: int) -> int:
    """The least number of votes that is more than 2/3 of ``validators``."""
    return 2 * validators // 3 + 1


def get_voters(chain: Blockchain) -> tuple[bytes, ...]:
    """The validator set that votes: the one in the finalized block's state."""
    return get_validators(chain.state_at(chain.finalized_hash))


def decode_justification(data: bytes) -> Justification:
    """Decode a justification from a peer; InvalidJustification "oversize" or "malformed"."""
    if len(data) > MAX_JUSTIFICATION_BYTES:
        raise InvalidJustification("oversize", f"a justification is at most {MAX_JUSTIFICATION_BYTES} bytes, got {len(data)}")
    try:
        return decode_versioned(data, Justification)
    except CodecError as exc:
        raise InvalidJustification("malformed", f"justification: {exc}") from None


def decode_signed_vote(data: bytes) -> SignedVote:
    """Decode a vote from a peer (its size is bounded by its fixed fields); InvalidVote
    "malformed" on anything else."""
    if len(data) > MAX_VOTE_BYTES:
        raise InvalidVote("malformed", f"a signed vote is at most {MAX_VOTE_BYTES} bytes, got {len(data)}")
    try:
        return decode(data, SignedVote)
    except CodecError as exc:
        raise InvalidVote("malformed", f"vote: {exc}") from None


def get_justification(chain: Blockchain, block_hash: bytes) -> Justification | None:
    """The justification stored with ``block_hash`` (to serve to a syncing peer), or None."""
    raw = chain.get_justification(block_hash)
    return None if raw is None else decode_versioned(raw, Justification)


def verify_justification(chain: Blockchain, justification: Justification) -> None:
    """Return if ``justification`` proves its target final on this chain (module docstring);
    InvalidJustification with a specific ``reason`` if not. Cheap checks come first, the
    signatures last."""
    j = justification
    if j.set_id != SET_ID:
        raise InvalidJustification("wrong_set", f"justification for set {j.set_id}, the current set is {SET_ID}")
    voters: set[bytes] = set()
    for signed in j.votes:
        if signed.vote.set_id != j.set_id or signed.vote.round != j.round:
            raise InvalidJustification(
                "mixed_rounds", f"a vote of {ss58_encode(signed.voter)} is for set {signed.vote.set_id} round "
                f"{signed.vote.round}, the justification's is set {j.set_id} round {j.round}",
            )
        if signed.voter in voters:
            raise InvalidJustification("duplicate_voter", f"{ss58_encode(signed.voter)} votes twice")
        voters.add(signed.voter)
    if not chain.has_block(j.target_hash):
        raise InvalidJustification("unknown_block", f"target block {j.target_hash.hex()} is not imported")
    target = chain.get_header(j.target_hash)
    if target.number != j.target_number:
        raise InvalidJustification("malformed", f"target block is #{target.number}, the justification says #{j.target_number}")
    if not chain.is_descendant(j.target_hash, chain.finalized_hash) and not chain.is_descendant(chain.finalized_hash, j.target_hash):
        raise InvalidJustification(
            "conflicts_with_finalized",
            f"target #{j.target_number} {j.target_hash.hex()} is not on the chain of the finalized block "
            f"#{chain.finalized_number} {chain.finalized_hash.hex()}",
        )
    validators = set(get_voters(chain))
    outsiders = voters - validators
    if outsiders:
        raise InvalidJustification("not_validator", f"{ss58_encode(min(outsiders))} is not a validator")
    needed = compute_threshold(len(validators))
    if len(voters) < needed:
        raise InvalidJustification(
            "below_threshold", f"{len(voters)} votes of {len(validators)} validators; more than 2/3 is {needed}"
        )
    _verify_ancestry(j)
    for signed in j.votes:
        try:
            verify_signature(signed.voter, compute_vote_message(chain.genesis_hash, signed.vote), signed.signature)
        except InvalidSignature as exc:
            raise InvalidJustification("bad_signature", f"vote of {ss58_encode(signed.voter)}: {exc}") from None


def _verify_ancestry(j: Justification) -> None:
    headers = {h.hash(): h for h in j.ancestry}
    used: set[bytes] = set()
    for signed in j.votes:
        current, number = signed.vote.block_hash, signed.vote.block_number
        while current != j.target_hash:
            header = headers.get(current)
            if header is None or header.number != number or number <= j.target_number:
                raise InvalidJustification(
                    "bad_ancestry",
                    f"the vote of {ss58_encode(signed.voter)} for #{signed.vote.block_number} "
                    f"{signed.vote.block_hash.hex()} is not shown to contain the target",
                )
            used.add(current)
            current, number = header.parent_hash, number - 1
        if number != j.target_number:
            raise InvalidJustification("bad_ancestry", f"a vote names the target with number {number}, not #{j.target_number}")
    if len(used) != len(headers):
        raise InvalidJustification("bad_ancestry", f"{len(headers) - len(used)} ancestry headers link no vote to the target")


def import_justification(chain: Blockchain, justification: Justification | bytes) -> TreeRoute | None:
    """Verify a justification and finalize its target (with the fork choice's best block
    under it, one batch). Returns the reorg route if the best block changed.

    A target that is already final (an ancestor of the finalized block) only gets the
    justification stored.
    """
    j = decode_justification(justification) if isinstance(justification, bytes) else justification
    verify_justification(chain, j)
    best = fork_choice.select_best(chain, j.target_hash) if chain.is_descendant(j.target_hash, chain.finalized_hash) else None
    try:
        return chain.finalize(j.target_hash, j.encode(), best=best)
    except ChainError as exc:  # not reachable after the checks above, but never a bare crash
        raise InvalidJustification("conflicts_with_finalized", str(exc)) from None


def compute_evidence_key(set_id: int, round_number: int, voter: bytes) -> bytes:
    return EVIDENCE_PREFIX + struct.pack(">QQ", set_id, round_number) + voter


def get_vote_equivocations(chain: Blockchain) -> list[VoteEquivocationEvidence]:
    """Every vote equivocation this node has seen, by set, round and voter."""
    return [decode(value, VoteEquivocationEvidence) for _, value in chain.iter_evidence(EVIDENCE_PREFIX)]


class VoteCollector:
    """A node's votes of the recent rounds, and the justification they add up to.

    Not thread-safe: the node drives it from one place. Memory is bounded by one vote per
    validator per kept round (:data:`KEPT_ROUNDS`).
    """

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self._rounds: dict[int, dict[bytes, SignedVote]] = {}

    def add(self, signed: SignedVote, current_round: int | None = None) -> Justification | None:
        """Check and keep a vote; return a justification if its round now finalizes a block
        above the finalized one. InvalidVote (with a reason) if the vote does not count;
        VoteEquivocation (evidence stored) for a second, different vote in a round.

        ``current_round``: the local round, to refuse rounds too far ahead or behind. A vote
        for a block not imported yet is kept and counts once the block arrives
        (:meth:`check`).
        """
        vote = signed.vote
        if vote.set_id != SET_ID:
            raise InvalidVote("wrong_set", f"vote for set {vote.set_id}, the current set is {SET_ID}")
        if current_round is not None and not current_round - KEPT_ROUNDS < vote.round <= current_round + MAX_FUTURE_ROUNDS:
            raise InvalidVote("stale", f"vote for round {vote.round}, the local round is {current_round}")
        if signed.voter not in get_voters(self.chain):
            raise InvalidVote("not_validator", f"{ss58_encode(signed.voter)} is not a validator")
        try:
            verify_signature(signed.voter, compute_vote_message(self.chain.genesis_hash, vote), signed.signature)
        except InvalidSignature as exc:
            raise InvalidVote("bad_signature", f"vote of {ss58_encode(signed.voter)}: {exc}") from None
        votes = self._rounds.setdefault(vote.round, {})
        first = votes.get(signed.voter)
        if first is not None:
            if first.vote == vote:
                return None
            evidence = VoteEquivocationEvidence(first, signed)
            self.chain.put_evidence(compute_evidence_key(vote.set_id, vote.round, signed.voter), encode(evidence))
            raise VoteEquivocation(
                f"{ss58_encode(signed.voter)} voted for {first.vote.block_hash.hex()} and {vote.block_hash.hex()} "
                f"in round {vote.round} (equivocation, evidence stored)",
                evidence,
            )
        votes[signed.voter] = signed
        for old in sorted(self._rounds)[:-KEPT_ROUNDS]:
            del self._rounds[old]
        return self._compute_justification(vote.round)

    def check(self) -> Justification | None:
        """Recount every kept round (after new blocks arrived); the highest new justification."""
        found = [j for r in sorted(self._rounds) if (j := self._compute_justification(r)) is not None]
        return max(found, key=lambda j: j.target_number, default=None)

    def _compute_justification(self, round_number: int) -> Justification | None:
        chain = self.chain
        votes = [v for v in self._rounds.get(round_number, {}).values() if chain.has_block(v.vote.block_hash)]
        needed = compute_threshold(len(get_voters(chain)))
        if len(votes) < needed:
            return None
        # Count, for every block between the finalized one and a voted block, the votes that
        # contain it; the highest block with enough votes is the new finalized one.
        support: dict[bytes, set[bytes]] = {}
        numbers: dict[bytes, int] = {}
        for signed in votes:
            if not chain.is_descendant(signed.vote.block_hash, chain.finalized_hash):
                continue
            for block_hash, number in _walk_down(chain, signed.vote.block_hash, chain.finalized_number):
                support.setdefault(block_hash, set()).add(signed.voter)
                numbers[block_hash] = number
        final = [h for h, who in support.items() if len(who) >= needed]
        if not final:
            return None
        target = max(final, key=lambda h: numbers[h])
        chosen = tuple(sorted((v for v in votes if v.voter in support[target]), key=lambda v: v.voter))
        ancestry: dict[bytes, Header] = {}
        for signed in chosen:
            for block_hash, _ in _walk_down(chain, signed.vote.block_hash, numbers[target]):
                if block_hash != target:
                    ancestry[block_hash] = chain.get_header(block_hash)
        return Justification(
            target, numbers[target], SET_ID, round_number, chosen,
            tuple(ancestry[h] for h in sorted(ancestry, key=lambda h: (numbers[h], h))),
        )


def _walk_down(chain: Blockchain, block_hash: bytes, stop_number: int) -> Iterable[tuple[bytes, int]]:
    """``block_hash`` and its ancestors above ``stop_number``, highest first."""
    header = chain.get_header(block_hash)
    while header.number > stop_number:
        yield block_hash, header.number
        block_hash = header.parent_hash
        header = chain.get_header(block_hash)
