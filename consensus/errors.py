"""The exception tree of the consensus package.

Errors about a block are also chain BlockErrors, so a caller of ``Blockchain.import_block``
catches one type whatever refused the block. Each carries ``reason``, a short stable tag a
node can map to peer reputation and logs; the message says the specifics.
"""

from chain.errors import BlockError, ChainError


class ConsensusError(Exception):
    """Base of every error raised by consensus/."""


class InvalidFraudProof(ConsensusError):
    """A fraud proof that does not show a fault (the segment re-runs to the committed entry)."""


class InvalidHeader(ConsensusError, BlockError):
    """A block header that Aura refuses: wrong author, bad seal, slot not after the parent's
    or too far in the future, or an equivocation.

    ``reason``: "not_validator", "wrong_author", "bad_seal", "slot_not_increasing",
    "future_slot", "equivocation".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Equivocation(InvalidHeader):
    """A second block by one author in one slot; ``evidence`` holds both headers (stored)."""

    def __init__(self, message: str, evidence: object) -> None:
        super().__init__("equivocation", message)
        self.evidence = evidence


class InvalidVote(ConsensusError):
    """A finality vote that does not count.

    ``reason``: "malformed", "bad_signature", "not_validator", "wrong_set", "stale",
    "equivocation".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class VoteEquivocation(InvalidVote):
    """Two votes of one validator in one round for different blocks; ``evidence`` is stored."""

    def __init__(self, message: str, evidence: object) -> None:
        super().__init__("equivocation", message)
        self.evidence = evidence


class InvalidJustification(ConsensusError, ChainError):
    """A justification that does not prove finality.

    ``reason``: "malformed", "oversize", "wrong_set", "mixed_rounds", "duplicate_voter",
    "not_validator", "bad_signature", "below_threshold", "unknown_block", "bad_ancestry",
    "conflicts_with_finalized".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
