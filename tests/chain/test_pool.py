"""The transaction pool with real signed extrinsics and a nonce-table validator.

Mutation testing of 6fb0b77 (a sender's pooled extrinsics must be payable together), the same
run as tests/chain/test_block_mutants.py's docstring gives (mut17, 2026-11-30, 18:17-18:28 UTC;
in scope the mutants of the lines bf71aad..982ceb7 wrote). Tests: this file, then
tests/node/test_pool_overdraft.py. Killed/in scope, before -> after the tests added (each
watched failing on its mutants): TransactionPool._verify_payable 14/21 -> 21/21,
_compute_overdrawn 12/13 -> 13/13, _apply_drop 11/16 -> 14/16, submit (the ban message: its
overdraft line is _verify_payable's call) 1/2 -> 2/2, revalidate (the overdraft lines) 30/32 ->
32/32. Killed by:

- test_an_overdraft_counts_every_pooled_lower_nonce_and_says_by_how_much: ``before =
  entry.cost`` (the last lower nonce's cost, not their sum) and the refusal's count (``count =
  1``, ``= 1``, ``-= 1``, ``+= 2``) and shortfall (``+ balance``, ``- fee``), which no test read;
- test_a_submission_before_maintenance_counts_the_unpayable_from_the_account_nonce:
  _compute_overdrawn's ``break`` for ``continue`` below the account nonce (a submission between
  a block's write and maintenance: its spent nonces still pooled, nothing was counted);
- test_a_ready_extrinsic_dropped_as_unpayable_leaves_its_nonce_to_be_ready_again: _apply_drop
  not recomputing the chain (``was_ready = None`` in the loop, ``and``, ``!= _READY``): the
  sender's READY end stayed past the dropped nonce, and that nonce pooled again was FUTURE;
- test_bad_signature_is_invalid_and_banned_until_expiry: the ban refusal's message ``None``;
- test_a_sender_whose_extrinsics_are_all_future_on_revalidation_keeps_them: revalidate's
  ``balance = ""`` (no validity: a TypeError counting against it);
- test_revalidation_counts_the_drops_of_every_sender: ``removed = len(overdrawn)`` (the earlier
  senders' removals forgotten).

Left (equivalent):

- _apply_drop's ``was_ready = None`` before the loop: ``None or x`` is ``x``.
- _apply_drop's ``_apply_chain(queue, None)``: it drops every pooled nonce from the first
  overdrawn one on, so when one was READY the rest below it are READY without a gap: no
  promotion or demotion, and no event is appended.

No bug was found.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import msgspec
import pytest

from chain.calls import Remark, Transfer
from chain.crypto import Keypair, blake2_256, dev_keypair
from chain.errors import CodecError, FutureTransaction, InvalidTransaction, PoolError
from chain.extrinsic import MAX_EXTRINSIC_SIZE, Extrinsic, sign_extrinsic
from chain.pool import (
    DEFAULT_MAX_FUTURE_PER_SENDER,
    DEFAULT_MAX_PER_SENDER,
    TransactionPool,
    Validity,
)

GENESIS = bytes(range(32))
SPEC = 1
ALICE = dev_keypair("Alice")
BOB = dev_keypair("Bob")
CHARLIE = dev_keypair("Charlie")
DAVE = dev_keypair("Dave")
EVE = dev_keypair("Eve")


FEE = 10  # NonceTable's fee before the tip


class NonceTable:
    """A real validator: signature, payment and nonce checks against a dict of account nonces.

    A sender in ``balances`` has a free balance: its extrinsics report a fee of FEE plus the
    tip and spend a transfer's value (the pool accounts for them together); the others report
    no balance (the pool does not account for them)."""

    def __init__(self) -> None:
        self.nonces: dict[bytes, int] = {}
        self.balances: dict[bytes, int] = {}
        self.broke: set[bytes] = set()
        self.calls = 0
        self.rationed = lambda ext: isinstance(ext.call, Remark)  # (a TRAIN stands behind it in the node)

    def __call__(self, ext: Extrinsic) -> Validity:
        self.calls += 1
        ext.verify_signature(GENESIS, SPEC)
        if ext.signer in self.broke:
            raise InvalidTransaction("payment", "the signer cannot pay the fee")
        account_nonce = self.nonces.get(ext.signer, 0)
        if ext.nonce < account_nonce:
            raise InvalidTransaction("stale", f"nonce {ext.nonce} < {account_nonce}")
        balance = self.balances.get(ext.signer)
        rationed = self.rationed(ext)
        if balance is None:
            return Validity(priority=ext.tip, account_nonce=account_nonce, longevity=64, rationed=rationed)
        fee = FEE + ext.tip
        if balance < fee:
            raise InvalidTransaction("payment", f"free balance {balance} cannot pay the fee {fee}")
        spend = ext.call.value if isinstance(ext.call, Transfer) else 0
        return Validity(ext.tip, account_nonce, 64, fee=fee, spend=spend, balance=balance, rationed=rationed)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, str, bytes | None]] = []

    def __call__(self, tx_hash: bytes, status: str, data: bytes | None) -> None:
        self.events.append((tx_hash, status, data))

    def get_statuses(self, tx_hash: bytes) -> list[str]:
        return [status for h, status, _ in self.events if h == tx_hash]


def make_tx(key: Keypair, nonce: int, tip: int = 0, value: int = 1) -> bytes:
    ext = sign_extrinsic(
        key,
        Transfer(BOB.public, value),
        nonce=nonce,
        genesis_hash=GENESIS,
        spec_version=SPEC,
        tip=tip,
    )
    return ext.encode()


def make_pool(**kwargs: object) -> tuple[TransactionPool, NonceTable, Recorder]:
    table = NonceTable()
    pool = TransactionPool(table, **kwargs)  # type: ignore[arg-type]
    recorder = Recorder()
    pool.add_listener(recorder)
    return pool, table, recorder


def get_order(pool: TransactionPool) -> list[tuple[bytes, int]]:
    return [(ext.signer, ext.nonce) for ext in pool.ready()]


def verify_invariants(pool: TransactionPool, nonces: dict[bytes, int]) -> None:
    """Public-API invariants: ready() is every sender's unbroken chain from its account nonce."""
    seen: dict[bytes, int] = {}
    for ext in pool.ready():
        expected = seen.get(ext.signer, nonces.get(ext.signer, 0))
        assert ext.nonce == expected
        seen[ext.signer] = expected + 1
    status = pool.status()
    assert status.ready == sum(n - nonces.get(s, 0) for s, n in seen.items())
    assert status.ready + status.future == len(pool) == len(pool.pending())
    assert len(pool) <= pool.max_count and status.bytes <= pool.max_bytes
    assert status.bytes == sum(len(pool.get_data(e.hash()) or b"") for e in pool.pending())
    ready_bytes = sum(len(pool.get_data(h) or b"") for h, _ in pool.ready_with_hashes())
    assert pool._ready_bytes == ready_bytes  # what the FUTURE queue's byte limit is checked on
    for ext in pool.pending():
        assert pool.get_status(ext.hash()) in ("ready", "future")


