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

from rpc.connections import RateLimiter

BAN_THRESHOLD = -1000.0
HALF_LIFE = 60.0
MAX_TRACKED = 4096
MAX_BANS = 4096  # per table (settled and fresh)
#: Groups a FairShare keeps in its lists (those with a taker waiting always stay).
MAX_SHARE_GROUPS = 1024
#: Bytes a FairShare adds to a group's deficit at each of its turns (RFC 8290's quantum).
SHARE_QUANTUM = 1 << 20
#: Seconds a FairShare remembers how a group left its lists (owing, or not).
SHARE_MEMORY_SECONDS = 60.0
#: The least a FairShare charges a group's deficit for an answer, however small: an answer
#: costs the node a read and an encoding, and one that cost nothing could be had without end.
SHARE_MIN_CHARGE = 64 << 10
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


class FairShare:
    """A :class:`RateLimiter` shared by many takers: the groups waiting for it take turns by
    bytes (deficit round robin), and a group seen lately owing nothing goes first once (a
    group's own takers in order).

    The node's answer allowance (node.network.service, ``served_bytes_per_node``) is shared by
    every peer, and each answer reserves the most it may be (16 MiB) until it is read and
    settled at its size. What went wrong before:

    - polled, the allowance went to whichever waiting peer woke first: 30 peers of three
      addresses left an honest peer of a fourth a thirtieth of it and slowed its sync
      twentyfold (the retest of an outside tester's round 9);
    - in plain turns by address, every turn cost a whole reservation (1/8 s of the
      allowance) whatever the answer was to be: beside 30 addresses asking for full answers,
      a request for one block waited 3.5 s, longer than a PoL fetch may take (its retest,
      A-N1);
    - to the lowest count of bytes had lately (strict priority), eight addresses asking for
      empty answers, one of them always waiting, were always first, and an honest node's sync
      got nothing for 38 s (round 10, T1); their reservations also held the allowance until
      its next timer, as nothing woke it on a settle.

    So, after the flow queueing of FQ-CoDel (RFC 8290, section 4), by bytes:

    - a group's *deficit* grows by :data:`SHARE_QUANTUM` at each of its turns; a taker of a
      group whose deficit is positive is served (room permitting) and takes its reservation
      off; :meth:`settle` gives back what the answer did not use, charging at least
      :data:`SHARE_MIN_CHARGE` (so a turn holds at most 16 answers, however small) and up
      to a quantum (a group asking for empty answers banks no turns);
    - a group that left the lists owing nothing, within :data:`SHARE_MEMORY_SECONDS`, comes
      back to the *new* list, served before the *old* one: a small or occasional request
      waits for about the answer in progress, not for a round. After its turn a new group
      goes to the end of the old list, and it leaves the lists when a turn of its comes with
      no taker waiting: so it is new again at most once a round, and a group asking all the
      time, however little, takes its turns with the rest (RFC 8290, 4.2: what keeps new
      flows from starving old ones);
    - a group never seen (or not lately) goes to the old list, owing as if it had just had
      an answer as large as its reservation: a new address costs an attacker nothing (a
      /64, a connection), and addresses each used once, all new, filled the new list ahead
      of an honest occasional request (round 11, F1: 5.6-6.1 s, against 3.25 s in plain
      turns); and starting with a quantum's credit, each took a full answer at its first
      turn while an honest node syncing repaid its own, a quantum a turn (F4);
    - a group that left owing (its answer used more than its turns gave it) comes back to
      the old list with its debt: RFC 8290 forgets a debt of at most a packet, but here it
      is up to a whole answer, and forgotten, every address asking for full answers one at
      a time came back new after each;
    - the new list goes first only while it has had no more bytes (as settled) than the old
      one since both last had groups waiting: in turns by answer, cheap answers of one
      group let as many full answers of new groups in, and an honest node's sync stalled
      (round 11, F4; round 10's T2 was the same with every other answer new);
    - a settle wakes the turns at once, so the room an answer gave back is not left idle.

    Used on the event loop only.
    """

    __slots__ = (
        "_deficits", "_from_new", "_lead", "_left", "_new", "_old", "_queues", "_timer", "bucket", "least", "quantum",
    )

    def __init__(self, bucket: RateLimiter, quantum: float = SHARE_QUANTUM, least: float = SHARE_MIN_CHARGE) -> None:
        self.bucket = bucket
        self.quantum = quantum
        self.least = least
        self._queues: dict[object, deque[tuple[asyncio.Future[None], float]]] = {}  # each group's waiting takers
        self._new: OrderedDict[object, None] = OrderedDict()
        self._old: OrderedDict[object, None] = OrderedDict()
        self._deficits: dict[object, float] = {}  # the groups in either list
        self._left: dict[object, tuple[float, float]] = {}  # group not listed -> (its deficit then, when it left)
        self._lead = 0.0  # bytes the new list has had beyond the old one's
        self._from_new: set[object] = set()  # the groups with an answer of the new list not settled yet
        self._timer: asyncio.TimerHandle | None = None

    def count_groups(self) -> int:
        """How many groups are listed or remembered (each at most :data:`MAX_SHARE_GROUPS`
        beside the waiting ones)."""
        return len(self._deficits) + len(self._left)

    async def take(self, group: object, amount: float) -> None:
        """Return once ``amount`` tokens are taken for ``group`` (at most the bucket's burst)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        amount = min(amount, self.bucket.burst)
        self._queues.setdefault(group, deque()).append((future, amount))
        if group not in self._deficits:
            if len(self._deficits) >= MAX_SHARE_GROUPS:
                self._forget_idle()
            deficit, since = self._left.pop(group, (0.0, -SHARE_MEMORY_SECONDS))
            if time.monotonic() - since >= SHARE_MEMORY_SECONDS:
                self._old[group] = None  # never seen, or not lately: as if it had just had a full answer
                self._deficits[group] = self.quantum - amount
            elif deficit < 0:
                self._old[group] = None
                self._deficits[group] = deficit
            else:
                self._new[group] = None
                self._deficits[group] = self.quantum
        if self._timer is None:  # (else the turns go on when it fires)
            self._serve()
        try:
            await future  # (at once if served above)
        except BaseException:
            if not future.done():  # cancelled while waiting: its place goes
                future.cancel()
            elif not future.cancelled():
                # Served, then cancelled before it resumed: its caller never learns that it
                # took the tokens and would never settle them, so they go back as an answer
                # of nothing (the reservation stayed taken: mut16's finding, round 12).
                self.settle(group, amount, 0)
            raise

    def settle(self, group: object, taken: float, used: float) -> None:
        """A taker of ``group`` took ``taken`` and used ``used``: the bucket gets the rest back
        (or pays the excess: :meth:`RateLimiter.settle`), the group's deficit (or debt) as if
        it had taken at least :attr:`least` and up to a quantum; the turns go on at once
        with the room given back."""
        self.bucket.settle(taken - used)
        delta = taken - max(used, self.least)
        if group in self._from_new:  # (the set holds the groups with a new list's answer in flight only)
            self._from_new.discard(group)
            self._lead -= delta
        else:
            self._lead += delta
        deficit = self._deficits.get(group)
        if deficit is not None:
            self._deficits[group] = min(self.quantum, deficit + delta)
        elif group in self._left:
            deficit, since = self._left[group]
            self._left[group] = (min(self.quantum, deficit + delta), since)
        if self._timer is not None:
            self._timer.cancel()
            self._serve()

    def _leave(self, group: object) -> None:
        """``group`` (with no taker waiting) leaves the lists, remembered owing or not."""
        deficit = self._deficits.pop(group)
        self._queues.pop(group, None)
        if len(self._left) >= MAX_SHARE_GROUPS:
            del self._left[next(iter(self._left))]  # (the oldest)
        self._left[group] = (deficit, time.monotonic())

    def _forget_idle(self) -> None:
        """Make the listed groups with no taker waiting leave."""
        for listed in (self._new, self._old):
            for group in [g for g in listed if not any(not f.done() for f, _ in self._queues.get(g, ()))]:
                del listed[group]
                self._leave(group)

    def _serve(self) -> None:
        """Take the turns as far as the room goes; then wait for more."""
        self._timer = None
        while True:
            if not (self._old and self._new):
                self._lead = 0.0  # (bytes are weighed only while both lists wait)
            listed = self._new if self._new and self._lead <= 0 else self._old
            if not listed:
                return
            group = next(iter(listed))
            queue = self._queues.get(group)
            while queue and queue[0][0].done():  # (cancelled)
                queue.popleft()
            if not queue:
                del listed[group]
                if listed is self._new:
                    self._old[group] = None  # RFC 8290: it leaves from the old list only
                else:
                    self._leave(group)
                continue
            if self._deficits[group] <= 0:
                self._deficits[group] += self.quantum
                del listed[group]
                self._old[group] = None
                continue
            future, amount = queue[0]
            if not self.bucket.take(amount):
                self._timer = asyncio.get_running_loop().call_later(self.bucket.wait_for(amount), self._serve)
                return
            queue.popleft()
            future.set_result(None)
            self._deficits[group] -= amount
            if listed is self._new:  # (the reservation weighed now, what it did not use at settle)
                self._lead += amount
                self._from_new.add(group)
            else:
                self._lead -= amount
