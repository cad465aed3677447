"""The link between a node and its network: block announce and import, range sync, gossip.

Kept apart from both :mod:`node.service` and :mod:`node.network.service` so fork choice can
replace the import policy here without touching either. The policy for now is the simplest
correct one while the chain has a single canonical branch:

- a block we author or import is announced to the peers that do not know it (during a sync,
  only the best block at its end);
- a peer that announces, or connects with, a best block higher than ours is synced from: we
  ask it for blocks by number from our best + 1 (at most 64 per request) and import each one
  that extends our best block. A block that does not extend it (a fork) ends the sync without
  blame: choosing between branches is fork choice's job. A block that extends our best block
  but fails import (bad seal, wrong author, state root mismatch...) is a bad block: the peer is
  banned;
- transactions from peers go through the same pool path as RPC submissions; those the pool
  accepts are gossiped on, and the network's seen-set keeps them from looping. A transaction
  that does not decode costs the peer a little reputation; one that is merely stale or already
  known does not (an honest peer can send those).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from chain.block import Block
from chain.blockchain import Blockchain, ImportedBlock
from chain.errors import BlockError, ChainError, CodecError
from chain.header import Header
from chain.pool import TransactionPool
from node.network.errors import RequestFailed
from node.network.identity import PeerId
from node.network.messages import MAX_BLOCKS_PER_REQUEST, BlockData, BlockRequest
from node.network.reputation import Misbehaviour
from node.network.service import ChainStatus, NetworkHandlers, NetworkService, PeerInfo

log = logging.getLogger("polchain.sync")


class SyncedNode(Protocol):
    """What the link needs from the node service."""

    chain: Blockchain
    pool: TransactionPool

    def submit(self, raw: bytes) -> bytes: ...
    async def import_block(self, block: Block) -> ImportedBlock | None: ...


class NodeLink:
    def __init__(self, node: SyncedNode, network: NetworkService) -> None:
        self.node = node
        self.network = network
        self._sync_lock = asyncio.Lock()
        self._syncing: set[PeerId] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_outbox: list[bytes] = []
        network.handlers = NetworkHandlers(
            on_block_announce=self._on_announce,
            on_transactions=self._on_transactions,
            serve_block_request=self._serve,
            on_peer_connected=self._on_peer_connected,
        )
        node.pool.add_listener(self._on_pool_status)

    @property
    def is_syncing(self) -> bool:
        return bool(self._syncing)

    def chain_status(self) -> ChainStatus:
        chain = self.node.chain
        finalized = chain.get_header(chain.finalized_hash)
        return ChainStatus(chain.best_number, chain.best_hash, finalized.number, chain.finalized_hash)

    def on_imported(self, imported: ImportedBlock) -> None:
        # While a sync runs, only its last block is announced (after the sync): peers do not
        # need every block of a catch-up, and a burst of announcements could fill their queues.
        if not self._sync_lock.locked():
            self.network.broadcast_block(imported.block.header)

    def _on_pool_status(self, xt_hash: bytes, status: str, data: bytes | None) -> None:
        # Coalesced: everything the pool accepts in one turn of the loop (a burst of RPC
        # submissions, a peer's batch) goes out as one Transactions message per peer, so a
        # burst cannot fill a peer's send queue one message per extrinsic.
        if status not in ("ready", "future"):
            return
        raw = self.node.pool.get_data(xt_hash)
        if raw is None:
            return
        if not self._tx_outbox:
            try:
                asyncio.get_running_loop().call_soon(self._flush_transactions)
            except RuntimeError:  # no loop (a synchronous caller): send now
                self.network.broadcast_transactions((raw,))
                return
        self._tx_outbox.append(raw)

    def _flush_transactions(self) -> None:
        outbox, self._tx_outbox = self._tx_outbox, []
        self.network.broadcast_transactions(outbox)

    async def stop(self) -> None:
        """Wait for syncs to end (call after the network stopped, so their requests fail).

        Not cancelled: a cancelled import would release the node's lock while its thread still
        writes, and the node closes the database under that lock."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- from the network ---------------------------------------------------------------------
    async def _on_transactions(self, peer: PeerId, raws: Sequence[bytes]) -> None:
        for raw in raws:
            try:
                self.node.submit(raw)
            except CodecError as exc:
                self.network.report_peer(peer, Misbehaviour.BAD_TRANSACTION, str(exc))
            except ChainError:
                pass  # stale, duplicate, pool full...: not the peer's fault

    async def _on_announce(self, peer: PeerId, header: Header) -> None:
        if header.number > self.node.chain.best_number:
            self._start_sync(peer)

    async def _on_peer_connected(self, info: PeerInfo) -> None:
        if info.best_number > self.node.chain.best_number:
            self._start_sync(info.peer_id)

    async def _serve(self, peer: PeerId, req: BlockRequest) -> list[BlockData]:
        chain = self.node.chain
        if isinstance(req.start, bytes):
            try:
                number = chain.get_header(req.start).number
            except ChainError:
                return []
            if chain.get_hash(number) != req.start:
                return []  # not on our best chain
        else:
            number = req.start
        step = 1 if req.direction == 0 else -1
        out: list[BlockData] = []
        while len(out) < req.count and number >= 0:
            block_hash = chain.get_hash(number)
            if block_hash is None:
                break
            out.append(BlockData(chain.get_block(block_hash)))
            number += step
        return out

    # --- sync -----------------------------------------------------------------------------------
    def _start_sync(self, peer: PeerId) -> None:
        if peer in self._syncing:
            return
        self._syncing.add(peer)
        task = asyncio.create_task(self._sync_from(peer), name=f"sync-{peer.short()}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync_from(self, peer: PeerId) -> None:
        try:
            async with self._sync_lock:
                before = self.node.chain.best_hash
                try:
                    await self._sync_locked(peer)
                finally:
                    if self.node.chain.best_hash != before:
                        self.network.broadcast_block(self.node.chain.best_header)
        except RequestFailed as exc:
            log.info("sync from %s stopped: %s", peer, exc)
        finally:
            self._syncing.discard(peer)

    async def _sync_locked(self, peer: PeerId) -> None:
        chain = self.node.chain
        while True:
            info = self.network.peer(peer)
            if info is None or info.best_number <= chain.best_number:
                return
            count = min(MAX_BLOCKS_PER_REQUEST, info.best_number - chain.best_number)
            blocks = await self.network.request_blocks(peer, chain.best_number + 1, count)
            if not blocks:
                # It claimed (status or announce) a best block above ours, so it has a block at
                # every height up to it; none at all is a false claim.
                self.network.report_peer(
                    peer, Misbehaviour.BAD_ANNOUNCE,
                    f"claims best #{info.best_number} but serves nothing from #{chain.best_number + 1}",
                )
                return
            for data in blocks:
                block = data.block
                if block.header.parent_hash != chain.best_hash:
                    log.info("block #%d from %s does not extend our best block: left to fork choice", block.header.number, peer)
                    return
                try:
                    imported = await self.node.import_block(block)
                except BlockError as exc:
                    self.network.report_peer(peer, Misbehaviour.BAD_BLOCK, str(exc))
                    return
                if imported is None:
                    return  # our best block moved meanwhile (we authored one): look again later


__all__ = ["NodeLink", "SyncedNode"]
