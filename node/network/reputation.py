"""Peer reputation, bans and rate limits: how misbehaviour costs a peer its connection.

After Substrate's peerset (sc-peerset): each peer has a score that misbehaviour lowers and time
restores (exponential decay toward 0, half-life :data:`HALF_LIFE`); below
:data:`BAN_THRESHOLD` the peer is disconnected and banned for ``ban_seconds``. A fatal
misbehaviour (garbage, oversize, flood, a bad block, an identity that does not verify) costs the
whole threshold at once.

Memory is bounded in entries, whatever the churn of identities (a fresh identity is free: a key
pair and a handshake):

- scores: at most ``max_tracked`` (:data:`MAX_TRACKED`). Past it, a quarter of them go at once
  (amortised), never a connected peer's (``is_connected``), and among the others those nearest
  zero first, the least recently touched among equals: forgetting a score near zero changes
  nothing. Review 15 evicted the least recently charged, so 4096 throwaway charges wiped a
  real peer's -800; nearest-zero alone still let identities charged more than it (three
  cheap messages each, below the ban) push it out. A disconnected peer's score protects
  little (its owner can come back under a fresh identity for free); a connected one's is
  what stands between it and a ban. A banned peer's score is dropped (it starts at 0 when
  the ban ends).
- bans: two tables of at most ``max_bans`` (:data:`MAX_BANS`) each, keyed by what the ban
  cost to earn. A peer banned after ``settled_after`` (:data:`SETTLED_AFTER`) seconds of
  connection goes into the *settled* table: such bans come at most one per connection slot
  per ``settled_after`` seconds, so churn cannot fill it; when it is full anyway the ban that
  ends first goes. Any other ban (an identity that misbehaved soon after its handshake: all
  that churn makes) goes into the *fresh* table, whose oldest ban goes first: churn flushes
  only other churn, and a fresh identity's ban protects little (the next one is free). Fresh
  bans that ran out go as each new one comes (they are in order of expiry); settled ones
  when their table is full; any on lookup.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

BAN_THRESHOLD = -1000.0
HALF_LIFE = 60.0
MAX_TRACKED = 4096
MAX_BANS = 4096  # per table (settled and fresh)
#: Groups whose count of bytes a FairShare keeps, beside the waiting ones.
MAX_SHARE_GROUPS = 1024
#: Seconds in which a FairShare count of bytes decays by half.
SHARE_HALF_LIFE = 10.0
SETTLED_AFTER = 30.0  # seconds of connection before a ban counts as settled


class Misbehaviour(enum.Enum):
    """What a peer did wrong, and what it costs."""

    GARBAGE = ("garbage", -1000)  # frames that do not decrypt, bytes that do not decode
    OVERSIZE = ("oversize message", -1000)
    FLOOD = ("flood beyond the rate limit", -1000)
    BAD_STATUS = ("bad status message", -1000)
    BAD_BLOCK = ("bad block", -1000)  # reported by the importer
    WRONG_RESPONSE = ("wrong answer to a request", -600)
    UNSOLICITED_RESPONSE = ("response to no request", -200)
    BAD_ANNOUNCE = ("bad block announcement", -200)
    BAD_TRANSACTION = ("invalid transaction", -50)
    BAD_VOTE = ("invalid finality message", -200)
    # An opening that does not verify against the block's transcript root: the peer sent
    # made-up checkpoint data (an honest server only serves what it verified or computed).
    BAD_OPENING = ("invalid checkpoint opening", -600)
    # A fraud proof that does not decode or shows no fault: it cost us a segment's re-run.
    # An honest node checks a proof before it relays one, so two bad ones ban the sender.
    BAD_FRAUD_PROOF = ("invalid fraud proof", -600)
    REQUEST_TIMEOUT = ("request timed out", -100)

    @property
    def reason(self) -> str:
        return self.value[0]

    @property
    def cost(self) -> int:
        return self.value[1]


@dataclass(slots=True)
class _Entry:
    score: float
    at: float


class ReputationBook:
    """Scores and bans by peer key (a PeerId)."""

    def __init__(
        self, ban_seconds: float = 60.0, *, max_tracked: int | None = None, max_bans: int = MAX_BANS,
        settled_after: float = SETTLED_AFTER, is_connected: Callable[[object], bool] = lambda peer: False,
    ) -> None:
        if max_bans < 1:
            raise ValueError(f"max_bans must be at least 1, got {max_bans}")
        self.ban_seconds = ban_seconds
        self.max_tracked = MAX_TRACKED if max_tracked is None else max_tracked
        self.max_bans = max_bans
        self.settled_after = settled_after
        self.is_connected = is_connected
        self._now = time.monotonic
        self._entries: dict[object, _Entry] = {}
        self._bans: dict[object, float] = {}  # settled: peer -> monotonic time its ban ends
        self._fresh_bans: OrderedDict[object, float] = OrderedDict()  # the same, oldest first

    def _decayed(self, e: _Entry, now: float) -> float:
        e.score *= 0.5 ** ((now - e.at) / HALF_LIFE)
        e.at = now
        return e.score

    def _entry(self, peer: object) -> _Entry:
        now = self._now()
        e = self._entries.get(peer)
        if e is None:
            e = self._entries[peer] = _Entry(0.0, now)
            if len(self._entries) > self.max_tracked:
                self._forget_scores(now, keep=peer)
        else:
            self._decayed(e, now)
        return e

    def _forget_scores(self, now: float, *, keep: object) -> None:
        """Drop a quarter of the scores (at least one, if any peer is not connected), those
        nearest zero first and, among equals, the least recently charged or read; never
        ``keep`` (the one being charged) nor a connected peer's."""
        target = self.max_tracked * 3 // 4

        def rank(p: object) -> tuple[float, float]:
            e = self._entries[p]
            return -e.score * 0.5 ** ((now - e.at) / HALF_LIFE), e.at  # e.at: its last charge (or read)

        connected = self.is_connected
        ranked = sorted((p for p in self._entries if p != keep and not connected(p)), key=rank)
        for p in ranked[: max(1, len(self._entries) - target)]:
            del self._entries[p]

    def score(self, peer: object) -> float:
        e = self._entries.get(peer)
        return 0.0 if e is None else self._decayed(e, self._now())

    def report(self, peer: object, what: Misbehaviour, *, connected_for: float = 0.0) -> bool:
        """Charge ``peer``; True if it is now banned (the caller disconnects it).

        ``connected_for``: seconds the peer has been connected (0 if it is not): a ban after
        ``settled_after`` of them goes into the table churn cannot flush."""
        e = self._entry(peer)
        e.score += what.cost
        if e.score > BAN_THRESHOLD:
            return False
        del self._entries[peer]  # a fresh start once the ban ends
        now = self._now()
        until = now + self.ban_seconds
        if connected_for >= self.settled_after or peer in self._bans:
            self._fresh_bans.pop(peer, None)
            if peer not in self._bans and len(self._bans) >= self.max_bans:
                self._bans = {p: t for p, t in self._bans.items() if t > now}
                if len(self._bans) >= self.max_bans:
                    del self._bans[min(self._bans, key=self._bans.__getitem__)]  # the one ending first
            self._bans[peer] = until
        else:
            fresh = self._fresh_bans
            fresh.pop(peer, None)  # re-inserted last: the order stays the order of expiry
            fresh[peer] = until
            while fresh and (len(fresh) > self.max_bans or next(iter(fresh.values())) <= now):
                fresh.popitem(last=False)  # the oldest: past the bound, or run out
        return True

    def sizes(self) -> dict[str, int]:
        """Entries per table: what the node exports as metrics."""
        return {"scores": len(self._entries), "bans": len(self._bans), "fresh_bans": len(self._fresh_bans)}

    def banned_for(self, peer: object) -> float:
        """Seconds of ban left (0 if not banned)."""
        for table in (self._bans, self._fresh_bans):
            until = table.get(peer)
            if until is None:
                continue
            left = until - self._now()
            if left > 0:
                return left
            del table[peer]
        return 0.0


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


