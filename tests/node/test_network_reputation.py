"""Reputation arithmetic: costs add up, time forgives, fatal costs ban at once, memory is bounded.

The FairShare tests below are of its deficit round robin (7047c05, 55c55a4). A mutation run of
2026-11-30 (mut15, /work/scratch/mut15) covered the order it replaced (bf01472's counts of
bytes had lately: every mutant killed or equivalent); the round robin itself has not been
mutation-tested yet: each of its rules has a test here that failed without it.
"""

from __future__ import annotations

import time

import pytest

from node.network import reputation
from node.network.reputation import (
    BAN_THRESHOLD,
    HALF_LIFE,
    Misbehaviour,
    RateLimiter,
    ReputationBook,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(ban_seconds: float = 60.0) -> tuple[ReputationBook, Clock]:
    b, clock = ReputationBook(ban_seconds), Clock()
    b._now = clock  # type: ignore[method-assign]
    return b, clock


def test_fatal_misbehaviour_bans_at_once_and_the_ban_ends() -> None:
    b, clock = book(ban_seconds=30)
    for what in (Misbehaviour.GARBAGE, Misbehaviour.OVERSIZE, Misbehaviour.FLOOD, Misbehaviour.BAD_BLOCK):
        assert what.cost <= BAN_THRESHOLD
        assert b.report(what.name, what) is True
        assert b.banned_for(what.name) == pytest.approx(30)
    clock.now += 31
    assert b.banned_for("GARBAGE") == 0


def test_small_costs_add_up_and_time_forgives() -> None:
    b, clock = book()
    assert b.report("p", Misbehaviour.WRONG_RESPONSE) is False
    assert b.score("p") == Misbehaviour.WRONG_RESPONSE.cost
    clock.now += HALF_LIFE
    assert b.score("p") == pytest.approx(Misbehaviour.WRONG_RESPONSE.cost / 2)
    assert b.report("p", Misbehaviour.WRONG_RESPONSE) is False  # -300 - 600 = -900: not yet
    assert b.report("p", Misbehaviour.REQUEST_TIMEOUT) is True  # -1000: banned
    assert b.banned_for("p") > 0
    assert b.score("p") == 0  # a fresh start once the ban ends


def test_tracking_is_bounded_but_fresh_ids_never_evict_a_ban(monkeypatch) -> None:
    """Review 15: charging many fresh ids forgets old scores, never a ban still running. Since
    the growth task the scores nearest zero go first: a real peer's -600 outlives 4096 charges
    of -100 (least recently charged first, it was wiped: tests/node/test_churn.py)."""
    monkeypatch.setattr(reputation, "MAX_TRACKED", 3)
    b, clock = book(ban_seconds=30)
    assert b.report("banned", Misbehaviour.GARBAGE) is True
    b.report("scored", Misbehaviour.WRONG_RESPONSE)
    for i in range(4096):  # an attacker charging fresh ids
        b.report(f"fresh-{i}", Misbehaviour.REQUEST_TIMEOUT)
    assert b.banned_for("banned") == pytest.approx(30)
    assert b.score("scored") == Misbehaviour.WRONG_RESPONSE.cost  # the scores nearest zero went
    assert b.score("fresh-0") == 0
    assert len(b._entries) <= 3
    clock.now += 31
    assert b.banned_for("banned") == 0  # the ban ends as before
    assert b.sizes()["fresh_bans"] == 0  # and is pruned


def test_a_full_settled_ban_table_drops_the_ban_that_ends_first() -> None:
    b, clock = book(ban_seconds=30)
    b.max_bans = 2
    assert b.report("a", Misbehaviour.GARBAGE, connected_for=60)
    clock.now += 1
    assert b.report("b", Misbehaviour.GARBAGE, connected_for=60)
    clock.now += 1
    assert b.report("c", Misbehaviour.GARBAGE, connected_for=60)
    assert b.sizes() == {"scores": 0, "bans": 2, "fresh_bans": 0}
    assert b.banned_for("a") == 0 and b.banned_for("b") > 0 and b.banned_for("c") > 0
    clock.now += 40  # every ban ran out: pruned before anything is evicted
    assert b.report("d", Misbehaviour.GARBAGE, connected_for=60)
    assert b.sizes()["bans"] == 1


def test_rate_limiter_allows_the_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=100.0, burst=10.0)
    assert all(limiter.take() for _ in range(10))
    assert limiter.take() is False
    time.sleep(0.05)  # about 5 tokens
    taken = sum(limiter.take() for _ in range(20))
    assert 3 <= taken <= 10  # never more than the burst, however late the sleep ends


