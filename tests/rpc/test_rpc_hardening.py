"""Transport hardening (issue 7, items 1, 2 and 10) against a real aiohttp server on loopback.

Each test names the failure it pins: a big response that froze every other caller, idle
WebSockets that locked out HTTP, a slow header sender that held its socket for ever, a
non-UTF-8 Origin answered with 500, Unicode digits accepted as a port, an oversize frame
answered with a TCP reset, unmasked client frames accepted.

Mutation testing of this session's hostile-input limits in rpc/ (48b57d0 FrameGuard's control
frames, e2bdba9 the bounded answer and the echoed name, a2a90de the comma count, e64cae5 the
per-address budget), 2026-11-30, mutmut 3.8.1: in a scratch copy whose ``[tool.mutmut]`` had
only_mutate narrowed to rpc/connections.py, rpc/server.py, node/network/peer.py and
node/network/service.py, ``mutmut run --max-children 2 "rpc.x_nothing_matches*"`` made the
mutants (the filter matched none, so none ran); each mutant on a line ``git blame`` gives to
those commits was applied with ``mutmut apply NAME`` and its tests run in a fresh ``python -m
pytest -x`` process (two at a time, 75 s timeout, 180 s for the first few; a hang counts as killed), the file restored
after. Tests: FrameGuard, this file's ``-k "ping or masked or oversize_frame or websocket"``;
ConnectionBudget, ``-k "lock_out or evict or leave_room or half_open or slow_body_flood or
slowloris or nobody_reads or never_read"``; _handle_post and _send_bounded, ``-k "nobody_reads
or never_read"`` and tests/rpc/test_rpc_protocol.py; _handle_payload, test_rpc_protocol.py ``-k
values``; _handle_request, test_rpc_protocol.py. Killed/in scope, before -> after the tests added
then (each watched failing on its mutants; the new ones are in those selections by name):
FrameGuard.__init__ 4/4, feed_data 7/10 -> 10/10, _scan 13/18 -> 18/18, _take_control 15/17 ->
16/17 (linger's ``if self.flooded: return`` has no mutant); ConnectionBudget.opened 29/40 -> 35/40,
_forget 5/10 -> 10/10 (3 by hanging); RpcServer._handle_post 9/13 -> 13/13, _send_bounded 32/57
-> 46/57, _handle_payload 10/13 -> 13/13, _handle_request (the echo bound) 10/13 -> 13/13. Added:
test_pings_refill_at_the_rate_and_a_flood_is_closed_without_lingering (the refill's ``/`` for
``*``; ``flooded`` never set or set for the wrong code; the reason), test_an_unmasked_frame_of_odd_
length_closes_with_1002_after_lingering (``not b1 & 129``; ``saw_close`` on every frame; the
reason), test_only_an_address_holding_more_than_a_quarter_of_the_connections_gives_way (counts
from 1 or by 2, ``>=`` and ``// 5`` for the quarter, ``max`` without its key, the close's count
kept, dropped, raised or lowered by 2, ``pop`` without its default: a KeyError in aiohttp's
connection_lost), test_a_client_that_keeps_reading_gets_its_whole_answer_past_the_stall_bound (the
buffer's size never read), the exact log line and no error in
test_an_answer_nobody_reads_is_dropped_with_its_connection and
test_callers_that_never_read_big_answers_do_not_lock_out_others (``suppress(None)``), in
test_rpc_protocol.py test_an_answer_is_json_with_its_length, test_an_unknown_methods_name_is_
echoed_up_to_128_characters and test_a_websocket_text_message_with_too_many_values_is_refused
(the str branch's count). _handle_post's ``headers=None`` and ``_cors_headers(None)`` are killed by
tests/rpc/test_rpc_policy.py ``-k cors`` (outside the selection). Left:

- ``opened``: ``transport is not None or True``, ``isinstance(peer, tuple) or peer``, ``... or
  True``, ``"XX?XX"``: Listener.connection_made calls aiohttp's first, which sets
  ``handler.transport``, and a TCP socket's peername is a (host, port) tuple: the fallbacks are
  never taken. ``held > self.limit / 4``: for an integer ``held`` the same as ``// 4``.
- ``_take_control`` (since session 44 the shared ``RateLimiter.take``): ``tokens <= 1``: differs only
  at exactly 1.0 token, which needs two control frames scanned at one clock reading (the refill
  between two scans is never 0).
- ``_send_bounded``: ``transport is not None or True`` and ``else 1`` (aiohttp's request always
  has its transport while its handler runs); ``> SEND_STALL`` and ``> limit`` for ``>=`` (loop
  times between polls are never equal to the bound); ``"none" ... and False``, ``"XXnoneXX"``,
  ``"NONE"``: the log's "none" is never reached, a finding (below); in the ``finally``, ``if
  writing.done()`` (the aborted write is left to fail on its own), ``suppress(ConnectionError)``
  and ``suppress(asyncio.CancelledError)`` alone (the cancelled write ends in CancelledError, or
  in ConnectionError once aborted: what escapes ends a handler whose connection is already
  aborted) and ``suppress(CancelledError, None)`` (None is reached only for another exception).

Finding (a log line, not a limit): the log's "read none of" is unreachable, since the kernel
takes part of the answer into the socket's buffers before the first poll, so ``left`` is already
below ``len(out)``; a client that read nothing is logged as "too little"
(test_an_answer_nobody_reads_is_dropped_with_its_connection, fixed since).

Mutation testing of a3080de and 394fdbd (an address holding more than a quarter closes its
own; addresses counted as an IPv4 address or an IPv6 /64), the same run as
tests/chain/test_forks.py's docstring gives (2026-11-30, 14:18-14:27 UTC; each mutant put into
its own function by a script, not ``mutmut apply``). Tests, narrowed for the deadline from
this whole file: test_connections_count_against_an_ipv4_address_or_an_ipv6_64 first (a
mutant raising in compute_address_group hangs the server tests until their timeout), then
``-k "quarter or lock_out or evicts or idle_websockets_leave or subscriptions_are_not"``.
Reached 48 of the 73 in scope (stopped at the deadline; not reached: one of
ConnectionBudget.opened's and all 24 of RpcServer._evict_websocket's). Killed/run, before ->
after the tests added then (watched failing on their mutants): holds_a_quarter 4/8 -> 7/8,
compute_address_group 16/18, ConnectionBudget.opened 18/22 -> 20/22. Killed by
test_holding_a_quarter_is_holding_more_than_a_whole_quarter_of_the_slots (the bounds:
``>=``, ``// 5``, ``held.get(newcomer, 1)``) and
test_an_address_holding_exactly_a_quarter_of_the_connections_does_not_yet_close_only_its_own
(opened's ``self._hosts[host] + 1`` and ``- 2`` for ``- 1``, the count of the newcomer's
address before it: no test had that address hold exactly a quarter, or one more). Left:

- holds_a_quarter's ``capacity / 4`` for ``// 4``: for a whole count n, ``n > x // 4`` and
  ``n > x / 4`` agree. Equivalent.
- compute_address_group's ``strict=None`` (falsy as False: equivalent) and
  ``partition("XX%XX")``: Python's ip_address parses an IPv6 scope id itself (since 3.9) and
  the /64 drops it; only an IPv4 address with a ``%`` suffix would differ, which no socket
  gives.
- opened's ``(isinstance(peer, tuple) and peer) or True`` and ``isinstance(peer, tuple) or
  peer``: differ only for a peername that is not a non-empty tuple (no transport, a Unix
  socket), which the RPC server's TCP sites never give.

No bug was found. (After this run, e35e736 replaced holds_a_quarter by may_close_idle: a newcomer
closes an idle connection only of an address holding at least as many as its own. The two tests
were rewritten for it, test_a_newcomer_may_close_an_idle_connection_of_an_address_holding_as_many_as_its_own
and test_the_newcomers_address_is_counted_without_it, and still kill opened's ``+ 1`` and ``- 2``.)

Mutation testing of 4a5da7b (a new WebSocket closes an idle one only of its own address or of
one holding two more than its own), 2026-11-30, 15:36-15:45 UTC, mutmut 3.8.1: in a scratch copy
(``git archive HEAD``) whose ``[tool.mutmut]`` had only_mutate narrowed to rpc/connections.py,
rpc/server.py and node/network/{service,reputation,transcripts}.py, ``mutmut run --max-children
1 "rpc.x_nothing_matches*"`` made the mutants; each on a line ``git blame`` gives to 4a5da7b was
put into its own function (its class's, by a script: ``mutmut apply`` picks the first function
of that name in the file) and run in a fresh ``python -m pytest -x`` (150 s timeout), the files
restored after. Tests: this file's ``-k "websocket or newcomer"``. Killed/in scope, before ->
after the tests added (each watched failing on its mutants): may_close_idle 12/15 -> 14/15
(and the signature's ``session=True`` default, which the script cannot apply, set by hand:
killed), RpcServer._evict_websocket 13/14 -> 14/14; may_close_idle's older line, run too, 10/11
-> 11/11. Added: in
test_a_newcomer_may_close_an_idle_connection_of_an_address_holding_as_many_as_its_own, a
WebSocket of an address not in the count (``held.get(holder)`` without its default, or with
None: a TypeError) and a connection of such an address beside a newcomer's holding one
(``held.get(holder, 1)`` in the older rule), and test_a_newcomer_closes_its_own_addresss_idle_websocket_not_one_of_an_address_holding_one_more
(_evict_websocket asking may_close_idle for a newcomer of ``None``, holding none: every idle
WebSocket of an address holding two was closable, and 127.0.0.2's oldest went instead of the
newcomer's own address's). Left:

- may_close_idle's ``held.get(holder, 1)`` in the WebSocket rule: an absent holder counts 0 or
  1, both below the newcomer's count + 2 (at least 2). Equivalent.

No bug was found.

Mutation testing of 9722d01 (a WebSocket silent for over WS_SESSION_GRACE gives way as an idle
keep-alive would), 2026-11-30, 18:05-18:11 UTC, mutmut 3.8.1 (mut16, /work/scratch/mut16), made
as the FairShare run in tests/node/test_network_reputation.py's docstring says: every mutant of
rpc.connections.may_close_idle, and those of RpcServer._evict_websocket on lines ``git blame``
gives to 9722d01, each in a fresh ``python -m pytest -x``: this file's ``-k
may_close_an_idle_connection`` (20 s), then ``-k "websocket or newcomer"`` (40 s). Killed/in
scope: may_close_idle 25/26 (its ``session=True`` default, which the script cannot apply, set
by hand: killed), _evict_websocket 15/16. WS_SESSION_GRACE, by hand (9, 11, 0, 1e9): 1/4 ->
4/4, by test_a_silent_websocket_is_a_session_for_ten_seconds (added: the grace's own value, no
test used it; the silent WebSockets' last activity set back by hand, so it waits for nothing).
Left:

- may_close_idle's ``held.get(holder, 1)``: as in the run above. Equivalent.
- _evict_websocket's ``<=`` for ``<`` against the grace: differs only when the loop's time is
  exactly a WebSocket's last activity plus the grace, which two readings of a running clock
  never give (and a test could only by stopping the loop's clock). Equivalent.

No bug was found.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import rawws
from rpc_fixtures import make_table, post, ws_url

from rpc.methods import MethodTable, Params
from rpc.server import MIB, RpcServer

HEALTH = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_health"})


async def rpc(ws: aiohttp.ClientWebSocketResponse, obj: Any) -> Any:
    await ws.send_str(json.dumps(obj))
    return json.loads((await ws.receive(timeout=5)).data)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# --- item 1: big responses ---------------------------------------------------------------


@pytest.fixture(scope="module")
def big_result() -> list[float]:
    # About 18 MiB of JSON: over Substrate's default 15 MiB cap, and ~0.2 s of msgspec work.
    return [float(i) + 0.5 for i in range(2_000_000)]


@pytest.fixture
def big_table(big_result: list[float]) -> tuple[MethodTable, asyncio.Event]:
    table = make_table()
    entered = asyncio.Event()

    @table.method("test_huge")
    async def huge(params: Params) -> Any:
        entered.set()
        return big_result

    return table, entered


async def _health_calls_during(
    session: aiohttp.ClientSession, srv: RpcServer, entered: asyncio.Event
) -> tuple[dict[str, Any], int]:
    """Call test_huge; count the system_health answers between its handler returning and
    its response head arriving (the head goes out once the body is encoded)."""
    head = asyncio.Event()

    async def call_huge() -> tuple[int, bytes]:
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "test_huge"}).encode()
        async with session.post(srv.url, data=body) as resp:
            head.set()
            return resp.status, await resp.read()

    big = asyncio.ensure_future(call_huge())
    await entered.wait()
    answered = 0
    while not head.is_set():
        status, _ = await post(session, srv, HEALTH)
        assert status == 200
        if not head.is_set():
            answered += 1
    status, body = await big
    assert status == 200
    return json.loads(body), answered


async def test_big_response_is_encoded_off_the_loop(start_server, session, big_table):
    table, entered = big_table
    async with start_server(methods=table, max_response_size=32 * MIB) as srv:
        resp, answered = await _health_calls_during(session, srv, entered)
    assert len(resp["result"]) == 2_000_000
    # Encoding on the event loop answered nobody until the big response was out.
    assert answered >= 3


async def test_oversize_response_is_32008_and_others_are_served(start_server, session, big_table):
    table, entered = big_table
    async with start_server(methods=table) as srv:  # Substrate's default cap, 15 MiB
        resp, _answered = await _health_calls_during(session, srv, entered)
        assert resp["id"] == 7
        assert resp["error"]["code"] == -32008
        assert resp["error"]["message"] == "Response is too big"
        assert str(15 * MIB) in resp["error"]["data"]
        assert (await post(session, srv, HEALTH))[0] == 200


async def test_oversize_string_result_is_refused_before_encoding(start_server, session):
    table = make_table()
    huge = "x" * (64 * MIB)

    @table.method("test_hugeString")
    async def huge_string(params: Params) -> Any:
        return {"blob": huge}

    async with start_server(methods=table, max_response_size=MIB) as srv:
        status, body = await post(
            session, srv, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "test_hugeString"})
        )
    assert status == 200
    error = json.loads(body)["error"]
    assert error["code"] == -32008
    assert f"limit of {MIB} bytes" in error["data"]


# --- item 2: room for new callers ----------------------------------------------------------


async def test_idle_websockets_leave_room_for_http(start_server, session):
    async with start_server(max_connections=5) as srv:
        sockets = [await session.ws_connect(ws_url(srv)) for _ in range(5)]
        # Five idle WebSockets used to make every HTTP caller get 429.
        status, body = await post(session, srv, HEALTH)
        assert status == 200, body
        assert json.loads(body)["id"] == 1
        for ws in sockets:
            await ws.close()


async def test_new_websocket_evicts_the_least_recently_active_idle_one(start_server, session):
    async with start_server(max_connections=3) as srv:
        sockets = [await session.ws_connect(ws_url(srv)) for _ in range(3)]
        for i in (0, 2):  # socket 1 is now the least recently active
            assert (await rpc(sockets[i], {"jsonrpc": "2.0", "id": i, "method": "system_health"}))[
                "id"
            ] == i
        newcomer = await session.ws_connect(ws_url(srv))
        assert (await rpc(newcomer, {"jsonrpc": "2.0", "id": 9, "method": "system_health"}))[
            "id"
        ] == 9
        msg = await sockets[1].receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1013  # Try Again Later
        for ws in (sockets[0], sockets[2]):
            assert (await rpc(ws, {"jsonrpc": "2.0", "id": 5, "method": "system_health"}))[
                "id"
            ] == 5
        for ws in (*sockets, newcomer):
            await ws.close()


@contextlib.asynccontextmanager
async def _clients(*last_octets: int) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """HTTP clients bound to 127.0.0.N each: an address apiece, as the per-address rules count."""
    clients = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0))) for n in last_octets]
    try:
        yield clients
    finally:
        for http in clients:
            await http.close()


async def _subscribed(http: aiohttp.ClientSession, srv, count: int) -> list[aiohttp.ClientWebSocketResponse]:  # type: ignore[no-untyped-def]
    """``count`` WebSockets, each subscribed to new heads."""
    sockets = []
    for _ in range(count):
        ws = await http.ws_connect(ws_url(srv))
        await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [0]})
        sockets.append(ws)
    return sockets


async def test_websockets_with_subscriptions_are_not_evicted(start_server, session):
    async with start_server(max_connections=2) as srv:
        sockets = await _subscribed(session, srv, 2)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(srv))
        assert refused.value.status == 429
        assert (await post(session, srv, HEALTH))[0] == 200
        for ws in sockets:
            await ws.close()


async def test_an_address_holding_over_a_quarter_of_the_websockets_gives_way_to_another(start_server, session):
    """When every WebSocket is subscribed or busy, an upgrade from another address closes the
    least recently active WebSocket of an address holding more than a quarter of them (1013),
    subscribed or not: 100 subscribed WebSockets from one address kept every other client out
    with 429 (an outside tester's finding, round 7). From that address itself, still 429."""
    async with _clients(2) as (hog_http,), start_server(max_connections=4) as srv:
        hog = await _subscribed(hog_http, srv, 4)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await hog_http.ws_connect(ws_url(srv))
        assert refused.value.status == 429
        newcomer = await session.ws_connect(ws_url(srv))  # from 127.0.0.1
        assert (await rpc(newcomer, {"jsonrpc": "2.0", "id": 9, "method": "system_health"}))["id"] == 9
        closes = []
        for ws in hog:
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = await ws.receive(timeout=0.5)
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        closes.append((msg.data, msg.extra))
                        break
        assert closes == [(1013, "closed to make room: this address holds more than a quarter of the connections")]
        for ws in (*hog, newcomer):
            await ws.close()


async def test_an_address_holding_over_a_quarter_of_the_websockets_closes_only_its_own_to_make_room(start_server, session):
    """Another address's WebSocket, idle between its calls, is not closed for a newcomer from
    an address holding more than a quarter of them: 100 subscribed WebSockets from one address
    and one more a second closed an honest client's WebSocket 8 times in 20 s (an outside
    tester's finding, round 9). The newcomer is refused (429); the honest one keeps working."""
    async with _clients(2) as (hog_http,), start_server(max_connections=4) as srv:
        honest = await session.ws_connect(ws_url(srv))  # from 127.0.0.1, idle between calls
        hog = await _subscribed(hog_http, srv, 3)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await hog_http.ws_connect(ws_url(srv))
        assert refused.value.status == 429
        assert (await rpc(honest, {"jsonrpc": "2.0", "id": 4, "method": "system_health"}))["id"] == 4
        for ws in (*hog, honest):
            await ws.close()


async def test_addresses_holding_more_websockets_do_not_close_a_smaller_ones_idle_one(start_server, session):
    """Four addresses holding a quarter each (none more than a quarter) closed the honest
    client's WebSocket, idle between its calls, and then kept it out (the retest of round 9:
    1 call answered in 20 s). A newcomer now closes an idle WebSocket only of an address that
    would still hold at least as many as the newcomer's then: here none, so it is refused
    (429), and the honest client's WebSocket keeps working. That holds for a newcomer from a
    fifth address, holding none, too: one holding as many as its own could, and closed the
    honest one (the retest of that fix, A-N4: 2 calls answered in 20 s)."""
    async with _clients(2, 3, 4, 5, 6) as sessions, start_server(max_connections=9) as srv:
        honest = await session.ws_connect(ws_url(srv))  # from 127.0.0.1, idle between calls
        held = [ws for http in sessions[:4] for ws in await _subscribed(http, srv, 2)]
        for http in (sessions[0], sessions[4]):  # one of the four, then a fifth address, holding none
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(srv))
            assert refused.value.status == 429
        assert (await rpc(honest, {"jsonrpc": "2.0", "id": 4, "method": "system_health"}))["id"] == 4
        for ws in (*held, honest):
            await ws.close()


