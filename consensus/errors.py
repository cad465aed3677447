"""The exception tree of the consensus package.

Errors about a block are also chain BlockErrors, so a caller of ``Blockchain.import_block``
catches one type whatever refused the block. Each carries ``reason``, a short stable tag a
node can map to peer reputation and logs; the message says the specifics.
"""

from chain.errors import BlockError, ChainError


class ConsensusError(Exception):
    """Base of every error raised by consensus/."""


class InvalidHeader(ConsensusError, BlockError):
    """A block header that Aura refuses: wrong author, bad seal, slot not after the parent's
    or too far in the future, or an equivocation.

    ``reason``: "not_validator", "wrong_author", "bad_seal", "slot_not_increasing",
    "future_slot", "equivocation".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidVote(ConsensusError):
    """A finality vote that does not count.

    ``reason``: "malformed", "bad_signature", "not_validator", "wrong_set", "stale",
    "bad_link" (the target is not after the source), "wrong_number" (the target block is not
    of the number the vote names), "double_vote", "surround_vote", "equivocator" (its voter
    was caught equivocating in the vote's round: not checked further).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class VoteEquivocation(InvalidVote):
    """A vote that breaks a Casper FFG slashing condition with an earlier one of the same
    validator: ``reason`` "double_vote" (one target round) or "surround_vote"; ``evidence``
    (both votes) is stored."""

    def __init__(self, reason: str, message: str, evidence: object) -> None:
        super().__init__(reason, message)
        self.evidence = evidence


class InvalidJustification(ConsensusError, ChainError):
    """A justification that does not prove finality.

    ``reason``: "malformed", "oversize", "wrong_set", "mixed_rounds", "duplicate_voter",
    "not_validator", "bad_signature", "below_threshold", "unknown_block", "bad_ancestry",
    "bad_link", "not_final" (a link that justifies but does not finalize the target),
    "conflicts_with_finalized", "invalid_block" (the target is, or descends from, a block
    proven invalid: ``Blockchain.invalidate``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