# --- ready, future, promotion ---------------------------------------------------------------


def test_ready_future_and_promotion() -> None:
    pool, _, rec = make_pool()
    t0, t1, t2 = make_tx(ALICE, 0), make_tx(ALICE, 1), make_tx(ALICE, 2)
    s0 = pool.submit(t0)
    s2 = pool.submit(t2)
    assert (s0.status, s2.status) == ("ready", "future")
    assert s0.hash == Extrinsic.hash(pool.get(s0.hash))  # type: ignore[arg-type]
    assert pool.status().ready == 1 and pool.status().future == 1
    assert get_order(pool) == [(ALICE.public, 0)]
    s1 = pool.submit(t1)
    assert s1.status == "ready"
    assert pool.get_status(s2.hash) == "ready"
    assert rec.get_statuses(s2.hash) == ["future", "ready"]
    assert get_order(pool) == [(ALICE.public, n) for n in range(3)]
    assert pool.status().future == 0
    assert [e.nonce for e in pool.pending()] == [0, 1, 2]
    verify_invariants(pool, {})


def test_future_of_new_sender_with_advanced_nonce() -> None:
    pool, table, _ = make_pool()
    table.nonces[BOB.public] = 5
    assert pool.submit(make_tx(BOB, 6)).status == "future"
    assert pool.submit(make_tx(BOB, 5)).status == "ready"
    assert get_order(pool) == [(BOB.public, 5), (BOB.public, 6)]
    verify_invariants(pool, table.nonces)


def test_order_by_priority_across_senders_and_nonce_within() -> None:
    pool, _, _ = make_pool()
    pool.submit(make_tx(ALICE, 0, tip=1))
    pool.submit(make_tx(ALICE, 1, tip=100))  # high tip, but waits for Alice's nonce 0
    pool.submit(make_tx(BOB, 0, tip=50))
    pool.submit(make_tx(CHARLIE, 0, tip=10))
    pool.submit(make_tx(DAVE, 0, tip=10))  # ties go to the older submission
    assert get_order(pool) == [
        (BOB.public, 0),
        (CHARLIE.public, 0),
        (DAVE.public, 0),
        (ALICE.public, 0),
        (ALICE.public, 1),
    ]


# --- replacement and duplicates -------------------------------------------------------------


def test_replacement_needs_strictly_higher_tip() -> None:
    pool, _, rec = make_pool()
    first = pool.submit(make_tx(ALICE, 0, tip=5))
    pool.submit(make_tx(ALICE, 1, tip=5))
    for tip in (5, 4):
        with pytest.raises(PoolError) as err:
            pool.submit(make_tx(ALICE, 0, tip=tip, value=2))
        assert err.value.reason == "too_low_priority"
        assert "strictly higher" in str(err.value)
    better = pool.submit(make_tx(ALICE, 0, tip=6, value=2))
    assert better.status == "ready" and better.usurped == first.hash
    assert pool.get(first.hash) is None and len(pool) == 2
    assert (first.hash, "usurped", better.hash) in rec.events
    assert get_order(pool) == [(ALICE.public, 0), (ALICE.public, 1)]
    assert next(iter(pool.ready())).tip == 6
    # A usurped extrinsic is not banned: it is simply outbid.
    assert not pool.is_banned(first.hash)
    verify_invariants(pool, {})


def test_replacement_of_future_stays_future() -> None:
    pool, _, _ = make_pool()
    pool.submit(make_tx(ALICE, 3, tip=1))
    replaced = pool.submit(make_tx(ALICE, 3, tip=2))
    assert replaced.status == "future" and replaced.usurped is not None
    assert pool.status().future == 1 and len(pool) == 1


def test_duplicate_is_refused() -> None:
    pool, table, _ = make_pool()
    data = make_tx(ALICE, 0)
    pool.submit(data)
    calls = table.calls
    with pytest.raises(PoolError) as err:
        pool.submit(data)
    assert err.value.reason == "already_imported"
    assert table.calls == calls  # refused before validation


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"\x07\x90", "unknown codec version 7"),
        (b"\x01\xc1", "malformed bytes"),
        (b"\x01\x93\x01\x02\x03", "Extrinsic"),
    ],
)
def test_malformed_bytes_raise_codec_error(data: bytes, message: str) -> None:
    pool, _, _ = make_pool()
    with pytest.raises(CodecError, match=message):
        pool.submit(data)
    assert len(pool) == 0


def test_non_canonical_bytes_are_refused() -> None:
    pool, _, _ = make_pool()
    body = make_tx(ALICE, 0)[1:]
    # array header, signer (2 + 32 bytes), signature (2 + 64), then the nonce as a fixint 0;
    # re-encode it as a uint16 (0xcd 0x0000): the same value, a different hash.
    nonce_at = 1 + 34 + 66
    assert body[nonce_at] == 0
    padded = body[:nonce_at] + b"\xcd\x00\x00" + body[nonce_at + 1 :]
    assert msgspec.msgpack.decode(padded) == msgspec.msgpack.decode(body)
    with pytest.raises(CodecError):
        pool.submit(b"\x01" + padded)


def test_oversize_extrinsic_is_refused() -> None:
    pool, _, _ = make_pool()
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(b"\x01" + bytes(MAX_EXTRINSIC_SIZE))
    assert err.value.reason == "exhausts_resources"


def test_bad_signature_is_invalid_and_banned_until_expiry() -> None:
    clock = Clock()
    pool, table, _ = make_pool(clock=clock, ban_seconds=60)
    ext = msgspec.msgpack.decode(make_tx(ALICE, 0)[1:])
    ext[1] = bytes(64)
    forged = b"\x01" + msgspec.msgpack.encode(ext)
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(forged)
    assert err.value.reason == "bad_proof"
    calls = table.calls
    with pytest.raises(PoolError) as banned:
        pool.submit(forged)
    assert banned.value.reason == "temporarily_banned"
    assert str(banned.value) == f"extrinsic 0x{blake2_256(forged).hex()} was recently found invalid; it is banned for 60 s"
    assert table.calls == calls and pool.status().banned == 1
    clock.now += 61  # the ban expires: the bytes are validated (and refused) again
    with pytest.raises(InvalidTransaction):
        pool.submit(forged)
    assert table.calls == calls + 1


