"""The node's link to the network, in process: a real NodeService (LevelDB, runtime, pool)
against hand-made peers that lie about their chain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from netkit import FAST, Node, make_chain, start_node, wait_for

from chain import calls
from chain.block import Block
from chain.config import SPEC_VERSION
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from genesis.spec import load_chain_spec
from node.network.reputation import Misbehaviour
from node.service import NodeConfig, NodeService


@asynccontextmanager
async def dev_node(block_time_ms: int = 6000) -> AsyncIterator[NodeService]:
    service = NodeService(NodeConfig(chain="dev", tmp=True, network=FAST, block_time_ms=block_time_ms), load_chain_spec("dev"))
    run = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.network is not None and bool(service.network.listen_addresses))
        yield service
    finally:
        service.request_stop()
        await run


async def liar(service: NodeService, blocks: list[Block]) -> Node:
    """A peer on the node's genesis that claims ``blocks`` as its chain."""
    peer = await start_node(genesis=service.chain.genesis_hash, blocks=1)
    peer.blocks = blocks
    return peer


async def test_a_peer_ahead_is_synced_from_and_bad_blocks_get_it_banned(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        root = node.chain.best_header.state_root
        # #1 extends the real genesis but is not a real block: no seal, author not a validator.
        peer = await liar(node, [genesis, *make_chain(5, parent=genesis.hash(), start=1)])
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: node.network.reputation.banned_for(peer.id) > 0)  # type: ignore[union-attr]
            assert f"peer {peer.id}: {Misbehaviour.BAD_BLOCK.reason} (block #1 is authored by" in caplog.text
            await wait_for(lambda: node.network.peers() == [])  # type: ignore[union-attr]
            assert node.chain.best_number == 0 and node.chain.best_header.state_root == root
        finally:
            await peer.service.stop()


async def test_a_peer_that_claims_blocks_it_does_not_serve_is_charged(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        peer = await liar(node, [genesis])
        try:
            fake_best = make_chain(9, parent=genesis.hash(), start=1)[-1].header
            await peer.service.dial(node.network.listen_addresses[0])
            peer.service.broadcast_block(fake_best)  # #9, which it will not serve
            await wait_for(lambda: node.network.reputation.score(peer.id) < 0)  # type: ignore[union-attr]
            assert f"peer {peer.id}: {Misbehaviour.BAD_ANNOUNCE.reason}" in caplog.text
            assert node.chain.best_number == 0
        finally:
            await peer.service.stop()


async def test_a_peer_on_a_fork_is_left_to_fork_choice_without_blame(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with dev_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        fork = make_chain(4, parent=b"\x01" * 32, start=1)  # #1 whose parent is not our genesis
        peer = await liar(node, [genesis, *fork])
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: "does not join our chain above the finalized block #0" in caplog.text)
            assert node.network.reputation.score(peer.id) == 0
            assert [p.peer_id for p in node.network.peers()] == [peer.id]
        finally:
            await peer.service.stop()



async def test_pool_transactions_are_gossiped_in_one_message_per_burst() -> None:
    async with dev_node() as node:
        assert node.network is not None
        genesis = node.chain.get_block(node.chain.genesis_hash)
        peer = await start_node(genesis=node.chain.genesis_hash, blocks=1)
        peer.blocks = [genesis]
        peer.regossip = False
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(node.network.peers()) == 1)  # type: ignore[union-attr]
            bob, charlie = dev_keypair("Bob"), dev_keypair("Charlie")
            raws = [
                sign_extrinsic(
                    bob, calls.Transfer(charlie.public, 10**9), nonce=n,
                    genesis_hash=node.chain.genesis_hash, spec_version=SPEC_VERSION,
                ).encode()
                for n in range(5)
            ]
            for raw in raws:  # one turn of the loop, as a burst of RPC submissions
                node.submit(raw)
            await asyncio.wait_for(peer.tx_event.wait(), 5)
            await asyncio.sleep(0.2)
            assert peer.txs == [(node.network.local_peer_id, tuple(raws))]
        finally:
            await peer.service.stop()


async def test_a_syncing_node_announces_its_new_best_once_not_every_block() -> None:
    # Instant seal runs ahead of the wall clock's slot by one slot a block; short slots keep
    # five quick blocks within the importer's future-slot allowance (consensus.aura).
    author_config = NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True, network=FAST, block_time_ms=100)
    author = NodeService(author_config, load_chain_spec("dev"))
    run = asyncio.create_task(author.run())
    try:
        bob, charlie = dev_keypair("Bob"), dev_keypair("Charlie")
        for n in range(5):
            author.submit(sign_extrinsic(
                bob, calls.Transfer(charlie.public, 10**9), nonce=n,
                genesis_hash=author.chain.genesis_hash, spec_version=SPEC_VERSION,
            ).encode())
            await wait_for(lambda n=n: author.chain.best_number == n + 1)
        async with dev_node(block_time_ms=100) as node:
            assert node.network is not None and author.network is not None
            genesis = node.chain.get_block(node.chain.genesis_hash)
            observer = await liar(node, [genesis])
            try:
                await observer.service.dial(node.network.listen_addresses[0])
                await wait_for(lambda: len(node.network.peers()) == 1)  # type: ignore[union-attr]
                await node.network.dial(author.network.listen_addresses[0])
                await wait_for(lambda: node.chain.best_number == 5)
                await asyncio.sleep(0.3)
                seen = [observer.announces.get_nowait()[1].number for _ in range(observer.announces.qsize())]
                assert seen == [5]
                assert node.chain.best_header.state_root == author.chain.best_header.state_root
            finally:
                await observer.service.stop()
    finally:
        author.request_stop()
        await run
