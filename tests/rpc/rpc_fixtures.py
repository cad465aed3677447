"""Shared rpc test helpers: a toy method table, server fixtures on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from rpc.errors import InvalidParams, InvalidTransaction
from rpc.methods import MethodTable, Params, Subscription, bind_params, parse_params
from rpc.server import RpcServer

HEADER = {
    "parentHash": "0x" + "11" * 32,
    "number": "0x2a",
    "stateRoot": "0x" + "22" * 32,
    "extrinsicsRoot": "0x" + "33" * 32,
    "digest": {"logs": []},
}


def make_table() -> MethodTable:
    """Small toy methods standing in for the chain's."""
    table = MethodTable()

    @table.method("system_health")
    async def system_health(params: Params) -> Any:
        return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}

    @bind_params
    async def get_header(hash: str | None = None) -> Any:
        if hash is not None and hash != HEADER["parentHash"] and hash != "0x" + "44" * 32:
            return None
        return HEADER

    table.register("chain_getHeader", get_header)

    @table.method("test_echo")
    async def echo(params: Params) -> Any:
        return params

    @bind_params
    async def add(a: int, b: int = 0) -> int:
        return a + b

    table.register("test_add", add)

    @table.method("test_fail")
    async def fail(params: Params) -> Any:
        raise ValueError("secret internal detail")

    @table.method("test_badResult")
    async def bad_result(params: Params) -> Any:
        return object()

    @table.method("test_poolReject")
    async def pool_reject(params: Params) -> Any:
        raise InvalidTransaction("nonce 3 is stale: the account's next nonce is 5")

    @table.method("test_big")
    async def big(params: Params) -> Any:
        (n,) = parse_params(params, ["n"])
        return "x" * n

    @table.method("test_sleep")
    async def sleep(params: Params) -> Any:
        (seconds,) = parse_params(params, ["seconds"])
        await asyncio.sleep(seconds)
        return True

    @table.method("author_rotateKeys", unsafe=True)
    async def rotate_keys(params: Params) -> Any:
        return "0x" + "ab" * 32

    def check_count(params: Params) -> None:
        count, _interval = parse_params(params, ["count", "interval"], required=0)
        if count is not None and (not isinstance(count, int) or count < 0):
            raise InvalidParams("Invalid params: param 0 'count' must be a non-negative integer")

    @table.subscription(
        "chain_subscribeNewHeads",
        "chain_newHead",
        "chain_unsubscribeNewHeads",
        check_params=check_count,
    )
    async def new_heads(params: Params, sink: Subscription) -> None:
        """Emit ``count`` numbered headers (default 3), then idle until unsubscribed."""
        count, interval = parse_params(params, ["count", "interval"], required=0)
        for n in range(3 if count is None else count):
            if not await sink.send({**HEADER, "number": hex(n)}):
                return
            if interval:
                await asyncio.sleep(interval)
        await asyncio.Event().wait()

    @table.subscription("test_subscribeFail", "test_failed", "test_unsubscribeFail")
    async def fails(params: Params, sink: Subscription) -> None:
        await sink.send(1)
        raise InvalidTransaction("the watched transaction was dropped")

    @table.subscription("test_subscribeFlood", "test_flood", "test_unsubscribeFlood")
    async def flood(params: Params, sink: Subscription) -> None:
        payload = "y" * 4096
        while await sink.send(payload):
            await asyncio.sleep(0)

    return table


@pytest.fixture
def table() -> MethodTable:
    return make_table()


StartServer = Callable[..., "contextlib.AbstractAsyncContextManager[RpcServer]"]


@pytest.fixture
def start_server(table: MethodTable) -> StartServer:
    """``async with start_server(**kwargs) as server`` on a free loopback port."""

    @contextlib.asynccontextmanager
    async def start(**kwargs: Any) -> AsyncIterator[RpcServer]:
        methods = kwargs.pop("methods", table)
        server = RpcServer(methods, host="127.0.0.1", port=0, **kwargs)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    return start


@pytest.fixture
async def server(start_server: StartServer) -> AsyncIterator[RpcServer]:
    async with start_server() as srv:
        yield srv


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    session: aiohttp.ClientSession,
    server: RpcServer,
    body: bytes | str,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """POST raw bytes; (status, body)."""
    if isinstance(body, str):
        body = body.encode()
    async with session.post(server.url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.read()


def ws_url(server: RpcServer) -> str:
    return f"ws://127.0.0.1:{server.port}"
