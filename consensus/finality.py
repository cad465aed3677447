"""Finality: Casper FFG's votes, justified and finalized checkpoints, adapted to rounds.

Why not "a block with votes of more than 2/3 in one round is final": that rule is unsafe
with no faulty validator at all. All four vote for A in round 1, fork choice then prefers a
conflicting B and all four vote for B in round 2: both rounds make a justification, and two
nodes that saw different ones finalize conflicting blocks. Casper FFG (Buterin & Griffith,
*Casper the Friendly Finality Gadget*, 2017, §2-3) fixes it with two-phase votes and two
slashing conditions; here they are with the Aura slot as FFG's epoch ("round").

- A :class:`Checkpoint` is a block with a round. A :class:`Vote` names a *source* checkpoint
  (a justified one) and a *target* (the block of the voter's best chain that has
  ``challenge_blocks`` descendants on it, see below, which descends from the source; the
  target round is the vote's round), signed with the set id
  and the genesis hash (``VOTE_DOMAIN || genesis hash || encode(vote)``), so it cannot be
  replayed on another chain or mistaken for another signed message.
- A link S -> t is *supermajority* when more than 2/3 of the validators (``2n // 3 + 1``)
  voted with source S and target round t; a vote for a block counts for its ancestors down
  to the source, so the link justifies the deepest block T that many targets contain
  (T may be S itself, at the later round: FFG's checkpoint of an epoch without a block).
- Justified: genesis (round 0) and every target of a supermajority link from a justified
  source. Finalized: a justified S (round s) with a supermajority link from S to round s+1;
  S and its ancestors are final (FFG §2, "finalized").
- Honest rules (FFG's slashing conditions, §3): never two votes with one target round
  (*double vote*); never a vote whose (source round, target round) strictly surrounds
  another of the same validator's (*surround vote*). An honest validator votes with the
  highest-round justified checkpoint it knows as source, persisted (:class:`VoterState`, in
  a file beside the database that ``purge-chain`` keeps: node.service) with the last round
  it voted in, so a restart, even on an emptied database, can neither lower its source (that
  could surround) nor vote twice in a round. It does not vote in a round
  whose best block does not descend from its source; fork choice follows the justified
  checkpoint (consensus.fork_choice), so that is rare.
- A vote names its target by hash and number: one whose number is not its block's is
  refused ("wrong_number"), or, kept while its block was unknown, never counted (in a
  justification it would make the whole justification fail: one validator's false number
  stalled finality).
- Both offences are evidence: the collector keeps both signed votes in the chain's EVIDENCE
  column (``vote/`` + set id + target round + voter, the first record of a key is kept) and
  refuses the second vote with reason "double_vote" or "surround_vote". If two conflicting
  blocks are ever final, more than 1/3 of the validators committed one of them (FFG's
  accountable safety, Theorem 1).

The challenge window. Verification on import is sampled (consensus.pol), so a block's fraud
may be proven by another validator after this one imported it; a proven block is invalid
with its descendants (``Blockchain.invalidate``), which is only possible while it is not
final. So an honest validator votes for a block only once the block has ``challenge_blocks``
(a chain parameter of the runtime config) descendants on its best chain, with no valid fraud
proof against it meanwhile (an invalidated block has left the best chain), and never for an
invalid block or a descendant of one (:func:`select_target`). Finality lags the best block by
about ``challenge_blocks`` blocks more than without the window: the time the window gives a
fraud proof to reach every node. A validator set of one has no window (it sealed every block
itself). The collector counts a vote only for the blocks of its chain that are not invalid,
and a justification whose target is invalid (or descends from an invalid block) is refused
with reason "invalid_block".

A :class:`Justification` proves finality of ``target`` to a node that did not see the votes
(a syncing node): the more than 2/3 signed votes of the link from ``source`` (whose block is
the target) to round ``source.round + 1``, with the headers that link each vote's target
block down to the target (GRANDPA's ``votes_ancestries``). That the source was justified
needs no proof: more than 2/3 signed it as their source, so with fewer than 1/3 faulty at
least one honest validator saw it justified. A validator set of one is the one exception:
its own justified checkpoint is final at once (no one else votes, and an honest sole
voter's sources and targets form one chain), so its justification carries the link whose
votes contain the target. :func:`verify_justification` checks the set id, one link for all
votes, no voter twice, every voter a validator, the threshold, the link's rounds, the
ancestry and every signature; a target that conflicts with the node's finalized chain is
refused with reason "conflicts_with_finalized".

Limits: surround votes are detected among the rounds the collector keeps
(:data:`KEPT_ROUNDS`); the validator set is the one in the finalized block's state, with
set id 0 (an authority-set change would bump it).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from typing import Annotated

import msgspec

from chain.blockchain import Blockchain, TreeRoute
from chain.codec import (
    U64,
    BlockNumber,
    Hash32,
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
from chain.votes import (  # the wire types and signing live in chain/: the runtime checks votes too
    MAX_VOTE_BYTES,
    SET_ID,
    Checkpoint,
    SignedVote,
    Vote,
    compute_vote_message,
    sign_vote,
    surrounds,
)
from consensus import fork_choice
from consensus.errors import InvalidJustification, InvalidVote, VoteEquivocation

log = logging.getLogger(__name__)

EVIDENCE_PREFIX = b"vote/"
#: Bounds on a justification from a peer, checked before any work: votes (one per validator),
#: ancestry headers, and encoded bytes (the wire's frame limit is 1 MiB).
MAX_VOTES = 1024
MAX_ANCESTRY = 4096
MAX_JUSTIFICATION_BYTES = 1 << 20
#: Rounds the collector keeps votes for, and how far ahead of the local round it accepts them.
KEPT_ROUNDS = 16
MAX_FUTURE_ROUNDS = 2
#: Justified checkpoints the collector remembers (the newest by round).
KEPT_JUSTIFIED = 64


class Justification(Wire, frozen=True):
    """The votes of one link (``source`` -> ``round``) that make ``target_hash`` final, with
    the headers that link each vote's target to it."""

    target_hash: Hash32
    target_number: BlockNumber
    set_id: U64
    round: U64
    source: Checkpoint
    votes: Annotated[tuple[SignedVote, ...], msgspec.Meta(max_length=MAX_VOTES)]
    ancestry: Annotated[tuple[Header, ...], msgspec.Meta(max_length=MAX_ANCESTRY)] = ()

    def encode(self) -> bytes:
        return encode_versioned(self)


