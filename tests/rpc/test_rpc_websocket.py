"""WebSocket transport and subscriptions: order, unsubscribe, cleanup, limits, overflow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from rpc_fixtures import post, ws_url

from rpc.server import RpcServer


async def rpc(ws: aiohttp.ClientWebSocketResponse, obj: Any) -> Any:
    await ws.send_str(json.dumps(obj))
    return json.loads((await ws.receive(timeout=5)).data)


async def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_calls_and_batches_over_ws(server, session):
    async with session.ws_connect(ws_url(server)) as ws:
        assert (await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "test_add", "params": [2, 3]}))[
            "result"
        ] == 5
        batch = await rpc(
            ws,
            [
                {"jsonrpc": "2.0", "id": 1, "method": "system_health"},
                {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            ],
        )
        assert [r["id"] for r in batch] == [1, 2]
        assert (await rpc(ws, []))["error"]["code"] == -32600
        await ws.send_bytes(b'{"jsonrpc":"2.0","id":3,"method":"test_echo","params":["\xff"]}')
        assert json.loads((await ws.receive(timeout=5)).data)["error"]["code"] == -32700
        await ws.send_str("{not json")
        assert json.loads((await ws.receive(timeout=5)).data)["error"]["code"] == -32700
        # A notification produces no frame: the next frame answers the next request.
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "test_echo"}))
        assert (await rpc(ws, {"jsonrpc": "2.0", "id": 4, "method": "test_echo"}))["id"] == 4


async def test_ws_oversize_message_keeps_the_connection(start_server, session):
    async with start_server(max_request_size=1000) as srv, session.ws_connect(ws_url(srv)) as ws:
        resp = await rpc(
            ws, {"jsonrpc": "2.0", "id": 1, "method": "test_echo", "params": ["x" * 1500]}
        )
        assert resp["error"]["code"] == -32007
        assert resp["id"] is None
        assert (await rpc(ws, {"jsonrpc": "2.0", "id": 2, "method": "system_health"}))["id"] == 2


async def test_ws_deep_nesting_keeps_the_connection(server, session):
    async with session.ws_connect(ws_url(server)) as ws:
        await ws.send_str("[" * 100_000 + "]" * 100_000)
        assert json.loads((await ws.receive(timeout=5)).data)["error"]["code"] == -32700
        assert (await rpc(ws, {"jsonrpc": "2.0", "id": 2, "method": "system_health"}))["id"] == 2


async def test_subscription_delivers_in_order_then_unsubscribes(server, session):
    async with session.ws_connect(ws_url(server)) as ws:
        resp = await rpc(
            ws, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [50]}
        )
        sub_id = resp["result"]
        assert isinstance(sub_id, str) and sub_id
        numbers = []
        for _ in range(50):
            note = json.loads((await ws.receive(timeout=5)).data)
            assert note["jsonrpc"] == "2.0"
            assert note["method"] == "chain_newHead"
            assert "id" not in note
            assert note["params"]["subscription"] == sub_id
            numbers.append(int(note["params"]["result"]["number"], 16))
        assert numbers == list(range(50))
        assert (
            await rpc(
                ws,
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "chain_unsubscribeNewHeads",
                    "params": [sub_id],
                },
            )
        )["result"] is True
        assert (
            await rpc(
                ws,
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "chain_unsubscribeNewHeads",
                    "params": [sub_id],
                },
            )
        )["result"] is False
        assert (
            await rpc(
                ws,
                {
                    "jsonrpc": "2.0",
                    "id": 4,
                    "method": "chain_unsubscribeNewHeads",
                    "params": ["nope"],
                },
            )
        )["result"] is False
        bad = await rpc(
            ws, {"jsonrpc": "2.0", "id": 5, "method": "chain_unsubscribeNewHeads", "params": [1]}
        )
        assert bad["error"]["code"] == -32602


async def test_unsubscribe_only_from_the_owning_connection(server, session):
    async with session.ws_connect(ws_url(server)) as a, session.ws_connect(ws_url(server)) as b:
        sub_id = (
            await rpc(
                a, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [0]}
            )
        )["result"]
        assert (
            await rpc(
                b,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "chain_unsubscribeNewHeads",
                    "params": [sub_id],
                },
            )
        )["result"] is False
        assert (
            await rpc(
                a,
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "chain_unsubscribeNewHeads",
                    "params": [sub_id],
                },
            )
        )["result"] is True


async def test_subscription_bad_params_get_no_id(server, session):
    async with session.ws_connect(ws_url(server)) as ws:
        resp = await rpc(
            ws, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [-1]}
        )
        assert resp["error"]["code"] == -32602
        assert "count" in resp["error"]["message"]


async def test_subscription_error_notification(server, session):
    async with session.ws_connect(ws_url(server)) as ws:
        sub_id = (await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "test_subscribeFail"}))[
            "result"
        ]
        first = json.loads((await ws.receive(timeout=5)).data)
        assert first["params"] == {"subscription": sub_id, "result": 1}
        end = json.loads((await ws.receive(timeout=5)).data)
        assert end["method"] == "test_failed"
        assert end["params"]["subscription"] == sub_id
        assert end["params"]["error"]["code"] == 1010


async def test_subscription_over_http_is_refused(server, session):
    status, body = await post(
        session,
        server,
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads"}),
    )
    resp = json.loads(body)
    assert status == 200
    assert resp["error"]["code"] == -32601
    assert "WebSocket" in resp["error"]["message"]
    status, body = await post(
        session,
        server,
        json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "chain_unsubscribeNewHeads", "params": ["x"]}
        ),
    )
    assert "WebSocket" in json.loads(body)["error"]["message"]


async def test_disconnect_cancels_subscriptions(server: RpcServer, session):
    async with session.ws_connect(ws_url(server)) as ws:
        for i in range(3):
            await rpc(
                ws, {"jsonrpc": "2.0", "id": i, "method": "chain_subscribeNewHeads", "params": [0]}
            )
        (conn,) = server._connections
        tasks = [sub._task for sub, _spec in conn.subs.values()]
        assert len(tasks) == 3
    await wait_for(lambda: all(t is not None and t.done() for t in tasks))
    await wait_for(lambda: not server._connections and server.active_connections == 0)


async def test_subscription_limit_per_connection(start_server, session):
    async with (
        start_server(max_subscriptions_per_connection=2) as srv,
        session.ws_connect(ws_url(srv)) as ws,
    ):
        ids = [
            (
                await rpc(
                    ws,
                    {"jsonrpc": "2.0", "id": i, "method": "chain_subscribeNewHeads", "params": [0]},
                )
            )["result"]
            for i in range(2)
        ]
        over = await rpc(
            ws, {"jsonrpc": "2.0", "id": 9, "method": "chain_subscribeNewHeads", "params": [0]}
        )
        assert over["error"]["code"] == -32006
        assert (
            await rpc(
                ws,
                {
                    "jsonrpc": "2.0",
                    "id": 10,
                    "method": "chain_unsubscribeNewHeads",
                    "params": [ids[0]],
                },
            )
        )["result"] is True
        again = await rpc(
            ws, {"jsonrpc": "2.0", "id": 11, "method": "chain_subscribeNewHeads", "params": [0]}
        )
        assert isinstance(again["result"], str)


async def test_slow_reader_drops_the_subscription_not_the_server(start_server, session):
    async with start_server(ws_queue_size=8) as srv:
        ws = await session.ws_connect(ws_url(srv))
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "test_subscribeFlood"}))
        # Do not read: the flood fills the socket buffers and then the bounded queue.
        await wait_for(
            lambda: srv._connections and not next(iter(srv._connections)).subs, timeout=10
        )
        # The server still answers others promptly.
        status, _ = await post(
            session, srv, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "system_health"})
        )
        assert status == 200
        # And the slow connection itself still works once it reads again.
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "system_health"}))
        while True:
            msg = json.loads((await ws.receive(timeout=10)).data)
            if msg.get("id") == 3:
                break
        await ws.close()


async def test_connection_limit(start_server, session):
    async with start_server(max_connections=3) as srv:
        sockets = [await session.ws_connect(ws_url(srv)) for _ in range(3)]
        for ws in sockets:  # subscribed, so none is idle and none can be evicted
            await rpc(
                ws, {"jsonrpc": "2.0", "id": 0, "method": "chain_subscribeNewHeads", "params": [0]}
            )
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(srv))
        assert refused.value.status == 429
        for ws in sockets:
            assert (await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "system_health"}))[
                "id"
            ] == 1
        await sockets.pop().close()
        await wait_for(lambda: srv.active_connections == 2)
        async with session.ws_connect(ws_url(srv)) as ws:
            assert (await rpc(ws, {"jsonrpc": "2.0", "id": 2, "method": "system_health"}))[
                "id"
            ] == 2
        for ws in sockets:
            await ws.close()
        await wait_for(lambda: srv.active_connections == 0)
        status, _ = await post(
            session, srv, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "system_health"})
        )
        assert status == 200


async def test_server_stop_closes_websockets_and_subscriptions(start_server, session):
    async with start_server() as srv:
        ws = await session.ws_connect(ws_url(srv))
        await rpc(
            ws, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [0]}
        )
        (conn,) = srv._connections
        (task,) = [sub._task for sub, _ in conn.subs.values()]
    assert task is not None and task.done()
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()