async def test_silent_websockets_of_one_address_each_give_way_after_the_grace(start_server, session, monkeypatch):
    """One idle WebSocket from each of four addresses, never a call: a newcomer from a fifth
    is refused (429) while they are within WS_SESSION_GRACE of their last activity, and closes
    the least recently active of them (1013) once they are past it: addresses holding one
    silent WebSocket each kept every newcomer out for as long as they stayed (round 10, T3)."""
    from rpc import server as rpc_server

    monkeypatch.setattr(rpc_server, "WS_SESSION_GRACE", 0.3)
    async with _clients(2, 3, 4, 5, 6) as sessions, start_server(max_connections=4) as srv:
        silent = [await http.ws_connect(ws_url(srv)) for http in sessions[:4]]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await sessions[4].ws_connect(ws_url(srv))
        assert refused.value.status == 429
        await asyncio.sleep(0.4)
        await _newcomer_closes_the_first(sessions[4], srv, silent)


async def _newcomer_closes_the_first(newcomer_session, srv, silent) -> None:  # type: ignore[no-untyped-def]
    """A newcomer's WebSocket is answered, and the first of ``silent`` is closed for it (1013)."""
    newcomer = await newcomer_session.ws_connect(ws_url(srv))
    assert (await rpc(newcomer, {"jsonrpc": "2.0", "id": 1, "method": "system_health"}))["id"] == 1
    msg = await silent[0].receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1013)
    for ws in (*silent, newcomer):
        await ws.close()


