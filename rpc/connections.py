"""What the RPC server does per TCP connection: a budget with eviction, and RFC 6455 checks.

aiohttp (checked against 3.14) gives the server one protocol object, a `RequestHandler`, per
TCP connection, and leaves out three things a public node needs:

* **A bound on open connections.** aiohttp accepts every connection the kernel hands it, so
  a client that opens sockets and sends nothing exhausts the process's file descriptors
  (issue 7: about 1,010 half-open connections stopped all accepts at the usual 1,024
  limit). `ConnectionBudget` bounds the connections that are not WebSockets and, when full,
  closes the one that has waited longest without a request in progress.
* **Masked client frames.** RFC 6455 §5.1: "The server MUST close the connection upon
  receiving a frame that is not masked", with status 1002 (protocol error, §7.4.1).
  aiohttp's reader unmasks when the bit is set and passes unmasked frames through.
* **An orderly close after a protocol error.** On an oversize frame aiohttp sends its close
  frame (1009) and closes the socket at once, with the rest of the peer's frame still
  unread; the kernel then answers with a TCP reset (RFC 1122 §4.2.2.13), which makes the
  peer's kernel drop the close frame it had not yet read. `FrameGuard.linger` does what
  RFC 6455 §7.1.1 asks instead: after the close frame, half-close and keep reading (and
  discarding) until the peer closes too, goes quiet, or a time limit passes; nginx calls
  the same thing a lingering close.

`FrameGuard` reads only frame heads (2 to 14 bytes each) and skips payloads by count, so it
costs one small loop per received chunk; aiohttp's own reader still parses and unmasks.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, TypeVar, cast

from aiohttp import web
from aiohttp.http_websocket import WebSocketError
from aiohttp.web_protocol import RequestHandler

__all__ = ["CALLER", "ConnectionBudget", "FrameGuard", "GuardedWebSocket", "HeldBytes", "Listener", "RateLimiter", "compute_subnet", "find_hog", "take_allowance"]

K = TypeVar("K")

# RFC 6455 §7.4.1 status codes.
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_TRY_AGAIN_LATER: Final = 1013  # IANA WebSocket Close Code registry

# Lingering close after a protocol error: stop once the peer has been silent this long, and
# in any case after LINGER_MAX (a peer that keeps sending gets a plain close then).
LINGER_QUIET: Final = 0.5
LINGER_MAX: Final = 5.0
_LINGER_POLL: Final = 0.05

_OP_CLOSE: Final = 0x8
_OP_PING: Final = 0x9
_OP_PONG: Final = 0xA
# Control frames (pings and pongs) a client may send: CONTROL_BURST at once, refilled at
# CONTROL_PER_SECOND. aiohttp answers pings inside receive() and counts a frame's payload,
# not the frame, for its flow control, so 6-byte empty pings were never paused nor limited:
# one WebSocket sending 1.1 M of them in 4.8 s (6.7 MB) held the event loop for 26 s, and the
# node missed 9 of 13 slots (an outside tester's finding, round 7). A client's keep-alive
# pings come every few seconds (aiohttp's heartbeat, browsers').
CONTROL_PER_SECOND: Final = 10.0
CONTROL_BURST: Final = 100.0


#: The address group (:func:`compute_address_group`) of the call being served: the server sets
#: it for each HTTP request and each WebSocket, and rpc.reads.run_read takes turns by it.
CALLER: ContextVar[str] = ContextVar("rpc_caller", default="?")


@functools.lru_cache(maxsize=4096)
def compute_address_group(remote: str | None) -> str:
    """The address a connection is counted against by every per-address rule (:func:`find_hog`,
    :func:`may_close_idle`, the p2p handshakes in progress and answer allowance of one
    address): an IPv4 address itself, an IPv4-mapped IPv6 one as that IPv4 address, any other
    IPv6 address as its /64, the block one host or subscriber is given (RFC 6177), so that one
    machine does not count as 2^64 addresses; "?" if unknown. Memoized (a pure function of
    its string): parsing the address was a tenth of what a refused connection cost."""
    if remote is None:
        return "?"
    try:
        ip = ipaddress.ip_address(remote.partition("%")[0])  # (a scope id: fe80::1%eth0)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RateLimiter:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` banked."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are banked (0: now; inf: more than the burst)."""
        if amount > self.burst:
            return float("inf")
        tokens = min(self.burst, self._tokens + (time.monotonic() - self._at) * self.rate)
        return 0.0 if tokens >= amount else (amount - tokens) / self.rate

    def take(self, amount: float = 1.0) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def settle(self, delta: float) -> None:
        """Give back ``delta`` tokens of an amount taken ahead (at most up to the burst), or,
        if negative, take more than was banked: later takes wait for the debt too."""
        self.take(0.0)  # (banks what accrued since the last take)
        self._tokens = min(self.burst, self._tokens + delta)