def test_stale_nonce_and_payment_are_invalid() -> None:
    pool, table, _ = make_pool()
    table.nonces[ALICE.public] = 3
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(make_tx(ALICE, 2))
    assert err.value.reason == "stale"
    table.broke.add(BOB.public)
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(make_tx(BOB, 0))
    assert err.value.reason == "payment"
    assert len(pool) == 0 and pool.status().banned == 2


def test_stale_nonce_is_refused_even_if_validator_accepts() -> None:
    pool = TransactionPool(lambda ext: Validity(0, ext.nonce + 1, 64))
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(make_tx(ALICE, 0))
    assert err.value.reason == "stale"


# --- limits ---------------------------------------------------------------------------------


def get_senders(count: int) -> list[Keypair]:
    return [Keypair.from_seed(bytes([i + 1]) * 32) for i in range(count)]


def test_full_pool_evicts_lowest_ready_or_refuses() -> None:
    pool, _, rec = make_pool(max_count=3)
    a, b, c, d, e = get_senders(5)
    low = pool.submit(make_tx(a, 0, tip=1))
    pool.submit(make_tx(b, 0, tip=2))
    pool.submit(make_tx(c, 0, tip=3))
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(d, 0, tip=1))
    assert err.value.reason == "immediately_dropped" and "max_count 3" in str(err.value)
    pool.submit(make_tx(e, 0, tip=5))
    assert pool.get(low.hash) is None and len(pool) == 3
    assert rec.get_statuses(low.hash) == ["ready", "dropped"]
    # Evicted for room, not found invalid: not banned, so its sender may resubmit the same
    # bytes (tester16's P1: evicted honest transfers were banned for 30 minutes).
    assert not pool.is_banned(low.hash)
    pool.submit(make_tx(e, 1, tip=5))
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(a, 0, tip=1))
    assert err.value.reason == "immediately_dropped"  # still too low for a full pool, not banned


def test_full_pool_evicts_future_first() -> None:
    pool, _, rec = make_pool(max_count=3)
    a, b, c, d = get_senders(4)
    pool.submit(make_tx(a, 0, tip=1))
    future = pool.submit(make_tx(b, 5, tip=9))
    pool.submit(make_tx(c, 0, tip=1))
    # A ready newcomer outranks any future one, whatever its priority.
    pool.submit(make_tx(d, 0, tip=1))
    assert pool.get(future.hash) is None
    assert rec.get_statuses(future.hash) == ["future", "dropped"]
    assert pool.status().future == 0


def test_future_newcomer_does_not_evict_ready_of_equal_priority() -> None:
    pool, _, _ = make_pool(max_count=2)
    a, b, c = get_senders(3)
    pool.submit(make_tx(a, 0, tip=4))
    pool.submit(make_tx(b, 0, tip=4))
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(c, 1, tip=4))
    assert err.value.reason == "immediately_dropped"


def test_eviction_takes_chain_tails_only() -> None:
    pool, _, _ = make_pool(max_count=3)
    a, b, c, d = get_senders(4)
    a0 = pool.submit(make_tx(a, 0, tip=1))
    a1 = pool.submit(make_tx(a, 1, tip=0))
    b0 = pool.submit(make_tx(b, 0, tip=2))
    # a0 has the lowest-but-one priority; but a1 (its dependent, the tail) goes first.
    pool.submit(make_tx(c, 0, tip=3))
    assert pool.get(a1.hash) is None and pool.get_status(a0.hash) == "ready"
    # Two evictions in one go would need a new tail (a0) after a1: exercised with bytes.
    pool.submit(make_tx(d, 0, tip=3))
    assert pool.get(a0.hash) is None and pool.get_status(b0.hash) == "ready"
    verify_invariants(pool, {})


def test_eviction_of_several_for_bytes() -> None:
    size = len(make_tx(ALICE, 0))
    pool, _, _ = make_pool(max_bytes=3 * size + 10)
    a, b = get_senders(2)
    for nonce in range(3):
        pool.submit(make_tx(a, nonce, tip=1))

    def make_remark(length: int) -> bytes:
        return sign_extrinsic(
            b, Remark(bytes(length)), nonce=0, genesis_hash=GENESIS, spec_version=SPEC, tip=2
        ).encode()

    big = make_remark(2 * size - len(make_remark(0)) - 1)
    assert size < len(big) <= 2 * size + 10
    assert pool.submit(big).status == "ready"
    # Two of a's three went (its chain shrinks from the tail), the head stays ready.
    assert get_order(pool) == [(b.public, 0), (a.public, 0)]
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(a, 1, tip=0))
    assert err.value.reason == "immediately_dropped" and "max_bytes" in str(err.value)
    verify_invariants(pool, {})


def test_extrinsic_bigger_than_pool_is_dropped() -> None:
    pool, _, _ = make_pool(max_bytes=100)
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(ALICE, 0))
    assert err.value.reason == "immediately_dropped" and "max_bytes 100" in str(err.value)


def test_per_sender_limit() -> None:
    pool, _, _ = make_pool(max_per_sender=2)
    pool.submit(make_tx(ALICE, 0))
    pool.submit(make_tx(ALICE, 1))
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(ALICE, 2))
    assert err.value.reason == "limit" and "max_per_sender 2" in str(err.value)
    assert pool.submit(make_tx(ALICE, 1, tip=1)).usurped is not None  # replacing is allowed


# --- the FUTURE queue: no lock-out, fair shares, expiry --------------------------------------


def test_future_nonces_cannot_lock_their_sender_out() -> None:
    # Issue 7 item 5: 256 future nonces (the per-sender limit) once locked their sender out for
    # good, even for the nonce that fills the gap, with a tip.
    pool, _, rec = make_pool()
    accepted, refused = [], []
    for nonce in range(1, DEFAULT_MAX_PER_SENDER + 1):
        try:
            accepted.append(pool.submit(make_tx(ALICE, nonce)).hash)
        except PoolError as exc:
            refused.append(exc)
    assert pool.submit(make_tx(ALICE, 0, tip=1)).status == "ready"
    assert len(accepted) == DEFAULT_MAX_FUTURE_PER_SENDER
    assert all(e.reason == "limit" and "max_future_per_sender 64" in str(e) for e in refused)
    assert "the next is 0" in str(refused[0])
    assert pool.status().ready == len(accepted) + 1 and pool.status().future == 0
    assert all(rec.get_statuses(h) == ["future", "ready"] for h in accepted)