def test_a_shared_allowance_goes_to_the_waiting_groups_in_turn() -> None:
    """FairShare: three takers of group "a" wait, then one of group "b": b's is served after
    a's second, not after all of a's (polled, the allowance went to whichever waiter woke
    first: an honest peer's address got a thirtieth of the node's answer allowance beside
    thirty peers of three others, the retest of round 9). "a", which left owing nothing,
    comes back new and goes first; then "b", never seen, in the old list, as the new list
    has had more bytes. A taker cancelled while it waits gives its place up, and settle()
    lends what a taker did not use to the next."""
    import asyncio

    async def scenario() -> list[str]:
        share = reputation.FairShare(RateLimiter(rate=200.0, burst=10.0), quantum=10.0, least=1.0)
        await share.take("a", 10.0)  # the burst: the takers below wait about 0.05 s each
        order: list[str] = []

        async def taker(name: str, group: str) -> None:
            await share.take(group, 10.0)
            order.append(name)

        tasks = [asyncio.create_task(taker(name, "a")) for name in ("a1", "a2", "a3")]
        await asyncio.sleep(0)
        gone = asyncio.create_task(taker("gone", "c"))
        tasks.append(asyncio.create_task(taker("b1", "b")))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(*tasks)
        assert gone.cancelled()
        share.settle("d", 10.0, 0.0)  # (a taker that used nothing gives it back: the next takes it at once)
        await asyncio.wait_for(share.take("d", 10.0), 0.01)
        return order

    assert asyncio.run(scenario()) == ["a1", "b1", "a2", "a3"]


def test_a_group_that_asks_now_and_then_waits_for_no_round_of_the_busy_ones() -> None:
    """Six groups keep takers waiting, each owing for the full answers it had, and six never
    seen come; "honest", which left owing nothing, comes after them all and is served after
    at most the answer in progress, not after a turn of each (RFC 8290's new flows). In
    turns, beside 30 busy addresses asking for full answers, a request for one block waited
    3.5 s, longer than a PoL fetch may take (the retest of round 9's A-N1); with addresses
    never seen counted new, fresh ones filled the new list ahead of it (round 11, F1)."""
    import asyncio

    async def scenario() -> tuple[int, list[str]]:
        share = reputation.FairShare(RateLimiter(rate=3000.0, burst=30.0), quantum=10.0, least=1.0)
        busy = ("u", "v", "w", "x", "y", "z")
        for group in busy:
            await share.take(group, 30.0)  # used whole: each owes 20
        await share.take("honest", 30.0)
        share.settle("honest", 30.0, 1.0)  # a small answer: it left owing nothing
        order: list[str] = []

        async def taker(name: str, group: str, used: float) -> None:
            await share.take(group, 30.0)
            order.append(name)
            share.settle(group, 30.0, used)

        tasks = [asyncio.create_task(taker(f"{group}{i}", group, 30.0)) for i in (2, 3) for group in busy]
        while not order:  # the busy groups' turns have begun
            await asyncio.sleep(0.001)
        tasks += [asyncio.create_task(taker(f"fresh{i}", f"fresh{i}", 30.0)) for i in range(6)]
        await asyncio.sleep(0)
        came = len(order)
        tasks.append(asyncio.create_task(taker("honest", "honest", 1.0)))
        await asyncio.gather(*tasks)
        return came, order

    came, order = asyncio.run(scenario())
    assert order.index("honest") <= came + 1, order