async def test_a_silent_websocket_is_a_session_for_ten_seconds(start_server, session):
    """WS_SESSION_GRACE as the server has it (10 s, not patched): four silent WebSockets from
    four addresses, last active 9.5 s ago, keep a newcomer from a fifth out (429); 10.5 s ago,
    the least recently active of them gives way (1013). Their last activity is set back by
    hand (the server's loop time), so the test waits for nothing. Mutation testing (mut16): no
    test ran with the grace's own value."""
    async with _clients(2, 3, 4, 5, 6) as sessions, start_server(max_connections=4) as srv:
        silent = [await http.ws_connect(ws_url(srv)) for http in sessions[:4]]
        conns = sorted(srv._connections, key=lambda c: c.host)
        assert [c.host for c in conns] == [f"127.0.0.{n}" for n in (2, 3, 4, 5)]
        now = asyncio.get_running_loop().time()
        for i, conn in enumerate(conns):  # 127.0.0.2's the least recently active
            conn.last_active = now - 9.5 - 0.01 * (3 - i)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await sessions[4].ws_connect(ws_url(srv))
        assert refused.value.status == 429
        for conn in conns:
            conn.last_active -= 1.0
        await _newcomer_closes_the_first(sessions[4], srv, silent)


async def test_a_newcomer_closes_its_own_addresss_idle_websocket_not_one_of_an_address_holding_one_more(start_server, session):
    """The server full of idle WebSockets, two of 127.0.0.2's and one of 127.0.0.1's (the most
    recently active), a newcomer from 127.0.0.1 closes that one (1013): 127.0.0.2 holds one
    more than the newcomer's address, not two, so none of its goes (it would be left holding
    fewer than the newcomer's). Mutation testing, mut15: _evict_websocket asking
    may_close_idle for a newcomer of no address (holding none) closed 127.0.0.2's oldest."""
    async with _clients(2) as (other_http,), start_server(max_connections=3) as srv:
        others = [await other_http.ws_connect(ws_url(srv)) for _ in range(2)]
        own = await session.ws_connect(ws_url(srv))  # from 127.0.0.1
        newcomer = await session.ws_connect(ws_url(srv))
        assert (await rpc(newcomer, {"jsonrpc": "2.0", "id": 9, "method": "system_health"}))["id"] == 9
        msg = await own.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1013
        for ws in others:
            assert (await rpc(ws, {"jsonrpc": "2.0", "id": 5, "method": "system_health"}))["id"] == 5
        for ws in (*others, own, newcomer):
            await ws.close()


async def test_idle_websocket_times_out_but_a_subscribed_one_stays(start_server, session):
    async with start_server(ws_idle_timeout=0.5) as srv:
        idle = await session.ws_connect(ws_url(srv))
        busy = await session.ws_connect(ws_url(srv))
        await rpc(busy, {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": [0]})
        msg = await idle.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1000
        assert idle.close_code == 1000
        await asyncio.sleep(0.6)
        assert not busy.closed
        assert (await rpc(busy, {"jsonrpc": "2.0", "id": 2, "method": "system_health"}))["id"] == 2
        await busy.close()


async def test_heartbeat_drops_a_peer_that_never_answers_pings(start_server):
    async with start_server(ws_ping_interval=0.3) as srv:
        reader, writer = await rawws.upgrade(srv.port)
        opcode, _ = await rawws.read_frame(reader, timeout=3)
        assert opcode == rawws.OP_PING
        # No pong: the server gives up within half the interval and closes the socket.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await wait_for(lambda: srv.websocket_connections == 0)
        writer.close()


async def test_slowloris_is_cut_after_the_header_timeout(start_server, session):
    async with start_server(header_timeout=0.5) as srv:
        reader, writer = await rawws.connect(srv.port)
        head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        started = asyncio.get_running_loop().time()
        cut = False
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                cut = True
                break
            # Others are served while the slow client dribbles.
            assert (await post(session, srv, HEALTH))[0] == 200
            if reader.at_eof() or await _closed(reader):
                cut = True
                break
            await asyncio.sleep(0.05)
        assert cut, "a client sending its header a byte at a time was never cut off"
        assert asyncio.get_running_loop().time() - started < 3
        writer.close()


async def _closes_soon(reader: asyncio.StreamReader, within: float = 2.0) -> bool:
    """Whether the server closes this connection within ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await _closed(reader) or reader.at_eof():
            return True
        await asyncio.sleep(0.02)
    return False


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.001) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_slow_body_gets_408(start_server):
    async with start_server(body_timeout=0.5) as srv:
        reader, writer = await rawws.connect(srv.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        head = await rawws.read_head(reader, timeout=5)
        assert head.startswith(b"HTTP/1.1 408"), head
        assert b"Connection: close" in head
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: srv.open_connections == 0)


def _slow_table() -> tuple[Any, asyncio.Event, bytes]:
    """A method table whose test_slow answers once the event is set, and a raw HTTP request for it."""
    table = make_table()
    release = asyncio.Event()

    @table.method("test_slow")
    async def slow(params: Params) -> Any:
        await release.wait()
        return "done"

    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "test_slow"}).encode()
    return table, release, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("size", [10, 9 * MIB])
async def test_a_client_gone_before_its_answer_is_no_error(start_server, caplog, size):
    """A caller that closes its connection while its call runs gets no answer and the node
    logs nothing at ERROR, for a small answer (written at once) and a large one (watched):
    once the server wrote the answers itself, each such caller left an aiohttp traceback
    ("Cannot write to closing transport"; the re-read of this change, in the RPC bench)."""
    caplog.set_level(logging.INFO)
    table, release, _ = _slow_table()

    @table.method("test_sized")
    async def sized(params: Params) -> Any:
        await release.wait()
        return "z" * size

    body = json.dumps({"jsonrpc": "2.0", "id": 8, "method": "test_sized"}).encode()
    async with start_server(methods=table, max_response_size=16 * MIB) as srv:
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        await asyncio.sleep(0.2)  # the call is running
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.1)
        release.set()
        await wait_for(lambda: srv.open_connections == 0)
        await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _running_calls_from(
    srv: RpcServer, host: str, count: int, request: bytes
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections from ``host``, each with ``request`` (a slow call) running."""
    before = srv.open_connections
    opened = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
        writer.write(request)
        await writer.drain()
        opened.append((reader, writer))
    await wait_for(lambda: srv.open_connections == before + count)
    await asyncio.sleep(0.2)  # every call running
    return opened


async def test_one_address_running_calls_on_every_connection_cannot_lock_out_another(start_server, session):
    """When every connection has a call running and one address holds more than a quarter of
    them, a newcomer from another address closes that address's oldest connection instead of
    being closed itself: 256 keep-alive connections from one client, each running a heavy
    batch, reset every new caller (an outside tester's finding, round 7). A newcomer from the
    address that holds them is still the one closed."""
    table, release, slow_request = _slow_table()
    async with start_server(methods=table, max_http_connections=4) as srv:
        hog = await _running_calls_from(srv, "127.0.0.2", 4, slow_request)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.2", 0))
        assert await _closes_soon(reader)  # from the same address: the newcomer goes
        writer.close()
        status, body = await post(session, srv, HEALTH)  # from 127.0.0.1
        assert status == 200 and json.loads(body)["id"] == 1
        assert await _closes_soon(hog[0][0])  # the hog's oldest went
        release.set()
        for reader, writer in hog[1:]:
            assert b'"result":"done"' in await asyncio.wait_for(reader.read(4096), 5)
            writer.close()
        hog[0][1].close()


async def test_an_address_holding_over_a_quarter_of_the_connections_closes_only_its_own_idle_one(start_server, session):
    """The same for HTTP keep-alive connections: a newcomer from an address holding more than
    a quarter closed the connection idle for longest, whoever held it (an outside tester's
    finding, round 9). Now its own, or itself: the other address's idle connection stays."""
    table, release, slow_request = _slow_table()
    async with start_server(methods=table, max_http_connections=4) as srv:
        honest_reader, honest = await asyncio.open_connection("127.0.0.1", srv.port)  # idle: no request yet
        await wait_for(lambda: srv.open_connections == 1)
        hog = await _running_calls_from(srv, "127.0.0.2", 3, slow_request)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.2", 0))
        assert await _closes_soon(reader)  # its own are all busy: the newcomer goes
        writer.close()
        assert not await _closed(honest_reader)
        honest.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(HEALTH), HEALTH.encode()))
        await honest.drain()
        assert b'"id":1' in await asyncio.wait_for(honest_reader.read(4096), 5)
        release.set()
        for reader, writer in hog:
            assert b'"result":"done"' in await asyncio.wait_for(reader.read(4096), 5)
            writer.close()
        honest.close()


