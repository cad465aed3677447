"""Head subscriptions at scale: a block costs the node one header encode however many
follow it, the node-wide subscription cap refuses with -32009, and a client that subscribes
and never reads is dropped with a reason instead of growing the node's memory.

Real servers on loopback: a dev NodeService (LevelDB, instant seal) behind the real method
table for the heads; a toy table whose stream the test feeds for the slow reader, read
through a raw socket with a small receive buffer (a client library would read on its own).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import rawws
from rpc_fixtures import ws_url

from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.methods import Fanout, MethodTable, Params, Subscription
from rpc.namespaces import chain as chain_namespace
from rpc.server import RpcServer
from rpc.shapes import header_json


async def _subscribe_many(ws: aiohttp.ClientWebSocketResponse, method: str, count: int) -> list[Any]:
    """``count`` subscribe calls in one batch; the answers (results or errors) in id order."""
    await ws.send_json([{"jsonrpc": "2.0", "id": i, "method": method} for i in range(count)])
    while True:
        answer = json.loads((await ws.receive(timeout=10)).data)
        if isinstance(answer, list):
            return sorted(answer, key=lambda a: a["id"])


async def test_a_block_is_encoded_once_for_every_head_subscription(monkeypatch) -> None:
    shaped: list[int] = []

    def counting_header_json(header: Any) -> dict[str, Any]:
        shaped.append(header.number)
        return header_json(header)

    monkeypatch.setattr(chain_namespace, "header_json", counting_header_json)
    service = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    connections, per_connection, blocks = 4, 256, 3
    try:
        async with RpcServer(build_method_table(service), port=0) as server, aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(ws_url(server)) for _ in range(connections)]
            ids: list[set[str]] = []
            for ws in sockets:
                answers = await _subscribe_many(ws, "chain_subscribeNewHeads", per_connection)
                ids.append({a["result"] for a in answers})
            assert service.table_sizes()["head_watchers"] == 1  # one reader for all 1,024
            for _ in range(blocks):
                assert await service.author_block() is not None
            best = service.chain.best_number
            for ws, mine in zip(sockets, ids, strict=True):
                seen: dict[str, list[dict[str, Any]]] = {sub: [] for sub in mine}
                while any(not results or int(results[-1]["number"], 16) < best for results in seen.values()):
                    note = json.loads((await ws.receive(timeout=10)).data)
                    assert note["method"] == "chain_newHead"
                    seen[note["params"]["subscription"]].append(note["params"]["result"])
                for results in seen.values():
                    assert results[-1] == header_json(service.chain.best_header)
            # The current head for the first subscriber, then each new block: once each.
            assert len(shaped) <= blocks + 1, len(shaped)
            # (The loop's lag per block is a figure: python -m benches.fanout.)
            for ws in sockets:
                await ws.close()
    finally:
        service.close()


async def test_the_node_wide_subscription_cap_refuses_with_minus_32009(start_server, session) -> None:
    async with start_server(max_subscriptions=5, max_subscriptions_per_connection=4, reserved_subscriptions=0) as srv:
        first = await session.ws_connect(ws_url(srv))
        second = await session.ws_connect(ws_url(srv))
        assert all("result" in a for a in await _subscribe_many(first, "chain_subscribeNewHeads", 4))
        answers = await _subscribe_many(second, "chain_subscribeNewHeads", 3)
        assert "result" in answers[0]
        for refused in answers[1:]:
            assert refused["error"]["code"] == -32009, refused
            assert refused["error"]["message"] == "Too many subscriptions on the node, try again later"
            assert "limit 5" in refused["error"]["data"]
        await first.close()  # its four go: room again
        for _ in range(100):
            if srv._connections and sum(len(c.subs) for c in srv._connections) == 1:
                break
            await asyncio.sleep(0.02)
        assert all("result" in a for a in await _subscribe_many(second, "chain_subscribeNewHeads", 3))
        await second.close()


async def test_clients_at_the_per_connection_limit_cannot_lock_everyone_else_out(start_server, session) -> None:
    """Two connections fill the node-wide cap; a third still gets its reserved share (a
    reviewer's finding: 8 x 1,024 filled the default cap and every other client was refused)."""
    async with start_server(max_subscriptions=8, max_subscriptions_per_connection=4, reserved_subscriptions=2) as srv:
        hogs = [await session.ws_connect(ws_url(srv)) for _ in range(2)]
        for hog in hogs:
            assert all("result" in a for a in await _subscribe_many(hog, "chain_subscribeNewHeads", 4))
        late = await session.ws_connect(ws_url(srv))
        answers = await _subscribe_many(late, "chain_subscribeNewHeads", 3)
        assert ["result" in a for a in answers] == [True, True, False]
        assert answers[2]["error"]["code"] == -32009 and "limit 8" in answers[2]["error"]["data"]
        for ws in (*hogs, late):
            await ws.close()


def _fed_table() -> tuple[MethodTable, asyncio.Queue[str]]:
    """A table whose one subscription follows a stream the test feeds, through a Fanout."""
    items: asyncio.Queue[str] = asyncio.Queue()

    async def stream() -> AsyncIterator[str]:
        while True:
            yield await items.get()

    fanout = Fanout(stream, lambda item: item)
    table = MethodTable()

    @table.subscription("test_subscribeFed", "test_fed", "test_unsubscribeFed")
    async def fed(params: Params, sink: Subscription) -> None:
        await fanout.follow(sink)

    return table, items


async def test_a_client_that_never_reads_is_dropped_with_a_reason_and_bounded_memory(start_server) -> None:
    table, items = _fed_table()
    queue_size, subs = 16, 8
    async with start_server(methods=table, ws_queue_size=queue_size) as srv:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await rawws.read_head(reader)).startswith(b"HTTP/1.1 101")
        batch = [{"jsonrpc": "2.0", "id": i, "method": "test_subscribeFed"} for i in range(subs)]
        writer.write(rawws.frame(json.dumps(batch).encode()))
        _, answer = await rawws.read_frame(reader)
        assert all("result" in a for a in json.loads(answer))
        # From here on the client reads nothing. 300 items of 16 KiB to each of 8
        # subscriptions would be 39 MB queued if nothing bounded it.
        conn = next(iter(srv._connections))
        largest = 0
        for n in range(300):
            items.put_nowait(f"{n:05d}" + "z" * 16 * 1024)
            await asyncio.sleep(0.002)
            if conn.queue is not None:
                largest = max(largest, conn.queue.qsize())
        assert not conn.subs, "every subscription of the stalled client was dropped"
        assert largest <= queue_size + subs, largest
        transport = conn.ws._payload_writer.transport  # type: ignore[union-attr]
        assert transport is None or transport.get_write_buffer_size() < 1 << 20
        # The client reads again: after what fitted, each subscription's reason.
        dropped: set[str] = set()
        while len(dropped) < subs:
            _opcode, payload = await rawws.read_frame(reader, timeout=10)
            note = json.loads(payload)
            if "error" in note["params"]:
                assert note["params"]["error"]["code"] == -32009
                assert note["params"]["error"]["message"].startswith("Subscription dropped")
                dropped.add(note["params"]["subscription"])
        writer.close()