def test_groups_asking_for_empty_answers_all_the_time_do_not_starve_one_asking_for_full_ones() -> None:
    """Three groups keep asking for answers that use almost nothing of their reservation;
    "full" uses all of its. It is served every few answers, not after them all: given to the
    lowest count of bytes had lately, eight addresses asking for empty answers left an honest
    node's sync nothing for 38 s (round 10, T1). An answer is charged at least ``least``
    (here half a quantum: two answers a turn; the node's 64 KiB against 1 MiB: 16)."""
    import asyncio

    async def scenario() -> list[str]:
        share = reputation.FairShare(RateLimiter(rate=1000.0, burst=10.0), quantum=10.0, least=5.0)
        await share.take("other", 10.0)
        order: list[str] = []

        async def taker(name: str, group: str) -> None:
            await share.take(group, 10.0)
            order.append(name)
            share.settle(group, 10.0, 10.0 if group == "full" else 0.1)

        tasks = [asyncio.create_task(taker(f"{g}.{i}", g)) for g in ("e1", "e2", "e3") for i in range(20)]
        tasks += [asyncio.create_task(taker(f"full{i}", "full")) for i in range(1, 6)]
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(scenario())
    served = [i for i, name in enumerate(order) if name.startswith("full")]
    gaps = [b - a for a, b in zip([-1, *served], served, strict=False)]
    assert max(gaps) <= 12, order


def test_cheap_answers_of_an_old_group_let_no_more_bytes_of_new_groups_in() -> None:
    """The new list goes first only while it has had no more bytes than the old one: in turns
    by answer, each cheap answer of an old group let one full answer of a new group in, and
    an old group asking for full answers (an honest node syncing) waited for all of them
    (round 11, F4: no block #10 in 33 s). Here "sync" is served before the third of the six
    new groups' full answers."""
    import asyncio

    async def scenario() -> list[str]:
        share = reputation.FairShare(RateLimiter(rate=3000.0, burst=10.0), quantum=10.0, least=1.0)
        news = [f"n{i}" for i in range(6)]
        for group in news:  # each leaves owing nothing: new when it comes back
            await share.take(group, 10.0)
            share.settle(group, 10.0, 1.0)
        await share.take("sync", 10.0)
        share.settle("sync", 10.0, 20.0)  # it read more than it reserved: it owes, and comes back old
        await share.take("cheap", 10.0)
        share.settle("cheap", 10.0, 0.1)
        await share.take("other", 10.0)  # the burst: everything below waits for room
        order: list[str] = []

        async def taker(name: str, group: str, used: float) -> None:
            await share.take(group, 10.0)
            order.append(name)
            share.settle(group, 10.0, used)

        tasks = [asyncio.create_task(taker(f"cheap{i}", "cheap", 0.1)) for i in range(30)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(taker(group, group, 10.0)) for group in news]
        tasks.append(asyncio.create_task(taker("sync", "sync", 10.0)))
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(scenario())
    full = [name for name in order if not name.startswith("cheap")]
    assert full.index("sync") <= 2, order