async def test_only_an_address_holding_more_than_a_quarter_of_the_connections_gives_way(start_server, session, caplog):
    """The per-address count behind the rule above, counted down as connections close: with
    max_http_connections 4 (a quarter is 1), an address whose connections have all closed is
    no hog, one with 2 of 3 left open is, and the hog is the address holding the most, not
    the one first or last by name or arrival; when every busy connection is from its own
    address, the newcomer is the one closed. An evicted connection's close, forgotten twice,
    raises nothing in aiohttp's connection_lost."""
    table, release, slow_request = _slow_table()
    held: list[asyncio.StreamWriter] = []

    async def connect(srv: RpcServer, host: str, *, busy: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        before = srv.open_connections
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
        held.append(writer)
        if busy:
            writer.write(slow_request)
            await writer.drain()
        await wait_for(lambda: srv.open_connections == before + 1)
        return reader, writer

    async def hang_up(srv: RpcServer, writer: asyncio.StreamWriter) -> None:
        before = srv.open_connections
        writer.close()
        await wait_for(lambda: srv.open_connections == before - 1)

    try:
        async with start_server(methods=table, max_http_connections=4) as srv:
            for _ in range(3):  # an address that came and went: counted out again
                await hang_up(srv, (await connect(srv, "127.0.0.4", busy=False))[1])
            others = [(await connect(srv, "127.0.0.3", busy=True))[0]]
            oldest, _ = await connect(srv, "127.0.0.2", busy=True)
            others.append((await connect(srv, "127.0.0.2", busy=True))[0])
            await hang_up(srv, (await connect(srv, "127.0.0.2", busy=False))[1])  # 2 of 3 left
            others.append((await connect(srv, "127.0.0.5", busy=True))[0])
            await asyncio.sleep(0.2)  # every call running
            status, body = await post(session, srv, HEALTH)  # from 127.0.0.1
            assert status == 200 and json.loads(body)["id"] == 1
            assert await _closes_soon(oldest)  # 127.0.0.2's oldest went
            for reader in others:
                assert not await _closed(reader)
            release.set()
            for reader in others:
                assert b'"result":"done"' in await asyncio.wait_for(reader.read(4096), 5)
        release.clear()
        async with start_server(methods=table, max_http_connections=4) as srv:
            busy = [(await connect(srv, f"127.0.0.{i}", busy=True))[0] for i in range(2, 6)]  # a quarter each
            await asyncio.sleep(0.2)
            newcomer, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            held.append(writer)
            assert await _closes_soon(newcomer)  # no address holds more than a quarter: the newcomer goes
            for reader in busy:
                assert not await _closed(reader)
            release.set()
            for reader in busy:
                assert b'"result":"done"' in await asyncio.wait_for(reader.read(4096), 5)
    finally:
        release.set()
        for writer in held:
            writer.close()
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


async def test_half_open_flood_keeps_room_for_a_new_caller(start_server, session):
    async with start_server(max_http_connections=10) as srv:
        flood = [await rawws.connect(srv.port) for _ in range(40)]
        status, _ = await post(session, srv, HEALTH)
        assert status == 200
        assert srv.open_connections <= 10 + 1
        # The oldest silent sockets were closed to make room: 40 - 10 of them at least.
        closed = 0
        for reader, _writer in flood:
            if await _closed(reader) or reader.at_eof():
                closed += 1
        assert closed >= 30
        for _reader, writer in flood:
            writer.close()


# --- item 10: header and frame errors ------------------------------------------------------


@pytest.mark.parametrize("path", [b"POST", b"GET", b"OPTIONS"])
async def test_non_utf8_origin_is_403(server, path):
    upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n"
    request = (
        path + b" / HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://\xff\xfe:3000\r\n"
        + {b"GET": upgrade, b"POST": b"Content-Length: 2\r\n", b"OPTIONS": b""}[path]
        + b"Connection: close\r\n\r\n"
        + (b"{}" if path == b"POST" else b"")
    )
    status, data = await rawws.http_exchange(server.port, request)
    assert status == 403, data
    assert b"Origin" in data


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:١٢٣٤",  # Arabic-Indic digits
        "http://localhost:３０００",  # fullwidth digits
        "http://localhost:²",
        "http://localhost:99999",
        "http://localhost:",
        "http://127.0.0.1:+80",
    ],
)
async def test_origin_port_must_be_ascii_digits_in_range(server, origin):
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + origin.encode()
        + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    status, data = await rawws.http_exchange(server.port, request)
    assert status == 403, data


async def test_oversize_frame_closes_with_1009_not_a_reset(start_server):
    async with start_server(max_request_size=1000) as srv:
        reader, writer = await rawws.upgrade(srv.port)
        payload = b"x" * (2 * MIB)
        writer.write(rawws.frame(payload))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        code, seen = await rawws.read_close(reader)
        assert code == 1009
        assert seen == []
        writer.close()
        # The server is fine.
        async with aiohttp.ClientSession() as session:
            assert (await post(session, srv, HEALTH))[0] == 200


async def test_unmasked_client_frame_closes_with_1002(server):
    reader, writer = await rawws.upgrade(server.port)
    writer.write(rawws.frame(HEALTH.encode(), mask=False))
    await writer.drain()
    code, seen = await rawws.read_close(reader)
    assert code == 1002
    assert seen == []  # the unmasked request was not answered
    writer.close()


async def test_unmasked_frame_after_masked_ones_and_in_the_upgrade_packet(server):
    reader, writer = await rawws.upgrade(
        server.port, tail=rawws.frame(HEALTH.encode()) + rawws.frame(HEALTH.encode(), mask=False)
    )
    code, seen = await rawws.read_close(reader)
    assert code == 1002
    assert seen == [rawws.OP_TEXT]  # the masked request before it was answered
    writer.close()


async def test_a_ping_flood_closes_with_1008_after_the_burst(server):
    """Pings and pongs past CONTROL_BURST at once are a policy violation (1008), closed at once
    without lingering: aiohttp answered every ping inside receive() and never paused reading
    for empty frames, so 1.1 M pings held the event loop for 26 s (an outside tester's finding,
    round 7). The pings before the violation are answered, and the server is fine after."""
    from rpc.connections import CONTROL_BURST

    burst = int(CONTROL_BURST)
    reader, writer = await rawws.upgrade(server.port)
    writer.write(rawws.frame(b"", rawws.OP_PING) * burst)
    await writer.drain()
    for _ in range(burst):
        opcode, _ = await rawws.read_frame(reader)
        assert opcode == rawws.OP_PONG
    writer.write(rawws.frame(b"", rawws.OP_PING) * 1000)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    opcode, payload = await rawws.read_frame(reader)
    assert opcode == rawws.OP_CLOSE
    assert struct.unpack(">H", payload[:2])[0] == 1008  # (aiohttp sends the code alone)
    writer.close()
    async with aiohttp.ClientSession() as session:
        assert (await post(session, server, HEALTH))[0] == 200


async def test_pings_refill_at_the_rate_and_a_flood_is_closed_without_lingering(server, caplog):
    """After the burst, CONTROL_PER_SECOND pings a second more are answered (pongs count the
    same); past them the connection gets 1008 and its socket is closed at once, though the
    client keeps sending: a flood is not lingered over (its sender would keep the frame scan
    busy for LINGER_MAX), unlike a malformed frame."""
    from rpc.connections import CONTROL_BURST, CONTROL_PER_SECOND, LINGER_MAX

    caplog.set_level(logging.DEBUG, logger="polchain.rpc")
    reader, writer = await rawws.upgrade(server.port)
    writer.write(rawws.frame(b"", rawws.OP_PONG) * int(CONTROL_BURST))  # unasked pongs: the burst
    await writer.drain()
    await asyncio.sleep(1.2)  # 12 more
    refill = int(CONTROL_PER_SECOND)
    writer.write(b"".join(rawws.frame(b"%d" % i, rawws.OP_PING) for i in range(refill)))
    await writer.drain()
    for i in range(refill):
        assert await rawws.read_frame(reader) == (rawws.OP_PONG, b"%d" % i)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        writer.write(rawws.frame(b"", rawws.OP_PING) * 100)
        await writer.drain()
    pongs = 0
    while (frame := await rawws.read_frame(reader))[0] == rawws.OP_PONG:
        pongs += 1
    assert pongs < 100  # (the tokens left of the sleep, and what accrued since)
    opcode, payload = frame
    assert opcode == rawws.OP_CLOSE
    assert struct.unpack(">H", payload[:2])[0] == 1008
    closed_at = loop.time()
    with contextlib.suppress(ConnectionError):  # (a lingering server half-closes and reads on)
        while loop.time() - closed_at < LINGER_MAX:  # keep sending, never quiet for LINGER_QUIET
            writer.write(rawws.frame(b"", rawws.OP_PING))
            await writer.drain()
            await asyncio.sleep(0.02)
    assert loop.time() - closed_at < 1.0  # the socket was closed: a write was refused
    writer.close()
    assert "rpc: websocket error: more than 10 pings and pongs a second" in [r.getMessage() for r in caplog.records]


async def test_an_unmasked_frame_of_odd_length_closes_with_1002_after_lingering(server, caplog):
    """The mask bit alone decides (a frame of odd length has the length's low bit set too),
    the reason reaches the log, and the server lingers over a malformed frame: a client still
    sending when it is refused reads the close frame, not a reset."""
    caplog.set_level(logging.DEBUG, logger="polchain.rpc")
    reader, writer = await rawws.upgrade(server.port)
    payload = (HEALTH + " ").encode()
    assert len(payload) % 2 == 1
    writer.write(rawws.frame(payload, mask=False))
    loop = asyncio.get_running_loop()
    until = loop.time() + 0.3
    with contextlib.suppress(ConnectionError):
        while loop.time() < until:  # still sending after the refusal, nothing read yet
            writer.write(rawws.frame(b"x" * 16384))
            await writer.drain()
            await asyncio.sleep(0.01)
    code, seen = await rawws.read_close(reader)
    assert code == 1002
    assert seen == []
    writer.close()
    reason = "rpc: websocket error: client frames must be masked (RFC 6455 section 5.1)"
    assert reason in [r.getMessage() for r in caplog.records]