def test_next_nonce_evicts_its_senders_furthest_future_at_the_sender_limit() -> None:
    pool, _, rec = make_pool(max_per_sender=4)
    futures = [pool.submit(make_tx(ALICE, n, tip=9)).hash for n in (1, 2, 3, 5)]
    assert pool.submit(make_tx(ALICE, 0)).status == "ready"
    assert rec.get_statuses(futures[-1]) == ["future", "dropped"] and not pool.is_banned(futures[-1])
    assert get_order(pool) == [(ALICE.public, n) for n in range(4)]
    # A future newcomer may push out a further one of its own sender, never a nearer one.
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(ALICE, 6))
    assert err.value.reason == "limit" and "max_per_sender 4" in str(err.value)
    verify_invariants(pool, {})


def test_next_nonce_evicts_its_own_future_when_the_pool_is_full() -> None:
    # The pool is full of the sender's own futures and another sender's ready extrinsic of
    # equal priority: the newcomer that fills the gap still gets in.
    pool, _, rec = make_pool(max_count=3)
    a1, a2 = (pool.submit(make_tx(ALICE, n)).hash for n in (1, 2))
    pool.submit(make_tx(BOB, 0))
    assert pool.submit(make_tx(ALICE, 0)).status == "ready"
    assert rec.get_statuses(a2) == ["future", "dropped"]
    assert rec.get_statuses(a1) == ["future", "ready"]
    verify_invariants(pool, {})


def test_ready_newcomer_evicts_the_worst_future_globally() -> None:
    pool, _, rec = make_pool(max_count=4)
    a, b, c, d, e, f = get_senders(6)
    pool.submit(make_tx(a, 0))
    b2 = pool.submit(make_tx(b, 2, tip=3)).hash
    b3 = pool.submit(make_tx(b, 3, tip=1)).hash
    c5 = pool.submit(make_tx(c, 5, tip=1)).hash
    # Lowest priority first, the newest of equals first; a READY newcomer evicts whatever tip.
    dropped = []
    for key in (d, e, f):
        pool.submit(make_tx(key, 0))
        dropped.append(next(h for h, status, _ in reversed(rec.events) if status == "dropped"))
    assert dropped == [c5, b3, b2] and pool.status().future == 0
    verify_invariants(pool, {})


def test_future_queue_is_shared_fairly() -> None:
    pool, _, rec = make_pool(max_future_count=4, max_future_per_sender=3)
    a, b, c, d, e = get_senders(5)
    hog = [pool.submit(make_tx(a, n, tip=5)).hash for n in (1, 2, 3)]
    pool.submit(make_tx(b, 1))
    # The queue is full; the sender holding the most futures gives up its furthest one, even
    # against a lower tip, as long as it holds more than the newcomer's sender would.
    pool.submit(make_tx(c, 1))
    pool.submit(make_tx(d, 1))
    assert [rec.get_statuses(h)[-1] for h in hog] == ["future", "dropped", "dropped"]
    # Now everyone holds one: only a strictly higher priority evicts (the worst, newest first).
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(e, 1))
    assert err.value.reason == "immediately_dropped" and "max_future_count 4" in str(err.value)
    pool.submit(make_tx(e, 1, tip=1))
    assert rec.get_statuses(blake2_256(make_tx(d, 1)))[-1] == "dropped"
    assert pool.status().future == 4
    # A READY newcomer does not need room in the FUTURE queue.
    assert pool.submit(make_tx(a, 0)).status == "ready"
    verify_invariants(pool, {})


def test_future_queue_bytes_are_shared_fairly() -> None:
    def make_remark(key: Keypair, nonce: int, length: int) -> bytes:
        return sign_extrinsic(
            key, Remark(bytes(length)), nonce=nonce, genesis_hash=GENESIS, spec_version=SPEC
        ).encode()

    big = [make_remark(ALICE, n, 1000) for n in (1, 2, 3)]
    small = make_tx(BOB, 1)
    limit = sum(map(len, big)) + len(small) - 1
    pool, _, rec = make_pool(max_future_bytes=limit)
    hashes = [pool.submit(data).hash for data in big]
    # Bob's few bytes displace the furthest of Alice's many, although the count is no issue.
    pool.submit(small)
    assert [rec.get_statuses(h)[-1] for h in hashes] == ["future", "future", "dropped"]
    with pytest.raises(PoolError) as err:
        pool.submit(make_remark(CHARLIE, 1, limit))
    assert err.value.reason == "immediately_dropped"
    assert f"more than the whole future queue (max_future_bytes {limit})" in str(err.value)
    assert pool.submit(make_remark(CHARLIE, 0, limit)).status == "ready"  # READY: no such limit
    verify_invariants(pool, {})


def test_future_extrinsics_expire_after_their_longevity() -> None:
    pool, table, rec = make_pool(future_longevity=3)
    ready = pool.submit(make_tx(ALICE, 0)).hash
    early = pool.submit(make_tx(BOB, 1)).hash  # submitted at block 0
    promoted = pool.submit(make_tx(DAVE, 1)).hash
    pool.submit(make_tx(DAVE, 0))
    saved = pool.submit(make_tx(EVE, 1)).hash
    for number in (1, 2):
        assert pool.maintain(number, []) == 0
    late = pool.submit(make_tx(CHARLIE, 1)).hash  # submitted at block 2
    # Block 3 spends Eve's nonce 0 (an extrinsic this pool never saw): her nonce 1 is READY
    # now, and stays although it waited its whole longevity.
    table.nonces[EVE.public] = 1
    assert pool.maintain(3, []) == 1
    assert rec.get_statuses(early) == ["future", "dropped"] and pool.get(early) is None
    assert pool.get_status(late) == "future"
    assert pool.maintain(4, []) == 0
    assert pool.maintain(5, []) == 1 and pool.get(late) is None
    # Not banned: the same bytes come back once their gap is being filled (a fresh clock).
    assert not pool.is_banned(early)
    assert pool.submit(make_tx(BOB, 1)).status == "future"
    assert pool.submit(make_tx(BOB, 0)).status == "ready"
    # READY extrinsics do not expire (they are revalidated after every block instead).
    assert pool.maintain(100, []) == 0
    assert pool.get_status(ready) == pool.get_status(promoted) == pool.get_status(early) == "ready"
    assert rec.get_statuses(saved) == ["future", "ready"]
    verify_invariants(pool, table.nonces)


