"""The exception tree of the chain package: every failure raised by chain/ is a ChainError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chain.fraud import FraudProof


class ChainError(Exception):
    """Base of every error raised by the chain package."""


# --- wire, crypto and transaction validity -------------------------------------------------


class CodecError(ChainError):
    """Bytes that are not the canonical encoding of the expected wire object."""


class InvalidKey(ChainError):
    """A secret seed or URI that does not name an ed25519 key."""


class InvalidAddress(ChainError):
    """An SS58 address or account id that does not decode."""


class InvalidSignature(ChainError):
    """A signature that does not verify."""


class InvalidTransaction(ChainError):
    """An extrinsic that can never be included (bad signature, stale nonce, expired era...).

    ``reason`` is a short stable tag (as Substrate's InvalidTransaction variants) that the RPC
    layer maps to an error code; the message says the specifics.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FutureTransaction(InvalidTransaction):
    """An extrinsic valid later, not now (Substrate's InvalidTransaction::Future): its nonce is
    ahead of the account's, or its era starts after the block."""

    def __init__(self, message: str) -> None:
        super().__init__("future", message)


class DispatchError(ChainError):
    """A call that failed inside a block: its state changes are rolled back, its fee stays.

    ``module`` names the pallet and ``error`` the variant (as Substrate's DispatchError::Module).
    """

    def __init__(self, module: str, error: str, message: str) -> None:
        super().__init__(message)
        self.module = module
        self.error = error


class BlockError(ChainError):
    """A block that must not be imported: a header field that disagrees with re-execution."""


class CheckpointsUnavailable(BlockError):
    """The training checkpoints a verifier needs could not be obtained (withheld, or not in time).

    Not proof of a fault: the block is not imported (nor voted for, nor built on) until they
    are; an author whose checkpoints nobody can fetch never gets its block final.
    """


class FraudFound(BlockError):
    """A verifier found a provable training fault; ``proof`` (a chain.fraud.FraudProof) shows it
    to anyone who re-runs one segment."""

    def __init__(self, message: str, proof: FraudProof) -> None:
        super().__init__(message)
        self.proof = proof


class InvalidBlockAncestry(BlockError):
    """A block that is, or descends from, a block proven invalid (``Blockchain.invalidate``)."""


class UnknownParent(BlockError):
    """A block whose parent is not imported yet (a syncing node fetches the parent first)."""


class FinalityConflict(BlockError):
    """A block, reorg or finalization off the finalized chain: it would revert a finalized block."""


class InvalidFraudProof(ChainError):
    """A fraud proof that does not show a fault; ``reason`` is a short snake_case tag."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PoolError(ChainError):
    """The transaction pool refused an extrinsic for a pool reason (full, banned, duplicate...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class GenesisError(ChainError):
    """A chain spec that is malformed or inconsistent."""


# --- storage and state -----------------------------------------------------------------------


class StorageError(ChainError):
    """The database refused or failed an operation (closed, locked, bad key or column type)."""


class StateError(ChainError):
    """The state layer was misused or found its stored data inconsistent."""


class UnknownStateRoot(StateError):
    """A state root whose trie root node is not stored (never committed, or pruned)."""


class MissingTrieNode(StateError):
    """A trie node referenced by a stored parent is absent: the database is incomplete."""


class MalformedNode(StateError):
    """Bytes that are not the canonical encoding of a trie node."""


class OverlayError(StateError):
    """An overlay used out of order (commit or rollback with no open transaction, stale base)."""


class ProofError(ChainError):
    """A read proof that does not verify against the state root it claims."""