A = TypeVar("A")  # an allowance: a RateLimiter, or a peer.HostShare of them


def take_allowance(table: OrderedDict[Any, A], key: object, make: Callable[[], A], most: int) -> A:
    """``key``'s allowance in ``table``, ``make()`` (full) on its first use; the table keeps the
    ``most`` keys used last (a key used again moves to the back), so peers from ever new
    addresses or with ever new identities cannot grow it without bound: a newcomer past them
    gets a new one."""
    allowance = table.pop(key, None)
    if allowance is None:
        allowance = make()
    table[key] = allowance  # (the most recent last)
    while len(table) > most:
        table.popitem(last=False)
    return allowance


@functools.lru_cache(maxsize=4096)
def compute_subnet(group: str) -> str:
    """The subnet of an address group (:func:`compute_address_group`): an IPv4 address's /24,
    an IPv6 /64's /48 (a site's allocation, RFC 6177); the group itself if it is neither. One
    host's neighbours in a provider's range are counted together by the rules that go by
    subnet as well as by address (rpc.server's new connections)."""
    try:
        network = ipaddress.ip_network(group, strict=False)
    except ValueError:
        return group
    return str(network.supernet(new_prefix=24 if network.version == 4 else 48))


def find_hog(held: Mapping[K, int], newcomer: K, capacity: int) -> K | None:
    """The address that gives way to a newcomer when every slot is taken: the one holding the
    most of the ``capacity`` slots (``held``: slots per address), if it holds more than a
    quarter of them and is not the newcomer's own; None if no address qualifies. One rule for
    the RPC connections (ConnectionBudget), the RPC WebSockets (rpc.server) and the inbound
    p2p peers (node.network.service): without it one address filled each and kept everyone
    else out (outside testers' findings, round 7). Several addresses can still fill them."""
    hog, count = max(held.items(), key=lambda item: item[1], default=(newcomer, 0))
    return hog if hog != newcomer and count > capacity // 4 else None


def may_close_idle(held: Mapping[K, int], newcomer: K, holder: K, *, session: bool = False) -> bool:
    """Whether a newcomer from ``newcomer`` may close an idle connection of ``holder`` to make
    room: only one of an address that holds at least as many as the newcomer's already, so an
    address never makes room at the expense of a smaller one. Without this, one address
    holding every RPC WebSocket (or four holding a quarter each) had each of its newcomers
    close whichever other client's WebSocket was idle between calls, every second (an outside
    tester's finding, round 9, and its retest).

    A WebSocket (``session``) is a client's session, which it must open again: one is closed
    only if its address holds two more than the newcomer's (and so is left holding at least
    as many as the newcomer's then), or is the newcomer's own. Equal counts were not enough:
    newcomers from fresh addresses, holding none, each closed a client's only WebSocket (the
    retest of round 9, A-N4: 2 calls answered in 20 s). An idle keep-alive connection holds
    nothing: its client sends its next request on a new one (RFC 9112, 9.3.1), so a newcomer
    is not refused for it."""
    if session and holder != newcomer:
        return held.get(holder, 0) >= held.get(newcomer, 0) + 2
    return held.get(holder, 0) >= held.get(newcomer, 0)