def test_limits_must_be_positive() -> None:
    for name in ("max_count", "max_future_per_sender", "future_longevity"):
        with pytest.raises(ValueError, match=f"{name} must be a positive int, got 0"):
            TransactionPool(NonceTable(), **{name: 0})  # type: ignore[arg-type]


# --- a sender's extrinsics together: overdraft ---------------------------------------------


def test_an_extrinsic_its_balance_cannot_pay_after_its_lower_nonces_is_refused_overdraft() -> None:
    """tester16's P1: each extrinsic was checked against its sender's balance alone, so nonce 0
    could move the balance away while nonces 1.. tipped it all, each READY at the top of the
    pool and none payable. Now nonce n's fee must fit in the balance less what the sender's
    pooled nonces below n may take (fee and spend); else ``overdraft``, without a ban (the
    balance may grow), and nothing pooled changes."""
    pool, table, rec = make_pool()
    table.balances[ALICE.public] = 100
    sweep = pool.submit(make_tx(ALICE, 0, value=80))  # may take 10 + 80
    assert sweep.status == "ready"
    unpayable = make_tx(ALICE, 1, tip=5)  # its fee, 15, after 90: 105 > 100
    with pytest.raises(PoolError) as err:
        pool.submit(unpayable)
    assert err.value.reason == "overdraft"
    assert "100" in str(err.value) and "90" in str(err.value) and "15" in str(err.value)
    assert not pool.is_banned(blake2_256(unpayable)) and len(pool) == 1 and pool.status().banned == 0
    # Its own spend does not count against itself: a call that cannot spend fails in its block,
    # paying its fee, which the balance covers.
    fits = pool.submit(make_tx(ALICE, 1, value=1000))
    assert fits.status == "ready"
    # The balance grows: the very bytes refused before replace it (a strictly higher tip).
    table.balances[ALICE.public] = 200
    assert pool.submit(unpayable).usurped == fits.hash
    assert rec.get_statuses(fits.hash) == ["ready", "usurped"]
    verify_invariants(pool, {})


def test_an_overdraft_counts_every_pooled_lower_nonce_and_says_by_how_much() -> None:
    """The newcomer's fee is checked after the sum of what all its pooled lower nonces may take
    (not the last one's alone), and the refusal names the balance, the fee, how many pooled
    extrinsics from which nonce, what they may take and the shortfall."""
    pool, table, _ = make_pool()
    table.balances[ALICE.public] = 100
    for n in (0, 1):
        assert pool.submit(make_tx(ALICE, n, value=30)).status == "ready"  # may take 40 each
    with pytest.raises(PoolError) as err:
        pool.submit(make_tx(ALICE, 2, tip=15))  # its fee, 25, after 80: 105 > 100
    assert err.value.reason == "overdraft"
    assert str(err.value) == (
        "the sender's free balance 100 cannot pay this extrinsic's fee 25 after its 2 pooled "
        "extrinsics of lower nonces (from 0), which may take 80: 5 short"
    )
    assert pool.submit(make_tx(ALICE, 2, tip=10)).status == "ready"  # 20 after 80: exactly the balance


def test_a_submission_before_maintenance_counts_the_unpayable_from_the_account_nonce() -> None:
    """A block included nonces 0 and 1 but the pool has not heard of it (they are still pooled,
    below the account nonce the validator reads): a submission counts the sender's extrinsics
    from the account nonce on and skips the spent ones below it, so the later nonce the new
    one leaves unpayable is dropped."""
    pool, table, rec = make_pool()
    table.balances[ALICE.public] = 100
    for n in (0, 1):
        pool.submit(make_tx(ALICE, n))
    table.nonces[ALICE.public] = 2  # the block with nonces 0 and 1 is in the state
    table.balances[ALICE.public] = 30
    later = pool.submit(make_tx(ALICE, 3)).hash  # 11 after nothing pooled from nonce 2
    assert pool.get_status(later) == "future"
    gap = pool.submit(make_tx(ALICE, 2, value=15))  # takes 25: nonce 3's fee 10 no longer fits
    assert gap.status == "ready"
    assert rec.get_statuses(later) == ["future", "dropped"] and not pool.is_banned(later)


def test_a_lower_nonce_drops_the_later_ones_it_leaves_unpayable_without_a_ban() -> None:
    """The nonce that fills a gap, or a replacement tipping more, is checked against the nonces
    below it only; the sender's later extrinsics its cost leaves unpayable are dropped (not
    banned: the sender chose to spend the balance on the lower nonce)."""
    pool, table, rec = make_pool()
    table.balances[ALICE.public] = 100
    later = [pool.submit(make_tx(ALICE, n)).hash for n in (1, 2, 3)]  # 11 each
    assert pool.status().future == 3
    first = pool.submit(make_tx(ALICE, 0, value=60))  # 70: nonce 1 needs 80, 2 needs 91, 3 102
    assert first.status == "ready"
    assert [rec.get_statuses(h) for h in later] == [["future", "ready"], ["future", "ready"], ["future", "dropped"]]
    assert not pool.is_banned(later[2])
    # A replacement of nonce 0 taking 10 more leaves nonce 2 unpayable too.
    assert pool.submit(make_tx(ALICE, 0, tip=10, value=60)).usurped == first.hash
    assert rec.get_statuses(later[1])[-1] == "dropped" and pool.get_status(later[0]) == "ready"
    assert get_order(pool) == [(ALICE.public, 0), (ALICE.public, 1)]
    # Other senders are not counted against this one's balance.
    table.balances[BOB.public] = 20
    assert pool.submit(make_tx(BOB, 0)).status == "ready"
    verify_invariants(pool, {})


def test_a_ready_extrinsic_dropped_as_unpayable_leaves_its_nonce_to_be_ready_again() -> None:
    """A replacement whose cost leaves a READY later nonce unpayable drops it and ends the
    sender's READY chain before it: the same nonce, pooled again once the balance pays it, is
    READY at once (not FUTURE, waiting on a nonce that is pooled)."""
    pool, table, rec = make_pool()
    table.balances[ALICE.public] = 100
    hashes = [pool.submit(make_tx(ALICE, n)).hash for n in range(3)]  # 11 each
    assert [pool.get_status(h) for h in hashes] == ["ready"] * 3
    pool.submit(make_tx(ALICE, 0, tip=10, value=60))  # 80: nonce 1 needs 90, nonce 2 101
    assert rec.get_statuses(hashes[2]) == ["ready", "dropped"]
    table.balances[ALICE.public] = 200
    assert pool.submit(make_tx(ALICE, 2)).status == "ready"
    assert get_order(pool) == [(ALICE.public, 0), (ALICE.public, 1), (ALICE.public, 2)]
    verify_invariants(pool, {})


