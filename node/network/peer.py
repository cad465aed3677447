"""One connected peer: an encrypted WebSocket with a bounded outbound queue and rate-limited reads.

Writes go through a queue drained by one writer task, so a broadcast never waits on a slow
peer and chunks of two messages never interleave (their Noise nonces follow the queue order).
The queue is bounded in messages and in bytes (what is encoded and not yet written): a
response can be 16 MiB, so a message count alone would let a peer that asks and never reads
pin gigabytes. A peer whose queue is full is too slow to keep: the service disconnects it.

Reads are checked in the order that costs the least work for a hostile peer: the WebSocket
layer refuses frames over the Noise limit (aiohttp's ``max_msg_size``), the rate limiters
(the peer's, then its address's and the node's: FrameShare) count a frame before it is decrypted, the session refuses a message over the bound before
buffering more, and only then is the message decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from node.network.errors import Flood, FrameError, HostFlood, OversizeMessage, PeerGone
from node.network.identity import PeerId
from node.network.messages import Disconnect, Message, Status, decode_message, encode_message
from node.network.multiaddr import Multiaddr
from node.network.noise import MAX_CHUNK, TAG_LEN, NoiseSession
from node.network.reputation import FairShare
from rpc.connections import RateLimiter

T = TypeVar("T", bound=Hashable)

CLOSE_TIMEOUT = 1.0
# Ids of our requests to one peer that timed out, kept so a late answer is not charged as
# unsolicited: only the newest. A peer that never answers is charged REQUEST_TIMEOUT each
# time, but at one timeout per request_timeout (10 s) its score settles near -920 and it is
# never banned, so an unbounded set grew for as long as it stayed connected. A late answer
# to an older id is charged UNSOLICITED_RESPONSE: it is later than 64 requests.
MAX_EXPIRED_REQUESTS = 64
# The share of a peer's request limit our own requests to it keep to (Peer.requests_out): a
# block of 99 small TRAIN jobs made an importer send 99 transcript requests at once, and
# every serving peer banned it for a flood (an outside tester's finding, round 5).
PACED_SHARE = 0.8
# Seconds over which a peer's frames are counted for its load (Peer.frame_load): the frames of
# about the last second, decayed exponentially.
LOAD_SECONDS = 1.0
WS_MESSAGE_TOO_BIG = 1009


class BoundedSet(Generic[T]):
    """A set that forgets its oldest members beyond ``capacity`` (seen-sets for gossip)."""

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[T, None] = OrderedDict()

    def add(self, item: T) -> bool:
        """Add ``item``; True if it was new."""
        if item in self._items:
            return False
        self._items[item] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return True

    def discard(self, item: T) -> None:
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)


@dataclass(frozen=True, slots=True)
class PeerLimits:
    frames_per_second: float
    frame_burst: float
    bytes_per_second: float
    byte_burst: float
    send_queue: int
    send_bytes: int  # bytes queued and not yet written; one message is always let in
    known_capacity: int
    requests_per_second: float
    request_burst: float
    tx_per_second: float
    tx_burst: float
    tx_bytes_per_second: float
    tx_byte_burst: float
    fraud_proofs_per_second: float
    fraud_proof_burst: float
    justifications_per_second: float
    justification_burst: float
    votes_per_second: float
    vote_burst: float
    served_bytes_per_second: float
    served_byte_burst: float


class FrameShare:
    """Frames and bytes that many inbound peers share, read past their own allowances: those
    of one address (HostShare) and the node's (NetworkService, ``inbound_frames_per_second``).

    Taken, not waited for: readers that waited for a shared allowance woke each millisecond
    to look, and 30 identities cost more than without it (retest38). Past it the sharing peer
    with the most frames lately, unasked, is dropped, not charged (it may be an honest
    neighbour of the identities that spent it), and the frame passes, in debt. Dropping
    whichever peer's frame found it spent dropped an honest neighbour in every run of
    retest39 (F2): the attacker kept it at the edge, and the neighbour's few frames found it
    spent as often as not. A frame from a peer we are waiting on for an answer passes in
    debt and sheds no one, and is not counted in its load (Peer.frame_load): an answer we
    asked for is bounded by our requests and the peer's own limits, and an honest neighbour
    streaming a block range to us was the busiest (a review's finding). And only a peer over
    its part, the share's rate over the sharers, is shed; while none is, the frame passes in
    debt (frames; past the bytes the busiest is shed all the same, as its messages may be
    few and large): an attacker spent an address's share with identities that it dialed
    again with fresh keys, light for a while, and the busiest was then its honest neighbour
    at 5 frames a second, shed and kept out (retest40's F9). Sharers within their parts send no more than
    the share's rate in all. ``shed(peer, reason)`` drops a peer (set by the service);
    ``whose`` names the sharers in its reason."""

    __slots__ = ("bytes", "frames", "held_cap", "peers", "shed", "whose")

    def __init__(
        self, frames: RateLimiter, size: RateLimiter, whose: str, shed: Callable[[Peer, str], None],
        held_cap: float = math.inf,
    ) -> None:
        self.frames = frames
        self.bytes = size
        self.whose = whose
        self.shed = shed
        self.held_cap = held_cap  # bytes the sharers may hold in messages not complete yet (hold)
        self.peers: weakref.WeakSet[Peer] = weakref.WeakSet()  # those connected and not shed yet

    def hold(self, reader: Peer) -> None:
        """``reader`` holds part of a message, unasked: past ``held_cap`` bytes held so by the
        sharers, the one whose part is the oldest is shed, not charged, and HostFlood raised
        if that is ``reader``. The byte shares are rates, not a cap on what is held: 31
        identities on 31 addresses, each sending 15.9 MiB of a message within every rate and
        never its last chunk, kept 476 MiB of a node's memory for as long as they liked
        (retest42's F2). The oldest part, not the largest: an honest message is sent at once
        and complete within a second, so its part is young, while a held one grows old, and an
        attacker that keeps its parts just below an honest fraud proof's size cannot make that
        the one dropped."""
        holders = [p for p in self.peers if p.session.held and not p.asked]
        if reader not in holders or sum(p.session.held for p in holders) <= self.held_cap:
            return
        oldest = min(holders, key=lambda p: p.held_since)
        reason = f"{self.whose} held more than {self.held_cap:g} bytes of messages not complete yet, its part the oldest"
        self.peers.discard(oldest)
        if oldest is reader:
            raise HostFlood(reason)
        self.shed(oldest, reason)

    def take_frame(self, reader: Peer, size: int) -> None:
        """Take a frame of ``size`` bytes (0: a ping or pong) that ``reader`` sent. Past the
        share, unless ``reader`` owes us an answer, the sharer with the most frames lately is
        shed, and HostFlood raised if that is ``reader`` (or it was shed already)."""
        frames = self.frames.take()
        if frames and (not size or self.bytes.take(size)):
            return
        if reader.asked and reader in self.peers:
            self._owe(frames, size)
            return
        if frames:
            spent = f"the {self.bytes.rate:g} bytes/s they share (burst {self.bytes.burst:g})"
        else:
            spent = f"the {self.frames.rate:g} frames/s they share (burst {self.frames.burst:g})"
        reason = f"{self.whose} passed {spent}, it with the most frames lately"
        hog = max(self.peers, key=Peer.frame_load, default=reader)
        if not frames and reader in self.peers and Peer.frame_load(hog) <= self.frames.rate * LOAD_SECONDS / len(self.peers):
            self._owe(frames, size)  # none over its part of the frames
            return
        if hog is reader or reader not in self.peers:
            self.peers.discard(reader)
            raise HostFlood(reason)
        self.peers.discard(hog)
        self._owe(frames, size)
        self.shed(hog, reason)

    def _owe(self, framed: bool, size: int) -> None:
        """Let a frame pass in debt: the frame token unless ``framed`` (taken), and its bytes."""
        if not framed:
            self.frames.settle(-1.0)
        self.bytes.settle(-float(size))


class Lately:
    """A count of about the last LOAD_SECONDS, decayed exponentially (a peer's load)."""

    __slots__ = ("_at", "_count")

    def __init__(self) -> None:
        self._count = 0.0
        self._at = time.monotonic()

    def add(self, amount: float) -> float:
        """Count ``amount`` now; the count with it."""
        now = time.monotonic()
        self._count = self._count * math.exp((self._at - now) / LOAD_SECONDS) + amount
        self._at = now
        return self._count

    def value(self) -> float:
        return self._count * math.exp((self._at - time.monotonic()) / LOAD_SECONDS)


class WorkShare:
    """One kind of unasked work that all inbound peers but reserved ones share past their own
    allowances and their address's (NodeWork): gossiped extrinsics (count and bytes), votes,
    justifications, fraud proofs.

    Per peer and per address alone, 30 identities on 30 addresses, each within its own 256
    unpayable extrinsics a second, held a node at 90% of a core, its loop stalled for 4 s and
    its validator missed four slots in five (retest42's F3); each within its own 256 double
    votes of a byzantine key a second, 74% (F1). Past the share, a sharer within its part (the
    rate over the sharers, against the amount it sent of the kind about the last LOAD_SECONDS,
    what was dropped included) passes in debt, as for frames (FrameShare): an honest peer
    that sends little is never the one dropped; one over its part has the excess dropped,
    unread and not charged (it may be an honest relay of a busy chain). Sharers within their
    parts take no more than the rate in all."""

    __slots__ = ("allowance", "loads", "sharers")

    def __init__(self, rate: float, burst: float, sharers: weakref.WeakSet[Peer]) -> None:
        self.allowance = RateLimiter(rate, burst)
        self.sharers = sharers
        self.loads: weakref.WeakKeyDictionary[Peer, Lately] = weakref.WeakKeyDictionary()

    def take(self, peer: Peer, amount: float = 1.0) -> bool:
        """Whether ``amount`` of the work from ``peer`` is let in (taken, or owed)."""
        lately = self.loads.get(peer)
        if lately is None:
            lately = self.loads[peer] = Lately()
        load = lately.add(amount)
        if self.allowance.take(amount):
            return True
        if load > self._part():
            return False
        self.allowance.settle(-amount)
        return True

    def may_take(self, peer: Peer) -> bool:
        """Whether one more of the work from ``peer`` would be let in now (nothing taken)."""
        lately = self.loads.get(peer)
        return self.allowance.wait_for(1.0) == 0.0 or (0.0 if lately is None else lately.value()) + 1.0 <= self._part()

    def _part(self) -> float:
        return self.allowance.rate * LOAD_SECONDS / max(1, len(self.sharers))


@dataclass(frozen=True, slots=True)
class NodeWork:
    """The node's WorkShares, one a kind (NetworkConfig.inbound_tx_per_second and the rest)."""

    tx_count: WorkShare
    tx_bytes: WorkShare
    fraud_proofs: WorkShare
    justifications: WorkShare
    votes: WorkShare


class HostShare(FrameShare):
    """What the inbound peers of one address share, ``share`` times one peer's
    (NetworkConfig.host_allowance_peers): frames and bytes read (FrameShare), and the
    allowances of unasked work (gossiped extrinsics, count and bytes; fraud proofs;
    justifications; votes), whose excess is dropped unread.

    Each peer's own allowance bounds what one identity makes us do, not what an address does:
    30 identities of one host, each within its own 256 unpayable extrinsics a second, held a
    node at 75% of a core and its event loop stalled 409 ms (an outside tester's AF4,
    retest36); 16, each within its own 500 frames a second of votes refused without blame,
    73% (AG1, retest37)."""

    __slots__ = ("fraud_proofs", "justifications", "tx_bytes", "tx_count", "votes")

    def __init__(self, limits: PeerLimits, share: float, shed: Callable[[Peer, str], None]) -> None:
        super().__init__(
            RateLimiter(limits.frames_per_second * share, limits.frame_burst * share),
            RateLimiter(limits.bytes_per_second * share, limits.byte_burst * share),
            "its address's inbound peers", shed,
        )
        self.tx_count = RateLimiter(limits.tx_per_second * share, limits.tx_burst * share)
        self.tx_bytes = RateLimiter(limits.tx_bytes_per_second * share, limits.tx_byte_burst * share)
        self.fraud_proofs = RateLimiter(limits.fraud_proofs_per_second * share, limits.fraud_proof_burst * share)
        self.justifications = RateLimiter(limits.justifications_per_second * share, limits.justification_burst * share)
        self.votes = RateLimiter(limits.votes_per_second * share, limits.vote_burst * share)


class Peer:
    """An authenticated connection; ``status`` is what the remote said in its handshake."""

    def __init__(
        self,
        ws: Any,  # aiohttp ClientWebSocketResponse or web.WebSocketResponse: same read/write API
        session: NoiseSession,
        status: Status,
        *,
        outbound: bool,
        address: Multiaddr | None,
        limits: PeerLimits,
        host: str | None = None,
    ) -> None:
        self.ws = ws
        self.host = host  # the remote IP address of an inbound connection (slot eviction)
        self.session = session
        self.peer_id: PeerId = session.remote
        self.status = status
        self.best_number = status.best_number
        self.best_hash = status.best_hash
        self.outbound = outbound
        self.address = address
        self.connected_at = time.monotonic()  # a clock step cannot make a peer look settled
        self.known_blocks: BoundedSet[bytes] = BoundedSet(limits.known_capacity)
        self.known_txs: BoundedSet[bytes] = BoundedSet(limits.known_capacity)
        self.known_votes: BoundedSet[bytes] = BoundedSet(limits.known_capacity)
        self.expired_requests: BoundedSet[int] = BoundedSet(MAX_EXPIRED_REQUESTS)  # of our requests that timed out
        self._frames = RateLimiter(limits.frames_per_second, limits.frame_burst)
        self._bytes = RateLimiter(limits.bytes_per_second, limits.byte_burst)
        self.requests = RateLimiter(limits.requests_per_second, limits.request_burst)
        # Our requests to the peer, kept under the limit it keeps on them (the same defaults on
        # every node), with room for the network bunching them up on the way.
        self.requests_out = RateLimiter(
            limits.requests_per_second * PACED_SHARE, max(1.0, limits.request_burst * PACED_SHARE)
        )
        # Bytes of block and transcript responses we send it (node.network.service._pace).
        self.served = RateLimiter(limits.served_bytes_per_second, limits.served_byte_burst)
        # And those shared with others (node.network.service._reserve), set when it is
        # registered: its address's (inbound), and the node's, taken in turn by address.
        self.host_served: RateLimiter | None = None
        self.node_served: FairShare | None = None
        self.tx_count = RateLimiter(limits.tx_per_second, limits.tx_burst)
        self.tx_bytes = RateLimiter(limits.tx_bytes_per_second, limits.tx_byte_burst)
        self.fraud_proofs = RateLimiter(limits.fraud_proofs_per_second, limits.fraud_proof_burst)
        self.justifications = RateLimiter(limits.justifications_per_second, limits.justification_burst)
        self.votes = RateLimiter(limits.votes_per_second, limits.vote_burst)
        self.host_share: HostShare | None = None  # its address's, if inbound (set when registered)
        self.node_work: NodeWork | None = None  # the node's, if inbound and not reserved (set when registered)
        self.shares: tuple[FrameShare, ...] = ()  # the frames it shares: its address's and the node's, if inbound
        self.last_size = 0  # bytes of the message recv() returned last
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(limits.send_queue)
        self._send_bytes = limits.send_bytes
        self.queued_bytes = 0  # encoded, queued or being written, not yet on the socket
        self._writer: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        # Inbound side, kept by the service: bytes decoded and waiting for the handler, and an
        # event set whenever the handler finishes one (or the peer closes) so the reader,
        # stopped at the bound, reads on.
        self.waiting_bytes = 0
        self.handled = asyncio.Event()
        self._frames_lately = Lately()  # frames lately, unasked (frame_load)
        self.held_since = 0.0  # when the first part of the message not complete yet came (FrameShare.hold)
        self.asked = 0  # our requests to it not answered yet (NetworkService._request)
        # Kind -> when it last gave us something new and valid: a block we imported, a
        # transaction our pool took, a vote we counted (NetworkService.note_useful).
        self.useful: dict[str, float] = {}

    @property
    def group(self) -> object:
        """What this peer shares its address's allowances with: the address group of an
        inbound connection (an IPv4 address, an IPv6 /64: rpc.connections.compute_address_group),
        the peer itself for one we dialed."""
        return self.peer_id if self.host is None else self.host

    def take_transaction(self, size: int) -> bool:
        """Whether a gossiped extrinsic of ``size`` bytes is within this peer's allowance, its
        address's and the node's (tokens taken from each if so)."""
        host, node = self.host_share, self.node_work
        return (
            self.tx_count.take() and self.tx_bytes.take(size)
            and (host is None or (host.tx_count.take() and host.tx_bytes.take(size)))
            and (node is None or (node.tx_count.take(self) and node.tx_bytes.take(self, size)))
        )

    def take_fraud_proof(self) -> bool:
        """Whether a gossiped fraud proof is within this peer's allowance, its address's and the node's."""
        host, node = self.host_share, self.node_work
        return self.fraud_proofs.take() and (host is None or host.fraud_proofs.take()) and (node is None or node.fraud_proofs.take(self))

    def take_justification(self) -> bool:
        """Whether a gossiped justification is within this peer's allowance, its address's and the node's."""
        host, node = self.host_share, self.node_work
        return (
            self.justifications.take() and (host is None or host.justifications.take())
            and (node is None or node.justifications.take(self))
        )

    def may_vote(self) -> bool:
        """Whether a gossiped vote would be within this peer's allowance, its address's and
        the node's now (no token taken)."""
        host, node = self.host_share, self.node_work
        return (
            self.votes.wait_for(1.0) == 0.0 and (host is None or host.votes.wait_for(1.0) == 0.0)
            and (node is None or node.votes.may_take(self))
        )

    def take_vote(self) -> bool:
        """Whether a gossiped vote is within this peer's allowance, its address's and the node's."""
        host, node = self.host_share, self.node_work
        return self.votes.take() and (host is None or host.votes.take()) and (node is None or node.votes.take(self))

    def request_wait(self, size: int) -> float:
        """Seconds until we may send this peer a request whose answer may be ``size`` bytes:
        until the request fits what the peer lets us ask (``requests_out``) and the answer
        what we let it send (:meth:`inbound_wait`)."""
        return max(self.requests_out.wait_for(1.0), self.inbound_wait(size))

    def inbound_wait(self, size: int) -> float:
        """Seconds until a message of ``size`` bytes from this peer passes our read limits.

        Before asking for an answer of up to ``size`` bytes the requester waits this long
        (NetworkService._request). A size above a bucket's burst waits for a full bucket: no
        answer can pass it in one piece, and a configured burst below the largest message
        must not fail every request. Not for its address's share: an attacker there keeps
        it spent, and the node stopped asking an honest neighbour for blocks (retest39's F3);
        past the share the answer sheds the address's busiest peer (HostShare.take_frame)."""
        frames = size // MAX_CHUNK + 2
        return max(
            self._frames.wait_for(min(frames, self._frames.burst)),
            self._bytes.wait_for(min(size + frames * (TAG_LEN + 1), self._bytes.burst)),
        )

    def frame_load(self) -> float:
        """The frames this peer sent about the last LOAD_SECONDS (decayed exponentially), but
        those while it owed us an answer (HostShare.take_frame)."""
        return self._frames_lately.value()

    def _count_frame(self) -> None:
        self._frames_lately.add(1.0)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"p2p-write-{self.peer_id.short()}")

    def send(self, message: Message) -> bool:
        """Queue ``message``; False if the queue is full (the peer is not keeping up) or closed."""
        return self.send_encoded(encode_message(message))

    def send_encoded(self, data: bytes) -> bool:
        """Queue an encoded message; False if it would pass the message or byte bound, or closed.

        An empty queue takes any one message (the wire bound keeps it at most one message), so
        a byte bound below the message bound cannot refuse every large message.
        """
        if self.closed.is_set():
            return False
        if self.queued_bytes and self.queued_bytes + len(data) > self._send_bytes:
            return False
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        self.queued_bytes += len(data)
        return True

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self._queue.get()
                if data is None:
                    return
                for frame in self.session.encrypt(data):
                    await self.ws.send_bytes(frame)
                self.queued_bytes -= len(data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError, OversizeMessage):
            self.closed.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)  # so the reader ends too

    async def recv(self, tags: frozenset[int] | None = None) -> Message:
        """The next whole message (of one of ``tags``, if given, refused before it is
        decoded otherwise); raises FrameError, MessageError, Flood or PeerGone."""
        return decode_message(await self.recv_bytes(), self.session.max_message, tags)

    async def recv_bytes(self) -> bytes:
        """The next whole message's bytes, not decoded; raises FrameError, Flood or PeerGone."""
        while True:
            msg = await self.ws.receive()
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                # Answered here, not by aiohttp (autoping off, node.network.service): a control
                # frame counts as a frame against the peer's limit. aiohttp answered pings
                # inside receive(), past every limit: 36.7 MB of empty pings in 3 s cost a node
                # 32 s of CPU and every other slot, and the peer was never charged (an outside
                # tester's finding, round 7). (A pong resets aiohttp's heartbeat all the same.)
                if not self._frames.take():
                    raise Flood(f"more than {self._frames.rate:g} frames/s (burst {self._frames.burst:g}), pings included")
                if not self.asked:
                    self._count_frame()
                for share in self.shares:
                    share.take_frame(self, 0)
                if msg.type == aiohttp.WSMsgType.PING:
                    await self.ws.pong(msg.data)
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                frame: bytes = msg.data
            elif msg.type == aiohttp.WSMsgType.TEXT:
                raise FrameError("a text frame; every frame after the handshake is binary ciphertext")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                if isinstance(msg.data, OSError):
                    # The link, not the peer: a heartbeat with no pong (aiohttp's TimeoutError,
                    # ServerTimeoutError on a dialled link), a reset. A silent link was charged
                    # as garbage, a ban for every peer across a blackhole, reserved ones too,
                    # that kept a healed partition apart (an outside tester's finding, round 5).
                    raise PeerGone(f"link lost: {msg.data}")
                code = getattr(msg.data, "code", None)
                if code == WS_MESSAGE_TOO_BIG:
                    raise OversizeMessage(f"WebSocket frame over the Noise limit: {msg.data}")
                raise FrameError(f"WebSocket protocol error: {msg.data}")
            else:  # CLOSE, CLOSING, CLOSED
                raise PeerGone("connection closed")
            if not self._frames.take():
                raise Flood(f"more than {self._frames.rate:g} frames/s (burst {self._frames.burst:g})")
            if not self._bytes.take(len(frame)):
                raise Flood(f"more than {self._bytes.rate:g} bytes/s (burst {self._bytes.burst:g})")
            if not self.asked:
                self._count_frame()
            for share in self.shares:
                share.take_frame(self, len(frame))
            held = self.session.held
            data = self.session.decrypt(frame)
            if data is not None:
                self.last_size = len(data)
                return data
            if not held:
                self.held_since = time.monotonic()  # the first part of a message
            for share in self.shares:
                share.hold(self)

    async def close(self, reason: str | None = None) -> None:
        """Send ``Disconnect(reason)`` if given (best effort, bounded in time), then close."""
        if self.close_reason is None:
            self.close_reason = reason
        if reason is not None and not self.closed.is_set():
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(encode_message(Disconnect(reason[:256])))
        self.closed.set()
        self.handled.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_TIMEOUT)
            self._writer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)
