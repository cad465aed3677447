"""The transaction pool: signed extrinsics waiting for a block.

This follows Substrate's ``sc-transaction-pool`` "graph" design (``base_pool.rs``,
``ready.rs``, ``future.rs``, ``rotator.rs``), simplified from arbitrary ``requires``/
``provides`` tags to account nonces: the extrinsic with nonce ``n`` of a sender provides
``(sender, n)`` and requires ``(sender, n - 1)`` unless ``n`` is the account's nonce on chain.

- READY holds, per sender, the unbroken chain of nonces that starts at the account nonce: every
  one of them can go into the next block, in nonce order. FUTURE holds the extrinsics after a
  gap; one is promoted to READY when the gap fills (a submission, or a block advancing the
  account nonce).
- :meth:`TransactionPool.ready` is Substrate's ``BestIterator``: a heap over each sender's head,
  highest priority first, so a sender's nonce ``n + 1`` never comes before ``n``.
- The same ``(sender, nonce)`` with a strictly higher priority replaces the pooled one
  ("usurped", Substrate's ``replaces``); otherwise the newcomer is refused ``too_low_priority``.
- Limits are enforced before inserting (like ``enforce_limits``); the evicted are "dropped":

  * per sender: at most ``max_per_sender`` extrinsics, of which at most
    ``max_future_per_sender`` FUTURE. At either limit a newcomer evicts the sender's own
    furthest FUTURE extrinsic if that one's nonce is higher than its own, so the nonce that
    fills a sender's next gap always gets in: a sender cannot lock itself out with future
    nonces. Otherwise the newcomer is refused ``limit``.
  * the FUTURE queue as a whole: at most ``max_future_count`` extrinsics and
    ``max_future_bytes`` (Substrate keeps a separate, smaller future limit too). A FUTURE
    newcomer over either evicts the furthest FUTURE extrinsic of the sender holding the largest
    share of it (by count or bytes, whichever limit), if that share is larger than the
    newcomer's sender would hold with it; else the worst FUTURE one of strictly lower priority;
    else it is refused ``immediately_dropped``. So one sender cannot fill the future queue for
    everyone, by count or by bytes.
  * the pool (``max_count``, ``max_bytes``): the worst FUTURE extrinsics go first (any of them
    for a READY newcomer, only strictly lower priorities for a FUTURE one), then the worst
    READY ones that end their sender's chain (so nobody's chain is broken in the middle) of
    strictly lower priority.
- calls a block takes few of (TRAIN: MAX_TRAIN_CALLS a block; the validator says so, ``rationed``):
  at most ``max_rationed`` of them are pooled, four blocks' worth. Past it a newcomer of the kind
  evicts the one of lowest priority (strictly lower than its own) that is FUTURE or ends its
  sender's READY chain (of another sender), else it is refused ``immediately_dropped``: at the
  bound only one of its kind makes room for it (the pool's other limits then apply to it as to
  any newcomer). Blocks cannot take more sooner, and without the bound TRAINs that
  fail at once (an unknown model: only the arguments are checked before a block) held all
  8,192 entries while blocks included 64 of them, each paying the base fee: 0.136 POL a block
  kept every honest extrinsic tipping no more out of the pool, and its revalidation after each
  block held the event loop 0.3-1 s (retest51's F1, F2).
- FUTURE extrinsics expire: one still FUTURE ``future_longevity`` blocks after the block it
  was submitted at is "dropped" (Substrate's ``TransactionLongevity``, counted in blocks, so
  nothing expires on a chain that makes no blocks; a READY one stays until included or
  invalid: it is revalidated after every block). It is not banned: ed25519 signatures are
  deterministic, so a sender who fills the gap later resubmits the very same bytes.
- A sender's extrinsics are paid from one balance, so the pool counts them together (go-ethereum's
  ``legacypool``, ``ErrOverdraft``). The validator reports each extrinsic's ``fee`` (tip included,
  before refunds), its ``spend`` (what its call may move out of the sender's free balance: a
  transfer's value, a bond, a deposit...) and the sender's free ``balance``. The extrinsic with
  nonce ``n`` must be able to pay its fee after the sender's pooled extrinsics from the account
  nonce up to ``n - 1`` have taken all they may take (fee plus spend each); else it is refused
  ``overdraft``. Its own spend is not counted against it: a call that cannot spend fails in its
  block and pays its fee. Checked against the nonces below only, so the nonce that fills a gap
  (or a replacement tipping more) gets in; the sender's later extrinsics it leaves unpayable are
  "dropped". After every block :meth:`TransactionPool.revalidate` counts again on the new balance
  and drops what it no longer pays. Without this, one balance backed a sender's whole quota of
  extrinsics, each valid alone: nonce 0 moved the balance away, nonces 1.. tipped all of it, at
  the top of the pool and never payable, and 32 accounts of 1 POL kept every honest transfer out
  of the node's 8,192 entries for 0.04 POL a block (tester16's P1, round 12). Refused or dropped,
  not banned: the balance may grow, and the same bytes then pay. A validator that reports no
  balance (``None``) gets no such accounting.
- Hashes found invalid are banned for ``ban_seconds`` (``PoolRotator``), so a peer cannot make the
  node validate the same bad bytes again and again. Evicted ones are not (Substrate bans them
  too): an eviction says the pool had no room, not that the extrinsic is bad, and ed25519
  signatures are deterministic, so the ban refused the sender's resubmission of the same bytes
  for 30 minutes: an attacker that evicted honest transfers also locked them out (tester16's P1).
  A resent evicted extrinsic costs one more validation, as any new bytes would (the node's
  network also hears a hash once, node.network.service's seen set, at a rate per peer).

The pool does not know the runtime. It is given ``validate(extrinsic) -> Validity`` that checks
the signature, era, fee payment and call against the current best state and raises
:class:`~chain.errors.InvalidTransaction` for an extrinsic that can never be included; a nonce
above the account nonce is not an error for the validator, the pool files it as FUTURE.

Statuses sent to listeners (``listener(hash, status, data)``): "ready", "future", "dropped",
"invalid", "usurped" (``data`` is then the usurper's hash; None otherwise). "inBlock" and
"finalized" are sent by the node, not the pool.

Only :meth:`maintain` (after each block: :meth:`prune` the included extrinsics by hash,
:meth:`revalidate` the rest against the post-block state, expire) or its parts move a sender's
account nonce forward. A submission never does, even if its validator already sees a newer state than the pool was last
maintained for: the node's block builder writes a block in a worker thread while submissions
keep arriving, and an extrinsic below the new nonce may be one that block included; calling it
"invalid" (and banning it) would tell its watcher a lie. Maintenance sorts them out: included
ones are pruned, the others found stale.

The pool is not thread-safe: the node drives it from its one asyncio loop, and a validator or
listener must not call back into the pool.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from chain.block import MAX_TRAIN_CALLS
from chain.codec import MAX_BALANCE
from chain.crypto import blake2_256
from chain.errors import FutureTransaction, InvalidTransaction, PoolError
from chain.extrinsic import Extrinsic, decode_extrinsic
from chain.pallets import balances
from chain.pallets.items import StateAccess

log = logging.getLogger(__name__)

# Substrate's defaults: 8192 ready transactions, 20 MiB; polchain allows bigger extrinsics
# (data set chunks), hence more bytes.
DEFAULT_MAX_COUNT = 8192
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PER_SENDER = 256
# The FUTURE queue: geth's defaults (``AccountQueue`` 64 per account, ``GlobalQueue`` 1024);
# Substrate's future limit is a tenth of the ready one.
DEFAULT_MAX_FUTURE_PER_SENDER = 64
DEFAULT_MAX_FUTURE_COUNT = 1024
DEFAULT_MAX_FUTURE_BYTES = DEFAULT_MAX_BYTES // 8  # 8 MiB: room for 4 of the largest extrinsics
# Blocks a FUTURE extrinsic may wait for its nonce gap to fill: 64 blocks is 6.4 minutes at
# the default 6 s slots (Substrate's ``TransactionLongevity`` is in blocks too).
DEFAULT_FUTURE_LONGEVITY = 64
# Calls a block takes few of (chain.block.MAX_TRAIN_CALLS TRAINs): four blocks' worth pooled.
DEFAULT_MAX_RATIONED = 4 * MAX_TRAIN_CALLS
DEFAULT_BAN_SECONDS = 1800.0  # Substrate's rotator: 30 minutes
MAX_BANNED = 65536  # a bound on the ban list's memory under a flood of invalid extrinsics

PoolStatusName = Literal["ready", "future", "dropped", "invalid", "usurped"]
Status = Literal["ready", "future"]
StatusListener = Callable[[bytes, str, bytes | None], None]

_READY = 0
_FUTURE = 1
_REMOVED = 2


@dataclass(frozen=True, slots=True)
class Validity:
    """What the validator says about a valid extrinsic against the best state.

    ``priority`` orders the block builder (higher first; tip-based); ``account_nonce`` is the
    sender's next nonce on chain; ``longevity`` is how many blocks the answer stays true
    (kept for callers; the pool relies on :meth:`TransactionPool.revalidate` after every
    block instead, and expires FUTURE extrinsics by its own ``future_longevity``). ``fee``,
    ``spend`` and ``balance`` let the pool count a sender's extrinsics together (the module
    docstring, "overdraft").
    """

    priority: int
    account_nonce: int
    longevity: int
    #: What the extrinsic pays at most as its fee (tip included, before any refund); its
    #: call's ``spend`` out of the sender's free balance at most; the sender's free
    #: ``balance`` in the state validated against (None: not reported, not accounted).
    fee: int = 0
    spend: int = 0
    balance: int | None = None
    #: Its call is one a block takes few of (a TRAIN): counted against ``max_rationed``.
    rationed: bool = False


@dataclass(frozen=True, slots=True)
class Submitted:
    """The outcome of a submission: the extrinsic hash, where it was filed, what it replaced."""

    hash: bytes
    status: Status
    usurped: bytes | None = None


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """Counts and sizes, for RPC and metrics."""

    ready: int
    future: int
    bytes: int
    banned: int


class _Entry:
    """A pooled extrinsic; mutable because revalidation updates its priority and queue."""

    __slots__ = (
        "cost",
        "data",
        "extrinsic",
        "fee",
        "hash",
        "insertion_id",
        "nonce",
        "priority",
        "rationed",
        "sender",
        "state",
        "submitted_at",
    )

    def __init__(
        self,
        extrinsic: Extrinsic,
        data: bytes,
        tx_hash: bytes,
        validity: Validity,
        insertion_id: int,
        submitted_at: int,
    ) -> None:
        self.extrinsic = extrinsic
        self.data = data
        self.hash = tx_hash
        self.sender = extrinsic.signer
        self.nonce = extrinsic.nonce
        self.priority = validity.priority
        self.fee = validity.fee
        self.cost = validity.fee + validity.spend  # what it may take from its sender's balance
        self.rationed = validity.rationed
        self.insertion_id = insertion_id
        self.submitted_at = submitted_at  # the best block number when it was submitted
        self.state = _FUTURE


class _SenderQueue:
    """One sender's extrinsics by nonce; nonces in [base, ready_end) are READY."""

    __slots__ = ("base", "ready_end", "sender", "txs")

    def __init__(self, sender: bytes, base: int) -> None:
        self.sender = sender
        self.base = base
        self.ready_end = base
        self.txs: dict[int, _Entry] = {}

    def count_future(self) -> int:
        return len(self.txs) - (self.ready_end - self.base)

    def get_futures(self) -> list[_Entry]:
        """This sender's FUTURE extrinsics, nearest nonce first."""
        return sorted((e for e in self.txs.values() if e.state == _FUTURE), key=lambda e: e.nonce)