def test_revalidation_drops_what_the_new_balance_cannot_pay() -> None:
    """After a block the balance is read again and the sender's extrinsics are counted again
    from its account nonce: those the balance no longer pays after the ones before them are
    dropped, not banned, and pooled again once the balance covers them."""
    pool, table, rec = make_pool()
    table.balances[ALICE.public] = 100
    hashes = [pool.submit(make_tx(ALICE, n)).hash for n in range(4)]  # 11 each
    table.balances[ALICE.public] = 35  # spent elsewhere: nonces 0..1 need 10, 21; 2 needs 32; 3 43
    assert pool.maintain(1, []) == 1
    assert rec.get_statuses(hashes[3]) == ["ready", "dropped"] and not pool.is_banned(hashes[3])
    assert [pool.get_status(h) for h in hashes[:3]] == ["ready"] * 3
    # A block includes nonce 0 (it paid 11): the rest is counted from nonce 1 on the new balance.
    table.nonces[ALICE.public] = 1
    table.balances[ALICE.public] = 24
    assert pool.maintain(2, [hashes[0]]) == 1  # nonce 0 pruned; nonce 1 needs 10, nonce 2 21
    assert pool.get_status(hashes[1]) == "ready" and pool.get_status(hashes[2]) == "ready"
    table.balances[ALICE.public] = 20
    assert pool.maintain(3, []) == 1 and pool.get_status(hashes[2]) is None
    table.balances[ALICE.public] = 100
    assert pool.submit(make_tx(ALICE, 2)).status == "ready"
    verify_invariants(pool, table.nonces)


def test_revalidation_counts_the_drops_of_every_sender() -> None:
    """revalidate returns every sender's removals: one sender's invalid extrinsic and another's
    dropped as unpayable on its new balance."""
    pool, table, rec = make_pool()
    stale = pool.submit(make_tx(BOB, 0)).hash  # Bob's balance is not accounted
    table.balances[ALICE.public] = 100
    alice = [pool.submit(make_tx(ALICE, n)).hash for n in range(2)]
    table.nonces[BOB.public] = 1  # spent by an extrinsic the pool never saw
    table.balances[ALICE.public] = 15  # nonce 1 needs 21
    assert pool.revalidate() == 2
    assert rec.get_statuses(stale)[-1] == "invalid" and rec.get_statuses(alice[1])[-1] == "dropped"
    assert pool.get_status(alice[0]) == "ready"


def test_a_sender_whose_extrinsics_are_all_future_on_revalidation_keeps_them() -> None:
    """An extrinsic the validator now calls future (an era that starts after the new best
    block, after a reorg) stays pooled; with no validity, the sender's balance is not read and
    nothing is counted against it."""
    table = NonceTable()
    later: set[bytes] = set()

    def validate(ext: Extrinsic) -> Validity:
        if ext.signer in later:
            raise FutureTransaction("the era starts after the block")
        return table(ext)

    pool = TransactionPool(validate)
    table.balances[ALICE.public] = 100
    hashes = [pool.submit(make_tx(ALICE, n)).hash for n in range(2)]
    later.add(ALICE.public)
    assert pool.revalidate() == 0
    assert [pool.get_status(h) for h in hashes] == ["ready", "ready"]


# --- blocks: prune, revalidate, report_invalid ----------------------------------------------


def test_prune_and_revalidate_after_nonces_advance() -> None:
    pool, table, rec = make_pool()
    alice = [pool.submit(make_tx(ALICE, n)).hash for n in range(3)]
    bob0 = pool.submit(make_tx(BOB, 0)).hash
    charlie1 = pool.submit(make_tx(CHARLIE, 1)).hash
    dave0 = pool.submit(make_tx(DAVE, 0)).hash
    # A block includes Alice 0 and 1; Bob's nonce 0 was spent by a transaction we never saw;
    # Charlie's nonce 0 too (so his nonce 1 becomes ready); Dave can no longer pay.
    assert pool.prune([*alice[:2], b"\x00" * 32]) == 2
    assert get_order(pool)[0] == (ALICE.public, 2)
    table.nonces.update({ALICE.public: 2, BOB.public: 1, CHARLIE.public: 1})
    table.broke.add(DAVE.public)
    assert pool.revalidate() == 2
    assert pool.get(bob0) is None and pool.is_banned(bob0)
    assert pool.get(dave0) is None and rec.get_statuses(dave0)[-1] == "invalid"
    assert not pool.is_banned(alice[0])  # included, not invalid
    assert pool.get_status(charlie1) == "ready"
    assert rec.get_statuses(charlie1) == ["future", "ready"]
    assert sorted(get_order(pool)) == sorted([(ALICE.public, 2), (CHARLIE.public, 1)])
    verify_invariants(pool, table.nonces)


def test_prune_drops_other_extrinsics_with_spent_nonce() -> None:
    pool, _, rec = make_pool()
    pool.submit(make_tx(ALICE, 0, tip=1))
    mine = pool.submit(make_tx(ALICE, 1, tip=1)).hash
    pool.submit(make_tx(ALICE, 2, tip=1))
    # Pretend the block took nonce 2 (it carried its own 0 and 1): ours are spent.
    included = next(e for e in pool.pending() if e.nonce == 2).hash()
    assert pool.prune([included]) == 3
    assert len(pool) == 0 and rec.get_statuses(mine)[-1] == "invalid"


def test_revalidate_demotes_on_reorg_and_updates_priority() -> None:
    pool, table, rec = make_pool()
    table.nonces[ALICE.public] = 1
    h1 = pool.submit(make_tx(ALICE, 1)).hash
    table.nonces[ALICE.public] = 0  # a reorg: nonce 0 is unspent again
    assert pool.revalidate() == 0
    assert pool.get_status(h1) == "future" and rec.get_statuses(h1) == ["ready", "future"]
    h0 = pool.submit(make_tx(ALICE, 0)).hash
    assert pool.get_status(h0) == pool.get_status(h1) == "ready"