class VoteEquivocationEvidence(Wire, frozen=True):
    """Two votes of one validator that break a slashing condition: first seen, then second.
    ``kind``: "double_vote" (one target round) or "surround_vote"."""

    first: SignedVote
    second: SignedVote
    kind: str = "double_vote"


class VoterState(Wire, frozen=True):
    """What a validator must not forget across a restart: the highest justified checkpoint it
    knows (its next source), the last round it voted in (0: none) and the last slot it sealed
    a block in (0: none; Aura's one block per slot, which the database alone enforced until
    ``purge-chain`` emptied it in the slot the validator had authored in), and the genesis hash
    of the chain it is about (None in a record from before it was kept: node.voter_record)."""

    justified: Checkpoint
    voted_round: U64 = 0
    authored_slot: U64 = 0
    genesis_hash: Hash32 | None = None


def get_challenge_blocks(chain: Blockchain) -> int:
    """The challenge window in blocks: the chain parameter ``challenge_blocks`` of the runtime
    config in the best state (``chain.config``: genesis sets it, a referendum may change it,
    chain.pallets.democracy), the state whose chain the target is chosen on."""
    return chain.config.challenge_blocks


def select_target(chain: Blockchain, source: Checkpoint) -> tuple[bytes, int] | None:
    """(hash, number) of the block this validator may vote for from ``source``: the block of
    its best chain with ``challenge_blocks`` descendants on it (the challenge window, module
    docstring). None if that block is below the source or does not descend from it, or is
    invalid (the best chain holds no invalid block, but the check is one read).

    A validator set of one has no window: the window waits for other validators' fraud
    proofs, and a sole validator sealed every block itself (an honest one knows them valid;
    a dishonest one would not wait anyway). So an instant-seal dev node, whose blocks come
    only with transactions, still finalizes each block at once."""
    window = 0 if len(get_voters(chain)) == 1 else get_challenge_blocks(chain)
    number = chain.best_number - window
    if number < source.block_number:
        return None
    target = chain.get_hash(number)
    if target is None or chain.is_invalid(target) or not chain.is_descendant(target, source.block_hash):
        return None
    return target, number


def make_vote(chain: Blockchain, key: Keypair, round_number: int, source: Checkpoint) -> SignedVote | None:
    """This validator's vote in ``round_number``: from ``source`` to :func:`select_target`;
    None if there is no target yet (the window), the best chain does not descend from the
    source, the source is unknown (an invalid source has no valid descendant to vote for), or
    the round is not after the source's."""
    if round_number <= source.round or not chain.has_block(source.block_hash):
        return None
    found = select_target(chain, source)
    if found is None:
        return None
    target = Checkpoint(found[0], found[1], round_number)
    return sign_vote(key, chain.genesis_hash, Vote(SET_ID, source, target))


