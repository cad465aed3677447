"""Block import as the node drives it: consensus rules handed to the chain, and the pool
kept in step with reorganisations.

:class:`ConsensusRules` is what a node passes to ``chain.blockchain.Blockchain(rules=...)``:
Aura's slot claim and header checks (consensus.aura) and the fork choice
(consensus.fork_choice). The chain calls them inside ``import_block`` and ``build_block``,
so that checking, executing, storing the block and moving the best chain stay one call and
one write batch, while chain/ never imports consensus/ (the layering of docs/architecture.md §1).

After an import (or a finalization) that moved the best chain, :func:`update_pool` does
what Substrate's transaction pool ``maintain`` does on a new best block: extrinsics of the
retracted blocks go back into the pool unless an enacted block includes them (the pool's
own validation then drops those that are no longer valid, e.g. a nonce the new branch
spent), the enacted blocks' extrinsics are pruned, and the rest is revalidated against the
new best state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from chain.blockchain import Blockchain
from chain.crypto import blake2_256
from chain.errors import ChainError
from chain.header import Header
from chain.pool import TransactionPool
from consensus import fork_choice
from consensus.aura import Aura

log = logging.getLogger(__name__)


class ConsensusRules:
    """Aura + the fork choice (longest chain with the justified block), as the chain's ``BlockRules``."""

    def __init__(self, aura: Aura) -> None:
        self.aura = aura
        #: The highest justified block (consensus.finality), kept up to date by the node: the
        #: fork choice prefers the branches that contain it.
        self.justified: bytes | None = None

    def check_claim(self, chain: Blockchain, parent: Header, author: bytes, slot: int) -> None:
        self.aura.check_claim(chain, parent, author, slot)

    def verify_header(self, chain: Blockchain, header: Header, parent: Header) -> None:
        self.aura.verify_header(chain, header, parent)

    def prefer(self, chain: Blockchain, candidate: Header, best: Header) -> bool:
        return fork_choice.prefer(candidate, best, chain, self.justified)


def update_pool(pool: TransactionPool, chain: Blockchain, retracted: Iterable[bytes], enacted: Iterable[bytes]) -> list[bytes]:
    """Bring ``pool`` in step with a best-chain move (an ImportedBlock's or a finalization's
    ``retracted`` and ``enacted`` hashes); returns the hashes resubmitted.

    Call it after the move, on the thread that owns the pool; it uses the pool's public API
    only (``submit``, then ``maintain``: prune the enacted blocks' extrinsics, revalidate the
    rest, expire old future ones). A resubmission the pool refuses (already
    pooled, invalid on the new branch, pool full) is skipped. (The node does the same in
    turns: node.service.NodeService._update_pool.)
    """
    extrinsics, included = find_resubmissions(pool, chain, retracted, enacted)
    resubmitted: list[bytes] = []
    for xt_hash, raw in extrinsics:
        try:
            pool.submit(raw)
        except ChainError as exc:
            log.debug("retracted extrinsic 0x%s not resubmitted: %s", xt_hash.hex(), exc)
            continue
        resubmitted.append(xt_hash)
    pool.maintain(chain.best_number, included)
    return resubmitted


def find_resubmissions(
    pool: TransactionPool, chain: Blockchain, retracted: Iterable[bytes], enacted: Iterable[bytes]
) -> tuple[list[tuple[bytes, bytes]], set[bytes]]:
    """The retracted blocks' extrinsics to put back in ``pool`` (hash and encoding, each made
    once), oldest block first (nonces in order), but those an enacted block includes or the
    pool holds; and the hashes of the enacted blocks' extrinsics (for ``maintain``)."""
    included = {xt.hash() for block_hash in tuple(enacted) for xt in chain.get_block(block_hash).body.extrinsics}
    back = []
    for block_hash in reversed(tuple(retracted)):
        for xt in chain.get_block(block_hash).body.extrinsics:
            raw = xt.encode()
            xt_hash = blake2_256(raw)
            if xt_hash not in included and xt_hash not in pool:
                back.append((xt_hash, raw))
    return back, included
