"""Fork choice: the longest chain that contains the highest justified checkpoint (Casper
FFG's rule, Buterin & Griffith 2017, §4: follow the justified checkpoint of the greatest
round) and so the last finalized block; ties go to the earlier slot, then the lowest hash.

Following the justified checkpoint keeps a validator's best block a descendant of the
source it must vote from (consensus.finality); without it, a longer branch that does not
contain the justified block would leave the validator unable to vote.

Length is the block number, as in Substrate's ``LongestChain`` select-chain: every branch
starts at genesis, so the number is the branch's cumulative count of blocks (its weight
in this chain, where every block weighs the same). A branch that does not contain the
finalized block never wins: the chain refuses to import onto it and drops its leaves at
finality.

Ties (two branches of one length) go to the block of the earlier slot: its author built
first, and the later one either did not see it in time or built beside it on purpose. Going
by hash alone would let the later author win half its ties, and all of them by grinding its
block's hash (any extrinsic, or its order, changes it). Only blocks of one slot, one author's
equivocation (slashable: consensus.aura), tie on the slot too; they go to the lowest hash
(big-endian bytes), arbitrary but the same on every node, so two nodes with the same blocks
pick the same best block.

What the rule does not stop (an outside tester's finding, 2026-11-29): the author of slot s
can withhold its block until the block of slot s+1 (built on the same parent, since it had not
seen slot s's) is out, then release it: the tie goes to slot s, and the next author's block is
orphaned, with nothing to slash (one block per slot). The opposite rule (the later slot wins)
would hand the same gain to an author who builds beside its predecessor's block on purpose, and
a slot-based rule cannot tell a late release from a late build. Substrate's ``LongestChain``
keeps the block it saw first on a tie, which defeats both, at the price of nodes that may
disagree on ties until the next block; this module keeps the deterministic rule, and the
withholding author gains at most the slot after each of its own.
"""

from __future__ import annotations

from chain.blockchain import Blockchain
from chain.header import Header


def compute_weight(header: Header, block_hash: bytes | None = None) -> tuple[int, int, bytes]:
    """A sort key: greater is preferred (number, then the earlier slot, then the complement
    of the hash)."""
    raw = header.hash() if block_hash is None else block_hash
    return header.number, -header.slot, bytes(255 - b for b in raw)


def prefer(candidate: Header, best: Header, chain: Blockchain | None = None, justified: bytes | None = None) -> bool:
    """Whether ``candidate`` (its parent is stored; it may be too) beats ``best`` (both contain
    the finalized block). With ``chain``: a candidate on an invalid parent (or itself marked
    invalid, ``Blockchain.invalidate``) never wins; with a stored ``justified`` block too, a
    branch that contains it beats one that does not; otherwise the longer wins."""
    if chain is not None and (chain.is_invalid(candidate.parent_hash) or chain.is_invalid(candidate.hash())):
        return False
    if chain is not None and justified is not None and chain.has_block(justified):
        has_candidate = chain.is_descendant(candidate.parent_hash, justified) or candidate.hash() == justified
        has_best = chain.is_descendant(best.hash(), justified)
        if has_candidate != has_best:
            return has_candidate
    return compute_weight(candidate) > compute_weight(best)


def select_best(chain: Blockchain, finalized: bytes | None = None) -> bytes:
    """The best leaf among those that contain ``finalized`` (default: the chain's finalized
    block) and are not invalid. There is always one: the finalized block or a descendant is
    a valid leaf (``Blockchain.invalidate`` makes a parent a leaf again when its last valid
    child goes). An invalid ``finalized`` (a justified block later proven invalid) is
    replaced by the chain's finalized block, which never is."""
    root = chain.finalized_hash if finalized is None or chain.is_invalid(finalized) else finalized
    candidates = [leaf for leaf in chain.get_leaves() if not chain.is_invalid(leaf) and chain.is_descendant(leaf, root)]
    if not candidates:
        return root
    return max(candidates, key=lambda h: compute_weight(chain.get_header(h), h))