def compute_threshold(validators: int) -> int:
    """The least number of votes that is more than 2/3 of ``validators``."""
    return 2 * validators // 3 + 1


def get_voters(chain: Blockchain) -> tuple[bytes, ...]:
    """The validator set that votes: the one in the finalized block's state."""
    return get_validators(chain.state_at(chain.finalized_hash))


def genesis_checkpoint(chain: Blockchain) -> Checkpoint:
    return Checkpoint(chain.genesis_hash, 0, 0)


def finalized_checkpoint(chain: Blockchain) -> Checkpoint:
    """The finalized block as a checkpoint: its round is the one its justification names
    (the link's source round; a sole validator's: the link's target round); 0 for genesis or
    a block finalized without a justification."""
    j = get_justification(chain, chain.finalized_hash)
    if j is None:
        return Checkpoint(chain.finalized_hash, chain.finalized_number, 0)
    is_link_source = j.source.block_hash == j.target_hash
    return Checkpoint(chain.finalized_hash, chain.finalized_number, j.source.round if is_link_source else j.round)


def load_voter_state(chain: Blockchain, stored: VoterState | None) -> VoterState:
    """The voter state to go on from: ``stored`` (the validator's record, None if it has none),
    its justified checkpoint raised to the finalized one if that is of a higher round.

    A stored checkpoint whose block this node does not have is kept, not replaced by the
    finalized one: the record outlives the database (node.service keeps it beside it), so
    after a purge, or on a new machine, the node has only synced part of the chain, and a
    source lowered to what it has would make its next vote surround the votes it cast from
    the stored one. :func:`make_vote` makes no vote from a source it lacks, so the validator
    is silent until its sync reaches the source or a higher checkpoint is justified."""
    final = finalized_checkpoint(chain)
    if stored is None:
        return VoterState(final, 0)
    if stored.justified.round < final.round:
        return msgspec.structs.replace(stored, justified=final)
    return stored


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


def _check_link(vote: Vote) -> None:
    """A vote's target is after its source, in round and height; InvalidVote "bad_link"."""
    if vote.target.round <= vote.source.round or vote.target.block_number < vote.source.block_number:
        raise InvalidVote(
            "bad_link", f"a vote's target (#{vote.target.block_number}, round {vote.target.round}) must come after "
            f"its source (#{vote.source.block_number}, round {vote.source.round})",
        )


def verify_justification(
    chain: Blockchain, justification: Justification, *, target_known: bool = True, final: bool = True
) -> None:
    """Return if ``justification`` proves its target final on this chain (module docstring);
    InvalidJustification with a specific ``reason`` if not. Cheap checks come first, the
    signatures last.

    ``final=False``: whether it proves its target *justified* in round ``j.round`` (a proof of
    justification, :func:`proves_finality`): the same checks, but the link need not finalize
    anything; the target must descend from the link's source (or be it).

    ``target_known=False``: the target block is not imported yet (a justification kept until
    it is); everything that does not need the block is checked, all but "unknown_block", the
    target's number, "invalid_block", "conflicts_with_finalized" and a sole validator's link."""
    j = justification
    if j.set_id != SET_ID:
        raise InvalidJustification("wrong_set", f"justification for set {j.set_id}, the current set is {SET_ID}")
    voters: set[bytes] = set()
    for signed in j.votes:
        vote = signed.vote
        if vote.set_id != j.set_id or vote.target.round != j.round or vote.source != j.source:
            raise InvalidJustification(
                "mixed_rounds", f"a vote of {ss58_encode(signed.voter)} is for set {vote.set_id}, link from round "
                f"{vote.source.round} to {vote.target.round}; the justification's is set {j.set_id}, link from "
                f"#{j.source.block_number} round {j.source.round} to round {j.round}",
            )
        if signed.voter in voters:
            raise InvalidJustification("duplicate_voter", f"{ss58_encode(signed.voter)} votes twice")
        voters.add(signed.voter)
    if j.round <= j.source.round:
        raise InvalidJustification("bad_link", f"a link from round {j.source.round} to round {j.round} goes backwards")
    if target_known:
        _verify_target(chain, j)
    validators = set(get_voters(chain))
    outsiders = voters - validators
    if outsiders:
        raise InvalidJustification("not_validator", f"{ss58_encode(min(outsiders))} is not a validator")
    needed = compute_threshold(len(validators))
    if len(voters) < needed:
        raise InvalidJustification(
            "below_threshold", f"{len(voters)} votes of {len(validators)} validators; more than 2/3 is {needed}"
        )
    # A sole validator's justified checkpoint is final (module docstring); a proof of
    # justification shows its target justified, whatever the link's rounds.
    if len(validators) == 1 or not final:
        if target_known and (
            not chain.has_block(j.source.block_hash) or not chain.is_descendant(j.target_hash, j.source.block_hash)
        ):
            raise InvalidJustification("bad_link", f"the target #{j.target_number} does not descend from the link's source")
    elif j.source.block_hash != j.target_hash or j.source.block_number != j.target_number:
        raise InvalidJustification(
            "not_final", f"the link's source #{j.source.block_number} is not the target #{j.target_number}: "
            "the link justifies the target, it does not finalize it",
        )
    elif j.round != j.source.round + 1:
        raise InvalidJustification(
            "not_final", f"a link from round {j.source.round} to round {j.round} justifies its target but finalizes "
            "its source only when the rounds are consecutive",
        )
    _verify_ancestry(j)
    for signed in j.votes:
        try:
            verify_signature(signed.voter, compute_vote_message(chain.genesis_hash, signed.vote), signed.signature)
        except InvalidSignature as exc:
            raise InvalidJustification("bad_signature", f"vote of {ss58_encode(signed.voter)}: {exc}") from None


