"""The exception tree of the consensus package."""


class ConsensusError(Exception):
    """Base of every error raised by consensus/."""


class InvalidFraudProof(ConsensusError):
    """A fraud proof that does not show a fault (the segment re-runs to the committed entry)."""