def test_submission_between_block_write_and_maintenance_keeps_included_ones() -> None:
    # The node's worker thread writes a block (so the validator already reads the advanced
    # nonce) while the event loop still serves submissions; the pool hears of the block only
    # afterwards. A submission in that window once rebased the sender onto the new nonce and
    # reported the block's own extrinsics "invalid" (and banned them) before prune could
    # recognise them: their watchers were told "invalid" for included transactions.
    pool, table, rec = make_pool()
    included = [pool.submit(make_tx(ALICE, n)).hash for n in range(2)]
    table.nonces[ALICE.public] = 2  # the block with Alice 0 and 1 is in the state
    later = pool.submit(make_tx(ALICE, 2))
    assert [rec.get_statuses(h) for h in included] == [["ready"], ["ready"]]  # not "invalid"
    assert [pool.get_status(h) for h in included] == ["ready", "ready"]
    assert later.status == "ready"
    # Not the same bytes, but a spent nonce: stale, as the state says.
    with pytest.raises(InvalidTransaction) as err:
        pool.submit(make_tx(ALICE, 1, tip=5))
    assert err.value.reason == "stale"
    pool.prune(included)
    pool.revalidate()
    for h in included:
        assert rec.get_statuses(h) == ["ready"]  # then "inBlock" from the node; never "invalid"
        assert not pool.is_banned(h) and pool.get(h) is None
    assert get_order(pool) == [(ALICE.public, 2)]
    assert rec.get_statuses(later.hash) == ["ready"]
    verify_invariants(pool, table.nonces)


def test_submission_in_the_window_of_a_new_sender_and_a_gap() -> None:
    # The block spent Bob's nonces 0..2, of which the pool held only 0; nonce 3 arrives before
    # maintenance. It waits as FUTURE (the pool's Bob still starts at 0) and is promoted by it.
    pool, table, rec = make_pool()
    bob0 = pool.submit(make_tx(BOB, 0)).hash
    table.nonces.update({BOB.public: 3, CHARLIE.public: 4})
    bob3 = pool.submit(make_tx(BOB, 3)).hash
    charlie4 = pool.submit(make_tx(CHARLIE, 4)).hash
    assert (pool.get_status(bob3), pool.get_status(charlie4)) == ("future", "ready")
    assert pool.maintain(1, [bob0]) == 1
    assert rec.get_statuses(bob0) == ["ready"] and rec.get_statuses(bob3) == ["future", "ready"]
    assert sorted(get_order(pool)) == sorted([(BOB.public, 3), (CHARLIE.public, 4)])
    verify_invariants(pool, table.nonces)


def test_report_invalid_moves_dependents_to_future() -> None:
    pool, _, rec = make_pool()
    hashes = [pool.submit(make_tx(ALICE, n)).hash for n in range(3)]
    pool.submit(make_tx(BOB, 0))
    assert pool.report_invalid(hashes[1])
    assert pool.is_banned(hashes[1]) and pool.get(hashes[1]) is None
    assert rec.get_statuses(hashes[1])[-1] == "invalid"
    assert rec.get_statuses(hashes[2])[-1] == "future"
    assert sorted(get_order(pool)) == sorted([(ALICE.public, 0), (BOB.public, 0)])
    assert not pool.report_invalid(b"\x11" * 32)


def test_report_invalid_during_ready_iteration() -> None:
    pool, _, _ = make_pool()
    for n in range(3):
        pool.submit(make_tx(ALICE, n, tip=9))
    pool.submit(make_tx(BOB, 0, tip=1))
    order = []
    for ext in pool.ready():
        order.append((ext.signer, ext.nonce))
        if ext.signer == ALICE.public and ext.nonce == 0:
            pool.report_invalid(ext.hash())
    assert order == [(ALICE.public, 0), (BOB.public, 0)]


def test_listener_errors_do_not_break_the_pool() -> None:
    pool, _, rec = make_pool()

    def broken(tx_hash: bytes, status: str, data: bytes | None) -> None:
        raise RuntimeError("watcher bug")

    pool.add_listener(broken)
    pool.submit(make_tx(ALICE, 0))
    pool.remove_listener(broken)
    assert len(pool) == 1 and len(rec.events) == 1


# --- a random walk against the invariants ---------------------------------------------------


def verify_payable(pool: TransactionPool, table: NonceTable) -> None:
    """Each accounted sender's pooled extrinsics, from its account nonce in nonce order: each
    one's fee fits in the balance after the fees and spends of those before it."""
    for key, balance in table.balances.items():
        taken = 0
        mine = sorted((e for e in pool.pending() if e.signer == key), key=lambda e: e.nonce)
        for ext in mine:
            if ext.nonce < table.nonces.get(key, 0):
                continue
            assert taken + FEE + ext.tip <= balance, (ext.nonce, taken, balance)
            assert isinstance(ext.call, Transfer)
            taken += FEE + ext.tip + ext.call.value


@pytest.mark.parametrize(("with_balances", "rationed"), [(False, False), (True, False), (True, True)])
def test_random_operations_keep_invariants(with_balances: bool, rationed: bool) -> None:
    """A random walk of submissions, invalid reports, blocks and reorgs; with balances, the
    senders' balances change at each block too (tester16's P1: overdraft and its revalidation);
    rationed, the odd nonces are of a kind the pool holds max_rationed of."""
    rng = random.Random(7)
    keys = get_senders(5)
    signed = {
        (k.public, n, tip): make_tx(k, n, tip=tip)
        for k in keys
        for n in range(8)
        for tip in range(3)
    }
    clock = Clock()
    pool, table, rec = make_pool(
        max_count=12, max_per_sender=4, max_future_per_sender=3, max_future_count=5,
        future_longevity=6, clock=clock, ban_seconds=5, max_rationed=3,
    )
    table.rationed = (lambda ext: ext.nonce % 2 == 1) if rationed else (lambda ext: False)
    number = 0
    if with_balances:
        table.balances.update({k.public: 45 for k in keys[:4]})  # keys[4] is not accounted

    def submit_any() -> None:
        key = rng.choice(keys)
        try:
            submitted = pool.submit(signed[(key.public, rng.randrange(8), rng.randrange(3))])
        except (PoolError, InvalidTransaction):
            return
        if submitted.status == "future" and submitted.usurped is None:
            # Demotions (report_invalid, a reorg) may exceed the FUTURE limits; an insertion not.
            futures = [e for e in pool.pending() if pool.get_status(e.hash()) == "future"]
            assert len(futures) <= pool.max_future_count
            assert sum(e.signer == key.public for e in futures) <= pool.max_future_per_sender

    def apply_block(hashes: Iterable[bytes]) -> None:
        nonlocal number
        chosen = list(hashes)
        for h in chosen:
            ext = pool.get(h)
            assert ext is not None
            table.nonces[ext.signer] = ext.nonce + 1
        number += 1
        if with_balances:
            for key in keys[:4]:
                table.balances[key.public] = rng.randrange(20, 70)
        mark = len(rec.events)
        for _ in range(rng.randrange(3)):  # the block is written; the pool not yet told
            submit_any()
        pool.maintain(number, chosen)
        assert not [e for e in rec.events[mark:] if e[0] in chosen and e[1] == "invalid"]

    for _ in range(600):
        op = rng.random()
        clock.now += 1
        if op < 0.7:
            submit_any()
        elif op < 0.8 and len(pool):
            pool.report_invalid(rng.choice(pool.pending()).hash())
        elif op < 0.95:
            apply_block([e.hash() for e in list(pool.ready())[: rng.randrange(4)]])
        else:
            for key in keys:  # a reorg puts nonces back
                table.nonces[key.public] = max(0, table.nonces.get(key.public, 0) - 1)
            pool.revalidate()
        verify_invariants(pool, table.nonces)
        verify_payable(pool, table)
        if rationed:  # (demotions and promotions never add one; only submissions do, within the bound)
            assert len(pool._rationed) == sum(e.nonce % 2 for e in pool.pending()) <= pool.max_rationed