def proves_finality(chain: Blockchain, justification: Justification) -> bool:
    """Whether ``justification`` is a finality proof (a sole validator's link, or a link
    from its target to the next round: :func:`verify_justification`); any other can prove its
    target justified only (``final=False``): what a node sends a validator that votes from an
    older source than the node's highest justified checkpoint (node.service)."""
    j = justification
    if len(get_voters(chain)) == 1:
        return True
    return j.source.block_hash == j.target_hash and j.source.block_number == j.target_number and j.round == j.source.round + 1


def justified_checkpoint(justification: Justification) -> Checkpoint:
    """The checkpoint a verified justification shows justified: its target in its round."""
    return Checkpoint(justification.target_hash, justification.target_number, justification.round)


def _verify_target(chain: Blockchain, j: Justification) -> None:
    if not chain.has_block(j.target_hash):
        raise InvalidJustification("unknown_block", f"target block {j.target_hash.hex()} is not imported")
    target = chain.get_header(j.target_hash)
    if target.number != j.target_number:
        raise InvalidJustification("malformed", f"target block is #{target.number}, the justification says #{j.target_number}")
    invalid = chain.get_invalid_reason(j.target_hash)
    if invalid is not None:
        raise InvalidJustification("invalid_block", f"target #{j.target_number} {j.target_hash.hex()} is invalid: {invalid}")
    if not chain.is_descendant(j.target_hash, chain.finalized_hash) and not chain.is_descendant(chain.finalized_hash, j.target_hash):
        raise InvalidJustification(
            "conflicts_with_finalized",
            f"target #{j.target_number} {j.target_hash.hex()} is not on the chain of the finalized block "
            f"#{chain.finalized_number} {chain.finalized_hash.hex()}",
        )


def _verify_ancestry(j: Justification) -> None:
    headers = {h.hash(): h for h in j.ancestry}
    used: set[bytes] = set()
    reached: set[bytes] = {j.target_hash}  # blocks already shown to link to the target
    for signed in j.votes:
        current, number = signed.vote.target.block_hash, signed.vote.target.block_number
        while current not in reached:
            header = headers.get(current)
            if header is None or header.number != number or number <= j.target_number:
                raise InvalidJustification(
                    "bad_ancestry",
                    f"the vote of {ss58_encode(signed.voter)} for #{signed.vote.target.block_number} "
                    f"{signed.vote.target.block_hash.hex()} is not shown to contain the target",
                )
            used.add(current)
            current, number = header.parent_hash, number - 1
        if current == j.target_hash and number != j.target_number:
            raise InvalidJustification("bad_ancestry", f"a vote names the target with number {number}, not #{j.target_number}")
        reached.update(used)
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
    return finalize_verified(chain, j)


def finalize_verified(chain: Blockchain, j: Justification) -> TreeRoute | None:
    """:func:`import_justification` for a justification verified already (the node notes
    what its link justifies in between: VoteCollector.note_link)."""
    best = fork_choice.select_best(chain, j.target_hash) if chain.is_descendant(j.target_hash, chain.finalized_hash) else None
    try:
        return chain.finalize(j.target_hash, j.encode(), best=best)
    except ChainError as exc:  # not reachable after the checks above, but never a bare crash
        raise InvalidJustification("conflicts_with_finalized", str(exc)) from None


