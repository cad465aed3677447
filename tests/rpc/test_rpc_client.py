"""RpcClient (async, HTTP and WebSocket) and SyncRpcClient against a real server."""

from __future__ import annotations

import asyncio
import threading

import pytest
from rpc_fixtures import HEADER, make_table

from rpc.client import RpcClient, SyncRpcClient
from rpc.errors import RpcCallError, RpcTransportError
from rpc.server import RpcServer


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_call_batch_notify(server, scheme):
    async with RpcClient(f"{scheme}://127.0.0.1:{server.port}") as client:
        assert await client.call("chain_getHeader") == HEADER
        assert await client.call("test_add", {"a": 1, "b": 2}) == 3
        with pytest.raises(RpcCallError) as info:
            await client.call("test_poolReject")
        assert (info.value.code, info.value.message) == (1010, "Invalid Transaction")
        assert "stale" in info.value.data
        with pytest.raises(RpcCallError) as info:
            await client.call("test_add", ["x"])
        assert info.value.code == -32602
        results = await client.batch([("test_add", [1, 1]), ("nope", None), ("system_health", [])])
        assert results[0] == 2
        assert isinstance(results[1], RpcCallError) and results[1].code == -32601
        assert results[2]["peers"] == 0
        await client.notify("test_echo", [1])
        assert await client.call("test_echo", ["still alive"]) == ["still alive"]


async def test_batch_refused_whole(start_server):
    async with start_server(max_batch_len=2) as srv:
        for url in (srv.url, f"ws://127.0.0.1:{srv.port}"):
            async with RpcClient(url) as client:
                with pytest.raises(RpcCallError) as info:
                    await client.batch([("system_health", None)] * 3)
                assert info.value.code == -32010


async def test_concurrent_ws_calls_are_matched_by_id(server):
    async with RpcClient(f"ws://127.0.0.1:{server.port}") as client:
        results = await asyncio.gather(*(client.call("test_add", [i, i]) for i in range(50)))
        assert results == [2 * i for i in range(50)]


async def test_subscribe_from_http_client(server):
    async with RpcClient(server.url) as client:
        sub = await client.subscribe("chain_subscribeNewHeads", [5], "chain_unsubscribeNewHeads")
        numbers = []
        async for head in sub:
            numbers.append(int(head["number"], 16))
            if len(numbers) == 5:
                break
        assert numbers == [0, 1, 2, 3, 4]
        assert await sub.unsubscribe() is True
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()


async def test_subscription_error_raises(server):
    async with RpcClient(f"ws://127.0.0.1:{server.port}") as client:
        sub = await client.subscribe("test_subscribeFail", None, "test_unsubscribeFail")
        assert await sub.next(5) == 1
        with pytest.raises(RpcCallError) as info:
            await sub.next(5)
        assert info.value.code == 1010


async def test_subscription_ends_when_server_stops(start_server):
    async with start_server() as srv:
        client = RpcClient(f"ws://127.0.0.1:{srv.port}")
        sub = await client.subscribe("chain_subscribeNewHeads", [1], "chain_unsubscribeNewHeads")
        assert (await sub.next(5))["number"] == "0x0"
    with pytest.raises(StopAsyncIteration):
        await sub.next(5)
    await client.close()


async def test_transport_errors(server):
    async with RpcClient("http://127.0.0.1:1") as client:
        with pytest.raises(RpcTransportError):
            await client.call("system_health")
    async with RpcClient("ws://127.0.0.1:1") as client:
        with pytest.raises(RpcTransportError):
            await client.call("system_health")
    with pytest.raises(ValueError):
        RpcClient("tcp://127.0.0.1:1")


def test_sync_client():
    ready = threading.Event()
    stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    port: list[int] = []

    def serve() -> None:
        async def main() -> None:
            server = RpcServer(make_table(), port=0)
            await server.start()
            port.append(server.port)
            done = asyncio.Event()
            stop.append((asyncio.get_running_loop(), done))
            ready.set()
            await done.wait()
            await server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with SyncRpcClient(f"http://127.0.0.1:{port[0]}", timeout=5) as client:
            assert client.call("system_health")["isSyncing"] is False
            assert client.batch([("test_add", [2, 3])]) == [5]
            with pytest.raises(RpcCallError):
                client.call("nope")
            sub = client.subscribe("chain_subscribeNewHeads", [3], "chain_unsubscribeNewHeads")
            assert [sub.next(5)["number"] for _ in range(3)] == ["0x0", "0x1", "0x2"]
            assert sub.unsubscribe() is True
            client.notify("test_echo")
        with SyncRpcClient(f"ws://127.0.0.1:{port[0]}", timeout=5) as client:
            assert client.call("test_add", [1]) == 1
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(10)
    assert not thread.is_alive()
