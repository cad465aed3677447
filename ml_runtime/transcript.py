"""Training transcripts: checkpoint hashes, the loss curve, and their Merkle root.

Entry j commits to the weights after j segments (entry 0: the initial weights) and to
the mean batch loss over segment j-1. Its canonical encoding is 40 bytes:
``index (u32 LE) || weights_hash (32) || loss (float32 LE)``.

The root is the Merkle Tree Hash of RFC 6962 §2.1 with blake2b-256 in place of SHA-256:
leaf = H(0x00 || entry), node = H(0x01 || left || right), and a list of n > 1 items is
split at k, the largest power of two smaller than n. The domain-separation bytes stop a
leaf being passed off as a node; the split makes every count (odd ones too) well-defined
without duplicating leaves (the CVE-2012-2459 pitfall of Bitcoin's tree). Proofs are the
RFC 6962 §2.1.1 audit paths, ordered from the leaf's sibling up to the root's child.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from ml_runtime.errors import ProofError

ENTRY_SIZE: Final = 40
_ENTRY: Final = struct.Struct("<I32s4s")


def _h(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def hash_weights(w: np.ndarray) -> bytes:
    """blake2b-256 of the weights' canonical little-endian float32 bytes."""
    return _h(np.ascontiguousarray(w, dtype="<f4").tobytes())


def float32_bytes(value: float) -> bytes:
    """The 4 little-endian bytes of ``value`` as a float32."""
    return np.float32(value).astype("<f4").tobytes()


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One checkpoint commitment: its index, its weights' hash, and a float32 loss."""

    index: int
    weights_hash: bytes
    loss: float

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or not 0 <= self.index < 2**32:
            raise ProofError(f"entry index {self.index!r} is not a u32")
        if not isinstance(self.weights_hash, bytes) or len(self.weights_hash) != 32:
            raise ProofError("entry weights_hash must be 32 bytes")
        if float(np.float32(self.loss)) != self.loss and self.loss == self.loss:
            raise ProofError(f"entry loss {self.loss!r} is not exactly a float32 value")

    def encode(self) -> bytes:
        """40-byte canonical encoding (index, weights hash, float32 loss)."""
        return _ENTRY.pack(self.index, self.weights_hash, float32_bytes(self.loss))

    @classmethod
    def decode(cls, data: bytes) -> TranscriptEntry:
        """Inverse of :meth:`encode`."""
        if len(data) != ENTRY_SIZE:
            raise ProofError(f"entry encoding has {len(data)} bytes; expected {ENTRY_SIZE}")
        index, digest, loss = _ENTRY.unpack(data)
        return cls(index, digest, float(np.frombuffer(loss, dtype="<f4")[0]))

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash of this entry."""
        return _h(b"\x00" + self.encode())


def _node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# blake2b-256 states that have absorbed the RFC 6962 prefix byte: a copy of one and an
# update cost less than hashing the concatenation with hashlib's keyword constructor.
_LEAF_HASHER: Final = hashlib.blake2b(b"\x00", digest_size=32)
_NODE_HASHER: Final = hashlib.blake2b(b"\x01", digest_size=32)


def _mth(leaves: Sequence[bytes]) -> bytes:
    """MTH of leaf hashes (at least one), level by level: neighbours paired, an odd last node
    carried up unhashed. That is RFC 6962's recursive split at the largest power of two below
    n (each left subtree is complete, so the pairs never straddle a split), without the
    recursion and the slices (tests/ml_runtime: equal to the recursive form for every n to 300)."""
    level = list(leaves)
    while len(level) > 1:
        paired = []
        for i in range(1, len(level), 2):
            hasher = _NODE_HASHER.copy()
            hasher.update(level[i - 1])
            hasher.update(level[i])
            paired.append(hasher.digest())
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def _hash_leaf(leaf: bytes) -> bytes:
    hasher = _LEAF_HASHER.copy()
    hasher.update(leaf)
    return hasher.digest()


def merkle_root(entries: Sequence[TranscriptEntry]) -> bytes:
    """Merkle Tree Hash (RFC 6962 §2.1) of the entries; at least one entry."""
    if not entries:
        raise ProofError("a transcript needs at least one entry")
    return _mth([e.leaf_hash() for e in entries])


@dataclass(frozen=True, slots=True)
class Transcript:
    """All entries of a job (checkpoint 0..S) and their Merkle root."""

    entries: tuple[TranscriptEntry, ...]
    root: bytes

    @classmethod
    def build(cls, entries: Sequence[TranscriptEntry]) -> Transcript:
        """Transcript of ``entries`` (indices must be 0, 1, 2, ...)."""
        for i, e in enumerate(entries):
            if e.index != i:
                raise ProofError(f"entry at position {i} has index {e.index}")
        return cls(tuple(entries), merkle_root(entries))


def _path(leaves: Sequence[bytes], m: int) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(leaves[:k], m), _mth(leaves[k:])]
    return [*_path(leaves[k:], m - k), _mth(leaves[:k])]


def merkle_proof(transcript: Transcript, index: int) -> tuple[bytes, ...]:
    """Audit path of entry ``index`` (RFC 6962 §2.1.1), leaf's sibling first."""
    n = len(transcript.entries)
    if not isinstance(index, int) or not 0 <= index < n:
        raise ProofError(f"entry index {index!r} is outside 0..{n - 1}")
    return tuple(_path([e.leaf_hash() for e in transcript.entries], index))