async def test_masked_frames_split_at_every_byte_still_work(server):
    reader, writer = await rawws.upgrade(server.port)
    data = rawws.frame(HEALTH.encode()) + rawws.frame(b"", rawws.OP_PING)
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
    opcode, payload = await rawws.read_frame(reader)
    assert opcode == rawws.OP_TEXT and json.loads(payload)["id"] == 1
    opcode, _ = await rawws.read_frame(reader)
    assert opcode == rawws.OP_PONG
    writer.write(rawws.frame(struct.pack(">H", 1000), rawws.OP_CLOSE))
    await writer.drain()
    code, _ = await rawws.read_close(reader)
    assert code == 1000
    writer.close()


def test_size_floor_never_exceeds_the_encoding():
    """The cap refuses a result on its floor alone, so the floor must be a true lower bound."""
    import math
    import random

    import msgspec

    from rpc.server import _size_floor

    rng = random.Random(7)
    scalars = [
        0, -1, 2**64, 1.0, -0.0, 5e-324, 1e300, math.nan, math.inf, 0.1, True, False, None,
        "", "a", '"\\\n\x00', "é中𝄞", b"", b"\x00\xff" * 3, bytearray(b"ab"),
    ]

    def build(depth: int) -> Any:
        roll = rng.random()
        if depth > 4 or roll < 0.5:
            return rng.choice(scalars)
        if roll < 0.7:
            return [build(depth + 1) for _ in range(rng.randrange(4))]
        if roll < 0.8:
            return tuple(build(depth + 1) for _ in range(rng.randrange(3)))
        return {rng.choice(["", "k", "é", '"']) + str(i): build(depth + 1) for i in range(rng.randrange(4))}

    for _ in range(3000):
        value = build(0)
        size = len(msgspec.json.encode(value))
        assert _size_floor(value, 1 << 30) <= size, value
        assert _size_floor(value, 0) > 0  # stops at once, still over the cap


async def test_slow_body_flood_keeps_room_for_a_new_caller(start_server, session):
    async with start_server(max_http_connections=10) as srv:
        flood = []
        for _ in range(20):  # complete heads, then bodies that never come
            reader, writer = await rawws.connect(srv.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            await writer.drain()
            flood.append((reader, writer))
        await asyncio.sleep(0.2)
        status, _ = await post(session, srv, HEALTH)
        assert status == 200
        assert srv.open_connections <= 10 + 1
        for _reader, writer in flood:
            writer.close()


async def test_a_connection_stalled_mid_request_gives_way_before_one_that_has_not_begun(start_server):
    """Full, the server closes a connection whose request body trickles in before one that has
    not sent its request yet, though that one is idle longer: a flood of connections that each
    sent a head and trickled its body, 3,000 a second, had every new connection closed before
    its head was read, and 12% of an honest caller's requests failed (retest45's F1)."""
    async with start_server(max_http_connections=4) as srv:
        early = await asyncio.open_connection("127.0.0.1", srv.port)  # has sent nothing yet
        await wait_for(lambda: srv.open_connections == 1)
        slow = []
        for n in range(2, 5):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            await writer.drain()
            slow.append((reader, writer))
            await wait_for(lambda n=n: srv.open_connections == n)
        await asyncio.sleep(0.1)  # (their heads read: waiting on their bodies)
        comer = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await _closes_soon(slow[0][0])  # the first stalled one, not the early silent one
        assert not await _closed(early[0])
        body = HEALTH.encode()
        early[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await early[1].drain()
        assert (await asyncio.wait_for(early[0].readline(), 2)).startswith(b"HTTP/1.1 200")
        for _reader, writer in (early, *slow, comer):
            writer.close()


def _blob_table(size: int = 8 * MIB) -> tuple[Any, bytes]:
    """A method table whose test_blob answers ``size`` z's, and a raw HTTP request for it."""
    table = make_table()
    blob = "z" * size

    @table.method("test_blob")
    async def blob_method(params: Params) -> Any:
        return blob

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "test_blob"}).encode()
    return table, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body


async def _non_reading_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client socket with a tiny receive buffer, so the server's writes block at once."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


