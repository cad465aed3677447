"""Unsafe-method policy, CORS, rpc_methods and the health endpoints."""

from __future__ import annotations

import json

import pytest
from rpc_fixtures import make_table, post

from rpc.methods import MethodTable, Params
from rpc.server import RpcServer


@pytest.mark.parametrize(
    ("host", "policy", "denied"),
    [
        ("127.0.0.1", "auto", False),
        ("localhost", "auto", False),
        ("::1", "auto", False),
        ("0.0.0.0", "auto", True),
        ("::", "auto", True),
        ("192.168.1.5", "auto", True),
        ("example.org", "auto", True),
        ("127.0.0.1", "safe", True),
        ("0.0.0.0", "safe", True),
        ("0.0.0.0", "unsafe", False),
    ],
)
def test_unsafe_policy_follows_substrate(host, policy, denied):
    assert RpcServer(make_table(), host=host, rpc_methods=policy).deny_unsafe is denied


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="rpc_methods"):
        RpcServer(MethodTable(), rpc_methods="sometimes")  # type: ignore[arg-type]


async def test_unsafe_method_refused_when_denied(start_server, session):
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "author_rotateKeys"})
    async with start_server(rpc_methods="safe") as srv:
        _, body = await post(session, srv, request)
        error = json.loads(body)["error"]
        assert error["code"] == -32601
        assert error["message"] == "RPC call is unsafe to be called externally"
        # Safe methods still work.
        _, body = await post(
            session, srv, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "system_health"})
        )
        assert "result" in json.loads(body)
    async with start_server() as srv:  # auto on loopback: allowed
        _, body = await post(session, srv, request)
        assert json.loads(body)["result"].startswith("0x")


async def test_rpc_methods_lists_everything(server, session):
    _, body = await post(
        session, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "rpc_methods"})
    )
    methods = json.loads(body)["result"]["methods"]
    assert methods == sorted(methods)
    for name in (
        "system_health",
        "chain_getHeader",
        "chain_subscribeNewHeads",
        "chain_unsubscribeNewHeads",
        "rpc_methods",
        "author_rotateKeys",
    ):
        assert name in methods
    assert "chain_newHead" not in methods  # a notification name, not a method
    # It takes no params, as every other method without them (an outside tester's D5, round 15).
    for params in ([], {}):
        _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "rpc_methods", "params": params}))
        assert json.loads(body)["result"]["methods"] == methods
    _, body = await post(session, server, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "rpc_methods", "params": [0, 0, None]}))
    assert json.loads(body)["error"] == {"code": -32602, "message": "Invalid params: expected at most 0 (none), got 3"}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1:8080", True),
        ("https://localhost:443", True),
        ("http://localhost", True),
        ("https://polkadot.js.org", True),
        ("https://evil.example", False),
        ("http://localhost:3000.evil.example", False),
        ("http://localhost.evil.example:80", False),
        ("null", False),
    ],
)
async def test_default_cors(server, session, origin, allowed):
    status, _ = await post(
        session,
        server,
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_health"}),
        headers={"Origin": origin},
    )
    assert status == (200 if allowed else 403)
    async with session.options(
        server.url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    ) as resp:
        assert resp.status == (200 if allowed else 403)
        if allowed:
            assert resp.headers["Access-Control-Allow-Origin"] == origin


async def test_cors_header_on_allowed_response(server, session):
    async with session.post(
        server.url,
        data=b'{"jsonrpc":"2.0","id":1,"method":"system_health"}',
        headers={"Origin": "http://localhost:3000"},
    ) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_cors_list_and_all(start_server, session):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_health"})
    async with start_server(cors=["https://app.example"]) as srv:
        assert (await post(session, srv, body, {"Origin": "https://app.example"}))[0] == 200
        assert (await post(session, srv, body, {"Origin": "http://localhost:3000"}))[0] == 403
        assert (await post(session, srv, body))[0] == 200  # no Origin: not a browser
    async with start_server(cors="all") as srv:
        assert (await post(session, srv, body, {"Origin": "https://anything.example"}))[0] == 200


async def test_cors_applies_to_websocket_upgrade(server, session):
    import aiohttp

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(
            f"ws://127.0.0.1:{server.port}", headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403
    async with session.ws_connect(
        f"ws://127.0.0.1:{server.port}", headers={"Origin": "http://localhost:3000"}
    ) as ws:
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"system_health"}')
        assert json.loads((await ws.receive(timeout=5)).data)["id"] == 1


async def test_health(server, session):
    async with session.get(f"{server.url}/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    async with session.get(f"{server.url}/health/readiness") as resp:
        assert resp.status == 200


async def test_readiness_when_syncing(start_server, session):
    table = MethodTable()

    @table.method("system_health")
    async def syncing(params: Params) -> dict[str, object]:
        return {"peers": 0, "isSyncing": True, "shouldHavePeers": True}

    async with (
        start_server(methods=table) as srv,
        session.get(f"{srv.url}/health/readiness") as resp,
    ):
        assert resp.status == 500