def follow_justified(chain: Blockchain, justified: bytes) -> TreeRoute | None:
    """Move the best block to the longest chain containing the justified block ``justified``
    (a block above the finalized one), if the best block does not contain it; the route, or
    None if nothing moved."""
    if not chain.has_block(justified) or chain.is_invalid(justified) or chain.is_descendant(chain.best_hash, justified):
        return None
    if not chain.is_descendant(justified, chain.finalized_hash):
        return None
    return chain.finalize(chain.finalized_hash, best=fork_choice.select_best(chain, justified))


def compute_evidence_key(set_id: int, round_number: int, voter: bytes) -> bytes:
    return EVIDENCE_PREFIX + struct.pack(">QQ", set_id, round_number) + voter


def get_vote_equivocations(chain: Blockchain) -> list[VoteEquivocationEvidence]:
    """Every double or surround vote this node has seen, by set, round and voter."""
    return [decode(value, VoteEquivocationEvidence) for _, value in chain.iter_evidence(EVIDENCE_PREFIX)]


class VoteCollector:
    """A node's votes of the recent rounds, the justified checkpoints they make, and the
    justification of the newest finalized one.

    Not thread-safe: the node drives it from one place. Memory is bounded by one vote and one
    caught equivocation per validator per kept round (:data:`KEPT_ROUNDS`) and
    :data:`KEPT_JUSTIFIED` checkpoints.
    """

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self._rounds: dict[int, dict[bytes, SignedVote]] = {}
        # The validators caught equivocating in each kept round (by the vote of that round).
        self._caught: dict[int, set[bytes]] = {}
        self._voters: frozenset[bytes] = frozenset()
        self._voters_at: bytes | None = None  # the finalized block _voters is of
        self._justified: dict[Checkpoint, None] = {}
        # The proof (the link's votes) of the highest-round justified checkpoint it has one
        # for: what a validator stuck on an older source needs (:meth:`justified_proof`).
        self._proof: Justification | None = None
        self.note_justified(finalized_checkpoint(chain))
        stored = chain.get_justified_proof()  # this node's own, from before a restart
        if stored is not None:
            try:
                proof = decode_versioned(stored, Justification)
            except CodecError as exc:  # it only helps lagging peers: never a reason not to start
                log.warning("the stored proof of justification is unreadable and is ignored: %s", exc)
            else:
                self.note_justified(justified_checkpoint(proof), proof)
        self._lower_proof()

    def note_justified(self, checkpoint: Checkpoint, proof: Justification | None = None) -> None:
        """Remember ``checkpoint`` as justified (computed here, or proven by a justification:
        ``proof``, verified by the caller, kept if it proves a higher checkpoint than the one kept)."""
        self._justified[checkpoint] = None
        if proof is not None and (self._proof is None or checkpoint_order(justified_checkpoint(proof)) > checkpoint_order(justified_checkpoint(self._proof))):
            self._proof = proof
            self.chain.put_justified_proof(proof.encode())  # so a restart does not lose it
        if len(self._justified) > KEPT_JUSTIFIED:
            for old in sorted(self._justified, key=lambda c: c.round)[: len(self._justified) - KEPT_JUSTIFIED]:
                del self._justified[old]

    def _lower_proof(self) -> None:
        """If the kept proof's checkpoint has been proven invalid since (a fraud proof that came
        after the link that justified it and before the next one finalized it), keep instead
        the proof of the same round's checkpoint on the valid part: the link's votes contain
        every block from its source to its target, so they justify the highest valid one as
        much (:meth:`check` counts them so). A validator that voted from the invalid checkpoint
        votes from that one (node.service._follow_justified): a source of the same round
        surrounds nothing it signed, where an older round's would surround its last vote, and
        no vote at all stopped finality for good once the link's votes were gone (a restart,
        KEPT_ROUNDS: the reviewer's F1b, review45). With the link's source proven invalid too,
        the proof proves nothing, and is dropped for one of the kept votes (:meth:`check`)."""
        proof, chain = self._proof, self.chain
        if proof is None or not chain.has_block(proof.target_hash) or not chain.is_invalid(proof.target_hash):
            return
        source = proof.source
        voters = self._voter_set()
        chosen = tuple(v for v in proof.votes if v.voter in voters)
        if not chain.has_block(source.block_hash) or chain.is_invalid(source.block_hash) or len(chosen) < compute_threshold(len(voters)):
            self._proof = None
            return
        headers = {h.hash(): h for h in proof.ancestry}
        target, number = proof.target_hash, proof.target_number
        while chain.is_invalid(target):  # down to the highest valid ancestor (the source at lowest)
            headers[target] = header = chain.get_header(target)
            target, number = header.parent_hash, number - 1
        lowered = _link_proof(proof, target, number, chosen, headers)
        self._proof = lowered
        self._justified[justified_checkpoint(lowered)] = None
        chain.put_justified_proof(lowered.encode())
        log.warning(
            "the justified checkpoint #%d of round %d was proven invalid: its link's votes justify #%d of that round, the next source",
            proof.target_number, proof.round, number,
        )

    def note_link(self, justification: Justification) -> None:
        """Note what the link of ``justification`` (verified) justifies: the highest block that
        enough of its votes contain, in its round (its target at least), with the proof of it.
        Call it before the justification finalizes anything: counted with the set of the
        finalized block that verified it. At the era start that removes a validator, the link
        that finalizes the first block past it may need the leaver's vote: counted after,
        with the new set, it justified less at a validator that finalized from the
        justification than at the validators that had counted the link's votes as they came,
        and with a threshold of all three they never formed a link again (the reviewer's F3,
        review45); its votes may also be too old for :meth:`add`."""
        j = justification  # (verified: every voter is of the set, _voter_set)
        headers = {h.hash(): h for h in j.ancestry}
        # The votes containing each block above the target: those for it, and those containing
        # a child (children first: each header once, not a walk a vote; a justification may hold
        # 1,024 votes over 4,095 headers).
        support: dict[bytes, int] = {}
        for signed in j.votes:
            support[signed.vote.target.block_hash] = support.get(signed.vote.target.block_hash, 0) + 1
        for header in sorted(j.ancestry, key=lambda h: h.number, reverse=True):
            if header.parent_hash != j.target_hash:
                support[header.parent_hash] = support.get(header.parent_hash, 0) + support.get(header.hash(), 0)
        needed = compute_threshold(len(self._voter_set()))
        above = [h for h, count in support.items() if h in headers and count >= needed]
        if not above:
            self.note_justified(justified_checkpoint(j), j)
            return
        top = max(above, key=lambda h: headers[h].number)
        number = headers[top].number
        contains: dict[bytes, bool] = {top: True}

        def reaches(block: bytes) -> bool:
            path = []
            while block not in contains:
                header = headers.get(block)
                if header is None or header.number <= number:
                    contains[block] = False
                    break
                path.append(block)
                block = header.parent_hash
            for passed in path:
                contains[passed] = contains[block]
            return contains[block]

        chosen = tuple(v for v in j.votes if reaches(v.vote.target.block_hash))  # (in the justification's order: by voter)
        self.note_justified(Checkpoint(top, number, j.round), _link_proof(j, top, number, chosen, headers))

    def justified_proof(self) -> Justification | None:
        """The proof that the highest justified checkpoint (:meth:`highest_justified`) is
        justified, if this collector saw its link's votes or was sent one; None otherwise
        (the finalized checkpoint: its justification is stored with its block).

        Why it is needed: a node learns that a checkpoint is justified only from the votes of
        its link, and keeps votes for :data:`KEPT_ROUNDS` rounds. A validator that missed them
        (its event loop stalled for longer, a partition, a restart) goes on voting from its
        older source; with 3 validators, whose threshold is all 3, no link ever forms again,
        and finality stops for good (an outside tester's finding, 2026-11-29)."""
        proof = self._proof
        if proof is None or justified_checkpoint(proof) != self.highest_justified():
            return None
        return proof

    def is_justified(self, checkpoint: Checkpoint) -> bool:
        return checkpoint in self._justified

    def recent_votes(self) -> Iterable[SignedVote]:
        """Every vote kept (at most one per validator per kept round), signatures checked:
        what a block's author notes on chain (consensus.vote_notes)."""
        for votes in self._rounds.values():
            yield from votes.values()

    def highest_justified(self) -> Checkpoint:
        """The justified checkpoint of the highest round on the finalized chain that is not
        invalid (an honest validator's source); the finalized checkpoint at least."""
        chain = self.chain
        final = finalized_checkpoint(chain)
        best = final
        for checkpoint in self._justified:
            if checkpoint_order(checkpoint) <= checkpoint_order(best):
                continue
            if chain.has_block(checkpoint.block_hash) and not chain.is_invalid(checkpoint.block_hash) and chain.is_descendant(
                checkpoint.block_hash, chain.finalized_hash
            ):
                best = checkpoint
        return best

    def add(self, signed: SignedVote, current_round: int | None = None) -> Justification | None:
        """Check and keep a vote; return a justification if the votes now finalize a block
        above the finalized one. InvalidVote (with a reason) if the vote does not count;
        VoteEquivocation (evidence stored) for a double or surround vote.

        ``current_round``: the local round, to refuse rounds too far ahead or behind. A vote
        for a block not imported yet, or from a source not justified here yet, is kept and
        counts once they are (:meth:`check`).
        """
        vote = signed.vote
        if vote.set_id != SET_ID:
            raise InvalidVote("wrong_set", f"vote for set {vote.set_id}, the current set is {SET_ID}")
        _check_link(vote)
        if current_round is not None and not current_round - KEPT_ROUNDS < vote.round <= current_round + MAX_FUTURE_ROUNDS:
            raise InvalidVote("stale", f"vote for round {vote.round}, the local round is {current_round}")
        if signed.voter not in self._voter_set():
            # Named in hex: anyone may put any 32 bytes there, and this refusal is the cheap
            # one a flood of such votes meets (SS58 took a third of it).
            raise InvalidVote("not_validator", f"0x{signed.voter.hex()} is not a validator")
        if self.chain.has_block(vote.target.block_hash):
            number = self.chain.get_header(vote.target.block_hash).number
            if number != vote.target.block_number:
                raise InvalidVote(
                    "wrong_number", f"the vote of {ss58_encode(signed.voter)} names block #{vote.target.block_number} "
                    f"{vote.target.block_hash.hex()}, which is #{number}",
                )
        votes = self._rounds.setdefault(vote.round, {})
        first = votes.get(signed.voter)
        if first == signed:
            return None  # the same vote again (gossip): no offence, no work
        if signed.voter in self._caught.get(vote.round, ()):
            # Its evidence is stored and none of its other votes of the round can count (the
            # first stays, a second is an offence): refused before its signature is checked.
            # Checked, a validator's key let anyone make every node verify and store as many
            # distinct votes of one round as the network let through, uncharged.
            raise InvalidVote(
                "equivocator", f"{ss58_encode(signed.voter)} equivocated in round {vote.round}: its other votes of it are not read"
            )
        try:
            verify_signature(signed.voter, compute_vote_message(self.chain.genesis_hash, vote), signed.signature)
        except InvalidSignature as exc:
            raise InvalidVote("bad_signature", f"vote of {ss58_encode(signed.voter)}: {exc}") from None
        if first is not None:
            self._offence(first, signed, "double_vote", f"two votes with target round {vote.round}")
        for other_round, other_votes in self._rounds.items():
            other = other_votes.get(signed.voter)
            if other is None or other_round == vote.round:
                continue
            if surrounds(other.vote, vote) or surrounds(vote, other.vote):
                self._offence(
                    other, signed, "surround_vote",
                    f"link {other.vote.source.round}->{other.vote.target.round} and link "
                    f"{vote.source.round}->{vote.target.round}, one surrounds the other",
                )
        votes[signed.voter] = signed
        for old in sorted(self._rounds)[:-KEPT_ROUNDS]:
            del self._rounds[old]
            self._caught.pop(old, None)
        return self.check()

    def _voter_set(self) -> frozenset[bytes]:
        """:func:`get_voters` as a set, read again only when the finalized block changes (the
        set is the finalized state's): a gossiped vote is checked against it before anything
        else is done for it, and reading the state each time was a third of refusing one."""
        finalized = self.chain.finalized_hash
        if self._voters_at != finalized:
            self._voters = frozenset(get_voters(self.chain))
            self._voters_at = finalized
        return self._voters

    def _offence(self, first: SignedVote, second: SignedVote, kind: str, what: str) -> None:
        evidence = VoteEquivocationEvidence(first, second, kind)
        self._caught.setdefault(second.vote.round, set()).add(second.voter)
        self.chain.put_evidence(compute_evidence_key(second.vote.set_id, second.vote.round, second.voter), encode(evidence))
        raise VoteEquivocation(kind, f"{ss58_encode(second.voter)}: {what} ({kind}, evidence stored)", evidence)

    def check(self) -> Justification | None:
        """Recount the kept rounds, oldest first (after new votes, blocks or justified
        checkpoints): note the checkpoints they justify, and return the justification of the
        highest block they finalize above the finalized one, or None."""
        self._lower_proof()
        chain = self.chain
        voters = self._voter_set()  # (check runs after every vote counted: read once a finalized block)
        needed = compute_threshold(len(voters))
        found: Justification | None = None
        for round_number in sorted(self._rounds):
            by_source: dict[Checkpoint, list[SignedVote]] = {}
            for signed in self._rounds[round_number].values():
                by_source.setdefault(signed.vote.source, []).append(signed)
            for source, votes in by_source.items():
                if len(votes) < needed or source not in self._justified or not chain.has_block(source.block_hash):
                    continue
                if chain.is_invalid(source.block_hash):
                    continue  # proven invalid after it was justified: nothing above it counts
                # Only what a justification can carry (verify_justification): a vote kept before
                # its block came may name it under another number, and a voter may have left the
                # set since; in the justification either would make it fail at every node.
                counted = [
                    v for v in votes
                    if v.voter in voters
                    and chain.has_block(v.vote.target.block_hash)
                    and chain.get_header(v.vote.target.block_hash).number == v.vote.target.block_number
                    and chain.is_descendant(v.vote.target.block_hash, source.block_hash)
                ]
                if len(counted) < needed:
                    continue
                # Count, for every block from the source up to a voted block, the votes that
                # contain it: the highest block with enough is the link's justified target. A
                # block proven invalid (and so its descendants) gets no support: a vote for it
                # counts for its valid ancestors only.
                support: dict[bytes, set[bytes]] = {}
                numbers: dict[bytes, int] = {source.block_hash: source.block_number}
                for signed in counted:
                    for block_hash, number in _walk_down(chain, signed.vote.target.block_hash, source.block_number - 1):
                        if chain.is_invalid(block_hash):
                            continue
                        support.setdefault(block_hash, set()).add(signed.voter)
                        numbers[block_hash] = number
                justified = max((h for h, who in support.items() if len(who) >= needed), key=lambda h: numbers[h])
                checkpoint = Checkpoint(justified, numbers[justified], round_number)
                proof = None
                if len(voters) > 1 and (self._proof is None or checkpoint_order(checkpoint) > checkpoint_order(justified_checkpoint(self._proof))):
                    proof = _make_justification(chain, counted, support, numbers, justified, round_number, source)
                self.note_justified(checkpoint, proof)
                if len(voters) == 1:
                    final = justified
                elif round_number == source.round + 1:
                    final = source.block_hash
                else:
                    continue
                if final == chain.finalized_hash or not chain.is_descendant(final, chain.finalized_hash):
                    continue
                if found is not None and found.target_number >= numbers[final]:
                    continue
                found = _make_justification(chain, counted, support, numbers, final, round_number, source)
        return found


