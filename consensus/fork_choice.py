"""Fork choice: the longest chain that contains the last finalized block; ties go to the
lowest block hash.

Length is the block number, as in Substrate's ``LongestChain`` select-chain: every branch
starts at genesis, so the number is the branch's cumulative count of blocks (its weight
in this chain, where every block weighs the same). A branch that does not contain the
finalized block never wins: the chain refuses to import onto it and drops its leaves at
finality. The tie rule (lowest hash, compared as big-endian bytes) is arbitrary but the
same on every node, so two nodes with the same blocks pick the same best block.
"""

from __future__ import annotations

from chain.blockchain import Blockchain
from chain.header import Header


def compute_weight(header: Header, block_hash: bytes | None = None) -> tuple[int, bytes]:
    """A sort key: greater is preferred (number, then the complement of the hash)."""
    raw = header.hash() if block_hash is None else block_hash
    return header.number, bytes(255 - b for b in raw)


def prefer(candidate: Header, best: Header) -> bool:
    """Whether ``candidate`` beats ``best`` (both contain the finalized block)."""
    return compute_weight(candidate) > compute_weight(best)


def select_best(chain: Blockchain, finalized: bytes | None = None) -> bytes:
    """The best leaf among those that contain ``finalized`` (default: the chain's finalized
    block). There is always one: the finalized block or a descendant is a leaf."""
    root = chain.finalized_hash if finalized is None else finalized
    candidates = [leaf for leaf in chain.get_leaves() if chain.is_descendant(leaf, root)]
    if not candidates:
        return root
    return max(candidates, key=lambda h: compute_weight(chain.get_header(h), h))