@pytest.mark.parametrize("reads", ["nothing", "too slowly"])
async def test_an_answer_nobody_reads_is_dropped_with_its_connection(start_server, monkeypatch, caplog, reads):
    """A client that reads none of its answer for SEND_STALL seconds, or not all of it within
    the body timeout, is cut off and the buffered answer freed: aiohttp waited for the socket
    to drain with no limit, and 250 such connections kept 3.7 GB of answers in a node (an
    outside tester's finding, round 7). (Both bounds shortened here.)"""
    import rpc.server

    monkeypatch.setattr(rpc.server, "SEND_STALL", 1.0 if reads == "nothing" else 60.0)
    caplog.set_level(logging.INFO, logger="polchain.rpc")
    table, request = _blob_table()
    async with start_server(methods=table, max_response_size=16 * MIB, body_timeout=2 if reads == "too slowly" else 30) as srv:
        reader, writer = await _non_reading_connection(srv.port)
        writer.write(request)
        await writer.drain()
        got = 0
        deadline = asyncio.get_running_loop().time() + 8
        with contextlib.suppress(ConnectionError):
            while asyncio.get_running_loop().time() < deadline:
                if reads == "too slowly":
                    chunk = await asyncio.wait_for(reader.read(1024), 5)
                    await asyncio.sleep(0.05)  # about 20 KiB/s: 8 MiB would take 7 minutes
                else:
                    await asyncio.sleep(0.2)
                    if srv.open_connections == 0:
                        chunk = await asyncio.wait_for(reader.read(), 5)
                    else:
                        continue
                if not chunk:
                    break
                got += len(chunk)
        assert got < 8 * MIB
        await wait_for(lambda: srv.open_connections == 0)
        writer.close()
    size = len(json.dumps({"jsonrpc": "2.0", "id": 1, "result": "z" * (8 * MIB)}, separators=(",", ":")))
    # (A client that read nothing: the kernel took part of the answer before the first look at
    # the write buffer, and none of it since: mutation testing found "none" never logged.)
    # (A client reading 20 KiB/s may not drain the kernel's buffers within 2 s: the server then
    # sees none of the answer go either.)
    said = "none" if reads == "nothing" else "(?:none|too little)"
    logged = re.search(rf"RPC: closed a connection whose client read {said} of a {size}-byte answer in (\d+) s$", caplog.text, re.M)
    assert logged is not None, caplog.text
    # Cut at the first poll (every 0.5 s) past SEND_STALL (1 s after the first poll) or the body timeout (2 s).
    assert 2 <= int(logged[1]) <= 4
    # The write cut off is cancelled and awaited quietly.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_that_keeps_reading_gets_its_whole_answer_past_the_stall_bound(start_server, monkeypatch):
    """SEND_STALL counts from the last time the client read some of its answer, not from the
    start: a client reading 12 MiB at most 64 KiB each 20 ms (several times SEND_STALL, more
    than the kernel's socket buffers hold), within the body timeout, gets all of it."""
    import socket

    import rpc.server

    monkeypatch.setattr(rpc.server, "SEND_STALL", 1.0)
    table, request = _blob_table(12 * MIB)
    async with start_server(methods=table, max_response_size=16 * MIB, body_timeout=30) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", srv.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        writer.write(request)
        await writer.drain()
        start = loop.time()
        got = b""
        while b"\r\n\r\n" not in got:
            got += await asyncio.wait_for(reader.read(4096), 5)
        headers, first = got.split(b"\r\n\r\n", 1)
        length = int(next(line for line in headers.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
        body = bytearray(first)
        while len(body) < length:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, f"cut off after {len(body)} of {length} bytes in {loop.time() - start:.1f} s"
            body += chunk
            await asyncio.sleep(0.02)
        assert loop.time() - start > 3.0  # (12 MiB at 64 KiB / 20 ms at most: SEND_STALL was in play)
        assert json.loads(body)["result"] == "z" * (12 * MIB)
        writer.close()


async def test_callers_that_never_read_big_answers_do_not_lock_out_others(start_server, session, caplog):
    table, request = _blob_table()
    async with start_server(methods=table, max_http_connections=5, max_response_size=16 * MIB, body_timeout=30) as srv:
        stuck = []
        for _ in range(10):
            reader, writer = await _non_reading_connection(srv.port)
            writer.write(request)
            await writer.drain()
            stuck.append((reader, writer))
        await asyncio.sleep(0.3)
        # Their answers are stuck in the server's writes (aiohttp waits for the socket to
        # drain with no time limit), so those connections count as waiting on the network
        # and the budget evicts them: a new caller still gets in.
        status, body = await post(session, srv, HEALTH)
        assert status == 200
        assert json.loads(body)["id"] == 1
        assert srv.open_connections <= 5 + 1
        for _reader, writer in stuck:
            writer.close()
    # An answer cut off by the eviction ends its write with ConnectionResetError, taken quietly.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_connections_count_against_an_ipv4_address_or_an_ipv6_64() -> None:
    """Every per-address rule (the RPC's connection and WebSocket shares, the p2p handshakes in
    progress, inbound slots and answer allowance) counted each IPv6 address apart, so one host
    with a /64 was 2^64 addresses (an outside tester's note, round 9). An IPv6 address now
    counts as its /64, an IPv4-mapped one as its IPv4 address."""
    from rpc.connections import compute_address_group

    assert compute_address_group("2001:db8:1:2::1") == compute_address_group("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert compute_address_group("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert compute_address_group("::ffff:10.0.0.7") == compute_address_group("10.0.0.7") == "10.0.0.7"
    assert compute_address_group("fe80::1%eth0") == "fe80::/64"
    assert compute_address_group("127.0.0.2") != compute_address_group("127.0.0.1")
    assert compute_address_group(None) == "?" and compute_address_group("not an address") == "not an address"


def test_a_newcomer_may_close_an_idle_connection_of_an_address_holding_as_many_as_its_own() -> None:
    """rpc.connections.may_close_idle at its bounds: as many, yes; one more, no; an address not
    in the count holds none. A WebSocket (``session=True``) only of an address holding two
    more than the newcomer's (it is left holding as many as the newcomer then), or of the
    newcomer's own address."""
    from rpc.connections import may_close_idle

    assert may_close_idle({"a": 2, "b": 2}, "a", "b")
    assert not may_close_idle({"a": 3, "b": 2}, "a", "b")
    assert may_close_idle({"b": 1}, "a", "b") and may_close_idle({}, "a", "b") and not may_close_idle({"a": 1}, "a", "b")
    assert may_close_idle({"a": 1, "b": 3}, "a", "b", session=True)
    assert not may_close_idle({"a": 1, "b": 2}, "a", "b", session=True)
    assert not may_close_idle({"b": 1}, "a", "b", session=True) and may_close_idle({"b": 2}, "a", "b", session=True)
    assert not may_close_idle({}, "a", "b", session=True)  # (a Counter's get, without a default, gives None)
    assert may_close_idle({"a": 5}, "a", "a", session=True)


async def test_the_newcomers_address_is_counted_without_it(start_server, session):
    """ConnectionBudget.opened counts the newcomer's address before the newcomer: 127.0.0.1's
    two idle connections, the server full, give way to a newcomer from an address holding two
    busy ones (as many), not to one from an address holding three (then the newcomer goes)."""
    for held, honest_closed in ((2, True), (3, False)):
        table, release, slow_request = _slow_table()
        async with start_server(methods=table, max_http_connections=2 + held) as srv:
            honest = []
            for n in (1, 2):  # idle: no request yet; the first is the one idle longest
                honest.append(await asyncio.open_connection("127.0.0.1", srv.port))
                await wait_for(lambda n=n: srv.open_connections == n)
            running = await _running_calls_from(srv, "127.0.0.2", held, slow_request)
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.2", 0))
            if honest_closed:
                assert await _closes_soon(honest[0][0]), held  # the one idle longest
                assert not await _closed(reader)
            else:
                assert await _closes_soon(reader), held
                assert not await _closed(honest[0][0]) and not await _closed(honest[1][0])
            writer.close()
            for _reader, honest_writer in honest:
                honest_writer.close()
            release.set()
            for _reader, running_writer in running:
                running_writer.close()


async def test_the_request_bytes_held_over_all_connections_are_bounded(start_server, session):
    """HTTP bodies and WebSocket messages count against max_held_request_bytes as their bytes
    arrive, until their answer, each address a quarter of it at most: past it a large request
    is refused (HTTP 503 with Retry-After, a WebSocket closed 1013), a small one is not, and
    all is given back when they end. Each connection's own bound is no bound on the sum: 100
    WebSockets each sending 29.5 MB held 5.4 GB of a node's memory and paused its finality
    (retest45's F6); counted as declared, 27 connections each declaring 9.9 MB and sending a
    byte a second held the whole cap (retest46)."""
    async with start_server(max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:  # a part of 2 MiB an address
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

        async def partial(host: str, sent: int, declared: int = 900 * 1024) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            writer.write(head % declared + b"{" + b" " * (sent - 1))
            await writer.drain()
            return reader, writer

        declared = [await partial("127.0.0.2", 1) for _ in range(27)]  # 27 declared bodies, a byte each: nothing held
        await asyncio.sleep(0.2)
        assert srv._held.held == 0
        hosts = [f"127.0.0.{n}" for n in (3, 3, 4, 4, 5, 5, 6, 6)]
        stalled = [await partial(host, 900 * 1024 - 1) for host in hosts]  # 8 bodies of 900 KiB, but a byte of each
        await wait_for(lambda: srv._held.held == 8 * (900 * 1024 - 1))
        more = await partial("127.0.0.3", 300 * 1024)  # within the cap, past 127.0.0.3's part (2 MiB): refused
        assert (await rawws.read_head(more[0])).startswith(b"HTTP/1.1 503")
        stalled.append(await partial("127.0.0.7", 900 * 1024 - 1))
        await wait_for(lambda: srv._held.held == 9 * (900 * 1024 - 1))
        # Past the cap (8 MiB): the body begun longest ago, still being read, is cut off for it
        # (twenty stalled bodies of five addresses had kept every large request out: retest47).
        other = await partial("127.0.0.12", 300 * 1024)
        assert await _closes_soon(stalled[0][0])
        await wait_for(lambda: srv._held.held == 8 * (900 * 1024 - 1) + 300 * 1024)
        assert not await _closed(other[0]) and not await _closed(stalled[1][0])
        status, _ = await post(session, srv, HEALTH)  # small: never refused for it
        assert status == 200
        reader, writer = await rawws.upgrade(srv.port)
        part = b"x" * (800 * 1024)  # (past the cap: a WebSocket message cuts off a body as a body does)
        ws_head = bytes([0x01, 0x80 | 127]) + struct.pack(">Q", len(part))  # a text frame, more to come
        key = bytes(4)  # (a zero mask: the payload as it is)
        writer.write(ws_head + key + part)
        await writer.drain()
        assert await _closes_soon(stalled[2][0])  # the first body of 127.0.0.4, among those holding the most
        assert not await _closed(reader) and not await _closed(stalled[1][0])
        writer.close()
        small_ws = await session.ws_connect(ws_url(srv))
        await small_ws.send_str(HEALTH)
        assert (await small_ws.receive_json(timeout=5))["id"] == 1
        await small_ws.close()
        for _reader, stalled_writer in (*declared, *stalled, more, other):
            stalled_writer.close()
        await wait_for(lambda: srv._held.held == 0)
        big = b'{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}'.ljust(900 * 1024, b" ")
        status, answer = await rawws.http_exchange(srv.port, head.replace(b"Host: x", b"Host: x\r\nConnection: close") % len(big) + big)
        assert status == 200, answer[:300]
        assert srv._held.held == 0
        # A WebSocket's message is held until answered, and a part of one until it closes.
        reader, writer = await rawws.upgrade(srv.port)
        message = b'{"jsonrpc":"2.0","id":7,"method":"system_health","params":[]}'.ljust(300 * 1024, b" ")
        writer.write(rawws.frame(message))
        await writer.drain()
        opcode, payload = await rawws.read_frame(reader)
        assert opcode == rawws.OP_TEXT and json.loads(payload)["id"] == 7
        await wait_for(lambda: srv._held.held == 0)
        writer.write(ws_head + key + part + rawws.frame(b"", opcode=0))  # ended by an empty last frame
        await writer.drain()
        opcode, payload = await rawws.read_frame(reader)
        assert json.loads(payload)["error"]["code"] == -32700  # (not JSON: answered all the same)
        await wait_for(lambda: srv._held.held == 0)
        writer.write(ws_head + key + part)
        await writer.drain()
        await wait_for(lambda: srv._held.held == len(part))
        writer.close()
        await wait_for(lambda: srv._held.held == 0)
        # A WebSocket closed for passing its address's part goes on sending while the server
        # lingers: none of that is counted (it was, after the connection's bytes were given
        # back, and never given back again: retest47).
        first = await rawws.upgrade(srv.port)
        big = b"x" * (1536 * 1024)
        first[1].write(bytes([0x01, 0x80 | 127]) + struct.pack(">Q", len(big) + 1) + key + big)  # 1.5 MiB of 1.5 MiB + 1
        await first[1].drain()
        await wait_for(lambda: srv._held.held == len(big))
        second = await rawws.upgrade(srv.port)
        second[1].write(bytes([0x01, 0x80 | 127]) + struct.pack(">Q", 4 * len(big)) + key + big)  # past 127.0.0.1's part
        await second[1].drain()
        for _ in range(3):
            with contextlib.suppress(ConnectionError):
                second[1].write(big)
                await second[1].drain()
        await asyncio.sleep(0.3)
        for _reader, ws_writer in (first, second):
            ws_writer.close()
        await wait_for(lambda: srv._held.held == 0)


async def test_a_body_read_whole_is_not_cut_off_for_room_while_its_call_runs(start_server):
    """Past the held-bytes cap, only bodies still being read are cut off for a newcomer: one
    read whole, whose call is running, is older than every stalled body but stays, and is
    answered (the re-read of this change: no test missed the line that says so)."""
    table, release, _ = _slow_table()
    async with start_server(methods=table, max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "test_slow"}).encode().ljust(900 * 1024, b" ")
        running = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.2", 0))
        running[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await running[1].drain()
        await wait_for(lambda: srv._held.held == len(body) and not srv._held._arriving)
        stalled = []
        for host in ("127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.5", "127.0.0.6", "127.0.0.6"):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (900 * 1024 - 2))
            await writer.drain()
            stalled.append((reader, writer))
        await wait_for(lambda: srv._held.held == len(body) + 8 * (900 * 1024 - 1))
        comer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.7", 0))
        comer[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (300 * 1024))
        await comer[1].drain()
        assert await _closes_soon(stalled[0][0])  # the oldest body still being read, not the running call's
        assert not await _closed(running[0])
        release.set()
        head = await rawws.read_head(running[0])
        assert head.startswith(b"HTTP/1.1 200")
        for _reader, writer in (running, *stalled, comer):
            writer.close()
        await wait_for(lambda: srv._held.held == 0)


async def test_a_slow_honest_body_is_not_cut_off_for_addresses_holding_more(start_server):
    """Past the held-bytes cap, the body cut off for a newcomer is one of the address whose
    bodies still being read hold the most, and only if it holds more than the newcomer's
    would: an honest upload that arrives slowly, begun before the stalled bodies that filled
    the cap, goes on and is answered. Cutting the body begun longest ago cut it off, every one
    of 11 such uploads of 0.2-10 MB, while five addresses kept the cap full and sent again
    at once when cut off (retest48). A newcomer from an address already holding as much as
    any other is refused (503), not given another's room."""
    async with start_server(max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:  # a part of 2 MiB an address
        body = b'{"jsonrpc":"2.0","id":5,"method":"system_health","params":[]}'.ljust(900 * 1024, b" ")
        honest = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.9", 0))
        honest[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[: 100 * 1024])
        await honest[1].drain()
        await wait_for(lambda: srv._held.held == 100 * 1024)
        stalled = []
        hosts = ("127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.5", "127.0.0.6", "127.0.0.6")
        for host in hosts:  # 8 x (900 KiB - 1): 7.03 MiB, each address 1.76 MiB
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (900 * 1024 - 2))
            await writer.drain()
            stalled.append((reader, writer))
        await wait_for(lambda: srv._held.held == 100 * 1024 + 8 * (900 * 1024 - 1))
        # A fresh address sends 900 KiB: past the cap, so the first body of an address holding
        # the most (127.0.0.3) is cut off, not the honest one begun before them all.
        comer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.7", 0))
        comer[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (900 * 1024 - 2))
        await comer[1].drain()
        assert await _closes_soon(stalled[0][0])
        assert not await _closed(honest[0]) and not await _closed(stalled[1][0])
        # 127.0.0.3, cut off, sends again at once: its address would hold 1.76 MiB, no less
        # than any other's: refused, no body cut off for it.
        again = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.3", 0))
        again[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (900 * 1024 - 2))
        await again[1].drain()
        assert (await rawws.read_head(again[0])).startswith(b"HTTP/1.1 503")
        assert not await _closed(honest[0]) and not any([await _closed(reader) for reader, _ in stalled[1:]])
        # The honest body's rest arrives, slowly: each part cuts off a body of an address
        # holding more, and the call is answered.
        for at in range(100 * 1024, len(body), 200 * 1024):
            honest[1].write(body[at : at + 200 * 1024])
            await honest[1].drain()
            await asyncio.sleep(0.05)
        assert (await rawws.read_head(honest[0])).startswith(b"HTTP/1.1 200")
        for _reader, writer in (honest, *stalled, comer, again):
            writer.close()
        await wait_for(lambda: srv._held.held == 0)


async def test_new_connections_from_one_address_are_rate_limited(start_server, session):
    """An address opens at most ``max_connections_per_second`` connections a second, a burst
    of four seconds' worth banked: past it a connection gets HTTP 429 with Retry-After at
    once and is closed, before a request handler is made for it or a byte of it read. Others'
    connections, and the address's open ones, go on. Without it one address's churn of new
    connections, 3,000-4,600 a second, each sending a head and a byte of body, took a core
    (retest45's F1, and retest46-47)."""
    async with start_server(max_connections_per_second=4) as srv:  # a burst of 16
        kept = await session.ws_connect(ws_url(srv))  # opened before the churn: goes on
        request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(HEALTH.encode()) + HEALTH.encode())

        async def exchange(host: str) -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            writer.write(request)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(), 5)
            except ConnectionError:
                data = b""
            writer.close()
            return (int(data.split(b" ", 2)[1]) if data else 0), data

        statuses = [(await exchange("127.0.0.2"))[0] for _ in range(16)]  # the burst
        assert statuses == [200] * 16
        start = asyncio.get_running_loop().time()
        status, refused = await exchange("127.0.0.2")
        assert status == 429 and b"Retry-After: 1\r\n" in refused, refused
        head, _, text = refused.partition(b"\r\n\r\n")  # a well-formed answer: its length is its body's
        assert b"Content-Length: %d\r\n" % len(text) in head + b"\r\n" and text.endswith(b"\n"), refused
        assert asyncio.get_running_loop().time() - start < 0.5  # closed once the request was read, not left to expire
        assert srv.refused_connections == 1
        assert (await exchange("127.0.0.3"))[0] == 200  # another address's allowance is its own
        assert (await rpc(kept, {"jsonrpc": "2.0", "id": 3, "method": "system_health"}))["id"] == 3
        await asyncio.sleep(0.3)  # a token and more banked again
        assert (await exchange("127.0.0.2"))[0] == 200
        await kept.close()


async def test_refused_connections_waiting_for_their_first_bytes_are_bounded(start_server):
    """A connection refused for its address's rate is answered 429 at once, and closed once
    its client's first bytes are read, or reset after REFUSAL_LINGER seconds if none come; at
    most MAX_REFUSING wait so at once (each holds a socket), those past them are reset at
    once: a flood of silent connections past the rate holds no more sockets than that."""
    from rpc.connections import MAX_REFUSING, REFUSAL_LINGER

    async with start_server(max_connections_per_second=1) as srv:  # a burst of 4
        for _ in range(4):
            _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.4", 0))
            writer.close()
        silent = [await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.4", 0))
                  for _ in range(MAX_REFUSING + 6)]
        heads = []
        for reader, _writer in silent:
            try:
                heads.append(await asyncio.wait_for(reader.read(1000), 2))
            except ConnectionError:
                heads.append(b"reset")
        assert all(head.startswith(b"HTTP/1.1 429") for head in heads[:MAX_REFUSING]), heads[:MAX_REFUSING]
        assert all(head in (b"reset", b"") for head in heads[MAX_REFUSING:]), heads[MAX_REFUSING:]
        start = asyncio.get_running_loop().time()
        for reader, _writer in silent[:MAX_REFUSING]:  # none sent a byte: each reset when its wait ends
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), REFUSAL_LINGER + 2) == b""
        assert asyncio.get_running_loop().time() - start < REFUSAL_LINGER + 1
        for _reader, writer in silent:
            writer.close()
        for _ in range(4):  # another address's burst, then a refusal: answered, the room of those reset free again
            _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.5", 0))
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.0.5", 0))
        assert (await asyncio.wait_for(reader.read(1000), 2)).startswith(b"HTTP/1.1 429")
        writer.close()