def checkpoint_order(checkpoint: Checkpoint) -> tuple[int, int]:
    """The key that orders justified checkpoints, the higher last: round first, then height
    (an honest validator's source is the highest it knows)."""
    return checkpoint.round, checkpoint.block_number


def _make_justification(
    chain: Blockchain, counted: list[SignedVote], support: dict[bytes, set[bytes]], numbers: dict[bytes, int],
    target: bytes, round_number: int, source: Checkpoint,
) -> Justification:
    """The justification of ``target`` from the link's votes that contain it (``support``),
    with the headers that link each of them down to it."""
    chosen = tuple(sorted((v for v in counted if v.voter in support[target]), key=lambda v: v.voter))
    ancestry: dict[bytes, tuple[int, Header]] = {}
    for signed in chosen:
        for block_hash, number in _walk_down(chain, signed.vote.target.block_hash, numbers[target]):
            ancestry[block_hash] = number, chain.get_header(block_hash)
    return Justification(
        target, numbers[target], SET_ID, round_number, source, chosen,
        tuple(ancestry[h][1] for h in sorted(ancestry, key=lambda h: (ancestry[h][0], h))),
    )


def _link_proof(
    j: Justification, target: bytes, number: int, chosen: tuple[SignedVote, ...], headers: Mapping[bytes, Header]
) -> Justification:
    """The proof that ``j``'s link justifies ``target`` (#``number``, below the targets of the
    ``chosen`` votes, which contain it) in ``j``'s round: those votes, and the headers of
    ``headers`` that link each of them down to it."""
    used: dict[bytes, Header] = {}
    for signed in chosen:
        current = signed.vote.target.block_hash
        while current != target and current not in used:
            used[current] = header = headers[current]
            current = header.parent_hash
    ancestry = tuple(sorted(used.values(), key=lambda h: (h.number, h.hash())))
    return Justification(target, number, SET_ID, j.round, j.source, chosen, ancestry)


def _walk_down(chain: Blockchain, block_hash: bytes, stop_number: int) -> Iterable[tuple[bytes, int]]:
    """``block_hash`` and its ancestors above ``stop_number``, highest first."""
    header = chain.get_header(block_hash)
    while header.number > stop_number:
        yield block_hash, header.number
        if header.number == stop_number + 1:
            return  # never read the parent of genesis
        block_hash = header.parent_hash
        header = chain.get_header(block_hash)