def test_lazy_heaps_stay_bounded_across_blocks() -> None:
    # Every promotion pushes an eviction candidate; prune leaves the old ones behind. The pool
    # must compact them rather than grow with the number of extrinsics ever seen.
    pool, table, _ = make_pool()
    for nonce in range(2500):
        h = pool.submit(make_tx(ALICE, nonce)).hash
        table.nonces[ALICE.public] = nonce + 1
        pool.prune([h])
    assert len(pool) == 0
    assert len(pool._tail_heap) + len(pool._future_heap) <= 2 * 1024


# --- rationed kinds (TRAIN) -------------------------------------------------------------------


def make_rationed(key: Keypair, nonce: int, tip: int = 0) -> bytes:
    """A Remark, which NonceTable calls rationed (in the node, a TRAIN: MAX_TRAIN_CALLS a block)."""
    return sign_extrinsic(key, Remark(b"r"), nonce=nonce, genesis_hash=GENESIS, spec_version=SPEC, tip=tip).encode()


def test_the_pool_holds_max_rationed_of_a_kind_a_block_takes_few_of_and_room_for_the_rest() -> None:
    """retest51's F1: TRAINs failing at once in their block (only their arguments are checked
    before) held every entry of the pool while blocks took 64 of them, each paying the base fee,
    and every honest extrinsic tipping no more was refused. Now a rationed newcomer past
    max_rationed evicts only a rationed one of strictly lower priority, and the rest of the
    pool stays for the others."""
    senders = get_senders(6)
    pool, _, rec = make_pool(max_count=8, max_rationed=4)
    held = [pool.submit(make_rationed(key, 0)).hash for key in senders[:4]]
    with pytest.raises(PoolError, match=r"holds its max_rationed 4 calls of the kinds a block takes few of "
                                        r"\(TRAIN: 64 a block\) and none of lower priority than 0") as refused:
        pool.submit(make_rationed(senders[4], 0))
    assert refused.value.reason == "immediately_dropped"
    for nonce in range(4):  # the rest of the pool: others' extrinsics, tipping no more, fit beside them
        pool.submit(make_tx(senders[5], nonce))
    assert len(pool) == 8 and not [h for h, status, _ in rec.events if status == "dropped"]
    outbid = pool.submit(make_rationed(EVE, 0, tip=1))  # the pool full too: one eviction makes both rooms
    dropped = [h for h, status, _ in rec.events if status == "dropped"]
    assert dropped == [held[3]]  # the newest of the lowest priority
    assert len(pool) == 8 and len(pool._rationed) == 4 and outbid.hash in pool
    verify_invariants(pool, {})


def test_a_rationed_newcomer_evicts_no_chain_in_its_middle_nor_its_own_senders() -> None:
    pool, _, _ = make_pool(max_rationed=2)
    pool.submit(make_rationed(ALICE, 0))
    pool.submit(make_rationed(ALICE, 1))
    with pytest.raises(PoolError, match="max_rationed 2"):
        pool.submit(make_rationed(ALICE, 2, tip=9))  # its own: never
    pool.submit(make_rationed(BOB, 0, tip=5))  # evicts Alice's tail (nonce 1), not nonce 0 under it
    assert sorted((e.signer, e.nonce) for e in pool.pending()) == sorted([(ALICE.public, 0), (BOB.public, 0)])
    replaced = pool.submit(make_rationed(BOB, 0, tip=6))  # a replacement makes no room and needs none
    assert replaced.usurped is not None and len(pool._rationed) == 2
    pool.submit(make_rationed(CHARLIE, 0, tip=1))  # Alice's nonce 0 is a tail now
    assert sorted(e.signer for e in pool.pending()) == sorted([BOB.public, CHARLIE.public])



def test_a_rationed_eviction_counts_once_when_the_pool_needs_more_room_too() -> None:
    """A rationed victim that ends its sender's chain is also the pool's first candidate when the
    newcomer needs more bytes than it frees: it is evicted once, and the next tail after it."""
    alice = make_rationed(ALICE, 0)
    bob = make_tx(BOB, 0)
    big = sign_extrinsic(CHARLIE, Remark(bytes(200)), nonce=0, genesis_hash=GENESIS, spec_version=SPEC, tip=1).encode()
    pool, _, rec = make_pool(max_rationed=1, max_bytes=len(alice) + len(bob) + 100)
    pool.submit(bob)
    pool.submit(alice)  # (the newest: the pool's first candidate of the lowest priority)
    assert len(big) > len(alice) + 100
    pool.submit(big)
    assert [status for _, status, _ in rec.events if status == "dropped"] == ["dropped", "dropped"]
    assert [e.signer for e in pool.pending()] == [CHARLIE.public]
    verify_invariants(pool, {})


def test_a_replacement_by_a_rationed_call_counts_against_the_bound() -> None:
    pool, _, _ = make_pool(max_rationed=1)
    alice = pool.submit(make_rationed(ALICE, 0)).hash
    pool.submit(make_tx(BOB, 0))
    pool.submit(make_rationed(BOB, 0, tip=1))  # Bob's transfer usurped by a rationed call: Alice's goes
    assert alice not in pool and len(pool._rationed) == 1 and len(pool) == 1
