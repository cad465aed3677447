"""``--rpc-rate-limit``: calls a minute for each caller address, as Substrate's flag of that name
(polkadot-sdk's rpc-servers ``rate_limit.rs``: a minute's worth at once, a call past it delayed
until it is due), by address and subnet rather than by connection, since connections are cheap
to open again; a call due more than RATE_LIMIT_MAX_WAIT seconds from now is refused with -32009
before it runs, and a request whose caller's next call is not due soon is refused before it is
read (HTTP 429) or parsed (a WebSocket message). Without a limit (the default) nothing is
counted: the other RPC tests."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from typing import Any

import aiohttp
import pytest
from rpc_fixtures import make_table, ws_url

from rpc.methods import MethodTable, Params
from rpc.server import RATE_LIMIT_MAX_WAIT, RpcServer, _is_whitelisted


def counting_table() -> tuple[MethodTable, list[int]]:
    """The toy table plus ``test_count``, which counts its runs: a refused call never runs."""
    table = make_table()
    runs = [0]

    async def count(params: Params) -> Any:
        runs[0] += 1
        return runs[0]

    table.register("test_count", count)
    return table, runs


def client(host: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(host, 0)))


def call(rid: int, method: str = "test_count") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method}


async def post(session: aiohttp.ClientSession, srv: RpcServer, body: Any, status: int = 200) -> Any:
    async with session.post(srv.url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == status
        if status == 429:  # refused unread: the connection is not kept
            assert resp.headers["Connection"] == "close" and int(resp.headers["Retry-After"]) >= 1
        return await resp.json()


async def post_any(session: aiohttp.ClientSession, srv: RpcServer, body: Any) -> tuple[int, Any]:
    async with session.post(srv.url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


def refusals(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["error"] for a in answers if "error" in a]


async def test_a_call_past_its_addresss_rate_waits_for_its_turn_and_one_due_later_is_refused(start_server):
    """A minute's worth of calls at once (a batch counts each entry); the next waits until it is
    due (at 60 a minute, about a second); two more at the same time would be due in two and three
    seconds, past RATE_LIMIT_MAX_WAIT: refused at once, before their bodies are read (HTTP 429
    with the -32009 error, saying whose calls and when the next is due), and not run. Another
    subnet's caller is not slowed."""
    table, runs = counting_table()
    async with start_server(methods=table, rate_limit=60) as srv, client("127.0.0.2") as mine, \
            client("127.0.1.2") as other:
        answers = await post(mine, srv, [call(i) for i in range(60)])
        assert [a["result"] for a in answers] == list(range(1, 61))
        start = time.monotonic()
        first = asyncio.ensure_future(post_any(mine, srv, call(100)))
        await asyncio.sleep(0.2)  # (waiting for its turn by now: those after it are due past the wait)
        late = [*await asyncio.gather(*(post_any(mine, srv, call(101 + i)) for i in range(2))), await first]
        spent = time.monotonic() - start
        assert sorted(status for status, _ in late) == [200, 429, 429], late
        errors = refusals([answer for _, answer in late])
        assert len(errors) == 2, late
        assert all(e["code"] == -32009 for e in errors), errors
        assert all("127.0.0.2 has made its 60 calls a minute (--rpc-rate-limit)" in e["data"] for e in errors), errors
        assert runs[0] == 61  # the answered one ran, the refused ones did not
        assert 0.5 < spent < 2 * RATE_LIMIT_MAX_WAIT + 0.5, spent  # the one answered waited its turn
        assert srv.rate_limited_calls == 2
        start = time.monotonic()
        assert (await post(other, srv, call(200)))["result"] == 62
        assert time.monotonic() - start < 0.5