_Event = tuple[bytes, str, bytes | None]


class TransactionPool:
    """Ready and future queues of signed extrinsics, fed by ``submit`` and drained by blocks.

    Not thread-safe (see the module docstring).
    """

    def __init__(
        self,
        validate: Callable[[Extrinsic], Validity],
        *,
        max_count: int = DEFAULT_MAX_COUNT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_per_sender: int = DEFAULT_MAX_PER_SENDER,
        max_future_per_sender: int = DEFAULT_MAX_FUTURE_PER_SENDER,
        max_future_count: int = DEFAULT_MAX_FUTURE_COUNT,
        max_future_bytes: int = DEFAULT_MAX_FUTURE_BYTES,
        future_longevity: int = DEFAULT_FUTURE_LONGEVITY,
        max_rationed: int = DEFAULT_MAX_RATIONED,
        ban_seconds: float = DEFAULT_BAN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        block_number: int = 0,
    ) -> None:
        """``block_number`` is the best block the pool starts at; :meth:`maintain` moves it."""
        for name, value in (
            ("max_count", max_count), ("max_bytes", max_bytes), ("max_per_sender", max_per_sender),
            ("max_future_per_sender", max_future_per_sender),
            ("max_future_count", max_future_count), ("max_future_bytes", max_future_bytes),
            ("future_longevity", future_longevity), ("max_rationed", max_rationed),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self._validate = validate
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_per_sender = max_per_sender
        self.max_future_per_sender = max_future_per_sender
        self.max_future_count = max_future_count
        self.max_future_bytes = max_future_bytes
        self.future_longevity = future_longevity
        self.max_rationed = max_rationed
        self._rationed: set[_Entry] = set()  # the pooled extrinsics whose Validity said rationed
        self.block_number = block_number
        self.ban_seconds = ban_seconds
        self._clock = clock
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, _SenderQueue] = {}
        self._ready_count = 0
        self._ready_bytes = 0
        self._bytes = 0
        # hash -> expiry; insertion order is expiry order because ban_seconds is fixed.
        self._banned: dict[bytes, float] = {}
        # Eviction candidates as lazy min-heaps (priority, -insertion_id, entry): an item is
        # checked when it reaches the top, so moving an entry costs a push, not a search.
        self._future_heap: list[tuple[int, int, _Entry]] = []
        self._tail_heap: list[tuple[int, int, _Entry]] = []
        self._insertion_ids = itertools.count()
        self._listeners: list[StatusListener] = []

    # --- listeners -----------------------------------------------------------------------

    def add_listener(self, listener: StatusListener) -> None:
        """Call ``listener(hash, status, data)`` on every status change (see module docstring)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StatusListener) -> None:
        self._listeners.remove(listener)

    def _apply_events(self, events: list[_Event]) -> None:
        for tx_hash, status, data in events:
            for listener in tuple(self._listeners):
                try:
                    listener(tx_hash, status, data)
                except Exception:
                    # A broken watcher must not leave the pool half-updated or stop the others.
                    log.exception(
                        "transaction pool listener failed on %s %s", status, tx_hash.hex()
                    )

    # --- reads ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Extrinsic | None:
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.extrinsic

    def get_status(self, tx_hash: bytes) -> Status | None:
        """The queue of a pooled extrinsic ("ready" or "future"); None for an unknown hash."""
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return None
        return "ready" if entry.state == _READY else "future"

    def get_data(self, tx_hash: bytes) -> bytes | None:
        """The submitted bytes of a pooled extrinsic (its canonical encoding)."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.data

    def status(self) -> PoolStatus:
        ready = self._ready_count
        return PoolStatus(ready, len(self._by_hash) - ready, self._bytes, len(self._banned))

    def is_banned(self, tx_hash: bytes) -> bool:
        expiry = self._banned.get(tx_hash)
        if expiry is None:
            return False
        if self._clock() < expiry:
            return True
        del self._banned[tx_hash]
        return False

    def ready(self) -> Iterator[Extrinsic]:
        """The block builder's order: highest priority first, each sender in nonce order.

        Substrate's ``BestIterator``: a heap over each sender's head; yielding a head pushes
        that sender's next nonce. Ties go to the older submission. The iterator reads the
        pool as it goes, so :meth:`report_invalid` during the iteration stops that sender's
        later nonces (they moved to FUTURE); other mutations while iterating are not supported.
        """
        for _, extrinsic in self.ready_with_hashes():
            yield extrinsic

    def ready_with_hashes(self) -> Iterator[tuple[bytes, Extrinsic]]:
        """:meth:`ready` with each extrinsic's hash (known to the pool; no re-encoding)."""
        heap: list[tuple[int, int, _Entry]] = []
        for queue in self._senders.values():
            if queue.ready_end > queue.base:
                head = queue.txs[queue.base]
                heap.append((-head.priority, head.insertion_id, head))
        heapq.heapify(heap)
        while heap:
            entry = heapq.heappop(heap)[2]
            if entry.state != _READY:
                continue
            yield entry.hash, entry.extrinsic
            sender_queue = self._senders.get(entry.sender)
            if sender_queue is None:
                continue
            successor = sender_queue.txs.get(entry.nonce + 1)
            if successor is not None and successor.state == _READY:
                heapq.heappush(heap, (-successor.priority, successor.insertion_id, successor))

    def pending(self) -> list[Extrinsic]:
        """Every pooled extrinsic: READY in :meth:`ready` order, then FUTURE by sender and nonce.

        What the next nonce of an account is counted over (compute_next_nonce); the RPC's
        ``author_pendingExtrinsics`` lists only the ready ones, as Substrate's does.
        """
        out = list(self.ready())
        futures = [e for e in self._by_hash.values() if e.state == _FUTURE]
        futures.sort(key=lambda e: (e.sender, e.nonce))
        out.extend(e.extrinsic for e in futures)
        return out

    # --- submission ----------------------------------------------------------------------

    def submit(self, data: bytes) -> Submitted:
        """Decode, validate and file an extrinsic; return its hash and queue.

        Raises CodecError (malformed bytes), InvalidTransaction (oversize, or refused by the
        validator: the hash is then banned), or PoolError with reason "already_imported",
        "temporarily_banned", "too_low_priority", "immediately_dropped" (pool full),
        "limit" (too many from one sender) or "overdraft" (the sender's balance cannot pay its
        fee after its pooled lower nonces: not banned).
        """
        data = bytes(data)
        extrinsic = decode_extrinsic(data)
        # The bytes are canonical (decode checked), so their hash is the extrinsic's hash.
        tx_hash = blake2_256(data)
        if tx_hash in self._by_hash:
            raise PoolError(
                "already_imported", f"extrinsic 0x{tx_hash.hex()} is already in the pool"
            )
        if self.is_banned(tx_hash):
            raise PoolError(
                "temporarily_banned",
                f"extrinsic 0x{tx_hash.hex()} was recently found invalid; it is banned "
                f"for {self.ban_seconds:g} s",
            )
        validity = self._compute_validity(extrinsic, tx_hash)
        events: list[_Event] = []
        try:
            return self._apply_submit(extrinsic, data, tx_hash, validity, events)
        finally:
            self._apply_events(events)

    def _compute_validity(self, extrinsic: Extrinsic, tx_hash: bytes) -> Validity:
        try:
            validity = self._validate(extrinsic)
        except FutureTransaction:
            # Not the validator's contract (a future nonce is the pool's business), and not
            # invalid either: refuse without banning.
            raise
        except InvalidTransaction:
            self._apply_ban(tx_hash)
            raise
        if extrinsic.nonce < validity.account_nonce:
            self._apply_ban(tx_hash)
            raise InvalidTransaction(
                "stale",
                f"nonce {extrinsic.nonce} is already used (the account's next nonce is "
                f"{validity.account_nonce})",
            )
        return validity

    def _apply_submit(
        self,
        extrinsic: Extrinsic,
        data: bytes,
        tx_hash: bytes,
        validity: Validity,
        events: list[_Event],
    ) -> Submitted:
        sender = extrinsic.signer
        queue = self._senders.get(sender)
        if queue is not None and validity.account_nonce < queue.base:
            # A reorg put nonces back before the pool was maintained: nothing is spent, the
            # queue only moves down (its extrinsics wait as FUTURE). The other way round, a
            # newer state than the pool's, is left to maintain() (see the module docstring).
            self._apply_rebase(queue, validity.account_nonce, events)
            queue = self._senders.get(sender)
        nonce = extrinsic.nonce
        old = queue.txs.get(nonce) if queue is not None else None
        if old is not None and validity.priority <= old.priority:
            raise PoolError(
                "too_low_priority",
                f"an extrinsic with nonce {nonce} from this sender is already pooled with priority "
                f"{old.priority}; a replacement needs a strictly higher priority (tip), got "
                f"{validity.priority}",
            )
        if validity.balance is not None and queue is not None:
            self._verify_payable(queue, nonce, validity, validity.balance)
        entry = _Entry(
            extrinsic, data, tx_hash, validity, next(self._insertion_ids), self.block_number
        )
        would_be_ready = (
            old.state == _READY
            if old is not None
            else (nonce == (queue.ready_end if queue is not None else validity.account_nonce))
        )
        victims = self._compute_victims(entry, would_be_ready, old, queue)
        for victim in victims:  # evicted for room: not banned (module docstring)
            self._apply_remove(victim, events)
            events.append((victim.hash, "dropped", None))
        queue = self._senders.get(sender)
        if queue is None:
            queue = self._senders[sender] = _SenderQueue(sender, validity.account_nonce)
        self._by_hash[tx_hash] = entry
        self._bytes += len(data)
        if entry.rationed:
            self._rationed.add(entry)
        if old is not None:
            self._apply_replace(queue, old, entry, events)
            if validity.balance is not None:
                # Checked against the nonces below it: the later ones it leaves unpayable go.
                overdrawn = self._compute_overdrawn(queue, validity.account_nonce, validity.balance)
                self._apply_drop(queue, overdrawn, events)
        else:
            queue.txs[nonce] = entry
            if validity.balance is not None:
                # As above, before any promotion (the later ones are FUTURE: none is told
                # "ready" to be dropped at once).
                overdrawn = self._compute_overdrawn(queue, validity.account_nonce, validity.balance)
                self._apply_drop(queue, overdrawn, events)
            if nonce == queue.ready_end:
                self._apply_promotions(queue, events)
            else:
                heapq.heappush(self._future_heap, (entry.priority, -entry.insertion_id, entry))
                events.append((tx_hash, "future", None))
        self._apply_heap_compaction()
        status: Status = "ready" if entry.state == _READY else "future"
        return Submitted(tx_hash, status, old.hash if old is not None else None)

    def _verify_payable(
        self, queue: _SenderQueue, nonce: int, validity: Validity, balance: int
    ) -> None:
        """PoolError "overdraft" unless ``balance`` pays the newcomer's fee after what the
        sender's pooled extrinsics from ``validity.account_nonce`` (the state the balance was
        read in: lower ones are spent there) to ``nonce - 1`` may take. Mutates nothing."""
        before = 0
        count = 0
        for entry in queue.txs.values():
            if validity.account_nonce <= entry.nonce < nonce:
                before += entry.cost
                count += 1
        if before + validity.fee > balance:
            raise PoolError(
                "overdraft",
                f"the sender's free balance {balance} cannot pay this extrinsic's fee {validity.fee} "
                f"after its {count} pooled extrinsics of lower nonces (from {validity.account_nonce}), "
                f"which may take {before}: {before + validity.fee - balance} short"
                + (" (a TRAIN or INFER with no cap on its licence or price counts as everything: its owner may raise "
                   "either in the block)" if before >= MAX_BALANCE else ""),
            )

    def _compute_overdrawn(self, queue: _SenderQueue, start: int, balance: int) -> list[_Entry]:
        """The sender's extrinsics from the first whose fee ``balance`` cannot pay after the
        ones from nonce ``start`` before it (fee plus spend each) on, nonce order.

        From the first on: the ones after it would wait on its nonce, and a replacement for it
        is counted against the same balance.
        """
        taken = 0
        overdrawn: list[_Entry] = []
        for nonce in sorted(queue.txs):
            if nonce < start:
                continue
            entry = queue.txs[nonce]
            if overdrawn or taken + entry.fee > balance:
                overdrawn.append(entry)
            taken += entry.cost
        return overdrawn

    def _apply_drop(self, queue: _SenderQueue, entries: list[_Entry], events: list[_Event]) -> None:
        """Drop (not ban) a sender's ``entries``; recompute its chain if one was READY."""
        was_ready = False
        for entry in entries:
            was_ready = was_ready or entry.state == _READY
            self._apply_detach(queue, entry)
            events.append((entry.hash, "dropped", None))
        if was_ready:
            self._apply_chain(queue, events)

    def _apply_replace(
        self, queue: _SenderQueue, old: _Entry, new: _Entry, events: list[_Event]
    ) -> None:
        queue.txs[old.nonce] = new
        del self._by_hash[old.hash]
        self._rationed.discard(old)
        self._bytes -= len(old.data)
        self._apply_state(new, old.state)
        self._apply_state(old, _REMOVED)
        if new.state == _READY:
            if queue.ready_end == new.nonce + 1:
                heapq.heappush(self._tail_heap, (new.priority, -new.insertion_id, new))
        else:
            heapq.heappush(self._future_heap, (new.priority, -new.insertion_id, new))
        events.append((old.hash, "usurped", new.hash))
        events.append((new.hash, "ready" if new.state == _READY else "future", None))

    def _apply_promotions(self, queue: _SenderQueue, events: list[_Event]) -> None:
        """Extend the sender's READY chain from ready_end over consecutive pooled nonces."""
        n = start = queue.ready_end
        txs = queue.txs
        entry = txs.get(n)
        size = 0
        while entry is not None:  # _apply_state inlined: the hot path of every submission
            entry.state = _READY
            size += len(entry.data)
            events.append((entry.hash, "ready", None))
            n += 1
            entry = txs.get(n)
        self._ready_count += n - start
        self._ready_bytes += size
        queue.ready_end = n
        tail = txs[n - 1]
        heapq.heappush(self._tail_heap, (tail.priority, -tail.insertion_id, tail))

    # --- limits --------------------------------------------------------------------------

    def _compute_victims(
        self, new: _Entry, new_is_ready: bool, replaced: _Entry | None, queue: _SenderQueue | None
    ) -> list[_Entry]:
        """The extrinsics to evict so that ``new`` fits, or PoolError if it cannot fit.

        In order: the sender's own limits, the FUTURE queue's, then the pool's count and bytes
        (see the module docstring). A sender never evicts its own extrinsics below the
        newcomer's nonce (the newcomer may depend on them). Nothing is mutated here.
        """
        size = len(new.data)
        if size > self.max_bytes:
            raise PoolError(
                "immediately_dropped",
                f"extrinsic is {size} bytes, more than the whole pool (max_bytes {self.max_bytes})",
            )
        victims: list[_Entry] = []
        if new.rationed and (replaced is None or not replaced.rationed) and len(self._rationed) >= self.max_rationed:
            victims.append(self._find_rationed_victim(new))
        if replaced is None:
            if queue is not None and (
                len(queue.txs) >= self.max_per_sender
                or (not new_is_ready and queue.count_future() >= self.max_future_per_sender)
            ):
                victims += self._compute_sender_victims(new, new_is_ready, queue)
            if not new_is_ready and (
                len(self._by_hash) - self._ready_count >= self.max_future_count
                or self._bytes - self._ready_bytes + size > self.max_future_bytes
            ):
                victims += self._compute_future_victims(new, [v for v in victims if v.state == _FUTURE])
        count = len(self._by_hash) + 1
        total = self._bytes + size
        if victims:
            count -= len(victims)
            total -= sum(len(v.data) for v in victims)
        if replaced is not None:
            count -= 1
            total -= len(replaced.data)

        def is_fitting() -> bool:
            return count <= self.max_count and total <= self.max_bytes

        if is_fitting():
            return victims
        taken = {id(v) for v in victims}
        worst = self._iter_worst_futures()
        try:
            for victim in worst:
                if is_fitting() or (not new_is_ready and victim.priority >= new.priority):
                    break
                if id(victim) in taken or (victim.sender == new.sender and victim.nonce < new.nonce):
                    continue
                victims.append(victim)
                count -= 1
                total -= len(victim.data)
        finally:
            worst.close()

        shelved: list[tuple[int, int, _Entry]] = []
        # Tails as they would be after the evictions chosen so far: sender -> ready_end.
        simulated_end: dict[bytes, int] = {}
        heap = self._tail_heap
        while not is_fitting() and heap:
            item = heap[0]
            victim = item[2]
            sender_queue = self._senders.get(victim.sender)
            is_live = (
                victim.state == _READY
                and victim.priority == item[0]
                and sender_queue is not None
                and sender_queue.txs.get(victim.nonce) is victim
            )
            if not is_live or sender_queue is None:
                heapq.heappop(heap)
                continue
            end = simulated_end.get(victim.sender, sender_queue.ready_end)
            if victim.nonce + 1 != end:
                # Not a tail (any more): drop the item unless a simulated eviction caused it.
                heapq.heappop(heap)
                if victim.nonce + 1 == sender_queue.ready_end:
                    shelved.append(item)
                continue
            if victim.priority >= new.priority:
                break
            heapq.heappop(heap)
            shelved.append(item)
            if victim.sender == new.sender or id(victim) in taken:
                continue
            victims.append(victim)
            count -= 1
            total -= len(victim.data)
            simulated_end[victim.sender] = victim.nonce
            if victim.nonce > sender_queue.base:
                before = sender_queue.txs[victim.nonce - 1]
                heapq.heappush(heap, (before.priority, -before.insertion_id, before))
        for item in shelved:
            heapq.heappush(heap, item)

        if not is_fitting():
            if count > self.max_count:
                which = f"max_count {self.max_count} extrinsics"
            else:
                which = f"max_bytes {self.max_bytes}"
            raise PoolError(
                "immediately_dropped",
                f"the pool is full ({which}) and holds nothing of lower priority than "
                f"{new.priority} to evict",
            )
        return victims

    def _find_rationed_victim(self, new: _Entry) -> _Entry:
        """The pooled extrinsic of a rationed kind that makes room for ``new`` of that kind (the
        module docstring): the lowest priority, strictly below ``new``'s, FUTURE or the end of
        its sender's READY chain, never one of ``new``'s own sender; the newest of equals, as the
        pool's other evictions. PoolError if there is none."""
        best: _Entry | None = None
        for entry in self._rationed:
            if entry.priority >= new.priority:
                continue
            if entry.sender == new.sender:
                continue  # (its own: below the newcomer's nonce it may depend on them; above, the sender's limits choose)
            if entry.state == _READY and entry.nonce + 1 != self._senders[entry.sender].ready_end:
                continue  # (in the middle of its sender's chain: the nonces after it depend on it)
            if best is None or (entry.priority, -entry.insertion_id) < (best.priority, -best.insertion_id):
                best = entry
        if best is None:
            raise PoolError(
                "immediately_dropped",
                f"the pool holds its max_rationed {self.max_rationed} calls of the kinds a block takes few of "
                f"(TRAIN: {MAX_TRAIN_CALLS} a block) and none of lower priority than {new.priority} to evict",
            )
        return best

    def _compute_sender_victims(
        self, new: _Entry, new_is_ready: bool, queue: _SenderQueue
    ) -> list[_Entry]:
        """The sender's furthest FUTURE extrinsics that make room for ``new`` under its limits."""
        total = len(queue.txs) + 1
        future = queue.count_future() + (0 if new_is_ready else 1)
        futures = queue.get_futures()
        victims: list[_Entry] = []
        while total > self.max_per_sender or future > self.max_future_per_sender:
            if not futures or futures[-1].nonce < new.nonce:
                if total > self.max_per_sender:
                    which = f"{len(queue.txs)} extrinsics in the pool (max_per_sender {self.max_per_sender})"
                else:
                    which = (
                        f"{queue.count_future()} future extrinsics in the pool "
                        f"(max_future_per_sender {self.max_future_per_sender})"
                    )
                raise PoolError(
                    "limit",
                    f"the sender already has {which}, none with a nonce above {new.nonce} to "
                    f"make room; submit the nonces before them first (the next is {queue.ready_end})",
                )
            victims.append(futures.pop())
            total -= 1
            future -= 1
        return victims

    def _compute_future_victims(
        self, new: _Entry, taken: list[_Entry]
    ) -> list[_Entry]:
        """Room in the FUTURE queue (count and bytes) for the FUTURE newcomer ``new``.

        While a limit is exceeded: the furthest FUTURE extrinsic of the sender with the largest
        share of it (count or bytes, whichever limit) goes, if that share is larger than the
        newcomer's sender would have; else the worst one of strictly lower priority; else
        PoolError. Scans every sender's FUTURE extrinsics, but only when the queue is full.
        """
        size = len(new.data)
        if size > self.max_future_bytes:
            raise PoolError(
                "immediately_dropped",
                f"extrinsic is {size} bytes, more than the whole future queue (max_future_bytes "
                f"{self.max_future_bytes}); submit the nonces before it first",
            )
        count = len(self._by_hash) - self._ready_count + 1 - len(taken)
        total = self._bytes - self._ready_bytes + size - sum(len(v.data) for v in taken)
        if count <= self.max_future_count and total <= self.max_future_bytes:
            return []
        skip = {id(v) for v in taken}
        futures = {
            sender: [e for e in queue.get_futures() if id(e) not in skip]
            for sender, queue in self._senders.items()
            if queue.count_future()
        }
        shares = {
            sender: (len(entries), sum(len(e.data) for e in entries))
            for sender, entries in futures.items()
        }
        victims: list[_Entry] = []
        while count > self.max_future_count or total > self.max_future_bytes:
            axis = 0 if count > self.max_future_count else 1  # the share that counts
            mine = shares.get(new.sender, (0, 0))[axis] + (1, size)[axis]
            sender = max(shares, key=lambda s: shares[s][axis], default=None)
            if sender is not None and shares[sender][axis] > mine:
                victim = futures[sender].pop()
            else:
                victim = self._find_worst_future(new, skip, axis)
                futures[victim.sender].remove(victim)
            victims.append(victim)
            skip.add(id(victim))
            left = shares[victim.sender]
            shares[victim.sender] = (left[0] - 1, left[1] - len(victim.data))
            count -= 1
            total -= len(victim.data)
        return victims

    def _find_worst_future(self, new: _Entry, skip: set[int], axis: int) -> _Entry:
        """The worst FUTURE extrinsic ``new`` may evict by priority, or PoolError."""
        worst = self._iter_worst_futures()
        try:
            for victim in worst:
                if victim.priority >= new.priority:
                    break
                if id(victim) in skip or (victim.sender == new.sender and victim.nonce < new.nonce):
                    continue
                return victim
        finally:
            worst.close()
        which = (
            f"max_future_count {self.max_future_count}",
            f"max_future_bytes {self.max_future_bytes}",
        )[axis]
        raise PoolError(
            "immediately_dropped",
            f"the future queue is full ({which}); no sender holds a larger share of it than this "
            f"one would, and none has a priority below {new.priority}",
        )

    def _iter_worst_futures(self) -> Generator[_Entry, None, None]:
        """Live FUTURE extrinsics, lowest priority (then newest) first; close() when done.

        Pops the lazy heap as it goes, dropping dead items and putting live ones back on close.
        """
        heap = self._future_heap
        shelved: list[tuple[int, int, _Entry]] = []
        seen: set[int] = set()
        try:
            while heap:
                item = heapq.heappop(heap)
                entry = item[2]
                if entry.state != _FUTURE or entry.priority != item[0] or id(entry) in seen:
                    continue
                seen.add(id(entry))
                shelved.append(item)
                yield entry
        finally:
            for item in shelved:
                heapq.heappush(heap, item)

    def _apply_heap_compaction(self) -> None:
        # Lazy deletion leaves dead items behind (every promotion pushes a new tail); rebuild
        # when they outnumber the live ones, which keeps the cost amortized O(1) per push.
        limit = 2 * len(self._by_hash) + 1024
        if len(self._future_heap) > limit:
            self._future_heap = [
                (e.priority, -e.insertion_id, e)
                for e in self._by_hash.values()
                if e.state == _FUTURE
            ]
            heapq.heapify(self._future_heap)
        if len(self._tail_heap) > limit:
            self._tail_heap = []
            for queue in self._senders.values():
                if queue.ready_end > queue.base:
                    tail = queue.txs[queue.ready_end - 1]
                    self._tail_heap.append((tail.priority, -tail.insertion_id, tail))
            heapq.heapify(self._tail_heap)

    # --- removal -------------------------------------------------------------------------

    def _apply_remove(self, entry: _Entry, events: list[_Event]) -> None:
        """Remove one entry; a READY one cuts its sender's chain (later nonces go FUTURE)."""
        queue = self._senders[entry.sender]
        was_ready = entry.state == _READY
        self._apply_detach(queue, entry)
        if was_ready:
            self._apply_chain(queue, events)
        if not queue.txs:
            del self._senders[entry.sender]

    def _apply_detach(self, queue: _SenderQueue, entry: _Entry) -> None:
        """Forget one entry, leaving its sender's chain to the caller to recompute."""
        del queue.txs[entry.nonce]
        del self._by_hash[entry.hash]
        self._rationed.discard(entry)
        self._bytes -= len(entry.data)
        self._apply_state(entry, _REMOVED)

    def _apply_state(self, entry: _Entry, state: int) -> None:
        """Move an entry between READY, FUTURE and removed, keeping the READY totals."""
        if entry.state == _READY:
            self._ready_count -= 1
            self._ready_bytes -= len(entry.data)
        entry.state = state
        if state == _READY:
            self._ready_count += 1
            self._ready_bytes += len(entry.data)

    def _apply_rebase(
        self,
        queue: _SenderQueue,
        base: int,
        events: list[_Event],
        included: frozenset[bytes] = frozenset(),
    ) -> None:
        """Move a sender's queue to a new account nonce: older nonces are spent (stale)."""
        queue.base = base
        for entry in [e for e in queue.txs.values() if e.nonce < base]:
            self._apply_detach(queue, entry)
            if entry.hash not in included:
                self._apply_ban(entry.hash)
                events.append((entry.hash, "invalid", None))
        self._apply_chain(queue, events)
        if not queue.txs:
            del self._senders[queue.sender]

    def _apply_chain(self, queue: _SenderQueue, events: list[_Event]) -> None:
        """Recompute which of a sender's extrinsics are READY after a removal or rebase."""
        txs = queue.txs
        n = queue.base
        entry = txs.get(n)
        while entry is not None:
            if entry.state == _FUTURE:
                self._apply_state(entry, _READY)
                events.append((entry.hash, "ready", None))
            n += 1
            entry = txs.get(n)
        queue.ready_end = n
        for entry in txs.values():
            if entry.nonce > n and entry.state == _READY:
                self._apply_state(entry, _FUTURE)
                heapq.heappush(self._future_heap, (entry.priority, -entry.insertion_id, entry))
                events.append((entry.hash, "future", None))
        if n > queue.base:
            tail = txs[n - 1]
            heapq.heappush(self._tail_heap, (tail.priority, -tail.insertion_id, tail))

    def report_invalid(self, tx_hash: bytes) -> bool:
        """The block builder found this extrinsic invalid: remove and ban it.

        Its sender's later nonces go back to FUTURE (status "future") until the gap fills.
        Returns False for a hash not in the pool (it is banned all the same).
        """
        self._apply_ban(tx_hash)
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return False
        events: list[_Event] = []
        try:
            self._apply_remove(entry, events)
            events.insert(0, (tx_hash, "invalid", None))
        finally:
            self._apply_events(events)
        return True

    def maintain(self, block_number: int, included: Iterable[bytes]) -> int:
        """Bring the pool to a newly imported best block ``block_number``; return how many
        extrinsics left it.

        In one call, so that nothing sees the pool between the steps: :meth:`prune` the
        block's extrinsics by hash (they are not invalid, and their watchers are told
        ``inBlock`` by the node), :meth:`revalidate` the rest against the post-block state,
        then drop the extrinsics still FUTURE that outlived ``future_longevity`` (after the
        revalidation, so that one the block just made READY stays). The validator must
        already read the post-block state.
        """
        self.block_number = block_number
        removed = self.prune(included)
        removed += self.revalidate()
        removed += self._apply_expiry()
        return removed

    def _apply_expiry(self) -> int:
        """Drop every FUTURE extrinsic submitted ``future_longevity`` or more blocks ago."""
        limit = self.block_number - self.future_longevity
        expired = [e for e in self._by_hash.values() if e.state == _FUTURE and e.submitted_at <= limit]
        events: list[_Event] = []
        try:
            for entry in expired:
                self._apply_remove(entry, events)
                events.append((entry.hash, "dropped", None))
        finally:
            self._apply_events(events)
        return len(expired)

    def prune(self, included: Iterable[bytes]) -> int:
        """Remove extrinsics a newly imported block included (by hash); return how many.

        Each sender's account nonce advances past its included nonces, so its later extrinsics
        move up (promotions) and other pooled extrinsics with a spent nonce are dropped as
        "invalid". Included extrinsics are not banned, so that a reorg can resubmit them.
        Extrinsics the block included but this pool never saw are reconciled by
        :meth:`revalidate`.
        """
        included_set = frozenset(included)
        bases: dict[bytes, int] = {}
        for tx_hash in included_set:
            entry = self._by_hash.get(tx_hash)
            if entry is not None:
                bases[entry.sender] = max(bases.get(entry.sender, 0), entry.nonce + 1)
        events: list[_Event] = []
        removed = 0
        try:
            for sender, base in bases.items():
                queue = self._senders[sender]
                before = len(queue.txs)
                self._apply_rebase(queue, max(base, queue.base), events, included_set)
                removed += before - len(queue.txs)
            self._apply_heap_compaction()
        finally:
            self._apply_events(events)
        return removed

    def revalidate(self) -> int:
        """Re-run the validator on every pooled extrinsic against the new best state.

        Extrinsics now invalid (stale nonce, cannot pay, era expired...) are removed, banned and
        reported "invalid"; priorities, fees and spends are refreshed; each sender's queue is
        rebased on the account nonce the validator reports (promotions or demotions follow);
        then the ones the new balance no longer pays after those before them are "dropped"
        (not banned; module docstring, "overdraft"). Returns how many were removed. Costs one
        validation (a signature check) per pooled extrinsic.
        """
        events: list[_Event] = []
        removed = 0
        try:
            for sender in list(self._senders):
                queue = self._senders[sender]
                invalid: list[_Entry] = []
                account_nonce: int | None = None
                balance: int | None = None
                for nonce in sorted(queue.txs):
                    entry = queue.txs[nonce]
                    try:
                        validity = self._validate(entry.extrinsic)
                    except FutureTransaction:
                        continue
                    except InvalidTransaction:
                        invalid.append(entry)
                        continue
                    account_nonce = validity.account_nonce
                    balance = validity.balance
                    entry.fee = validity.fee
                    entry.cost = validity.fee + validity.spend
                    if entry.priority != validity.priority:
                        entry.priority = validity.priority
                        # Re-file under the new key; the old heap items fail their check.
                        heap = self._future_heap if entry.state == _FUTURE else self._tail_heap
                        heapq.heappush(heap, (entry.priority, -entry.insertion_id, entry))
                # Detach first and recompute the chain once, so that a sender whose nonce
                # advanced does not see its extrinsics bounce to "future" and back.
                for entry in invalid:
                    self._apply_detach(queue, entry)
                    self._apply_ban(entry.hash)
                    events.append((entry.hash, "invalid", None))
                base = queue.base if account_nonce is None else account_nonce
                if balance is not None:
                    # Counted again on the new balance from the account nonce, before the
                    # rebase (no promotion of what is dropped at once).
                    overdrawn = self._compute_overdrawn(queue, base, balance)
                    for entry in overdrawn:
                        self._apply_detach(queue, entry)
                        events.append((entry.hash, "dropped", None))
                    removed += len(overdrawn)
                before = len(queue.txs)
                self._apply_rebase(queue, base, events)
                removed += len(invalid) + before - len(queue.txs)
            self._apply_ban_expiry()
            self._apply_heap_compaction()
        finally:
            self._apply_events(events)
        return removed

    # --- bans ----------------------------------------------------------------------------

    def _apply_ban(self, tx_hash: bytes) -> None:
        self._banned.pop(tx_hash, None)  # re-insert so dict order stays expiry order
        self._banned[tx_hash] = self._clock() + self.ban_seconds
        if len(self._banned) > MAX_BANNED:
            self._apply_ban_expiry()
            while len(self._banned) > MAX_BANNED:
                del self._banned[next(iter(self._banned))]

    def _apply_ban_expiry(self) -> None:
        now = self._clock()
        expired = list(itertools.takewhile(lambda item: item[1] <= now, self._banned.items()))
        for tx_hash, _ in expired:
            del self._banned[tx_hash]


def compute_next_nonce(state: StateAccess, pending: Iterable[Extrinsic], account: bytes) -> int:
    """``account``'s nonce after its ``pending`` extrinsics that follow its nonce in ``state``
    (the best state) without a gap: Substrate's ``system_accountNextIndex``."""
    nonce = balances.get_account(state, account).nonce
    for n in sorted(xt.nonce for xt in pending if xt.signer == account):
        if n == nonce:
            nonce += 1
    return nonce
