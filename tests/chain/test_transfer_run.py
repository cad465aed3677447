"""Runtime.apply_transfers (a block's runs of transfers in bulk) gives the very bits that
Runtime.apply_extrinsic gives one by one: the same receipts and events, the same state
changes in the same order, the same base reads and root, and the same error for a block
that is invalid. Each case is executed twice on the same parent state: as import executes
it, and with the bulk path switched off."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from chainkit import ALICE, BOB, CHARLIE, apply_both_ways, compute_funded_spec, sign

from chain import calls
from chain import runtime as runtime_module
from chain.block import Block, Body, decode_block
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256
from chain.extrinsic import Era, Extrinsic
from chain.header import Header
from chain.pallets import balances
from chain.runtime import TRANSFER_INFO
from chain.storage import Database

ED = 1_000_000  # the dev chain's existential deposit (checked in the fixture)
FEE = 2_000_000  # above any transfer's fee on the dev chain (checked in the fixture)


def _key(name: str) -> Keypair:
    return Keypair.from_seed(blake2_256(b"transfer-run-" + name.encode()))


RICH = [_key(f"rich{i}") for i in range(4)]
POOR = _key("poor")  # pays fees, not much more
BROKE = _key("broke")  # cannot pay a fee
DUSTY = _key("dusty")
STAKED_DUSTY = _key("staked")  # may keep less than the ED: it has stake
STAKED_ONLY = _key("validator")  # a genesis validator that bonded all it had: free 0, nonce 0
NEW = [_key(f"new{i}") for i in range(4)]  # no account at genesis

FUNDS = {
    **{k.public: 10**15 for k in RICH},
    POOR.public: 40 * FEE + 5 * ED,
    BROKE.public: ED,  # below any fee (checked in the fixture)
    DUSTY.public: 20 * FEE + ED,
    STAKED_DUSTY.public: 20 * FEE + ED + 10**9,
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blockchain]:
    spec = compute_funded_spec("transfer-run", FUNDS, STAKED_ONLY.public)
    path = tmp_path_factory.mktemp("transfer-run")
    node = Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis)
    # Block 1: STAKED_DUSTY bonds (its nonce is 1 from then on).
    node.build_block([sign(node, STAKED_DUSTY, calls.Bond(10**9), 0)], ALICE, slot=1)
    assert balances.get_account(node.state_at(node.best_hash), STAKED_DUSTY.public).staked == 10**9
    assert node.config.existential_deposit == ED
    assert balances.get_account(node.state_at(node.best_hash), STAKED_ONLY.public) == balances.AccountInfo(0, 0, 10**9)
    assert node.config.compute_fee(0, TRANSFER_INFO.weight, 0) > ED
    assert node.config.compute_fee(300, TRANSFER_INFO.weight, 0) < FEE  # a transfer is under 300 bytes
    yield node
    node.db.close()


class Nonces:
    def __init__(self) -> None:
        self.next: dict[bytes, int] = {STAKED_DUSTY.public: 1}

    def __call__(self, who: Keypair) -> int:
        n = self.next.get(who.public, 0)
        self.next[who.public] = n + 1
        return n


def test_every_outcome_of_a_transfer_in_one_block(chain: Blockchain) -> None:
    nonce = Nonces()
    r0, r1, r2, r3 = RICH

    def transfer(key: Keypair, dest: bytes, value: int, **kw: Any) -> Extrinsic:
        return sign(chain, key, calls.Transfer(dest, value), nonce(key), **kw)

    def leave_dust(key: Keypair, dest: bytes) -> Extrinsic:
        """A transfer that would leave the sender ED / 2 after its fee (its first in the block)."""
        first = nonce(key)
        free = balances.get_account(chain.state_at(chain.best_hash), key.public).free
        probe = sign(chain, key, calls.Transfer(dest, free // 2), first)
        value = free - chain.config.compute_fee(len(probe.encode()), TRANSFER_INFO.weight, 0) - ED // 2
        xt = sign(chain, key, calls.Transfer(dest, value), first)
        assert len(xt.encode()) == len(probe.encode())
        return xt

    xts = [
        transfer(r0, NEW[0].public, 10**7),  # creates an account
        transfer(r0, r1.public, 10**9),
        transfer(r1, ALICE.public, 5 * ED, tip=7),  # to the author
        transfer(ALICE, r2.public, 10**8),  # from the author
        transfer(r2, r2.public, 10**6),  # to oneself
        transfer(r2, NEW[1].public, 0),  # nothing
        transfer(r2, r0.public, 0),  # nothing, to an account
        transfer(r2, STAKED_ONLY.public, ED - 1),  # below the ED to an account with only stake: fine
        transfer(r2, NEW[1].public, ED - 1),  # new account below the ED: fails
        transfer(POOR, r0.public, 10**12),  # more than it has: fails
        leave_dust(DUSTY, r0.public),  # would leave dust: fails
        leave_dust(STAKED_DUSTY, r0.public),  # may leave dust: it has stake
        sign(chain, r3, calls.Remark(b"between two runs"), nonce(r3)),
        transfer(r0, NEW[0].public, ED // 2),  # to an account that now exists: below the ED is fine
        transfer(NEW[0], r3.public, ED),  # from an account created in this block
        transfer(r3, BOB.public, 10**7, era=Era(0, 64)),  # mortal, alive
        transfer(POOR, CHARLIE.public, 2 * ED),
        transfer(POOR, r1.public, 3 * ED),
        transfer(r1, ALICE.public, 2 * ED),
    ]
    result = apply_both_ways(chain, xts, ALICE.public)
    assert not isinstance(result, str), result
    *_, one_by_one = result
    # The bulk path applied every transfer that succeeded; the rest went one by one.
    assert one_by_one == [4, 5, 6, 8, 9, 10, 12]


def test_the_author_sends_and_receives_in_the_same_run(chain: Blockchain) -> None:
    nonce = Nonces()
    r0, r1 = RICH[:2]
    xts = [sign(chain, r0, calls.Transfer(r1.public, 10**8), nonce(r0)),
           sign(chain, r1, calls.Transfer(r0.public, 10**7), nonce(r1)),
           sign(chain, r0, calls.Transfer(NEW[2].public, 10**7), nonce(r0))]
    *_, one_by_one = apply_both_ways(chain, xts, r1.public)
    assert one_by_one == []


def _leaving(chain: Blockchain, key: Keypair, dest: bytes, left: int, nonce: int, free: int | None = None) -> Extrinsic:
    """A transfer from ``key`` (holding ``free``, by default what it holds now) that leaves it
    exactly ``left`` after its fee."""
    if free is None:
        free = balances.get_account(chain.state_at(chain.best_hash), key.public).free
    probe = sign(chain, key, calls.Transfer(dest, max(free // 2, 1)), nonce)
    value = free - chain.config.compute_fee(len(probe.encode()), TRANSFER_INFO.weight, 0) - left
    xt = sign(chain, key, calls.Transfer(dest, value), nonce)
    assert len(xt.encode()) == len(probe.encode())
    return xt


def _fee(chain: Blockchain, xt: Extrinsic) -> int:
    return chain.config.compute_fee(len(xt.encode()), TRANSFER_INFO.weight, xt.tip)


def test_the_run_sees_the_fees_it_paid_the_author(chain: Blockchain) -> None:
    # The author (no account before the block) exists once paid the first fee, so a transfer to
    # it below the ED succeeds; it then sends all it holds, the run's fees included: both in
    # bulk, as apply_extrinsic (which pays each fee at once) applies them.
    author, (r0, r1, r2) = NEW[3], RICH[:3]
    first = sign(chain, r0, calls.Transfer(r1.public, 10**7), 0)
    dust = sign(chain, r1, calls.Transfer(author.public, ED - 1), 0)
    held = _fee(chain, first) + _fee(chain, dust) + ED - 1
    everything = _leaving(chain, author, r2.public, 0, 0, free=held)
    *_, one_by_one = apply_both_ways(chain, [first, dust, everything], author.public)
    assert one_by_one == []


def test_the_run_applies_transfers_that_leave_nothing_or_the_ed_and_refuses_dust(chain: Blockchain) -> None:
    r0, r1, r2, r3 = RICH
    xts = [
        _leaving(chain, r0, NEW[0].public, 0, 0),  # all it has: the account is emptied
        _leaving(chain, r1, NEW[1].public, ED, 0),  # exactly the ED left
        _leaving(chain, r2, r3.public, 1, 0),  # one unit of dust: fails
        _leaving(chain, r3, NEW[2].public, ED - 1, 0),  # dust: fails
    ]
    *_, one_by_one = apply_both_ways(chain, xts, ALICE.public)
    assert one_by_one == [2, 3]


def test_a_transfer_below_the_ed_to_an_account_whose_free_balance_equals_its_stake(chain: Blockchain) -> None:
    # STAKED_ONLY has nonce 0, nothing free and 10^9 staked; after the first transfer as much
    # free as staked. An account with anything, free or staked, may receive less than the ED.
    r0, r1 = RICH[:2]
    xts = [sign(chain, r0, calls.Transfer(STAKED_ONLY.public, 10**9), 0), sign(chain, r1, calls.Transfer(STAKED_ONLY.public, ED - 1), 0)]
    *_, one_by_one = apply_both_ways(chain, xts, ALICE.public)
    assert one_by_one == []


def test_a_mortal_transfer_in_the_block_of_its_birth_and_its_last(chain: Blockchain) -> None:
    r0, r1 = RICH[:2]
    number = chain.best_number + 1
    assert number >= 1
    xts = [sign(chain, r0, calls.Transfer(r1.public, 10**7), 0, era=Era(number, 4)),
           sign(chain, r1, calls.Transfer(r0.public, 10**7), 0, era=Era(number - 1, 2))]
    *_, one_by_one = apply_both_ways(chain, xts, ALICE.public)
    assert one_by_one == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [("stale nonce", "is already used"), ("future nonce", "ahead of the account nonce"), ("fee unpaid", "cannot pay the fee"),
     ("era ended", "does not cover block"), ("era not begun", "starts at block")],
)
def test_an_invalid_transfer_fails_the_block_alike(chain: Blockchain, monkeypatch: pytest.MonkeyPatch, case: str, reason: str) -> None:
    r0, r1 = RICH[:2]
    good = [sign(chain, r0, calls.Transfer(r1.public, 10**7), 0), sign(chain, r1, calls.Transfer(r0.public, 10**7), 0)]
    number = chain.best_number + 1
    bad = {
        "stale nonce": sign(chain, r0, calls.Transfer(r1.public, 10**7), 0),
        "future nonce": sign(chain, r1, calls.Transfer(r0.public, 10**7), 5),
        "fee unpaid": sign(chain, BROKE, calls.Transfer(r0.public, 1), 0),
        "era ended": sign(chain, r1, calls.Transfer(r0.public, 10**7), 1, era=Era(0, number)),
        "era not begun": sign(chain, r1, calls.Transfer(r0.public, 10**7), 1, era=Era(number + 1, 8)),
    }[case]
    message = apply_both_ways(chain, [*good, bad, *good], ALICE.public)
    assert message.startswith(f"block #{number}: extrinsic #2 is invalid: ") and reason in message


def test_random_blocks_of_transfers(chain: Blockchain) -> None:
    rng = random.Random(12)
    senders = [*RICH, POOR, DUSTY, STAKED_DUSTY, ALICE]
    values = [0, 1, ED - 1, ED, ED + 1, FEE, 10 * FEE, 19 * FEE, 10**9, 10**14, 2 * 10**15]
    for _ in range(3):
        nonce = Nonces()
        xts = []
        for _ in range(120):
            key = rng.choice(senders)
            dest = rng.choice([*senders, *NEW, BOB]).public
            if rng.random() < 0.05:
                xts.append(sign(chain, key, calls.Remark(b"x"), nonce(key)))
            else:
                xts.append(sign(chain, key, calls.Transfer(dest, rng.choice(values)), nonce(key), tip=rng.choice([0, 0, 3])))
        author = rng.choice([ALICE, RICH[0]]).public
        *_, one_by_one = apply_both_ways(chain, xts, author)
        assert len(one_by_one) < len(xts) // 2


def test_a_run_longer_than_every_read_ahead_batch(chain: Blockchain) -> None:
    # apply_transfers reads the accounts of the transfers to come in growing batches (16, 64,
    # 256, then 1024 transfers at a time): a run of 1,400 crosses every batch size, some
    # accounts first read in one batch are written in the run before the next batch is read.
    rng = random.Random(5)
    nonce = Nonces()
    dests = [*(k.public for k in (*RICH, *NEW)), BOB.public, ALICE.public]
    xts = []
    for i in range(1400):
        sender = RICH[i % 4]
        dest = rng.choice([d for d in dests if d != sender.public])
        xts.append(sign(chain, sender, calls.Transfer(dest, ED + i), nonce(sender)))
    xts[1300] = sign(chain, RICH[0], calls.Remark(b"between two runs"), xts[1300].nonce)
    *_, one_by_one = apply_both_ways(chain, xts, ALICE.public)
    assert one_by_one == [1300]


def test_a_run_that_keeps_stopping_reads_few_accounts_ahead(chain: Blockchain, monkeypatch: pytest.MonkeyPatch) -> None:
    # A block of transfers that each end the run (of nothing: applied one by one, failing) must
    # not make apply_transfers read the rest of the block ahead each time (quadratic work).
    from chain.state import Overlay

    peeked: list[int] = []
    peek_many = Overlay.peek_many

    def count(self: Overlay, keys: Any) -> Any:
        peeked.append(len(keys))
        return peek_many(self, keys)

    monkeypatch.setattr(Overlay, "peek_many", count)
    nonce = Nonces()
    # Each to another account, so that reading the whole block ahead would read 300 accounts.
    xts = [sign(chain, RICH[i % 4], calls.Transfer(blake2_256(b"%d" % i), 0), nonce(RICH[i % 4])) for i in range(300)]
    *_, one_by_one = apply_both_ways(chain, xts, ALICE.public)
    assert one_by_one == list(range(300))
    first = runtime_module._READ_AHEAD_FIRST
    assert len(peeked) == 300 and max(peeked) <= 2 * first + 1  # one first batch of accounts (and the author's) each


def test_transferred_events_are_those_emit_builds_and_receipts_are_untracked(chain: Blockchain, monkeypatch: pytest.MonkeyPatch) -> None:
    # balances.compute_transferred_event (both paths emit it) memoizes the accounts' hex forms:
    # the same event as CallContext.emit, before and after its table is emptied when full.
    # Receipts and events are untracked by the cyclic GC (gc=False: they cannot form cycles).
    import gc

    from chain.pallets.context import CallContext

    monkeypatch.setattr(balances, "_ARG_PAIRS_LIMIT", 3)
    balances._ARG_PAIRS.clear()
    ctx = CallContext(None, b"", 0, b"", 0, None, None)  # type: ignore[arg-type]
    accounts = [k.public for k in (*RICH, *NEW)]
    for i, src in enumerate(accounts * 2):
        dest = accounts[(i * 3 + 1) % len(accounts)]
        ctx.emit("balances", "Transferred", src=src, dest=dest, value=i)
        assert balances.compute_transferred_event(src, dest, i) == ctx.events[-1]
        assert len(balances._ARG_PAIRS) <= 3
    nonce = Nonces()
    xts = [sign(chain, RICH[0], calls.Transfer(NEW[0].public, ED), nonce(RICH[0]))]
    _overlay, _info, run = chain.execute_body(
        Block(Header(chain.best_hash, chain.best_number + 1, bytes(32), bytes(32), 1, ALICE.public, ()), Body(tuple(xts))),
        [xt.encode() for xt in xts], check_signatures=False,
    )
    assert run[0].success and not gc.is_tracked(run[0]) and not any(gc.is_tracked(event) for event in run[0].events)
    # Extrinsics likewise (frozen, acyclic), signed or decoded from a block's bytes.
    decoded = decode_block(Block(Header(chain.best_hash, 1, bytes(32), bytes(32), 1, ALICE.public, ()), Body(tuple(xts))).encode())
    assert not gc.is_tracked(xts[0]) and not any(gc.is_tracked(xt) for xt in decoded.body.extrinsics)