def test_a_group_that_left_owing_comes_back_old() -> None:
    """A group whose answer used more than its turns gave it, back within SHARE_MEMORY_SECONDS,
    takes its turns with its debt, not first as a new one: forgetting the debt, as RFC 8290
    does (a packet's worth there, a whole answer here), let every address asking for full
    answers one at a time come back new after each, and an honest request waited behind
    them all again (measured: 2.5 s every other request beside 30 such addresses). What an
    answer did not use is given back from the debt too."""
    import asyncio

    async def scenario() -> list[str]:
        share = reputation.FairShare(RateLimiter(rate=3000.0, burst=30.0), quantum=10.0, least=1.0)
        await share.take("honest", 30.0)
        share.settle("honest", 30.0, 1.0)  # owes nothing: new when it comes back
        await share.take("other", 30.0)
        await share.take("full", 30.0)  # uses all: owes 20
        await share.take("half", 30.0)
        share.settle("half", 30.0, 15.0)  # owed 20, given back 15: owes 5
        order: list[str] = []

        async def taker(name: str, group: str) -> None:
            await share.take(group, 30.0)
            order.append(name)

        tasks = [asyncio.create_task(share.take("other", 30.0))]  # waits for room: the others queue behind
        await asyncio.sleep(0)
        for name in ("full", "half", "honest"):
            tasks.append(asyncio.create_task(taker(name, name)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["honest", "half", "full"]


def test_a_group_never_seen_starts_owing_as_if_it_had_had_a_full_answer() -> None:
    """A group never seen comes to the old list owing its reservation less a quantum, as the
    group that just had a full answer does, so it goes after one that came before it: with a
    quantum's credit each fresh address took a full answer at its first turn, while an honest
    node syncing repaid its own a quantum a turn, and the sync stalled (round 11, F4: one
    address asking for empty answers and 26 fresh addresses in turn: no block #10 in 33 s)."""
    import asyncio

    async def scenario() -> list[str]:
        share = reputation.FairShare(RateLimiter(rate=3000.0, burst=30.0), quantum=10.0, least=1.0)
        await share.take("sync", 30.0)  # used whole: owes 20
        order: list[str] = []

        async def taker(name: str) -> None:
            await share.take(name, 30.0)
            order.append(name)

        tasks = [asyncio.create_task(taker("blocker"))]  # waits for room: the others queue behind
        await asyncio.sleep(0)
        for name in ("sync", "fresh"):
            tasks.append(asyncio.create_task(taker(name)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["blocker", "sync", "fresh"]


def test_a_group_is_remembered_for_share_memory_seconds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group that left owing nothing comes back to the new list within SHARE_MEMORY_SECONDS,
    and past them to the old one, as a group never seen does (owing as if it had had a full
    answer): the memory is what lets an occasional requester go first, and it must not let
    an address that was clean once go first for good."""
    import asyncio

    monkeypatch.setattr(reputation, "SHARE_MEMORY_SECONDS", 0.2)

    async def scenario() -> tuple[bool, bool]:
        share = reputation.FairShare(RateLimiter(rate=1.0, burst=10.0), quantum=10.0, least=1.0)
        await share.take("g", 10.0)
        share.settle("g", 10.0, 1.0)  # left owing nothing; the bucket holds 9
        await share.take("other", 9.0)  # the bucket is empty: the takers below wait
        soon = asyncio.create_task(share.take("g", 10.0))
        await asyncio.sleep(0)
        recent = "g" in share._new
        soon.cancel()
        share._forget_idle()  # (g leaves again, its taker gone; remembered now)
        await asyncio.sleep(0.3)
        late = asyncio.create_task(share.take("g", 10.0))
        await asyncio.sleep(0)
        forgotten = "g" in share._old and share._deficits["g"] == 10.0 - 10.0
        late.cancel()
        return recent, forgotten

    assert asyncio.run(scenario()) == (True, True)


def test_answers_that_used_nothing_bank_no_turns() -> None:
    """What settle() gives back lifts a group's deficit (listed) or what it is remembered at
    (left) to a quantum at most: else a group asking for empty answers would bank a turn's
    credit for every answer and take many full ones in a row later."""
    import asyncio

    async def scenario() -> tuple[float, float]:
        share = reputation.FairShare(RateLimiter(rate=1.0, burst=10.0), quantum=10.0, least=0.0)
        await share.take("c", 10.0)  # served at once; it leaves the lists owing nothing
        for _ in range(15):
            share.settle("c", 1.0, 0.0)  # an answer that used nothing of its 1
        left = share._left["c"][0]
        await share.take("other", 10.0)  # (the settles gave the bucket back its burst: spent again)
        waiting = asyncio.create_task(share.take("c", 10.0))  # the bucket is empty: it waits, listed
        await asyncio.sleep(0)
        for _ in range(5):  # (5 tokens back: not yet room for it)
            share.settle("c", 1.0, 0.0)
        listed = share._deficits["c"]
        waiting.cancel()
        return left, listed

    left, listed = asyncio.run(scenario())
    assert left <= 10.0 and listed <= 10.0


def test_a_settle_gives_the_room_back_to_the_waiting_at_once() -> None:
    """Room an answer did not use goes to the next taker when it is settled, not when the
    allowance's timer would fire (before, reservations of empty answers held it until then)."""
    import asyncio

    async def scenario() -> None:
        share = reputation.FairShare(RateLimiter(rate=1.0, burst=10.0))  # 10 s to bank the burst again
        await share.take("a", 10.0)
        waiting = asyncio.create_task(share.take("b", 10.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        share.settle("a", 10.0, 0.0)  # the answer used nothing
        await asyncio.wait_for(waiting, 1.0)

    asyncio.run(scenario())


def test_a_shared_allowance_keeps_a_bounded_list_of_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups come and go; past MAX_SHARE_GROUPS, a newcomer makes those with no taker
    waiting leave the lists, and past it again the oldest of those remembered is forgotten.
    Here groups whose takers gave up."""
    import asyncio

    monkeypatch.setattr(reputation, "MAX_SHARE_GROUPS", 4)

    async def scenario() -> int:
        share = reputation.FairShare(RateLimiter(rate=1.0, burst=10.0))
        await share.take("a", 10.0)
        waiting = asyncio.create_task(share.take("w", 10.0))  # waits about 10 s
        await asyncio.sleep(0)
        for i in range(10):
            gone = asyncio.create_task(share.take(f"g{i}", 10.0))
            await asyncio.sleep(0)
            gone.cancel()
            await asyncio.sleep(0)
        count = share.count_groups()
        waiting.cancel()
        return count

    assert asyncio.run(scenario()) <= 2 * 4


def test_a_shared_allowance_remembers_the_new_lists_answers_only_until_they_are_settled() -> None:
    """Which answers came from the new list is kept until each is settled, so churn of
    addresses does not grow it."""
    import asyncio

    async def scenario() -> int:
        share = reputation.FairShare(RateLimiter(rate=1e12, burst=1e12), quantum=10.0, least=1.0)
        for i in range(100):
            group = f"g{i}"
            for _ in range(2):  # the second time it is new (it left owing nothing)
                await share.take(group, 1.0)
                share.settle(group, 1.0, 1.0)
        return len(share._from_new)

    assert asyncio.run(scenario()) == 0


def test_fresh_bans_that_ran_out_go_as_new_ones_come() -> None:
    """Before, a ban that ran out stayed until its table was full (4096) or the peer came back."""
    b, clock = book(ban_seconds=30)
    for i in range(10):
        b.report(f"old-{i}", Misbehaviour.GARBAGE)
    clock.now += 31
    b.report("new", Misbehaviour.GARBAGE)
    assert b.sizes()["fresh_bans"] == 1 and b.banned_for("new") == pytest.approx(30)


def test_a_rate_limiters_settle_gives_back_or_takes_exactly_its_delta_up_to_the_burst() -> None:
    """RateLimiter.settle (node.network.service._settle: an answer's size paid after the
    largest was taken ahead): the tokens move by the delta alone, capped at the burst, and a
    debt makes later takes wait. A rate of one token in ~30 years keeps accrual out of it."""
    from node.network.reputation import RateLimiter

    bucket = RateLimiter(1e-9, 10.0)
    assert bucket.take(5.0)
    bucket.settle(2.0)  # 7 banked
    assert bucket.take(7.0) and not bucket.take(0.5)
    bucket.settle(100.0)  # up to the burst only
    assert bucket.take(10.0) and not bucket.take(0.5)
    bucket.settle(-3.0)  # a debt of 3
    bucket.settle(3.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
