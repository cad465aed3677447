"""Which inbound peer gives way to a newcomer when every slot is taken and no address holds
more than a quarter of them (node.network.service.choose_evictee, after Bitcoin Core's
src/node/eviction.cpp): 32 addresses with one idle identity each kept every slot, and an
honest newcomer was refused for good (retest44)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from netkit import RawPeer, nodes, wait_for

from chain.crypto import blake2_256
from node.network.messages import Disconnect, FinalityVotes, Status
from node.network.service import PROTECTED_EACH, USEFUL_KINDS, choose_evictee

KEY = bytes(32)
EVICTED = "evicted: every inbound slot is taken, and no new block, transaction or vote of its own lately keeps it"


def _peer(host: str, connected_at: float, **useful: float) -> SimpleNamespace:
    return SimpleNamespace(host=host, connected_at=connected_at, useful=dict(useful), name=f"{host}@{connected_at:g}")


def _keyed(peers: list[SimpleNamespace]) -> list[SimpleNamespace]:
    """The peers the keyed hash of their address keeps (PROTECTED_EACH of them)."""
    return sorted(peers, key=lambda p: blake2_256(KEY + p.host.encode()))[:PROTECTED_EACH]


def test_the_newest_peer_that_nothing_protects_is_chosen() -> None:
    """Sixteen addresses, one idle peer each: four are kept by the keyed hash, then the longest
    connected half of the other twelve; of the six left, each address holding one, the newest."""
    peers = [_peer(f"10.0.0.{i}", float(i)) for i in range(16)]
    keyed = _keyed(peers)
    rest = sorted((p for p in peers if p not in keyed), key=lambda p: p.connected_at)
    assert len(rest) == 12
    assert choose_evictee(peers, KEY) is rest[-1]  # type: ignore[arg-type]
    # Any order of the candidates gives the same choice.
    assert choose_evictee(peers[::-1], KEY) is rest[-1]  # type: ignore[arg-type]


def test_a_peer_that_gave_us_something_new_lately_is_kept() -> None:
    """The PROTECTED_EACH peers that most recently gave us a new block, transaction or vote
    are kept, each kind in turn; a fifth of one kind, less recent, is not."""
    peers = [_peer(f"10.0.0.{i}", float(i)) for i in range(40)]
    keyed = _keyed(peers)
    young = sorted((p for p in peers if p not in keyed), key=lambda p: p.connected_at)[-(PROTECTED_EACH * len(USEFUL_KINDS) + 1):]
    for n, kind in enumerate(USEFUL_KINDS):
        for j, p in enumerate(young[n * PROTECTED_EACH:(n + 1) * PROTECTED_EACH]):
            p.useful[kind] = 100.0 + j
    last = young[-1]
    last.useful["block"] = 50.0  # before every other block: the fifth, not kept for it
    chosen = choose_evictee(peers, KEY)  # type: ignore[arg-type]
    assert chosen is last
    last.useful["block"] = 200.0  # now the most recent: kept, and the least recent of the other four is not
    assert choose_evictee(peers, KEY) is young[0]  # type: ignore[arg-type]  (the newest of those left)


def test_the_address_holding_the_most_gives_way_first_and_none_when_all_are_kept() -> None:
    """Of the peers left, the newest of the address holding the most goes (of addresses
    holding as many, the one with the newest peer); with too few candidates, every one is
    kept and no one goes."""
    peers = [_peer(f"10.0.0.{i}", float(i)) for i in range(16)]
    crowd = [p for p in peers if p not in _keyed(peers)][-5:-2]  # three of the newest not kept by the hash
    for p in crowd:
        p.host = "10.9.9.9"  # one address holds three (under a quarter of 16: no hog)
    assert all(p not in _keyed(peers) for p in crowd)  # (no keyed peer of that address either)
    assert choose_evictee(peers, KEY) is crowd[-1]  # type: ignore[arg-type]  (not the newest of all, which is alone)
    # Three of the longest connected on one address: kept as the older half, not the most held.
    for p in crowd:
        p.host = f"10.0.0.{int(p.connected_at)}"
    elders = [p for p in peers if p not in _keyed(peers)][:3]
    for p in elders:
        p.host = "10.9.9.9"
    assert all(p not in _keyed(peers) for p in elders)
    assert choose_evictee(peers, KEY) is [p for p in peers if p not in _keyed(peers)][-1]  # type: ignore[arg-type]
    # Five candidates: the hash keeps four, the older half of one is none, and the fifth goes.
    five = peers[:PROTECTED_EACH + 1]
    (unkept,) = [p for p in five if p not in _keyed(five)]
    assert choose_evictee(five, KEY) is unkept  # type: ignore[arg-type]
    assert choose_evictee(peers[:PROTECTED_EACH], KEY) is None  # type: ignore[arg-type]
    assert choose_evictee([], KEY) is None


def test_the_keyed_hash_keeps_peers_whatever_their_age() -> None:
    """The four kept by the keyed hash of their address are kept even if newest: an attacker
    that cannot compute the hash cannot tell which peers it would close by connecting."""
    hosts = sorted((f"10.1.{i}.1" for i in range(16)), key=lambda h: blake2_256(KEY + h.encode()))
    peers = [_peer(h, float(16 - n)) for n, h in enumerate(hosts)]  # the first by the hash connected last
    assert choose_evictee(peers, KEY) is peers[PROTECTED_EACH]  # type: ignore[arg-type]  (the newest not kept)


async def test_with_every_inbound_slot_held_by_idle_peers_of_many_addresses_a_newcomer_gets_in(caplog) -> None:
    """Sixteen addresses with one idle identity each hold every inbound slot: a newcomer from
    another address is let in and one idle peer, not one that gave us a new vote lately, is
    closed, uncharged. Before, the newcomer was refused "no free inbound slot (16/16)" for as
    long as they stayed."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"in_peers": 16}) as (a,):
        held = [RawPeer() for _ in range(16)]
        for n, raw in enumerate(held, 2):
            assert isinstance(await raw.connect(a.addr, host=f"127.0.0.{n}"), Status)
        await wait_for(lambda: len(a.service.peers()) == 16)
        voters = held[-PROTECTED_EACH:]  # the newest, which an idle peer's eviction would close first
        for n, raw in enumerate(voters):
            await raw.send(FinalityVotes((b"vote %d" % n,)))  # counted by the handler: a new vote
        await wait_for(lambda: len(a.votes) == len(voters))
        assert all("vote" in a.service._peers[r.key.peer_id].useful for r in voters)
        comer = RawPeer()
        assert isinstance(await comer.connect(a.addr, host="127.0.0.100"), Status)
        await wait_for(lambda: EVICTED in caplog.text)
        await wait_for(lambda: len(a.service.peers()) == 16)
        now = {p.peer_id for p in a.service.peers()}
        gone = [r for r in held if r.key.peer_id not in now]
        assert len(gone) == 1 and gone[0] not in voters and comer.key.peer_id in now
        said = [m for m in await gone[0].recv_until_closed() if isinstance(m, Disconnect)]  # (after the votes relayed)
        assert [m.reason for m in said] == [EVICTED]
        assert all(a.service.reputation.score(r.key.peer_id) == 0 for r in held)
        # A newcomer from the address of the peer that would go next closes another: peers of
        # one address never evict each other (a devnet, a NAT).
        inbound = [a.service._peers[p.peer_id] for p in a.service.peers()]
        first = choose_evictee(inbound, a.service._eviction_key)
        assert first is not None
        second = choose_evictee([p for p in inbound if p.host != first.host], a.service._eviction_key)
        assert second is not None
        neighbour = RawPeer()
        assert isinstance(await neighbour.connect(a.addr, host=first.host), Status)
        await wait_for(lambda: a.service._peers.get(second.peer_id) is None)
        assert first.peer_id in {p.peer_id for p in a.service.peers()}
        for raw in (*held, comer, neighbour):
            await raw.close()


async def test_a_refused_vote_does_not_protect_its_sender() -> None:
    """Only a vote the handler counts notes its sender useful: one it refuses (a bad one,
    charged) does not."""
    async with nodes({}) as (a,):
        raw = RawPeer()
        assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: len(a.service.peers()) == 1)
        await raw.send(FinalityVotes((b"bad vote",)))
        await wait_for(lambda: a.service.reputation.score(raw.key.peer_id) < 0)
        await asyncio.sleep(0.05)
        assert a.service._peers[raw.key.peer_id].useful == {}
        await raw.send(FinalityVotes((b"good vote",)))
        await wait_for(lambda: "vote" in a.service._peers[raw.key.peer_id].useful)
        await raw.close()