class ConnectionBudget:
    """The server's TCP connections that are not WebSockets, at most ``limit`` of them.

    Policy, so that a flood cannot lock new callers out: a connection is *idle* while it
    waits on the network (silent since it opened, between keep-alive requests, or while its
    request body trickles in) and busy while the server works on its call. When a new
    connection takes the count over ``limit``, the connection idle for longest is closed
    to make room (of an address holding at least as many as the newcomer's: :func:`may_close_idle`);
    when none is idle (every one has a call running), the new one is closed
    instead, unless one address holds more than ``limit // 4`` of them and the newcomer is
    from another: then that address's oldest connection is closed, busy or not (256
    keep-alive connections from one client, each running a heavy batch, reset every new
    caller's connection for as long as it kept them running: an outside tester's finding,
    round 7). A connection stalled in the middle of a request (:meth:`stalled`: its body
    still arriving, or its answer not read) gives way before one that has not begun one: a
    flood of connections that each sent a head and trickled its body, 3,000 a second, had
    every connection whose head the loop had not read yet closed within 0.1 s, and 12% of an
    honest caller's requests, sent as soon as it connected, failed so (retest45's F1). A
    caller that sends its request as soon as it connects is evicted only if ``limit`` newer
    connections arrive, and none stalled is left, before its request head is read. Idle
    connections also expire on their own after the server's header timeout. WebSockets
    leave this budget when they upgrade: the server gives them their own (``max_connections``).
    """

    __slots__ = ("_hosts", "_idle", "_open", "_stalled", "evicted", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the connection limit must be at least 1, got {limit}")
        self.limit = limit
        self._open: dict[RequestHandler, str] = {}  # -> the remote address; insertion order: oldest first
        self._idle: dict[RequestHandler, None] = {}  # insertion order: idle longest first
        self._stalled: dict[RequestHandler, None] = {}  # those of _idle in the middle of a request, the same order
        self._hosts: dict[str, int] = {}  # connections per remote address
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, handler: RequestHandler) -> None:
        transport = handler.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        host = compute_address_group(str(peer[0]) if isinstance(peer, tuple) and peer else None)
        self._open[handler] = host
        self._hosts[host] = self._hosts.get(host, 0) + 1
        self._idle[handler] = None
        if len(self._open) > self.limit:
            held = {**self._hosts, host: self._hosts[host] - 1}  # (before this one)
            # Never empty: the new handler is idle (and its address's own).
            victim = next(h for h in itertools.chain(self._stalled, self._idle) if may_close_idle(held, host, self._open[h]))
            if victim is handler:  # every other connection it may close has a call running
                hog = find_hog(self._hosts, host, self.limit)
                if hog is not None:
                    victim = next(h for h, where in self._open.items() if where == hog)
            self._forget(victim)
            self.evicted += 1
            # Not from inside connection_made: aiohttp finishes setting the handler up first.
            asyncio.get_running_loop().call_soon(victim.force_close)

    def busy(self, handler: RequestHandler) -> None:
        """The server is working for this connection: not evictable until `idle`."""
        self._idle.pop(handler, None)
        self._stalled.pop(handler, None)

    def idle(self, handler: RequestHandler) -> None:
        """The connection waits for its client's next request (or its first)."""
        self._stalled.pop(handler, None)
        if handler in self._open:
            self._idle[handler] = None  # re-inserted last: idle since now

    def stalled(self, handler: RequestHandler) -> None:
        """The connection waits on its client in the middle of a request (the rest of its
        body, or for it to read the answer): idle, and evicted before those that are not."""
        self.idle(handler)
        if handler in self._open:
            self._stalled[handler] = None

    def forget(self, handler: RequestHandler) -> None:
        """Closed, or upgraded to a WebSocket (counted by the server from then on)."""
        self._forget(handler)

    def _forget(self, handler: RequestHandler) -> None:
        host = self._open.pop(handler, None)
        if host is not None:
            left = self._hosts.pop(host) - 1
            if left:
                self._hosts[host] = left
        self._idle.pop(handler, None)
        self._stalled.pop(handler, None)