@pytest.mark.parametrize(
    ("flood_hosts", "honest_host"),
    [(["127.0.0.2"] * 8, "127.0.0.3"), ([f"127.0.0.{n}" for n in range(10, 18)], "127.0.1.3")],
    ids=["one address", "eight addresses of a subnet"],
)
async def test_heavy_reads_take_turns_by_address(start_server, flood_hosts, honest_host):
    """The RPC read threads (rpc.reads.run_read: blocks, key pages, proofs, predictions) serve
    the subnets waiting for them in turn, and within a subnet its addresses, each address's
    calls in order: a caller's read waits for the reads running and at most one of each other
    subnet (or address of its own subnet) waiting, not for a flood's whole queue. FIFO, callers
    of allowed heavy calls from one address multiplied an honest caller's latency 30-100x
    (retest45's F2); by address alone, a flood spread over 64 addresses of one /24 did 200x
    (retest50's N2). A call whose caller left while it waited takes no turn."""
    import time

    from rpc import reads
    from rpc.reads import run_read

    table = make_table()
    done: list[str] = []
    ran: list[str] = []  # (on the read threads)

    def work(who: str) -> None:
        ran.append(who)
        time.sleep(0.1)

    @table.method("test_read")
    async def read(params: Params) -> Any:
        who = params[0]
        await run_read(work, who)
        done.append(who)
        return who

    async with start_server(methods=table) as srv:
        async def call(host: str, who: str) -> Any:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "test_read", "params": [who]}).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            try:
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                data = await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
            return json.loads(data.split(b"\r\n\r\n", 1)[1])["result"]

        flood = [asyncio.ensure_future(call(host, f"a{n}")) for n, host in enumerate(flood_hosts)]
        await wait_for(lambda: srv._http_in_flight == 8)
        gone = asyncio.ensure_future(call("127.0.2.4", "gone"))  # waits, then leaves
        await asyncio.sleep(0.02)
        honest = asyncio.ensure_future(call(honest_host, "b"))
        await asyncio.sleep(0.02)
        gone.cancel()
        assert await honest == "b"
        assert await asyncio.gather(*flood) == [f"a{n}" for n in range(8)]
        assert done.index("b") <= 3, done  # after the two running and at most one more of the flood's
        assert sorted(who for who in done if who != "b") == [f"a{n}" for n in range(8)]
        assert sorted(ran) == sorted(done) and "gone" not in ran  # (it left while it waited: never run)
        turns = reads._turns[asyncio.get_running_loop()]
        await wait_for(lambda: turns._free == 2 and not turns._waiting)  # every slot given back


