"""RPC callers that subscribe and drop: nothing of theirs stays in the node.

A real NodeService (LevelDB, runtime, pool) behind a real RpcServer on loopback. WebSocket
clients subscribe to heads and watch extrinsics, then close without unsubscribing; the node's
watcher tables (NodeService.table_sizes, exported as polchain_table_entries) go back to zero
and the server holds no connection. The head subscriptions of a node share one watcher
(rpc.methods.Fanout), so the head table stays at one per kind however many subscribe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.server import RpcServer

BOB = dev_keypair("Bob")


@asynccontextmanager
async def node_with_rpc(**limits: Any) -> AsyncIterator[tuple[NodeService, RpcServer]]:
    service = NodeService(NodeConfig(chain="dev", tmp=True), load_chain_spec("dev"))
    server = RpcServer(build_method_table(service), host="127.0.0.1", port=0, **limits)
    run = asyncio.create_task(service.run(server))
    try:
        async with asyncio.timeout(30):
            while not server.port:
                await asyncio.sleep(0.02)
        yield service, server
    finally:
        service.request_stop()
        await run


async def settled(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_subscriptions_of_dropped_connections_leave_no_watcher() -> None:
    async with node_with_rpc() as (service, server):
        chain = service.chain
        ws_url = server.url.replace("http", "ws", 1)
        clients = 40
        async with aiohttp.ClientSession() as http:
            for i in range(clients):
                xt = sign_extrinsic(BOB, calls.Transfer(BOB.public, 1), nonce=i, genesis_hash=chain.genesis_hash,
                                    spec_version=chain.runtime.spec_version)
                ws = await http.ws_connect(ws_url)
                for n, (method, params) in enumerate((
                    ("chain_subscribeNewHeads", []),
                    ("chain_subscribeFinalizedHeads", []),
                    ("author_submitAndWatchExtrinsic", ["0x" + xt.encode().hex()]),
                )):
                    await ws.send_json({"jsonrpc": "2.0", "id": n, "method": method, "params": params})
                    answer = await ws.receive_json(timeout=5)
                    while "id" not in answer:  # a notification came first
                        answer = await ws.receive_json(timeout=5)
                    assert "result" in answer, answer
                if i == 0:
                    await settled(lambda: service.table_sizes()["head_watchers"] == 2)
                    assert service.table_sizes()["xt_watchers"] == 1
                await ws.close()  # no unsubscribe
        await settled(lambda: service.table_sizes()["head_watchers"] == 0 and service.table_sizes()["xt_watchers"] == 0)
        assert server.websocket_connections == 0
        assert service.table_sizes()["pool_transactions"] == clients  # the extrinsics stay: only the watches went


async def test_subscriptions_per_connection_hold_the_watcher_tables_at_the_bound() -> None:
    async with node_with_rpc(max_subscriptions_per_connection=3) as (service, server):
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url.replace("http", "ws", 1)) as ws:
            errors = []
            for n in range(8):
                await ws.send_json({"jsonrpc": "2.0", "id": n, "method": "chain_subscribeNewHeads", "params": []})
                answer = await ws.receive_json(timeout=5)
                while "id" not in answer:
                    answer = await ws.receive_json(timeout=5)
                if "error" in answer:
                    errors.append(answer["error"]["code"])
            assert errors == [-32006] * 5
            # Three subscriptions, one watcher: they share one reader of the heads (Fanout).
            await settled(lambda: service.table_sizes()["head_watchers"] == 1)
        await settled(lambda: service.table_sizes()["head_watchers"] == 0)
