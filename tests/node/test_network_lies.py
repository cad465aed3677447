"""Peers that speak the protocol correctly and lie, against a real NodeService in process
(LevelDB, runtime, pool, a NetworkService on loopback): each lie is refused for its reason,
costs the liar where an honest peer could not have sent it, and leaves the node's best
block, finalized block and state as they were, or moving on with the honest peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from netkit import FAST, Node, start_node, wait_for

from chain.block import Block
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.storage import Database
from genesis.spec import load_chain_spec
from node.network.messages import BlockData, BlockRequest
from node.network.service import NetworkConfig
from node.service import NodeConfig, NodeService

ALICE = dev_keypair("Alice")  # the dev chain's validator


@asynccontextmanager
async def dev_node(network: NetworkConfig = FAST) -> AsyncIterator[NodeService]:
    """A dev-chain node with no authoring key: it only imports what peers send."""
    service = NodeService(NodeConfig(chain="dev", tmp=True, network=network), load_chain_spec("dev"))
    run = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.network is not None and bool(service.network.listen_addresses))
        yield service
    finally:
        service.request_stop()
        await run


def real_blocks(path: Path, count: int, slot_ms: int) -> tuple[list[Block], bytes]:
    """Genesis and ``count`` empty dev-chain blocks Alice sealed in the last slots; and the
    state root of the last."""
    spec = load_chain_spec("dev")
    now = int(time.time() * 1000) // slot_ms
    db = Database(path)
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        for k in range(count):
            builder.build_block([], ALICE, now - count - 1 + k)
        blocks = [builder.get_block(builder.get_hash(n)) for n in range(count + 1)]  # type: ignore[arg-type]
        return blocks, builder.best_header.state_root
    finally:
        db.close()


async def peer_with(node: NodeService, blocks: list[Block]) -> Node:
    peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
    peer.blocks = blocks
    return peer


async def test_a_peer_that_answers_slowly_does_not_hold_up_the_sync_from_another(tmp_path) -> None:
    """A peer may answer a block request at any time within the request timeout, each time,
    at no cost to its reputation (one block per answer is a valid answer). While its request
    was pending, the node's one sync lock was held, so every other peer's sync waited behind
    it: one such peer kept the node behind the chain for as long as it liked. The lock is
    now released while an answer is awaited, and the honest peer's blocks are imported."""
    async with dev_node(replace(FAST, request_timeout=30.0)) as node:
        assert node.network is not None and node.link is not None
        blocks, root = real_blocks(tmp_path / "builder", 3, node.slot_ms)
        slow = await peer_with(node, blocks)
        gate = asyncio.Event()
        asked: list[object] = []
        serve = slow.serve

        async def stalling(peer: object, req: BlockRequest) -> list[BlockData]:
            asked.append(req.start)
            await gate.wait()  # answered just before the timeout, or (here) not before the test ends
            return await serve(peer, req)  # type: ignore[arg-type]

        slow.service.handlers.serve_block_request = stalling
        honest = await peer_with(node, blocks)
        try:
            await slow.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: asked == [1])  # the sync on connect asks from #1 and waits
            await honest.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.chain.best_number == 3, timeout=5.0, what="the honest peer's blocks imported")
            assert node.chain.best_hash == blocks[-1].hash() and node.chain.best_header.state_root == root
            assert node.network.reputation.score(honest.id) == 0
        finally:
            gate.set()
            await slow.service.stop()
            await honest.service.stop()