class Listener(web.Server):
    """aiohttp's low-level server, telling a `ConnectionBudget` about each connection.

    ``admit``, given, is asked about each new connection's address group
    (:func:`compute_address_group`) before anything is made for it: a connection it refuses is
    refused by a :class:`_Gate`, with no request handler made and no request parsed. The p2p
    service refuses an address that has used its handshake allowance: answered one by one with
    HTTP 503, about 1,100 refused upgrades a second from one address, each a fresh connection,
    kept a node at 63% of a core (an outside tester's X2, round 15). Without ``refusal`` such a
    connection is reset at once; with it (the RPC server's 429), ``refusal`` is written and
    the connection closed once the client's first bytes are read (closed with bytes unread,
    the kernel resets it and drops the answer), or reset after REFUSAL_LINGER seconds, at most
    MAX_REFUSING of them waiting at once (the rest reset at once)."""

    def __init__(self, handler: Any, budget: ConnectionBudget, admit: Callable[[str], bool] | None = None,
                 *, refusal: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.budget = budget
        self.admit = admit
        self.refusal = refusal
        self.refusing = 0  # refused connections waiting for their client's first bytes

    def __call__(self) -> Any:
        return super().__call__() if self.admit is None else _Gate(self)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.budget.opened(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.budget.forget(handler)


# A refused connection that is answered waits this long at most for its client's first bytes,
# and so many at once at most (each an open socket): a flood is reset beyond them.
REFUSAL_LINGER: Final = 1.0
MAX_REFUSING: Final = 64


class _Gate(asyncio.Protocol):
    """A new connection's protocol until :class:`Listener`'s ``admit`` has seen its address:
    admitted, aiohttp's request handler is made and takes the transport over before a byte
    has been read (asyncio's ``set_protocol``); refused, it is reset, or answered and closed
    (Listener's ``refusal``)."""

    __slots__ = ("_expiry", "_listener", "_transport")

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        peer = transport.get_extra_info("peername")
        assert listener.admit is not None  # (a gate only stands where there is an admit)
        tcp = cast(asyncio.Transport, transport)
        if listener.admit(compute_address_group(str(peer[0]) if isinstance(peer, tuple) and peer else None)):
            handler = web.Server.__call__(listener)
            tcp.set_protocol(handler)
            handler.connection_made(tcp)
        elif listener.refusal is None or listener.refusing >= MAX_REFUSING:
            tcp.abort()
        else:
            listener.refusing += 1
            self._transport = tcp
            self._expiry = asyncio.get_running_loop().call_later(REFUSAL_LINGER, tcp.abort)
            tcp.write(listener.refusal)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:  # (read, so closing sends the answer, not a reset)
            self._transport.close()

    def eof_received(self) -> bool | None:
        return False  # (closes: the answer was written first)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._transport = None
            self._listener.refusing -= 1
            assert self._expiry is not None
            self._expiry.cancel()


class HeldBytes:
    """The bytes of requests the server holds at once, over all its connections: HTTP bodies
    and WebSocket messages, counted as they arrive (not as declared) until their call is
    answered. Each connection's own bound (the request size, twice it for a WebSocket
    message) is no bound on the sum: 100 WebSockets each sending 29.5 MB held 5.4 GB of a
    node's memory, stalled its event loop 5-10 s and paused finality (retest45's F6). Counted
    as declared, 27 connections each declaring a 9.9 MB body and sending a byte a second held
    the whole cap, and every request over ``small`` was refused for as long as they kept it
    (retest46), so bytes count once they are read, and one address may hold ``part`` of the
    cap at most. A request of at most ``small`` bytes is never refused for it (those of every
    connection the server keeps together are a few MiB), so a flood of large ones cannot keep
    out ordinary calls.

    Past the cap, requests still arriving are cut off for a newcomer (:meth:`hold`), each the
    first begun of the address whose requests still arriving hold the most within the subnet
    (:func:`compute_subnet`) whose requests still arriving hold the most, while that subnet holds
    more than the newcomer's would (within the newcomer's own subnet: while that address holds
    more than the newcomer's would): room is taken from the largest holder, never from one
    holding less (the rule of the inbound p2p peers, node.network.service.choose_evictee). By
    address alone, attackers spread over N addresses each holding cap/N cut off every honest
    upload larger than that (retest49's M1). Without a cut-off, twenty HTTP bodies of five
    addresses that sent 13.4 MB each and stalled kept every request over ``small`` refused
    (retest47); cutting off the one begun longest ago cut every honest upload slower than about
    0.2 s while they sent again at once (retest48). HTTP bodies and WebSocket messages are cut off alike: a request received
    whole, whose call runs, is not."""

    __slots__ = ("_arriving", "_by_host", "cap", "held", "part", "small")

    def __init__(self, cap: int, part: int, small: int = 64 * 1024) -> None:
        self.cap = cap
        self.part = part
        self.small = small
        self.held = 0
        self._by_host: dict[str, int] = {}
        # Requests still arriving, in the order they were first held: (address, bytes held, cut off).
        self._arriving: dict[object, tuple[str, int, Callable[[], None]]] = {}

    def take(self, size: int, host: str) -> bool:
        """Hold ``size`` more bytes of ``host``'s if they fit under ``cap`` and ``host``'s
        ``part`` (True), else none (False)."""
        mine = self._by_host.get(host, 0) + size
        if self.held + size > self.cap or mine > self.part:
            return False
        self.held += size
        self._by_host[host] = mine
        return True

    def hold(self, request: object, size: int, host: str, cut: Callable[[], None]) -> bool:
        """Hold ``size`` more bytes of ``request``, still arriving from ``host``, cutting off
        others still arriving past the cap (the class's rule): each one cut off has its bytes
        given back and ``cut``, the one it was held with, called (its owner closes it). False if
        they do not fit even so, or pass ``host``'s part."""
        arriving = self._arriving
        if request not in arriving:
            arriving[request] = (host, 0, cut)
        subnet = compute_subnet(host)
        while not self.take(size, host):
            by_subnet: dict[str, dict[str, int]] = {}  # subnet -> address -> bytes of its requests arriving
            for where, count, _cut in arriving.values():  # (in the order first held: ties go to the first)
                addresses = by_subnet.setdefault(compute_subnet(where), {})
                addresses[where] = addresses.get(where, 0) + count
            hog_subnet, addresses = max(by_subnet.items(), key=lambda item: sum(item[1].values()))
            hog, most = max(addresses.items(), key=lambda item: item[1])
            if hog_subnet != subnet:
                ours = sum(count for where, count in self._by_host.items() if compute_subnet(where) == subnet)
                if sum(addresses.values()) <= ours + size:
                    return False
            elif most <= self._by_host.get(host, 0) + size:
                # (Within host's own subnet, the address rule: so never host itself, which holds
                # those; nor when host would pass its part, as no address holds more than its part.)
                return False
            victim = next(other for other, (where, _count, _cut) in arriving.items() if where == hog)
            gone_host, gone, cut_off = arriving.pop(victim)
            self.give(gone, gone_host)
            cut_off()
        where, count, cut = arriving[request]
        arriving[request] = (where, count + size, cut)
        return True

    def arrived(self, request: object) -> None:
        """``request`` is received whole (its call runs), or over: no longer cut off for room."""
        self._arriving.pop(request, None)

    def give(self, size: int, host: str) -> None:
        if size:
            self.held -= size
            left = self._by_host.pop(host) - size
            if left:
                self._by_host[host] = left


class FrameGuard:
    """Sits between aiohttp's `RequestHandler` and its WebSocket reader, reading frame heads.

    ``feed_data`` has the reader's contract: it returns ``(eof, tail)`` and a true ``eof``
    makes aiohttp stop reading. On an unmasked frame the guard feeds the reader only the
    bytes before it and reports the violation through ``on_violation`` (which queues the
    error for ``receive()``, and aiohttp then sends the close frame). After any violation,
    the guard's or the reader's own (oversize, bad opcode...), it keeps the connection
    reading and discards everything, watching only for the peer's close frame, so that
    `linger` can end the connection without a reset.
    """

    __slots__ = (
        "_control",
        "_data",
        "_done",
        "_head",
        "_held",
        "_host",
        "_inner",
        "_last",
        "_loop",
        "_message",
        "_on_violation",
        "_skip",
        "_taken",
        "eof",
        "failed",
        "flooded",
        "last_data",
        "saw_close",
    )

    def __init__(
        self, inner: Any, on_violation: Callable[[int, str], None], held: HeldBytes | None = None, host: str = "?"
    ) -> None:
        self._inner: Any = inner  # aiohttp's WebSocketReader; None once failed (_fail)
        self._on_violation = on_violation
        self._held = held  # the server's (HeldBytes): data frames' payload bytes are taken from it as they come
        self._host = host  # the client's address group, whose part of _held they are
        self._data = False  # whether the frame whose payload is coming is a data frame
        self._last = False  # and the last of its message
        self._message = 0  # payload bytes of the message being received
        self._taken = 0  # of those, held in _held (all of them once past its ``small``)
        self._done: deque[int] = deque()  # bytes held for each message received, not yet answered
        self._loop = asyncio.get_running_loop()
        self._head = bytearray()  # a frame head not yet complete
        self._skip = 0  # payload bytes of the current frame still to come
        self.failed = False
        self.flooded = False  # a violation of rate, not of form: no lingering for it
        self.saw_close = False
        self.eof = False
        self.last_data = self._loop.time()
        self._control = RateLimiter(CONTROL_PER_SECOND, CONTROL_BURST)  # pings and pongs

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.last_data = self._loop.time()
        was_failed = self.failed
        found = self._scan(data)
        if was_failed:
            return False, b""
        if found is not None:
            bad, code, reason = found
            if bad:
                self._inner.feed_data(data[:bad])
            self._fail()
            self.flooded = code == CLOSE_POLICY_VIOLATION
            self._on_violation(code, reason)
            return False, b""
        eof, tail = self._inner.feed_data(data)
        if eof:
            # The reader rejected a frame and queued the error; receive() sends the close.
            self._fail()
            return False, b""
        return eof, tail

    def feed_eof(self) -> None:
        self.eof = True
        if self._inner is not None:
            self._inner.feed_eof()

    def _fail(self) -> None:
        """Nothing more goes to aiohttp's reader, which is let go: the part of a message it
        holds (up to twice the request size) is freed once aiohttp's close lets go of it too,
        not when the connection is over, after lingering (up to LINGER_MAX)."""
        self.failed = True
        self._inner = None

    def _head_size(self) -> int:
        head = self._head
        if len(head) < 2:
            return 2
        flag = head[1] & 0x7F
        extended = 2 if flag == 126 else 8 if flag == 127 else 0
        return 2 + extended + (4 if head[1] & 0x80 else 0)

    def _scan(self, data: bytes) -> tuple[int, int, str] | None:
        """Walk the frame heads in ``data``: the first violation in it, if any, as (offset of
        its frame, close code, reason): an unmasked frame, or a control frame past the rate."""
        bad: tuple[int, int, str] | None = None
        pos = 0
        end = len(data)
        head = self._head
        start = 0  # where the head being read began (0 if in an earlier chunk)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                if self._data and bad is None and not self._hold(step):
                    bad = (pos, CLOSE_TRY_AGAIN_LATER, "the server holds all the request bytes it may now: try again later")
                self._skip -= step
                pos += step
                if not self._skip and self._data and self._last:
                    self._end_message()
                continue
            if not head:
                start = pos
            size = self._head_size()
            take = min(size - len(head), end - pos)
            head += data[pos : pos + take]
            pos += take
            if len(head) < self._head_size():
                continue
            b1 = head[1]
            flag = b1 & 0x7F
            if flag == 126:
                length = int.from_bytes(head[2:4], "big")
            elif flag == 127:
                length = int.from_bytes(head[2:10], "big")
            else:
                length = flag
            opcode = head[0] & 0x0F
            if bad is None:
                if not b1 & 0x80:
                    bad = (start, CLOSE_PROTOCOL_ERROR, "client frames must be masked (RFC 6455 section 5.1)")
                elif opcode in (_OP_PING, _OP_PONG) and not self._control.take():
                    bad = (start, CLOSE_POLICY_VIOLATION, f"more than {CONTROL_PER_SECOND:g} pings and pongs a second")
            if opcode == _OP_CLOSE:
                self.saw_close = True
            self._data, self._last = opcode < _OP_CLOSE, bool(head[0] & 0x80)
            if self._data and self._last and not length:
                self._end_message()
            self._skip = length
            head.clear()
        return bad

    def _hold(self, size: int) -> bool:
        """Count ``size`` payload bytes of a data frame, just arrived, against the server's
        HeldBytes once their message is past the small size; False if they do not fit."""
        held = self._held
        self._message += size
        if held is not None and self._message > held.small and not self.failed:
            if not held.hold(self, self._message - self._taken, self._host, self._cut):
                return False
            self._taken = self._message
        return True

    def _cut(self) -> None:
        """Cut off for room by another request (HeldBytes.hold, which gave the message's bytes
        back): the rest of it is not counted, and the connection closes with 1013."""
        self._taken = 0
        self._fail()
        self._on_violation(CLOSE_TRY_AGAIN_LATER, "the server needed room for other requests: try again later")

    def _end_message(self) -> None:
        if self._held is not None:
            self._held.arrived(self)
        self._done.append(self._taken)
        self._message = self._taken = 0

    def answered(self) -> None:
        """The oldest message received has been answered: its bytes are no longer held."""
        if self._done and self._held is not None:
            self._held.give(self._done.popleft(), self._host)

    def release(self) -> None:
        """The connection is over: nothing of it is held any more, nor counted from now on
        (a failed connection's frames are still scanned while it lingers: counted, they were
        never given back, and four addresses' WebSockets that passed their parts left the
        whole cap taken for good, every request over ``small`` refused: retest47)."""
        if self._held is not None:
            self._held.arrived(self)
            self._held.give(sum(self._done) + self._taken, self._host)
        self._held = None
        self._done.clear()
        self._message = self._taken = 0

    async def linger(self, transport: asyncio.BaseTransport | None) -> None:
        """Half-close, then read and discard until the peer closes, goes quiet, or LINGER_MAX;
        not for a flood (its sender would keep the scan busy for LINGER_MAX: closed at once)."""
        if self.flooded:
            return
        if (
            isinstance(transport, asyncio.WriteTransport)
            and not transport.is_closing()
            and transport.can_write_eof()
        ):
            transport.write_eof()
        deadline = self._loop.time() + LINGER_MAX
        while not (self.saw_close or self.eof):
            now = self._loop.time()
            if now >= deadline or now - self.last_data >= LINGER_QUIET:
                return
            await asyncio.sleep(_LINGER_POLL)


class GuardedWebSocket(web.WebSocketResponse):
    """aiohttp's WebSocketResponse with a `FrameGuard` in front of its reader.

    aiohttp has no hook for this, so ``_post_start`` swaps the guard in for the reader right
    after aiohttp installs it (and feeds the guard any frames that came in the same packet
    as the upgrade request), and ``_close_transport`` leaves the socket open while the guard
    lingers: the handler calls `FrameGuard.linger` and aiohttp closes the socket when the
    handler returns. Both touch aiohttp internals (``RequestHandler._payload_parser`` and
    ``_message_tail``, ``self._reader``); the raw-socket tests in
    tests/rpc/test_rpc_hardening.py fail if a new aiohttp changes them.
    """

    guard: FrameGuard | None = None
    held: HeldBytes | None = None  # the server's, set before prepare (FrameGuard counts against it)
    host: str = "?"  # the client's address group, set with it

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        handler: Any = request.protocol
        tail = handler._message_tail
        handler._message_tail = b""
        super()._post_start(request, protocol, writer)
        queue: Any = self._reader

        def violation(code: int, message: str) -> None:
            queue.set_exception(WebSocketError(code, message))

        guard = self.guard = FrameGuard(handler._payload_parser, violation, self.held, self.host)
        handler._payload_parser = guard
        if tail:
            guard.feed_data(tail)

    def _close_transport(self) -> None:
        if self.guard is not None and self.guard.failed:
            return  # the handler lingers; aiohttp closes the socket when it returns
        super()._close_transport()

    def _on_data_received(self) -> None:
        """Nothing once closing: aiohttp re-arms its ping timer on every chunk received, and
        chunks that came after close() had cancelled it (a client sending on while the server
        lingers) armed a timer nothing cancelled again, which kept the connection, its reader
        and the message's bytes received so far alive for a minute or more: WebSockets cut off
        or closed mid-message by 1013 kept 2 GB, and reconnecting after each 1013 grew a node to
        4-7 GB (retest50's N1)."""
        if not self.closed:
            super()._on_data_received()
