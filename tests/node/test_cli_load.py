"""`polchain tx` against a node whose WebSocket slots are all taken: the CLI says the node
refused for load (HTTP 429), not that no node may be running there.

A real RpcServer on loopback with room for one WebSocket, held by a subscribed client (a
subscribed WebSocket is never evicted); the CLI's ``main`` runs in a thread meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from node.cli import main
from rpc.methods import MethodTable, Params, Subscription
from rpc.server import RpcServer


def _busy_table() -> MethodTable:
    table = MethodTable()

    @table.method("chain_getBlockHash")
    async def block_hash(params: Params) -> Any:
        return "0x" + "00" * 32

    @table.subscription("test_subscribe", "test_item", "test_unsubscribe")
    async def hold(params: Params, sink: Subscription) -> None:
        await asyncio.Event().wait()

    return table


async def test_tx_says_the_node_refused_for_load_on_http_429(capsys) -> None:
    async with RpcServer(_busy_table(), port=0, max_connections=1) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url.replace("http", "ws", 1))
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "test_subscribe"})
        assert "result" in await ws.receive_json(timeout=5)
        argv = ["tx", "transfer", "--rpc", server.url, "--dest", "//Bob", "--value", "1", "--timeout", "10"]
        code = await asyncio.to_thread(main, argv)
        await ws.close()
    err = capsys.readouterr().err
    assert code != 0
    assert "429" in err and "refused" in err and "load" in err, err
    assert "is `polchain node` running there?" not in err, err