class FairShare:
    """A :class:`RateLimiter` shared by many takers, given to the groups waiting for it in
    order of the bytes each has had lately (a group's own takers in order), not to whichever
    waiter polls first, nor in plain turns.

    The node's answer allowance (node.network.service, ``served_bytes_per_node``) is shared by
    every peer: polled, it went to whichever of the waiting peers woke first, so 30 peers of
    three addresses left an honest peer of a fourth about a thirtieth of it and slowed its
    sync twentyfold (the retest of an outside tester's round 9). Given in turns by address,
    each turn reserved a whole message (16 MiB, 1/8 s of the allowance) whatever the answer
    was to be, so beside 30 addresses asking for full answers a request for one block waited
    3.5 s, longer than a PoL fetch may take (the retest of that fix, A-N1).

    So each group has a count of the bytes it had, decaying by half every
    :data:`SHARE_HALF_LIFE` seconds: what it took, less what it gave back (:meth:`settle`: an
    answer pays its size, not its reservation). The waiting group with the lowest count goes
    next, the one waiting longest among equals. Groups that ask for full answers all the time
    take turns by bytes, and one whose answers are small, or that asks now and then, goes
    ahead of them: it waits for the answer in progress, not for a round of the others. Start-
    time fair queueing (Goyal, Vin and Cheng, SIGCOMM 1996) was tried first and is not enough
    here: a group asking now and then ties with every busy group of the round in progress (all
    at its start tag) and waits for them all; measured beside 30 busy addresses, a request for
    one block still waited 3.1 s every other time. The half-life is long beside such a round
    (30 answers of 16 MiB: 3.75 s), so an answer had in it still counts, and short enough that
    a group that synced a while ago is not held back for it. Used on the event loop only.
    """

    __slots__ = ("_counts", "_timer", "_waiting", "bucket")

    def __init__(self, bucket: RateLimiter) -> None:
        self.bucket = bucket
        # The groups waiting, in order of how long since each was last served (or first waited).
        self._waiting: OrderedDict[object, deque[tuple[asyncio.Future[None], float]]] = OrderedDict()
        self._counts: dict[object, tuple[float, float]] = {}  # group -> (bytes, when counted)
        self._timer: asyncio.TimerHandle | None = None

    def count_groups(self) -> int:
        """How many groups have a count (at most :data:`MAX_SHARE_GROUPS` beside the waiting ones)."""
        return len(self._counts)

    def _count(self, group: object, now: float) -> float:
        count, at = self._counts.get(group, (0.0, now))
        return count * 0.5 ** ((now - at) / SHARE_HALF_LIFE)

    async def take(self, group: object, amount: float) -> None:
        """Return once ``amount`` tokens are taken for ``group`` (at most the bucket's burst)."""
        amount = min(amount, self.bucket.burst)
        if not self._waiting and self.bucket.take(amount):
            self._add(group, amount)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(group, deque()).append((future, amount))
        if self._timer is None:  # (else the waiting ones are served when it fires)
            self._serve()
        try:
            await future
        finally:
            if not future.done():  # cancelled while waiting: its place goes
                future.cancel()

    def settle(self, group: object, delta: float) -> None:
        """:meth:`RateLimiter.settle` for a taker of ``group``, whose count moves the same."""
        self.bucket.settle(delta)
        if group in self._counts:
            self._add(group, -delta)

    def _add(self, group: object, amount: float) -> None:
        now = time.monotonic()
        self._counts[group] = (max(0.0, self._count(group, now) + amount), now)
        if len(self._counts) > MAX_SHARE_GROUPS:
            # Those of the groups not waiting go: each starts again at 0, as a new one does.
            self._counts = {g: c for g, c in self._counts.items() if g in self._waiting}

    def _serve(self) -> None:
        """Give the tokens to the waiting groups, the lowest count first, as far as they go;
        then wait for more."""
        self._timer = None
        while self._waiting:
            now = time.monotonic()
            group = min(self._waiting, key=lambda g: self._count(g, now))  # (the first of equals)
            queue = self._waiting[group]
            future, amount = queue[0]
            if future.done():  # (cancelled)
                queue.popleft()
            elif self.bucket.take(amount):
                queue.popleft()
                future.set_result(None)
                self._add(group, amount)
                self._waiting.move_to_end(group)  # its turn is over
            else:
                self._timer = asyncio.get_running_loop().call_later(self.bucket.wait_for(amount), self._serve)
                return
            if not queue:
                del self._waiting[group]
