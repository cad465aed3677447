"""Peer reputation, bans and rate limits: how misbehaviour costs a peer its connection.

After Substrate's peerset (sc-peerset): each peer has a score that misbehaviour lowers and time
restores (exponential decay toward 0, half-life :data:`HALF_LIFE`); below
:data:`BAN_THRESHOLD` the peer is disconnected and banned for ``ban_seconds``. A fatal
misbehaviour (garbage, oversize, flood, a bad block, an identity that does not verify) costs the
whole threshold at once. Scores are bounded: at most :data:`MAX_TRACKED` peers, the least
recently charged forgotten first. Bans are kept apart and never evicted by fresh ids (else
charging 4096 throwaway ids would lift any ban): a ban is only dropped once it has run out.
They stay bounded by the cost of earning one: a completed handshake and the misbehaviour,
under the per-address connection limits, for each ``ban_seconds``.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from dataclasses import dataclass

BAN_THRESHOLD = -1000.0
HALF_LIFE = 60.0
MAX_TRACKED = 4096


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

    def __init__(self, ban_seconds: float = 60.0) -> None:
        self.ban_seconds = ban_seconds
        self._now = time.monotonic
        self._entries: OrderedDict[object, _Entry] = OrderedDict()
        self._bans: dict[object, float] = {}  # peer -> monotonic time its ban ends
        self._prune_at = MAX_TRACKED

    def _entry(self, peer: object) -> _Entry:
        now = self._now()
        e = self._entries.get(peer)
        if e is None:
            e = self._entries[peer] = _Entry(0.0, now)
            while len(self._entries) > MAX_TRACKED:
                self._entries.popitem(last=False)
        else:
            e.score *= 0.5 ** ((now - e.at) / HALF_LIFE)
            e.at = now
            self._entries.move_to_end(peer)
        return e

    def score(self, peer: object) -> float:
        return self._entry(peer).score if peer in self._entries else 0.0

    def report(self, peer: object, what: Misbehaviour) -> bool:
        """Charge ``peer``; True if it is now banned (the caller disconnects it)."""
        e = self._entry(peer)
        e.score += what.cost
        if e.score <= BAN_THRESHOLD:
            now = self._now()
            if len(self._bans) >= self._prune_at:  # amortised: prune the bans that ran out
                self._bans = {p: until for p, until in self._bans.items() if until > now}
                self._prune_at = max(MAX_TRACKED, 2 * len(self._bans))
            self._bans[peer] = now + self.ban_seconds
            e.score = 0.0  # a fresh start once the ban ends
            return True
        return False

    def banned_for(self, peer: object) -> float:
        """Seconds of ban left (0 if not banned)."""
        until = self._bans.get(peer)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._bans[peer]
            return 0.0
        return left


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