def _fold(m: int, n: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Root implied by an audit path; consumes the path from its end (the root side)."""
    if n == 1:
        if proof:
            raise ProofError(f"proof has {len(proof)} extra hashes")
        return leaf
    if not proof:
        raise ProofError("proof is too short for the claimed count")
    k = _split(n)
    if m < k:
        return _node(_fold(m, k, leaf, proof[:-1]), proof[-1])
    return _node(proof[-1], _fold(m - k, n - k, leaf, proof[:-1]))


def verify_merkle_proof(
    root: bytes, entry: TranscriptEntry, proof: Sequence[bytes], count: int
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``entry`` at its index under ``root``.

    ``count`` is the number of entries in the transcript (S + 1), which the verifier
    takes from the job, never from the prover: as in RFC 6962 (where the tree size is
    signed separately) the root alone does not commit to the count.
    """
    if not isinstance(count, int) or count < 1:
        raise ProofError(f"transcript count {count!r} must be a positive int")
    if not 0 <= entry.index < count:
        raise ProofError(f"entry index {entry.index} is outside 0..{count - 1}")
    if not isinstance(root, bytes) or len(root) != 32:
        raise ProofError("root must be 32 bytes")
    for i, node in enumerate(proof):
        if not isinstance(node, bytes) or len(node) != 32:
            raise ProofError(f"proof element {i} is not a 32-byte hash")
    if _fold(entry.index, count, entry.leaf_hash(), list(proof)) != root:
        raise ProofError(f"proof for entry {entry.index} does not lead to the root")


def merkle_proofs(transcript: Transcript) -> tuple[tuple[bytes, ...], ...]:
    """The audit path of every entry, in index order: what :func:`merkle_proof` gives for each.

    One pass over the tree instead of one per entry: each subtree's hash is computed once and
    appended to the paths of the entries under its sibling, O(n log n) hashes for n entries
    where n separate calls would take O(n^2) (an author opens all S + 1 entries of a job).
    """
    paths: list[list[bytes]] = [[] for _ in transcript.entries]

    def walk(leaves: Sequence[bytes], first: int) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = _split(len(leaves))
        left, right = walk(leaves[:k], first), walk(leaves[k:], first + k)
        for i in range(first, first + k):
            paths[i].append(right)
        for i in range(first + k, first + len(leaves)):
            paths[i].append(left)
        return _node(left, right)

    walk([e.leaf_hash() for e in transcript.entries], 0)
    return tuple(tuple(p) for p in paths)


def compute_leaf_path(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """Audit path of raw leaf ``index`` under :func:`compute_merkle_root` of ``leaves``.

    The tree of the chain's raw-leaf roots (a block's extrinsics root and training results
    root), so that one extrinsic or one result can be shown to be in a block by its header
    alone (a fraud proof carries both). Path order as :func:`merkle_proof`.
    """
    n = len(leaves)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
        raise ProofError(f"leaf index {index!r} is outside 0..{n - 1}")
    return tuple(_path([_h(b"\x00" + leaf) for leaf in leaves], index))


def verify_leaf_path(root: bytes, leaf: bytes, path: Sequence[bytes], index: int, count: int) -> None:
    """Raise :class:`ProofError` unless ``path`` shows raw ``leaf`` at ``index`` of ``count``
    leaves under ``root`` (as :func:`compute_merkle_root` hashes them).

    ``count`` comes from the verifier's side, as in :func:`verify_merkle_proof`: an RFC 6962
    root does not commit to its leaf count (the last leaf of 3 is also the second of "2" whose
    first is the node over the first two), so a count the prover chose lets it move a leaf to
    another index. Where the count is the prover's, bind it to the root (chain.block's
    extrinsics root) and check with :func:`compute_path_root`.
    """
    if not isinstance(root, bytes) or len(root) != 32:
        raise ProofError("root must be 32 bytes")
    if compute_path_root(leaf, path, index, count) != root:
        raise ProofError(f"path for leaf {index} does not lead to the root")


def compute_path_root(leaf: bytes, path: Sequence[bytes], index: int, count: int) -> bytes:
    """The RFC 6962 root that ``path`` leads to from raw ``leaf`` at ``index`` of ``count``
    leaves; ProofError if the path cannot be one (a malformed element, too short or long)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ProofError(f"leaf count {count!r} must be a positive int")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise ProofError(f"leaf index {index!r} is outside 0..{count - 1}")
    if not isinstance(leaf, bytes):
        raise ProofError(f"leaf must be bytes, got {type(leaf).__name__}")
    for i, node in enumerate(path):
        if not isinstance(node, bytes) or len(node) != 32:
            raise ProofError(f"path element {i} is not a 32-byte hash")
    return _fold(index, count, _h(b"\x00" + leaf), list(path))


def compute_merkle_root(leaves: Sequence[bytes], prefix: bytes = b"") -> bytes:
    """RFC 6962 Merkle Tree Hash over raw leaf data (hashed as 0x00 || leaf), each leaf taken as
    ``prefix || leaf``: the prefix is absorbed into the leaf hasher once, rather than copied
    in front of every leaf (a block body's extrinsics are hashed as the codec version byte
    and their bytes, each a ``msgspec.Raw`` of the body, node.network.messages: any buffer
    serves as a leaf).

    The empty tree's hash is blake2b-256 of nothing (RFC 6962: MTH({}) = HASH()). The chain
    uses this for extrinsics roots, data set rows roots and the block's results root.
    """
    if not leaves:
        return _h(b"")
    if not prefix:
        return _mth([_hash_leaf(leaf) for leaf in leaves])
    seeded = _LEAF_HASHER.copy()
    seeded.update(prefix)
    hashed = []
    for leaf in leaves:
        hasher = seeded.copy()
        hasher.update(leaf)
        hashed.append(hasher.digest())
    return _mth(hashed)


def compute_frontier(frontier: Sequence[bytes], count: int, leaves: Iterable[bytes]) -> list[bytes]:
    """The frontier of ``count`` raw leaves, ``frontier``, after appending ``leaves``: enough
    to extend :func:`compute_merkle_root`'s tree leaf by leaf without the leaves before
    (Certificate Transparency's compact Merkle tree).

    The frontier of n leaves is the roots of the perfect subtrees that RFC 6962's tree of
    those leaves splits into, largest first: one per set bit of n (RFC 6962 section 2.1
    splits at the largest power of two below n, so the left part is always perfect). A leaf
    joins as a subtree of one; while the subtree before it is as large, the two merge, as
    the carries of n + 1 in binary. Each leaf costs its leaf hash and, amortised, one node hash.
    """
    stack = list(frontier)
    n = count
    for leaf in leaves:
        node = _hash_leaf(leaf)
        carries = n
        while carries & 1:
            hasher = _NODE_HASHER.copy()
            hasher.update(stack.pop())
            hasher.update(node)
            node = hasher.digest()
            carries >>= 1
        stack.append(node)
        n += 1
    return stack


def compute_frontier_root(frontier: Sequence[bytes]) -> bytes:
    """:func:`compute_merkle_root` of the leaves whose (non-empty) frontier this is: the
    subtrees folded from the right, MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))."""
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        hasher = _NODE_HASHER.copy()
        hasher.update(left)
        hasher.update(root)
        root = hasher.digest()
    return root