async def test_websocket_messages_still_arriving_are_cut_off_for_room_too(start_server):
    """Past the held-bytes cap, a WebSocket message still arriving is cut off like an HTTP
    body (its connection closed with 1013), by the same rule: the first begun of the address
    holding the most in requests still arriving. Only HTTP bodies were, so four addresses'
    WebSockets, each sending most of a large message and stalling, kept every request over
    64 KiB refused. A message received whole, being answered, is not cut off."""
    async with start_server(max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:  # a part of 2 MiB an address
        key = bytes(4)  # (a zero mask: the payload as it is)
        whole = await rawws.upgrade(srv.port, local="127.0.0.8")  # a message received whole and answered
        whole[1].write(rawws.frame(b'{"jsonrpc":"2.0","id":7,"method":"system_health","params":[]}'.ljust(500 * 1024, b" ")))
        await whole[1].drain()
        opcode, payload = await rawws.read_frame(whole[0])
        assert opcode == rawws.OP_TEXT and json.loads(payload)["id"] == 7
        assert not srv._held._arriving  # (received whole: never to be cut off, its connection open)
        part = b"x" * (1800 * 1024)
        sockets = []
        for host in ("127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):  # 4 x 1.76 MiB of messages, stalled
            reader, writer = await rawws.upgrade(srv.port, local=host)
            writer.write(bytes([0x01, 0x80 | 127]) + struct.pack(">Q", 2 * MIB - 1) + key + part)
            await writer.drain()
            sockets.append((reader, writer))
        await wait_for(lambda: srv._held.held == 4 * len(part))
        body = b'{"jsonrpc":"2.0","id":5,"method":"system_health","params":[]}'.ljust(1000 * 1024, b" ")
        status, answer = await rawws.http_exchange(
            srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        )
        assert status == 200, answer[:300]  # 7.03 + 0.98 MiB > 8 MiB: 127.0.0.3's message was cut off
        code, _ = await rawws.read_close(sockets[0][0])
        assert code == 1013
        assert not await _closed(sockets[1][0])
        # A message that does not fit, and cuts nothing off (its address holds as much as any), closes 1013.
        more = await rawws.upgrade(srv.port, local="127.0.0.4")
        more[1].write(bytes([0x01, 0x80 | 127]) + struct.pack(">Q", MIB) + key + b"x" * (300 * 1024))
        await more[1].drain()
        code, _ = await rawws.read_close(more[0])
        assert code == 1013
        assert not await _closed(sockets[1][0]) and not await _closed(sockets[2][0])
        more[1].close()
        for _reader, writer in (*sockets, whole):
            writer.close()
        await wait_for(lambda: srv._held.held == 0 and not srv._held._arriving)  # nothing left to cut off


async def test_a_websocket_message_is_let_go_once_answered(start_server):
    """A WebSocket's message is freed once it is answered, not kept while the connection
    waits for its next one: held bytes are given back at the answer, so a message kept
    after it was memory the bound did not count. 100 WebSockets opened one every 0.1 s, each
    sending one 29.5 MB message and staying, took a node to 2.0-3.3 GB (retest49's H1)."""
    import tracemalloc

    async with start_server(max_request_size=16 * MIB) as srv:
        reader, writer = await rawws.upgrade(srv.port)
        message = b'{"jsonrpc":"2.0","id":7,"method":"system_health","params":[]}'.ljust(3 * MIB, b" ")
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            writer.write(rawws.frame(message))
            await writer.drain()
            opcode, payload = await rawws.read_frame(reader)
            assert opcode == rawws.OP_TEXT and json.loads(payload)["id"] == 7
            await wait_for(lambda: srv._held.held == 0)
            await asyncio.sleep(0.1)
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak - before > 3 * MIB  # (it was received)
        assert after - before < MIB, (after - before) >> 10  # and is gone while the connection stays
        assert not await _closed(reader)
        writer.close()


async def test_the_kernel_queues_a_thousand_connections_while_asyncio_accepts_few_at_a_time(start_server):
    """The listening socket's queue is LISTEN_BACKLOG (1,024) deep while asyncio accepts
    ACCEPT_BATCH at a time: with the event loop busy, 500 connections complete their
    handshakes at once (a queue of 64 would leave 436 waiting for SYN retransmissions), and
    then are all served. The same 1,024 as asyncio's batch made loop turns of hundreds of ms
    under a churn of connections (retest49's M3)."""
    import socket
    import threading
    import time

    from rpc.server import ACCEPT_BATCH, LISTEN_BACKLOG

    assert ACCEPT_BATCH < 500 <= LISTEN_BACKLOG
    with open("/proc/sys/net/core/somaxconn") as limit:  # (the kernel's cap on any queue)
        assert int(limit.read()) >= 500, "net.core.somaxconn is below 500 on this host"
    async with start_server() as srv:
        connected: list[socket.socket] = []

        def dial() -> None:
            for _ in range(500):
                try:
                    connected.append(socket.create_connection(("127.0.0.1", srv.port), timeout=0.5))
                except OSError:
                    return

        dialer = threading.Thread(target=dial)
        dialer.start()
        time.sleep(1.0)  # the loop does nothing meanwhile: no accept
        dialer.join()
        try:
            assert len(connected) == 500
            await wait_for(lambda: srv.open_connections == 256)  # accepted now (256: the HTTP budget)
        finally:
            for sock in connected:
                sock.close()


async def test_new_connections_from_one_subnet_are_rate_limited_too(start_server):
    """A subnet (an IPv4 /24, an IPv6 /48) opens at most four times an address's new
    connections: fifty addresses of one /24 each within its own allowance had taken the
    churn past the per-address gate (retest49's M3: 62% of a core, 17% of honest calls
    failed). Another subnet's allowance is its own."""
    from rpc.connections import compute_subnet

    assert compute_subnet("10.1.2.3") == "10.1.2.0/24"
    assert compute_subnet("2001:db8:1:2::/64") == "2001:db8:1::/48"
    assert compute_subnet("?") == "?"
    async with start_server(max_connections_per_second=2) as srv:  # an address 8 at once, a subnet 32

        async def opens(host: str) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(host, 0))
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            try:
                return (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
            except ConnectionError:
                return False
            finally:
                writer.close()

        for n in range(1, 9):  # 8 addresses of 127.0.5.0/24, 4 connections each: within both allowances
            assert all([await opens(f"127.0.5.{n}") for _ in range(4)])
        assert not await opens("127.0.5.9")  # a fresh address, but its subnet's 32 are used
        assert srv.refused_connections == 1
        assert await opens("127.0.6.1")


async def test_a_websocket_closed_mid_message_is_freed(start_server):
    """WebSockets cut off for room mid-message (1013), their clients sending on while the
    server closes and lingers, leave nothing alive once over: aiohttp re-armed its ping timer
    on every chunk that came after close() had cancelled it, and the timer kept the
    connection, its reader and the message's bytes received so far alive for a minute or more:
    staggered 25 MB partial messages kept 2 GB, and reconnecting after each 1013 grew a node to
    4-7 GB (retest50's N1)."""
    import gc

    from rpc.connections import GuardedWebSocket

    async with start_server(max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:  # a part of 2 MiB
        chunk = b"x" * (128 * 1024)

        async def send_on(host: str) -> None:  # one message of 2 MiB - 1, sent on until the server closes
            reader, writer = await rawws.upgrade(srv.port, local=host)
            writer.write(bytes([0x01, 0x80 | 127]) + struct.pack(">Q", 2 * MIB - 1) + bytes(4))
            try:
                for _ in range(15):
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.03)
                await asyncio.wait_for(reader.read(), 5)
            except (ConnectionError, TimeoutError):
                pass
            finally:
                writer.close()

        # 6 x 1.875 MiB of messages never complete, past the 8 MiB cap: some are cut off (1013).
        await asyncio.gather(*(send_on(f"127.0.0.{n}") for n in range(2, 8)))
        await wait_for(lambda: srv.websocket_connections == 0 and srv._held.held == 0)

        def alive() -> int:
            gc.collect()
            return sum(1 for thing in gc.get_objects() if isinstance(thing, GuardedWebSocket))

        await wait_for(lambda: alive() == 0, timeout=3.0)


async def test_room_is_taken_from_the_subnet_holding_the_most_first(start_server):
    """Past the held-bytes cap, the subnet whose requests still arriving hold the most gives
    way first (then, within it, its address holding the most), while it holds more than the
    newcomer's subnet would; the address rule applies within the newcomer's own subnet. By
    address alone, attackers spread over N addresses each holding cap/N had every honest upload
    larger than that cut off or refused (retest49's M1: 60 addresses, every upload over 4.5 MB)."""
    async with start_server(max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:
        stalled = []
        for n in range(10, 26):  # 16 addresses of 127.0.0.0/24, a stalled body of 470 KiB each: 7.3 MiB
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(f"127.0.0.{n}", 0))
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (900 * 1024) + b" " * (470 * 1024 - 1))
            await writer.drain()
            stalled.append((reader, writer))
        await wait_for(lambda: srv._held.held == 16 * 470 * 1024)
        body = b'{"jsonrpc":"2.0","id":5,"method":"system_health","params":[]}'.ljust(1000 * 1024, b" ")
        honest = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.1.9", 0))
        honest[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for at in range(0, len(body), 100 * 1024):  # past 470 KiB it holds more than any one attacker
            honest[1].write(body[at : at + 100 * 1024])
            await honest[1].drain()
            await asyncio.sleep(0.02)
        assert (await rawws.read_head(honest[0])).startswith(b"HTTP/1.1 200")
        assert srv._held.held < 16 * 470 * 1024  # room was taken from 127.0.0.0/24's bodies
        for _reader, writer in (honest, *stalled):
            writer.close()
        await wait_for(lambda: srv._held.held == 0)


async def test_a_subnet_holding_less_than_the_newcomers_gives_no_room(start_server):
    """The subnet rule counts all the newcomer's subnet holds, calls running included: a
    subnet whose requests arriving hold less than that is not cut off for it, and the newcomer
    gets 503 (never room from one holding less). (The re-read: no test missed the count.)"""
    table, release, _ = _slow_table()
    async with start_server(methods=table, max_request_size=MIB, max_held_request_bytes=8 * MIB) as srv:
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "test_slow"}).encode().ljust(900 * 1024, b" ")
        running = []
        for n in range(2, 6):  # 127.0.1.0/24: four calls of 900 KiB running, 3.5 MiB held
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(f"127.0.1.{n}", 0))
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            running.append((reader, writer))
        await wait_for(lambda: srv._held.held == 4 * len(body) and not srv._held._arriving)
        stalled = []
        for n in range(2, 6):  # 127.0.0.0/24: four stalled bodies, 3.5 MiB arriving
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(f"127.0.0.{n}", 0))
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (1000 * 1024) + b" " * (900 * 1024 - 1))
            await writer.drain()
            stalled.append((reader, writer))
        await wait_for(lambda: srv._held.held == 8 * 900 * 1024)
        comer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=("127.0.1.9", 0))
        comer[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{" % (1000 * 1024) + b" " * (1000 * 1024 - 2))
        await comer[1].drain()
        # Past the cap: 127.0.0.0/24 has 3.5 MiB arriving, 127.0.1.0/24 would hold 3.5 + 0.98 MiB.
        assert (await rawws.read_head(comer[0])).startswith(b"HTTP/1.1 503")
        assert not any([await _closed(reader) for reader, _ in stalled])
        release.set()
        for reader, _writer in running:
            assert (await rawws.read_head(reader)).startswith(b"HTTP/1.1 200")
        for _reader, writer in (*running, *stalled, comer):
            writer.close()
        await wait_for(lambda: srv._held.held == 0)