async def test_a_subnet_makes_at_most_four_times_an_addresss_calls(start_server):
    """Addresses of one /24 share SUBNET_SHARE (four) times an address's allowance: the fifth
    address, with its own allowance whole, is refused once the subnet's is spent (at 6 a minute
    a call is due every 2.5 s for the subnet, past the wait); another subnet's is not."""
    table, runs = counting_table()
    async with start_server(methods=table, rate_limit=6) as srv:
        for n in range(2, 6):
            async with client(f"127.0.0.{n}") as session:
                assert not refusals(await post(session, srv, [call(i) for i in range(6)]))
        async with client("127.0.0.6") as fifth:
            refused = await post(fifth, srv, call(1), status=429)
        assert refused["error"]["code"] == -32009, refused
        assert "127.0.0.0/24 has made its 24 calls a minute" in refused["error"]["data"], refused
        async with client("127.0.1.6") as other:
            assert (await post(other, srv, call(2)))["result"] == 25
        assert runs[0] == 25


async def test_whitelisted_addresses_are_not_counted_and_websocket_calls_are(start_server):
    """``rate_limit_whitelist`` (``--rpc-rate-limit-whitelisted-ips``) exempts the addresses in
    its networks; everyone else's calls count however they come: a batch's entries one by one,
    and a WebSocket's, whose connection stays open when a call is refused. A notification past the
    rate does not run either; a message whose caller's next call is not due soon is refused
    unparsed (its ids not known: "id": null, as a request too large is)."""
    table, runs = counting_table()
    async with start_server(methods=table, rate_limit=6, rate_limit_whitelist=["127.0.0.0/30"]) as srv, \
            client("127.0.0.2") as listed, client("127.0.0.5") as counted:
        assert not refusals(await post(listed, srv, [call(i) for i in range(20)]))
        answers = await post(counted, srv, [call(i) for i in range(5)])
        assert [a.get("result") for a in answers] == list(range(21, 26))
        ws = await counted.ws_connect(ws_url(srv))
        await ws.send_str(json.dumps([call(6), {"jsonrpc": "2.0", "method": "test_count"}]))  # a call, a notification
        answer = json.loads(await ws.receive_str(timeout=5))
        assert [a.get("result") for a in answer] == [26], answer  # the notification, its turn 10 s away, refused
        assert srv.rate_limited_calls == 1
        await ws.send_str(json.dumps(call(7)))
        answer = json.loads(await ws.receive_str(timeout=5))
        assert answer["id"] is None and answer["error"]["code"] == -32009, answer
        assert "127.0.0.5 has made its 6 calls a minute" in answer["error"]["data"]
        await ws.send_str(json.dumps(call(8, "system_health")))
        assert json.loads(await ws.receive_str(timeout=5))["error"]["code"] == -32009  # still open, still counted
        await ws.close()
        assert runs[0] == 26 and srv.rate_limited_calls == 3
        await post(counted, srv, call(9), status=429)


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"rate_limit": 0}, "rate_limit must be at least 1"),
    ({"rate_limit": 60, "rate_limit_whitelist": ["not-a-network"]}, "not-a-network"),
])
def test_a_rate_limit_that_cannot_be_kept_is_refused_at_start(kwargs, says):
    with pytest.raises(ValueError, match=says):
        RpcServer(make_table(), port=0, **kwargs)


@pytest.mark.parametrize(("caller", "networks", "listed"), [
    ("10.1.2.3", ["10.0.0.0/8"], True),
    ("10.1.2.3", ["10.1.2.4/32", "::/0"], False),
    ("::/64", ["::1/128"], True),  # an IPv6 caller is its /64 (compute_address_group): ::1 names it
    ("2001:db8::/64", ["2001:db8::/48"], True),
    ("2001:db8::/64", ["2001:db8:0:1::/64", "0.0.0.0/0"], False),
    ("?", ["0.0.0.0/0", "::/0"], False),  # (no address known: counted)
])
def test_whitelisted_networks_hold_the_callers_address(caller, networks, listed):
    assert _is_whitelisted(caller, tuple(ipaddress.ip_network(n) for n in networks)) is listed
