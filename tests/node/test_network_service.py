"""NetworkServices talking over real loopback WebSockets, real Noise and real ed25519 keys.

Mutation testing of this session's p2p limits (48b57d0: Peer.recv's ping and pong branch and
_accept's ``autoping=False``; bf0ff64: NetworkService._accept and _evict_handshake), 2026-11-30,
mutmut 3.8.1, made and applied as tests/rpc/test_rpc_hardening.py's docstring gives (one mutant
at a time in a fresh ``python -m pytest -x``; a line only re-indented into the new ``else`` is
not changed: the 8 mutants of ``log.info("inbound connection from %s refused: %s", ...)`` are
left out). Tests: for peer.py ``-k "ping or flood"``, for service.py ``-k "give_way or
idle_websocket"`` (and, after, ``or ping or flood``: the autoping line). Killed/in scope, before
-> after the tests added then (each watched failing on its mutants): Peer.recv 3/6 -> 5/6,
_accept 13/32 -> 23/32, _evict_handshake 12/21 -> 15/21. Added:
test_pings_and_pongs_within_the_limit_are_answered_and_free (a ping answered, with its own
payload, and not charged: ``if self._frames.take(): raise``, ``!= PING``; RawPeer.connect's
``autoping`` in netkit.py for it); in test_stalled_handshakes_give_way_to_a_new_one the 503's
reason, the close's reason, the other stalled handshakes kept, and the one exact log line for
the evicted handshake (its address and its wording; ``ws not in self._evicted``), and a second
round once the first has unwound (a fourth stalled handshake, then a third node: the oldest of
the rest is closed; stale entries left by ``_handshaking.pop(None, None)`` or
``_evicted.discard(None)`` let it in without). Left:

- Peer.recv's ``break`` for ``continue``: the ping is answered before it, and recv then
  returns None, which the read loop takes as a message it has nothing to do with; no test tells.
- _accept's other arguments on the ``autoping=False`` line, which the commit did not change:
  ``compress=None`` (falsy as False), ``autoping=None`` (falsy as False), ``compress`` True or
  omitted (negotiated only when the client offers permessage-deflate, and our dialer sends
  ``compress=0``), ``heartbeat`` None or omitted and ``max_msg_size`` omitted (aiohttp's 4 MiB):
  not in this selection (the heartbeat's and the message size's own tests are elsewhere).
- ``self._pending_handshakes + len(self._evicted)`` in _accept and ``break`` for ``continue``
  in _evict_handshake: they differ only while an evicted handshake has not unwound, and it
  unwinds as soon as its close is sent (a test that looked for it found ``_evicted`` already
  empty when the next handshake came).
- _evict_handshake's ``now - started <= first_message_timeout`` (loop times are never equal to
  the bound), its task's name (``None``, ``"XX...XX"``, upper case: a label for logs), and the
  final ``return True``: unreachable, since with every entry evicted
  ``_pending_handshakes - len(_evicted)`` is 0, below any ``max_pending_handshakes``, and
  _accept does not call it.
- _accept's ``self._handshaking.pop(ws)`` without its default: ``ws`` is always in the table there.

Mutation testing of cabba2f (answers served as stored bytes and paced) and 6211b3a (an address
holding the inbound slots gives way), 2026-11-30, 11:15-11:35 UTC, mutmut 3.8.1, made and
applied as tests/chain/test_pallet_pol.py's docstring gives (same run, one mutant at a time in
a fresh ``python -m pytest -x``; in scope only mutants whose lines those commits added).
Tests, as node ids, each function's own first: cabba2f's this file's ``-k "bytes_we_answer or
paced or range"``, tests/node/test_network_sync.py and tests/node/test_network_messages.py
(and test_blockchain.py's ``-k bytes_put``); 6211b3a's this file's ``-k "gives_way or slot"``.
Killed/total, before -> after the tests added then (each watched failing on its mutants):
_encode_response 13/13; _pace 10/11; NetworkService._serve 5/6 -> 6/6; _serve_transcript
0/5 -> 5/5; NodeLink._read_blocks (node/network/sync.py) 11/31 -> 31/31; _check_allowed
11/13 -> 13/13; _evict_inbound 35/45 -> 41/45. Added:
test_the_bytes_we_answer_are_paced_for_transcript_answers_too (no test of this selection
asked for a transcript; tests/node/test_network_transcripts.py's
test_a_node_serves_what_it_has_and_not_found_is_an_empty_answer kills the same five, but only
this one fails with the ``_pace`` call removed outright);
test_a_node_serving_no_blocks_answers_a_range_with_none (``blocks = None`` for the empty
default); in test_network_sync.py
test_blocks_are_served_as_stored_with_their_justifications_and_read_to_a_budget (the nodes
those tests run never had a justification over the bound or none at all, never walked down by
hash, and never ran out of budget: 20 survivors); and for the slots
test_an_inbound_slot_is_given_way_only_by_an_address_holding_more_than_a_quarter (four
addresses holding one slot each: ``<`` for ``<=`` and ``// 5``; ``in_peers=0``: the ``max``
over no addresses without its ``default``, or with None) and
test_inbound_slots_and_their_eviction_count_inbound_peers_only (five outbound peers: the
``or`` for ``and`` in both peer filters counted them as inbound, so the hogs were refused or
the outbound peers' ``host`` None was taken for the hog). Left:

- _pace's ``return True`` for ``return False`` once the peer closed during the wait: a close
  ends the peer's read loop, which cancels the handler waiting in _pace, so the branch is
  reached only when a wait ends between the close and that cancel; the mutant then offers the
  answer to ``send_encoded``, which refuses a closed peer, and spawns a ``_drop`` ("send queue
  full") that races the read loop's own ``_drop`` of the same closed peer: a window of one
  loop iteration no test hits deterministically.
- _evict_inbound's ``len(peers) <= in_peers / 4`` for ``// 4``: for a whole number n,
  ``n <= x / 4`` and ``n <= x // 4`` agree.
- _evict_inbound's task name (None, ``"XXp2p-evict-peerXX"``, upper case): a label for logs.

No bug was found.

Mutation testing of 8107cd3 and 4137268 (answers read only once the allowances have room,
shared by an address's and all peers; a transcript answer pays what was read), the same run
as tests/chain/test_forks.py's docstring gives (2026-11-30, 14:19-14:27 UTC; each mutant put
into its own function by a script, not ``mutmut apply``, in a second scratch copy while the
RPC run went on). Tests: this file's ``-k "paced or read_only_once or
address_and_for_the_node"``, then tests/node/test_network_transcripts.py's ``-k "bytes_read or
cut"``. Reached 30 of the 91 in scope (stopped at the deadline; not reached: 4 of _register's,
and all of _serve (6), _serve_transcript (21), _served_host (15) and TranscriptServer.read
(15)). Killed/run, before -> after the test added then (watched failing on its mutants):
RateLimiter.settle 6/8 -> 8/8, _settle 2/2, _reserve 12/17, _register 3/3. Killed by
tests/node/test_network_reputation.py's
test_a_rate_limiters_settle_gives_back_or_takes_exactly_its_delta_up_to_the_burst
(``take(1.0)`` for ``take(0.0)``: one token more taken; ``- delta`` for ``+ delta``). Left:
_reserve's ``_settle(taken, 0)`` when the peer closes while it waits (5 mutants). On reading
them, the call itself went: what a peer has taken by then is its own allowance only (its
address's is taken after its own, and the node's in a try that gives back the address's), and
a closed peer's own allowance is of use to nobody.

No bug was found.

Mutation testing of bf01472 (the node's answer allowance given by FairShare's counts, grouped
by address; that order was replaced by 7047c05 and 55c55a4 after round 10 found it starved a
sync, and the test of whose count an answer went to was rewritten for them by a recording
FairShare) and of what the run above did not reach, 2026-11-30, 15:35-16:15 UTC, mutmut
3.8.1, made and applied as tests/node/test_network_reputation.py's docstring gives (each
mutant in its own class's function by a script, a fresh ``python -m pytest -x`` each, 150 s
timeout). In scope: mutants on lines ``git blame`` gives to bf01472 (_reserve, _settle; tests
tests/node/test_network_reputation.py, then this file's ``-k "paced or read_only_once or
address_and_for_the_node"``) or to 8107cd3 and 4137268 (_serve, _serve_transcript,
_served_host; node/network/transcripts.py's TranscriptServer.read; tests this file's ``-k
"serve_ranges or paced or read_only_once or most_recent_only or serving_no_blocks"``, then
tests/node/test_network_transcripts.py's ``-k "serves_what_it_has or cut or bytes_read or
paced_to_our_own"``). Killed/in scope, before -> after the tests added (each watched failing on
its mutants): _reserve 9/15 -> 15/15, _settle 2/2, _serve 25/29 -> 29/29, _serve_transcript
25/30 -> 29/30, _served_host 14/15, TranscriptServer.read 10/13 -> 13/13. Added:
test_the_nodes_allowance_counts_an_inbound_peers_bytes_by_address_and_an_outbound_ones_by_id
(_reserve's group None, always the address, always the id, the test inverted, ``take(None,
...)``, ``partial(share.settle, None)``: no test looked at whose count an answer went to);
test_a_node_serving_no_transcripts_answers_a_request_with_none (``openings = None``);
test_the_serve_handlers_are_told_which_peer_asks (None for ``peer.peer_id``, both handlers);
test_an_answer_whose_handler_failed_gives_back_all_it_took_ahead (``data = None``, which made
the ``finally``'s settle raise and keep the reservation; ``b"XXXX"`` and ``read = 1``, 4 bytes
or 1 kept: at 0.1 byte/s the next answer waits 10 s or more);
test_a_block_answer_leaves_room_for_its_envelope (``max_message_size + ENVELOPE``); and in
tests/node/test_network_transcripts.py
test_openings_asked_without_weights_are_cut_at_the_bytes_read_not_only_sent the exact bytes
read (``read = 1``, ``34 / len(path)``, ``35 *``). Left:

- _serve_transcript's ``else 1`` for ``else 0`` (what a handler not giving ServedOpenings read):
  it is paid as ``max(len(data), read)``, and an encoded answer is never under 1 byte.
  Equivalent.
- _served_host's ``popitem(last=None)``: None is falsy, as False. Equivalent.

No bug was found.
Hand mutants of round 15's network fixes (N1, N2, N4, N5; 2026-12-01, 13 mutants, each applied
in a scratch worktree, then this file, tests/node/test_network_messages.py, _noise.py, _sync.py,
_transcripts.py and test_final_fraud.py run): 12 killed, after two tests were added for the two
that survived at first (test_an_answer_that_does_not_decode_fails_its_request_at_once_and_bans_the_peer:
the request's future not failed on a garbage answer; in test_final_fraud.py
test_a_node_awaits_the_blocks_of_the_justifications_it_keeps_only: awaits_block without its kept
proof of justification). The 13th, ``_decode`` always on the loop, survived: the thread it
chose for large messages freed nothing (msgspec holds the GIL while it decodes, the retest's
R2), and it is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time

import aiohttp
import pytest
from netkit import (
    GENESIS,
    MAX_NOISE_MESSAGE,
    Node,
    RawPeer,
    answer_blocks_late,
    make_chain,
    nodes,
    start_node,
    wait_for,
)
from nodekit import free_port

from chain.proofs import Opening
from node.network.errors import HandshakeError, PeerRefused, RequestFailed, WrongPeer
from node.network.identity import NodeKey, PeerId
from node.network.messages import (
    DESCENDING,
    FIRST_TAGS,
    MAX_FIRST_MESSAGE_SIZE,
    MAX_JUSTIFICATION_SIZE,
    MAX_VOTES_PER_MESSAGE,
    ROLE_FULL,
    BlockData,
    BlockRequest,
    BlockResponse,
    Disconnect,
    FinalityVotes,
    FraudProofGossip,
    Justification,
    Status,
    Transactions,
    encode_message,
)
from node.network.multiaddr import Multiaddr
from node.network.noise import FLAG_LAST, FLAG_MORE, MAX_CHUNK
from node.network.reputation import Misbehaviour
from node.network.service import SERVED_BLOCK_COST, VOTES_PER_TURN


def count_votes(node: Node) -> list[PeerId]:
    """The sender of each vote ``node``'s handler is given from now on, in order."""
    votes: list[PeerId] = []

    async def count(peer: PeerId, payload: bytes) -> None:
        votes.append(peer)

    node.service.handlers.on_vote = count
    return votes


async def refused(raw: RawPeer, node: Node) -> bool:
    """Whether ``node`` closes on ``raw`` without a status (telling it why, or not)."""
    try:
        first = await raw.connect(node.addr)
        return first is None or isinstance(first, Disconnect)
    except (ConnectionError, aiohttp.ClientError, HandshakeError):
        return True
    finally:
        await raw.close()


def connected(a: Node, b: Node) -> bool:
    return any(p.peer_id == b.id for p in a.service.peers()) and any(p.peer_id == a.id for p in b.service.peers())


async def test_two_nodes_handshake_announce_and_serve_ranges() -> None:
    async with nodes({}, {"blocks": 3}) as (a, b):
        assert str(a.addr).startswith("/ip4/127.0.0.1/tcp/") and str(a.addr).endswith(f"/p2p/{a.id}")
        assert await b.service.dial(a.addr) == a.id
        await wait_for(lambda: connected(a, b))
        (info,) = b.service.peers()
        assert (info.peer_id, info.roles, info.best_number, info.outbound) == (a.id, ROLE_FULL, 9, True)
        assert info.best_hash == a.blocks[-1].hash()
        assert a.service.peers()[0].outbound is False

        # Announce: reaches the peer once, with the header intact.
        header = make_chain(12)[11].header
        assert a.service.broadcast_block(header) == 1
        peer, got = await asyncio.wait_for(b.announces.get(), 3)
        assert (peer, got) == (a.id, header)
        assert a.service.broadcast_block(header) == 0  # the peer knows it now
        await wait_for(lambda: b.service.peer(a.id).best_number == 11)  # type: ignore[union-attr]

        # Ranges: by number ascending, by hash descending, past the end, unknown start.
        up = await b.service.request_blocks(a.id, 2, 5)
        assert [d.block.header.number for d in up] == [2, 3, 4, 5, 6]
        assert up[0].block == a.blocks[2]
        down = await b.service.request_blocks(a.id, a.blocks[9].hash(), 4, DESCENDING)
        assert [d.block.header.number for d in down] == [9, 8, 7, 6]
        assert [d.block.header.number for d in await b.service.request_blocks(a.id, 8, 64)] == [8, 9]
        assert await b.service.request_blocks(a.id, b"\x99" * 32, 3) == []
        with pytest.raises(RequestFailed, match=r"outside 1\.\.64"):
            await b.service.request_blocks(a.id, 0, 65)


async def test_block_requests_are_paced_to_our_own_read_limits() -> None:
    """Walking a fork down sends block requests back to back, with no import between them: an
    honest peer that answered each at once with large blocks passed the byte rate we allow it
    and was banned for a flood (an outside tester's suspicion, round 4). Each request now waits,
    as a transcript request does, until what it may bring back fits our read limits."""
    limits = {"bytes_per_second": 4.0 * (1 << 20), "byte_burst": 9.0 * (1 << 20)}
    async with nodes(limits, limits) as (a, b):
        big = b"\x01" * ((1 << 20) - 4096)  # a justification: the largest field a block answer carries

        async def serve_big(peer, req):  # type: ignore[no-untyped-def]
            return [BlockData(d.block, big) for d in await a.serve(peer, req)]

        a.service.handlers.serve_block_request = serve_big
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        got = []
        for start in range(0, 10, 2):  # 10 MiB in five answers: past the 9 MiB burst unpaced
            got += await b.service.request_blocks(a.id, start, 2)
        assert [d.block.header.number for d in got] == list(range(10))
        assert b.service.reputation.score(a.id) == 0 and connected(a, b)


async def test_the_bytes_we_answer_a_peer_are_paced_not_only_its_requests() -> None:
    """A 29-byte block request could take a 4-16 MiB answer 20 times a second (the request
    limit counts requests): 320 MiB/s of reads and sends for one peer (an outside tester's
    finding, round 7). Answers now wait for the peer's ``served_bytes_per_second``: five
    answers of about 2 MiB at 2 MiB/s after a 2 MiB burst take about 4 s, all arrive,
    and the peer that asked is not charged. (A lower bound: sleeps are never shorter.)"""
    mib = float(1 << 20)
    async with nodes({"served_bytes_per_second": 2 * mib, "served_byte_burst": 2 * mib}, {}) as (a, b):
        big = b"\x01" * ((1 << 20) - 4096)

        async def serve_big(peer, req):  # type: ignore[no-untyped-def]
            return [BlockData(d.block, big) for d in await a.serve(peer, req)]

        a.service.handlers.serve_block_request = serve_big
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        started = time.monotonic()
        got = []
        for start in range(0, 10, 2):
            got += await b.service.request_blocks(a.id, start, 2, timeout=30)
        assert time.monotonic() - started >= 3.5
        assert [d.block.header.number for d in got] == list(range(10))
        assert a.service.reputation.score(b.id) == 0 and b.service.reputation.score(a.id) == 0 and connected(a, b)


async def test_each_block_we_answer_costs_the_answer_allowance_a_floor_of_bytes() -> None:
    """A small block costs about 17 us to read and encode whatever its size: charged by its
    bytes alone, 30 addresses each within its own requests made a node serve 36,480 empty
    blocks a second at 61% of a core (retest42's F5). Each costs SERVED_BLOCK_COST at least."""
    mib = float(1 << 20)
    async with nodes({"served_bytes_per_second": 1.0, "served_byte_burst": mib}, {}) as (a, b):
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        got = await b.service.request_blocks(a.id, 0, 10)
        assert [d.block.header.number for d in got] == list(range(10))
        charged = a.service._peers[b.id].served.wait_for(mib)  # at 1 byte a second: the bytes taken
        assert abs(charged - 10 * SERVED_BLOCK_COST) < 100  # (their 2 kB or so, without the floor)


async def test_the_bytes_we_answer_are_paced_for_transcript_answers_too() -> None:
    """Openings cost reads and sends as blocks do, and a transcript request is as small: its
    answers wait for the same ``served_bytes_per_second``. Three answers of about 2 MiB at
    2 MiB/s after a 2 MiB burst take about 2 s, all arrive, and nobody is charged. (Mutation
    testing, mut12: the transcript answers' pacing was exercised by no test of this file.)"""
    mib = float(1 << 20)
    async with nodes({"served_bytes_per_second": 2 * mib, "served_byte_burst": 2 * mib}, {}) as (a, b):
        big = tuple(Opening(j, bytes(32), 0, (bytes(32),) * 4, bytes([j]) * ((1 << 20) - 4096)) for j in range(2))

        async def serve_openings(peer, req):  # type: ignore[no-untyped-def]
            return big

        a.service.handlers.serve_transcript_request = serve_openings
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        started = time.monotonic()
        for _ in range(3):
            got = await b.service.request_transcript(a.id, bytes(32), 0, [(0, True), (1, True)], timeout=30)
            assert got == big
        assert time.monotonic() - started >= 1.5
        assert a.service.reputation.score(b.id) == 0 and b.service.reputation.score(a.id) == 0 and connected(a, b)


@pytest.mark.parametrize("shared", ["served_bytes_per_host", "served_bytes_per_node"])
async def test_the_bytes_we_answer_are_paced_for_an_address_and_for_the_node_too(shared: str) -> None:
    """Each peer's own allowance let 32 identities from one host take 273 MiB/s of answers
    (an outside tester's finding, round 9). Inbound peers of one address now share its
    allowance, and every peer the node's: two peers from 127.0.0.1 asking two answers of about
    2 MiB each, at 2 MiB/s for the address (or the node) after a 2 MiB burst, wait about 3 s in
    all though each one's own allowance is far larger; all arrive, nobody is charged."""
    mib = float(1 << 20)
    async with nodes({shared: 2 * mib}, {}, {}) as (a, b, c):
        big = b"\x01" * ((1 << 20) - 4096)

        async def serve_big(peer, req):  # type: ignore[no-untyped-def]
            return [BlockData(d.block, big) for d in await a.serve(peer, req)]

        a.service.handlers.serve_block_request = serve_big
        for n in (b, c):
            await n.service.dial(a.addr)
        await wait_for(lambda: connected(a, b) and connected(a, c))
        started = time.monotonic()

        async def two(n: Node) -> list[int]:
            got = []
            for start in (0, 2):
                got += [d.block.header.number for d in await n.service.request_blocks(a.id, start, 2, timeout=30)]
            return got

        assert await asyncio.gather(two(b), two(c)) == [[0, 1, 2, 3], [0, 1, 2, 3]]
        assert time.monotonic() - started >= 2.5
        assert all(x.service.reputation.score(y.id) == 0 for x, y in ((a, b), (a, c), (b, a), (c, a)))


async def test_the_answer_allowances_of_addresses_are_kept_for_the_most_recent_only(monkeypatch) -> None:
    """One allowance an address (its inbound peers share it), kept for the MAX_SERVED_HOSTS
    addresses registered last: peers from ever new addresses must not grow the table without
    bound. An address seen again keeps its allowance and moves to the back."""
    import node.network.service as service_module

    monkeypatch.setattr(service_module, "MAX_SERVED_HOSTS", 3)
    async with nodes({}) as (a,):
        first = a.service._served_host("10.0.0.1")
        for host in ("10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"):
            a.service._served_host(host)
        assert list(a.service._served_hosts) == ["10.0.0.3", "10.0.0.1", "10.0.0.4"]
        assert a.service._served_hosts["10.0.0.1"] is first


async def test_the_nodes_allowance_counts_an_inbound_peers_bytes_by_address_and_an_outbound_ones_by_id() -> None:
    """The node's answer allowance (FairShare) takes turns by group: an inbound peer's is its
    address's (all its peers share it), an outbound peer's its own id's (the address it was
    dialled at is not its own). Each answer is settled for the group that took it, at what
    it really was (_settle), not left at the 16 MiB reserved ahead. (Mutation testing, mut15:
    the group None, always the address or always the id, either way round, and the settle
    for the group None.)"""
    from node.network import reputation
    from rpc.connections import RateLimiter

    class Recording(reputation.FairShare):
        __slots__ = ("seen",)

        def __init__(self, bucket: RateLimiter) -> None:
            super().__init__(bucket)
            self.seen: list[tuple[object, ...]] = []

        async def take(self, group: object, amount: float) -> None:
            self.seen.append(("take", group))
            await super().take(group, amount)

        def settle(self, group: object, taken: float, used: float) -> None:
            self.seen.append(("settle", group, taken, used))
            super().settle(group, taken, used)

    async with nodes({}, {}, {}) as (a, b, c):
        share = a.service._served_node = Recording(a.service._served_node.bucket)
        await b.service.dial(a.addr)  # inbound at a, from 127.0.0.1
        await a.service.dial(c.addr)  # outbound at a
        await wait_for(lambda: connected(a, b) and connected(a, c))
        for n in (b, c):
            assert [d.block.header.number for d in await n.service.request_blocks(a.id, 0, 2)] == [0, 1]
        takes = [entry[1] for entry in share.seen if entry[0] == "take"]
        settles = [entry for entry in share.seen if entry[0] == "settle"]
        assert set(takes) == {"127.0.0.1", c.id}
        assert {group for _, group, _, _ in settles} == {"127.0.0.1", c.id}
        assert all(taken == 1 << 24 and 0 < used < 1 << 20 for _, _, taken, used in settles), settles


async def test_an_answer_is_read_only_once_the_allowance_has_room_for_it() -> None:
    """An answer was read and encoded (up to 16 MiB) before it waited for the peer's
    allowance, so every waiting peer held one: 32 peers of one host held 2.9 GB (an outside
    tester's finding, round 9). Now the read waits: of three requests sent at once at 2 MiB/s
    after a 2 MiB burst, the second is not even read before about a second has passed."""
    mib = float(1 << 20)
    async with nodes({"served_bytes_per_second": 2 * mib, "served_byte_burst": 2 * mib}, {}) as (a, b):
        big = b"\x01" * ((1 << 20) - 4096)
        reads: list[float] = []

        async def serve_big(peer, req):  # type: ignore[no-untyped-def]
            reads.append(time.monotonic())
            return [BlockData(d.block, big) for d in await a.serve(peer, req)]

        a.service.handlers.serve_block_request = serve_big
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        got = await asyncio.gather(*(b.service.request_blocks(a.id, start, 2, timeout=30) for start in (0, 2, 4)))
        assert sorted(d.block.header.number for answer in got for d in answer) == list(range(6))
        assert len(reads) == 3 and reads[1] - reads[0] >= 0.8 and reads[2] - reads[1] >= 0.8


async def test_a_node_serving_no_blocks_answers_a_range_with_none() -> None:
    """Without a ``serve_block_request`` handler (a light client's network, say) a block
    request is answered, empty, not left to time out. (Mutation testing, mut12: ``blocks``
    None for the empty default.)"""
    async with nodes({}, {}) as (a, b):
        a.service.handlers.serve_block_request = None
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        assert await b.service.request_blocks(a.id, 0, 4) == []
        assert b.service.reputation.score(a.id) == 0 and connected(a, b)


async def test_a_node_serving_no_transcripts_answers_a_request_with_none() -> None:
    """Without a ``serve_transcript_request`` handler (netkit's nodes have none) a transcript
    request is answered, empty, not left to time out. (Mutation testing, mut15: ``openings``
    None for the empty default.)"""
    async with nodes({}, {}) as (a, b):
        assert a.service.handlers.serve_transcript_request is None
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        assert await b.service.request_transcript(a.id, bytes(32), 0, [(0, True)]) == ()
        assert b.service.reputation.score(a.id) == 0 and connected(a, b)


async def test_the_serve_handlers_are_told_which_peer_asks() -> None:
    """``serve_block_request`` and ``serve_transcript_request`` get the asking peer's id (a
    node's handler may answer by who asks). (Mutation testing, mut15: None passed instead.)"""
    async with nodes({}, {}) as (a, b):
        asked: list[tuple[str, object]] = []

        async def serve_blocks(peer, req):  # type: ignore[no-untyped-def]
            asked.append(("blocks", peer))
            return await a.serve(peer, req)

        async def serve_openings(peer, req):  # type: ignore[no-untyped-def]
            asked.append(("openings", peer))
            return ()

        a.service.handlers.serve_block_request = serve_blocks
        a.service.handlers.serve_transcript_request = serve_openings
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        assert [d.block.header.number for d in await b.service.request_blocks(a.id, 0, 2)] == [0, 1]
        assert await b.service.request_transcript(a.id, bytes(32), 0, [(0, True)]) == ()
        assert asked == [("blocks", b.id), ("openings", b.id)]


@pytest.mark.parametrize("kind", ["blocks", "openings"])
async def test_an_answer_whose_handler_failed_gives_back_all_it_took_ahead(kind: str, caplog) -> None:
    """_serve and _serve_transcript take the largest answer ahead (_reserve) and settle, in a
    ``finally``, for what was read: a handler that fails read nothing, so all goes back. At
    0.1 byte/s after a 2 MiB burst, the next request (sent with the failing one) is answered at
    once; had the failed one kept the reservation, or even one byte of it, that request
    would wait 10 s or more and time out. (Mutation testing, mut15: ``data`` None, so that the
    settle itself raised, ``b"XXXX"``, and ``read`` starting at 1.)"""
    mib = float(1 << 20)
    async with nodes({"served_bytes_per_second": 0.1, "served_byte_burst": 2 * mib}, {}) as (a, b):
        calls: list[object] = []

        async def failing_once(peer, req):  # type: ignore[no-untyped-def]
            calls.append(req)
            if len(calls) == 1:
                raise RuntimeError("the store failed")
            return await a.serve(peer, req) if kind == "blocks" else ()

        if kind == "blocks":
            a.service.handlers.serve_block_request = failing_once
        else:
            a.service.handlers.serve_transcript_request = failing_once
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))

        async def ask() -> object:
            if kind == "blocks":
                return [d.block.header.number for d in await b.service.request_blocks(a.id, 0, 2, timeout=3)]
            return await b.service.request_transcript(a.id, bytes(32), 0, [(0, True)], timeout=3)

        with caplog.at_level(logging.ERROR, logger="node.network.service"):
            got = await asyncio.gather(ask(), ask(), return_exceptions=True)
        assert len(calls) == 2
        assert isinstance(got[0], RequestFailed)
        assert got[1] == ([0, 1] if kind == "blocks" else ())
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
            f"handler failed on a message from {b.id}"
        ]


async def test_a_block_answer_leaves_room_for_its_envelope() -> None:
    """A block answer holds the blocks that fit in ``max_message_size - ENVELOPE`` (the room
    left for the response's own headers): two blocks one byte over it are answered one at a
    time, and at it, together. (Mutation testing, mut15: ``+ ENVELOPE`` let an answer past the
    message size.)"""
    from chain.codec import encode
    from node.network.service import ENVELOPE

    size = 1 << 20
    async with nodes({"max_message_size": size}, {"max_message_size": size}) as (a, b):
        first = BlockData(a.blocks[0], b"\x01" * (size // 2))
        base = len(encode(BlockData(a.blocks[1], b"\x02" * (size // 2)))) - size // 2
        answer: list[BlockData] = []

        async def serve(peer, req):  # type: ignore[no-untyped-def]
            return answer

        a.service.handlers.serve_block_request = serve
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        for over, count in ((1, 1), (0, 2)):
            room = size - ENVELOPE - len(encode(first)) + over - base
            answer[:] = [first, BlockData(a.blocks[1], b"\x02" * room)]
            assert len(encode(first)) + len(encode(answer[1])) == size - ENVELOPE + over
            assert len(await b.service.request_blocks(a.id, 0, 2)) == count
        assert b.service.reputation.score(a.id) == 0 and connected(a, b)


async def test_a_silent_link_is_a_disconnect_not_a_misbehaviour(caplog) -> None:
    """A link that goes silent (a blackhole, a NAT dropping the flow) ends in a WebSocket
    heartbeat timeout, which was charged as garbage (-1000: a ban) to every peer across it,
    reserved ones included, and kept a healed partition apart for the ban's minute (an outside
    tester's finding, round 5). It is a disconnect now: no charge, and the peer may come back."""
    caplog.set_level(logging.INFO)
    async with nodes({"heartbeat": 0.4}) as (a,):
        raw = RawPeer()
        await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 1)
        # The peer stops answering pings: nothing of the link is read any more on its side.
        assert raw.ws is not None
        transport = raw.ws._response.connection.transport  # type: ignore[union-attr]
        transport.pause_reading()
        await wait_for(lambda: a.service.peers() == [], timeout=5)
        assert a.service.reputation.score(raw.key.peer_id) == 0
        assert a.service.reputation.banned_for(raw.key.peer_id) == 0
        assert "garbage" not in caplog.text
        transport.abort()
        await raw.close()
        again = RawPeer(raw.key)
        assert isinstance(await again.connect(a.addr), Status)
        await again.close()


async def test_a_large_message_crosses_in_full_size_noise_frames() -> None:
    """1.5 MB: 23 frames of exactly 65535 bytes (the Noise limit) and a shorter last one."""
    async with nodes({}, {}) as (a, b):
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        big = bytes(range(256)) * 6000
        assert a.service.broadcast_transactions((big,)) == 1
        await asyncio.wait_for(b.tx_event.wait(), 5)
        assert b.txs == [(a.id, (big,))]
        assert connected(a, b)


async def test_three_nodes_gossip_transactions_without_loops() -> None:
    async with nodes({}, {}, {}) as (a, b, c):
        await b.service.dial(a.addr)
        await c.service.dial(b.addr)  # a line: a - b - c
        await wait_for(lambda: connected(a, b) and connected(b, c))
        xts = (b"xt-one", b"xt-two")
        assert a.service.broadcast_transactions(xts) == 1
        await wait_for(lambda: bool(c.txs))
        await asyncio.sleep(0.3)  # time for any echo to come back
        assert b.txs == [(a.id, xts)]
        assert c.txs == [(b.id, xts)]
        assert a.txs == []  # nothing came back to its origin
        # Again: every node has seen them, so no one hears of them twice.
        assert a.service.broadcast_transactions(xts) == 0
        c.service.broadcast_transactions((b"xt-two", b"xt-three"))
        await wait_for(lambda: len(a.txs) == 1)
        await asyncio.sleep(0.2)
        assert a.txs == [(b.id, (b"xt-three",))]
        assert b.txs[1] == (c.id, (b"xt-three",))
        assert len(b.txs) == 2 and len(c.txs) == 1


async def test_votes_are_gossiped_once_and_bad_ones_cost_reputation() -> None:
    async with nodes({}, {}, {}) as (a, b, c):
        await b.service.dial(a.addr)
        await c.service.dial(b.addr)
        await wait_for(lambda: connected(a, b) and connected(b, c))
        a.service.broadcast_vote(b"vote-1")
        await wait_for(lambda: c.votes == [b"vote-1"])
        assert b.votes == [b"vote-1"] and a.votes == []
        a.service.broadcast_vote(b"bad-vote")
        await wait_for(lambda: b"bad-vote" in b.votes)
        await asyncio.sleep(0.2)
        assert c.votes == [b"vote-1"]  # not passed on
        assert b.service.reputation.score(a.id) == pytest.approx(Misbehaviour.BAD_VOTE.cost, abs=5)
        echo = RawPeer()  # a's own vote, back from a peer that did not have it from a: not read
        await echo.connect(a.addr)
        await echo.send(FinalityVotes((b"vote-1", b"vote-2")))
        await wait_for(lambda: a.votes == [b"vote-2"])
        await echo.close()


async def test_votes_are_relayed_in_batches_each_taking_from_the_senders_vote_allowance(caplog) -> None:
    """Votes travel many to a message (FinalityVotes): a relay gathers those it accepts within
    VOTE_GOSSIP_WINDOW and sends each peer the ones it does not know in one message, so the
    frames a round's votes cost do not grow with the validators (one vote a message passed
    the 500 frames a second an honest relay may send once a round held more than about 500
    validators a slot-second: an outside tester's AG7). Each vote takes a token of its
    sender's vote allowance; those over it are dropped unread and uncharged, and another
    peer's copy is read; a bad one in a batch is charged."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"votes_per_second": 1e-6, "vote_burst": 420.0}) as (b,):
        src, dst, other = RawPeer(), RawPeer(), RawPeer()
        for raw, host in ((src, "127.0.0.2"), (dst, "127.0.0.3"), (other, "127.0.0.4")):
            assert isinstance(await raw.connect(b.addr, host=host), Status)
        await wait_for(lambda: len(b.service.peers()) == 3)
        votes = tuple(b"vote %03d" % i for i in range(300))
        await src.send(FinalityVotes(votes[:256]))
        await src.send(FinalityVotes(votes[256:]))
        relayed: list[bytes] = []
        messages = 0
        while len(relayed) < 300:
            msg = await dst.recv()  # (one of more than MAX_VOTES_PER_MESSAGE would not decode)
            assert isinstance(msg, FinalityVotes)
            relayed += msg.payloads
            messages += 1
        assert relayed == list(votes) and messages <= 4  # 300 votes, not 300 messages
        assert b.votes == list(votes)
        with pytest.raises(TimeoutError):  # none back to the peer they came from
            await src.recv(timeout=0.3)
        await src.send(FinalityVotes(tuple(b"more %d" % i for i in range(130))))  # 120 left of its 420
        await wait_for(lambda: f"dropped 10 of 130 votes from {src.key.peer_id}: over its rate" in caplog.text)
        assert b.votes[300:] == [b"more %d" % i for i in range(120)]
        await src.send(FinalityVotes((b"and more",)))  # its allowance spent: the batch not even decoded
        await wait_for(lambda: f"dropped a batch of votes from {src.key.peer_id} unread: over its rate" in caplog.text)
        assert b.votes[-1] == b"more 119"
        assert b.service.reputation.score(src.key.peer_id) == 0
        await other.send(FinalityVotes((b"more 125", b"bad vote")))  # a dropped one, read from another peer
        await wait_for(lambda: b.votes[-2:] == [b"more 125", b"bad vote"])
        await wait_for(lambda: b.service.reputation.score(other.key.peer_id) < 0)
        assert b.service.reputation.score(other.key.peer_id) == pytest.approx(Misbehaviour.BAD_VOTE.cost, abs=5)
        for raw in (src, dst, other):
            await raw.close()


async def test_the_rest_of_a_batch_of_votes_is_not_read_once_its_sender_is_banned() -> None:
    """A batch of 256 bad votes: each charged as it is handled, and once its sender is banned
    the rest are not handled at all. They were, one signature check each: 256 for a peer
    banned at its fifth (a review's finding)."""
    async with nodes({}) as (b,):
        raw = RawPeer()
        await raw.connect(b.addr)
        await wait_for(lambda: len(b.service.peers()) == 1)
        await raw.send(FinalityVotes(tuple(b"bad %03d" % i for i in range(256))))
        await wait_for(lambda: b.service.reputation.banned_for(raw.key.peer_id) > 0)
        await wait_for(lambda: b.service.peers() == [])
        assert 5 <= len(b.votes) <= 6  # -200 each, banned at -1000 (less what decayed meanwhile)
        await raw.close()


async def test_a_vote_whose_handler_fails_does_not_lose_the_rest_of_its_batch(caplog) -> None:
    async with nodes({}) as (b,):
        handled: list[bytes] = []

        async def handle(peer: PeerId, payload: bytes) -> bool:
            if payload == b"boom":
                raise RuntimeError("a bug")
            handled.append(payload)
            return True

        b.service.handlers.on_vote = handle
        raw = RawPeer()
        await raw.connect(b.addr)
        await raw.send(FinalityVotes((b"one", b"boom", b"two")))
        await wait_for(lambda: handled == [b"one", b"two"])
        assert "vote handler failed on a vote from" in caplog.text
        await raw.close()


async def test_a_request_waiting_its_turn_ends_when_its_peer_is_dropped() -> None:
    """Waiting for the peer's request limit, a request saw its peer dropped only when its turn
    came, 10 s later at most, and said its send queue was full (retest39's F4)."""
    async with nodes({"requests_per_second": 2.0, "request_burst": 1.0}, {}) as (a, b):
        await a.service.dial(b.addr)
        await wait_for(lambda: connected(a, b))
        await a.service.request_blocks(b.id, 0, 1)  # the burst: the next waits 0.6 s
        waiting = asyncio.create_task(a.service.request_blocks(b.id, 0, 1))
        await asyncio.sleep(0.1)
        assert a.service.drop_peer(b.id)
        with pytest.raises(RequestFailed, match=f"^{b.id} disconnected$"):
            await waiting


async def test_no_vote_relay_is_scheduled_after_the_service_stopped() -> None:
    """A vote accepted as the service stops (its handler awaited across the stop) is not
    scheduled for a relay that would run on a stopped service (a review's finding)."""
    node = await start_node()
    await node.service.stop()
    node.service._relay_vote(b"vote", bytes(32))
    assert node.service._votes_due is None and node.service._votes_out == []


async def test_a_peer_on_another_genesis_is_refused_with_a_reason(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}, {"genesis": b"\x01" * 32}) as (a, other):
        with pytest.raises(PeerRefused, match="another chain"):
            await other.service.dial(a.addr)
        await asyncio.sleep(0.2)
        assert a.service.peers() == [] and other.service.peers() == []
        text = caplog.text
        assert f"refusing peer {other.id}: genesis 0x{'01' * 32} is not ours (0x{GENESIS.hex()})" in text
        assert f"refusing peer {a.id}: genesis 0x{GENESIS.hex()} is not ours" in text


async def test_dialing_with_another_peer_id_is_refused() -> None:
    async with nodes({}) as (a,):
        impostor_id = NodeKey.generate().peer_id
        with pytest.raises(WrongPeer, match=f"dialed {impostor_id} but the remote proved it is {a.id}"):
            b = await start_node()
            try:
                await b.service.dial(a.addr.with_peer_id(impostor_id))
            finally:
                await b.service.stop()
        assert a.service.peers() == []


async def test_a_peer_claiming_another_identity_is_refused(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}, {}) as (a, victim):
        raw = RawPeer()
        genuine = RawPeer(victim.service.key)
        raw.static.payload = genuine.static.payload  # the victim's payload, replayed with our Noise key
        assert await refused(raw, a)
        await asyncio.sleep(0.1)
        assert a.service.peers() == []
        assert f"identity signature of {victim.id} does not cover the Noise static key" in caplog.text


async def _banned_after(a: Node, b: Node, attack, what: Misbehaviour, caplog, *, told: bool = True) -> None:
    """``attack`` a from a raw peer; it is banned (``told`` why, encrypted), and a keeps serving b."""
    await b.service.dial(a.addr)
    raw = RawPeer()
    first = await raw.connect(a.addr)
    assert isinstance(first, Status)
    await wait_for(lambda: len(a.service.peers()) == 2)
    before = a.blocks[-1].hash()
    await attack(raw)
    rest = await raw.recv_until_closed()
    if told:
        assert rest and isinstance(rest[-1], Disconnect) and rest[-1].reason.startswith(what.reason)
    await raw.close()
    await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [b.id])
    assert a.service.reputation.banned_for(raw.key.peer_id) > 25
    assert f"peer {raw.key.peer_id} misbehaved ({what.reason}" in caplog.text
    # Banned: a reconnection is refused right after the handshake.
    assert await refused(RawPeer(raw.key), a)
    assert f"{raw.key.peer_id} is banned for" in caplog.text
    # The node keeps serving the honest peer.
    got = await b.service.request_blocks(a.id, 0, 3)
    assert [d.block.header.number for d in got] == [0, 1, 2]
    assert a.blocks[-1].hash() == before


async def test_garbage_frames_get_a_peer_banned(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def attack(raw: RawPeer) -> None:
        await raw.send_raw(b"\x00garbage that is no ciphertext at all")

    async with nodes({}, {}) as (a, b):
        await _banned_after(a, b, attack, Misbehaviour.GARBAGE, caplog)
    assert "frame does not decrypt" in caplog.text


async def test_garbage_plaintext_gets_a_peer_banned(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def attack(raw: RawPeer) -> None:
        await raw.send_encrypted(bytes((FLAG_LAST,)) + b"\xc1\xc1 not msgpack")

    async with nodes({}, {}) as (a, b):
        await _banned_after(a, b, attack, Misbehaviour.GARBAGE, caplog)
    assert "not a protocol message" in caplog.text


async def test_oversize_frames_and_messages_get_a_peer_banned(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def big_frame(raw: RawPeer) -> None:
        await raw.send_raw(bytes(MAX_NOISE_MESSAGE + 1))

    async def big_message(raw: RawPeer) -> None:
        assert raw.session is not None
        await raw.send(Transactions((bytes(700_000),)))  # 11 chunks; the bound is 256 KiB here

    async with nodes({}, {}) as (a, b):
        # aiohttp closes the WebSocket itself (code 1009) before a Disconnect can be sent.
        await _banned_after(a, b, big_frame, Misbehaviour.OVERSIZE, caplog, told=False)
    async with nodes({"max_message_size": 256 * 1024}, {}) as (a, b):
        await _banned_after(a, b, big_message, Misbehaviour.OVERSIZE, caplog)
    assert "message passes the 262144-byte bound" in caplog.text


async def test_a_flood_gets_a_peer_banned(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def flood(raw: RawPeer) -> None:
        for i in range(300):
            await raw.send(FinalityVotes((b"v%d" % i,)))

    async with nodes({"frames_per_second": 50.0, "frame_burst": 100.0}, {}) as (a, b):
        await _banned_after(a, b, flood, Misbehaviour.FLOOD, caplog)
    assert "more than 50 frames/s (burst 100)" in caplog.text


async def test_a_ping_flood_gets_a_peer_banned(caplog) -> None:
    """WebSocket pings count as frames against the peer's limit (the node answers them itself,
    node.network.peer): aiohttp answered them inside receive(), past every limit, and a peer
    that sent 36.7 MB of empty pings in 3 s cost a node 32 s of CPU uncharged (an outside
    tester's finding, round 7). Its pings within the limit are answered, as a heartbeat's are."""
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def flood(raw: RawPeer) -> None:
        assert raw.ws is not None
        for _ in range(300):
            await raw.ws.ping()

    async with nodes({"frames_per_second": 50.0, "frame_burst": 100.0}, {}) as (a, b):
        await _banned_after(a, b, flood, Misbehaviour.FLOOD, caplog)
    assert "more than 50 frames/s (burst 100), pings included" in caplog.text


async def test_pings_and_pongs_within_the_limit_are_answered_and_free(caplog) -> None:
    """The node answers a peer's pings itself (autoping off, node.network.peer), each with its
    own payload, and an unsolicited pong is taken quietly: within the frame limit neither
    costs the peer anything, and its connection carries on."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        raw = RawPeer()
        try:
            assert isinstance(await raw.connect(a.addr, autoping=False), Status)
            assert raw.ws is not None
            await wait_for(lambda: len(a.service.peers()) == 1)
            for i in range(5):
                await raw.ws.pong(b"unasked %d" % i)
                await raw.ws.ping(b"are you there %d" % i)
                msg = await raw.ws.receive(timeout=3)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"are you there %d" % i)
            await raw.send(BlockRequest(1, 0, 3))
            assert await raw.recv() is not None  # still served
            assert [p.peer_id for p in a.service.peers()] == [raw.key.peer_id]
            assert a.service.reputation.banned_for(raw.key.peer_id) == 0
            assert "misbehaved" not in caplog.text
        finally:
            await raw.close()


async def test_wrong_answers_to_requests_cost_reputation() -> None:
    async with nodes({}, {}) as (a, b):
        other = make_chain(10, salt=b"fork")

        async def lying(peer, req: BlockRequest) -> list[BlockData]:
            return [BlockData(a.blocks[2]), BlockData(other[3])]  # #3 of another chain

        a.service.handlers.serve_block_request = lying
        await b.service.dial(a.addr)
        with pytest.raises(RequestFailed, match="block #3 does not link to #2"):
            await b.service.request_blocks(a.id, 2, 2)
        with pytest.raises(RequestFailed, match="the first block is #2, not #5"):
            await b.service.request_blocks(a.id, 5, 2)
        assert b.service.reputation.banned_for(a.id) > 0  # two wrong answers: -1000
        await wait_for(lambda: b.service.peers() == [])


async def test_bad_block_reported_by_the_importer_bans_the_peer() -> None:
    async with nodes({}, {}) as (a, b):
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        assert b.service.report_peer(a.id, Misbehaviour.BAD_BLOCK, "state root mismatch")
        await wait_for(lambda: not connected(a, b))
        with pytest.raises(PeerRefused, match="is banned for"):
            await b.service.dial(a.addr)


async def test_bootnodes_reconnect_after_a_drop_and_drop_peer_partitions() -> None:
    async with nodes({}) as (a,), nodes({"bootnodes": (a.addr,)}) as (b,):
        await wait_for(lambda: connected(a, b))
        assert b.service.drop_peer(a.id, seconds=0.5)
        await wait_for(lambda: not connected(a, b))
        await asyncio.sleep(0.3)
        assert not connected(a, b)  # still partitioned
        await wait_for(lambda: connected(a, b), timeout=5)  # healed


async def test_reserved_only_and_peer_slots() -> None:
    async with nodes({}) as (a,):
        async with nodes({"reserved_nodes": (a.addr,), "reserved_only": True}, {}) as (r, stranger):
            await wait_for(lambda: connected(a, r))
            with pytest.raises(PeerRefused, match=r"not a reserved node \(--reserved-only\)"):
                await r.service.dial(stranger.addr)
            with pytest.raises(PeerRefused):
                await stranger.service.dial(r.addr)
            await asyncio.sleep(0.1)
            assert [p.peer_id for p in r.service.peers()] == [a.id]
        async with nodes({"in_peers": 1}, {}, {}) as (limited, p1, p2):
            await p1.service.dial(limited.addr)
            with pytest.raises(PeerRefused, match=r"refused us: 'no free inbound slot \(1/1\)'"):
                await p2.service.dial(limited.addr)
        async with nodes({"out_peers": 1}, {}, {}) as (limited, p1, p2):
            await limited.service.dial(p1.addr)
            with pytest.raises(PeerRefused, match=r"no free outbound slot \(1/1\)"):
                await limited.service.dial(p2.addr)


async def test_simultaneous_dials_leave_one_connection() -> None:
    async with nodes({}, {}) as (a, b):
        await asyncio.gather(a.service.dial(b.addr), b.service.dial(a.addr), return_exceptions=True)
        await asyncio.sleep(0.3)
        assert connected(a, b)
        (pa,), (pb,) = a.service.peers(), b.service.peers()
        assert pa.outbound != pb.outbound  # the same connection seen from both ends
        assert b.service.broadcast_block(make_chain(11)[10].header) == 1
        await asyncio.wait_for(a.announces.get(), 3)


async def test_half_handshakes_and_plain_http_do_no_harm(caplog) -> None:
    caplog.set_level(logging.INFO)
    async with nodes({}, {}) as (a, b):
        url = a.addr.websocket_url("/p2p")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:  # no WebSocket upgrade
                assert resp.status == 400
            for payload in (b"", b"\x00" * 32):  # stop after nothing, or after a fake message 1
                ws = await http.ws_connect(url)
                if payload:
                    await ws.send_bytes(payload)
                await ws.close()
            ws = await http.ws_connect(url)
            await ws.send_str("hello")  # text, not a handshake frame
            await ws.receive()
            await ws.close()
        await asyncio.sleep(0.2)
        await b.service.dial(a.addr)
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert "expected a binary handshake frame, got TEXT" in caplog.text
        assert [p.peer_id for p in a.service.peers()] == [b.id]



async def test_a_refused_duplicate_connection_leaves_nothing_running() -> None:
    async with nodes({}, {}) as (a, b):
        await a.service.dial(b.addr)
        with pytest.raises(PeerRefused, match=f"already connected to {b.id}"):
            await a.service.dial(b.addr)
        await asyncio.sleep(0.3)
        writers = [t for t in asyncio.all_tasks() if t.get_name().startswith("p2p-write")]
        assert len(writers) == 2  # one connection, seen from both ends
        assert connected(a, b)


@pytest.mark.parametrize("first", ["block response", "oversize"])
async def test_a_first_message_that_is_not_a_status_is_refused_unread_and_charged(caplog, first: str) -> None:
    """Before its Status a peer sent a 16 MiB block response of 16.7 million losses, decoded in
    full on the event loop before it was refused, uncharged, 81 times a minute under one
    identity (an outside tester's N1, round 15). Until the Status, a node reads no more than a
    Status or a Disconnect can be (MAX_FIRST_MESSAGE_SIZE) and no other tag, before decoding,
    and charges the peer a bad status: it is banned, and its next connection refused."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        raw = RawPeer()
        await raw.connect(a.addr, status=False)
        if first == "block response":
            await raw.send(BlockResponse(7, ()))
            said = f"not a protocol message here: tag 5, where only tags {sorted(FIRST_TAGS)} are read)"
        else:  # a message of the right tag, over the bound: refused at the chunk that passes it
            await raw.send_encrypted(bytes((FLAG_MORE,)) + b"\x98\x01" + bytes(MAX_CHUNK - 2))
            said = f"message passes the {MAX_FIRST_MESSAGE_SIZE}-byte bound ({MAX_CHUNK} bytes so far))"
        rest = await raw.recv_until_closed()
        assert isinstance(rest[0], Status) and isinstance(rest[-1], Disconnect)
        await raw.close()
        assert f"peer {raw.key.peer_id} misbehaved (bad status message: {said}; banned" in caplog.text
        assert a.service.reputation.banned_for(raw.key.peer_id) > 25
        assert await refused(RawPeer(raw.key), a)
        assert a.service.peers() == []


async def test_a_timed_out_request_excuses_one_late_answer_and_the_rest_are_unsolicited() -> None:
    """A late answer to a request that timed out is dropped unread, once: the peer was charged
    the timeout. An expired id excused every later message under it, each decoded in full
    first, and a peer replayed 16 MiB answers under it for as long as it liked (an outside
    tester's N2, round 15). The second is charged as an answer to no request."""
    async with nodes({}) as (a,):
        raw = RawPeer()
        await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 1)
        with pytest.raises(RequestFailed, match="did not answer block request"):
            await a.service.request_blocks(raw.key.peer_id, 0, 2, timeout=0.1)
        peer = a.service._peers[raw.key.peer_id]
        (request_id,) = peer.expired_requests
        timed_out = a.service.reputation.score(raw.key.peer_id)
        await raw.send(BlockResponse(request_id, ()))
        await wait_for(lambda: request_id not in peer.expired_requests)
        assert a.service.reputation.score(raw.key.peer_id) == pytest.approx(timed_out, abs=2)
        await raw.send(BlockResponse(request_id, ()))
        await wait_for(lambda: a.service.reputation.score(raw.key.peer_id) < timed_out - 150)
        assert a.service.reputation.score(raw.key.peer_id) == pytest.approx(
            timed_out + Misbehaviour.UNSOLICITED_RESPONSE.cost, abs=2)
        await raw.close()


async def test_a_fraud_proof_a_peer_sent_already_is_not_read_again() -> None:
    """A proof is read once: the same peer's copy again, and another peer's copy of a proof
    read already, are dropped unread. A peer repeated one 3 MiB proof 20 times a second, each
    decoded, uncharged (an outside tester's N4, round 15). (One the node cannot judge is
    refused from its head before this, by ``admit_fraud_proof``: node.network.sync.)"""
    async with nodes({}) as (a,):
        handled: list[PeerId] = []
        admitted: list[PeerId] = []

        async def judged(peer: PeerId, proof: bytes) -> None:
            handled.append(peer)

        def admit(peer: PeerId, proof: bytes) -> bool:
            admitted.append(peer)
            return True

        a.service.handlers.on_fraud_proof = judged
        a.service.handlers.admit_fraud_proof = admit
        first, second = RawPeer(), RawPeer()
        for raw in (first, second):
            await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 2)
        for raw in (first, first, first, second):
            await raw.send(FraudProofGossip(b"a proof"))
        await wait_for(lambda: len(admitted) == 4)
        await asyncio.sleep(0.2)
        assert handled == [first.key.peer_id]
        assert a.service.reputation.score(first.key.peer_id) == 0 and a.service.reputation.score(second.key.peer_id) == 0
        for raw in (first, second):
            await raw.close()


async def test_a_fraud_proof_judged_false_is_charged_from_whoever_sends_it_again(caplog) -> None:
    """A proof the handler judged false (and charged its sender for) is remembered: the same
    bytes again, from its sender or another identity, are charged BAD_FRAUD_PROOF unjudged.
    Marked seen only, each copy was hashed (2.8 ms for 2.3 MB) and dropped uncharged, up to the
    senders' allowances (found reviewing retest35's fixes, R2). One not judged (None) is not
    remembered so, nor one judged true."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        judged: list[tuple[PeerId, bytes]] = []

        async def judge(peer: PeerId, proof: bytes) -> bool | None:
            judged.append((peer, proof))
            return {b"false": False, b"unjudged": None}[proof]

        a.service.handlers.on_fraud_proof = judge
        first, second = RawPeer(), RawPeer()
        for raw in (first, second):
            await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 2)
        await first.send(FraudProofGossip(b"false"))
        await first.send(FraudProofGossip(b"unjudged"))
        await wait_for(lambda: len(judged) == 2)
        assert a.service.reputation.score(first.key.peer_id) == 0  # (the handler charges with its reason)
        await second.send(FraudProofGossip(b"unjudged"))
        await second.send(FraudProofGossip(b"false"))
        await wait_for(lambda: a.service.reputation.score(second.key.peer_id) < 0)
        assert f"peer {second.key.peer_id}: invalid fraud proof (a proof judged false here already)" in caplog.text
        await first.send(FraudProofGossip(b"false"))
        await wait_for(lambda: a.service.reputation.score(first.key.peer_id) < 0)
        assert judged == [(first.key.peer_id, b"false"), (first.key.peer_id, b"unjudged")]
        assert a.service.reputation.score(second.key.peer_id) == pytest.approx(Misbehaviour.BAD_FRAUD_PROOF.cost, abs=5)  # once (decaying)
        for raw in (first, second):
            await raw.close()


async def test_an_answer_that_does_not_decode_fails_its_request_at_once_and_bans_the_peer(caplog) -> None:
    """The answer's id is read before its body (round 15's N2): a body that then does not
    decode fails the request it answers with the reason, not after the request's timeout,
    and the peer is charged as for any garbage."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        raw = RawPeer()
        await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 1)
        asked = asyncio.create_task(a.service.request_blocks(raw.key.peer_id, 0, 2, timeout=30))
        request = await raw.recv()
        assert isinstance(request, BlockRequest) and request.id < 128
        await raw.send_encrypted(bytes((FLAG_LAST,)) + bytes((0x93, 5, request.id)) + b"\xc1")  # 0xc1: never MessagePack
        with pytest.raises(RequestFailed, match=f"{raw.key.peer_id} answered with garbage: not a protocol message"):
            async with asyncio.timeout(10):
                await asyncio.shield(asked)
        assert f"peer {raw.key.peer_id} misbehaved (garbage" in caplog.text
        assert a.service.reputation.banned_for(raw.key.peer_id) > 0
        await raw.close()


async def test_handshakes_from_one_address_are_rate_limited_before_the_upgrade(caplog, monkeypatch) -> None:
    """Past its burst, an address's next handshake is refused before the WebSocket upgrade (no
    Noise work done for it) until its allowance refills; another address is not held back. One
    address with a fresh node key each time made 474 handshakes a second, uncharged (the second
    retest of round 15, Q4)."""
    async with nodes({"handshakes_per_ip": 0.5, "handshake_burst_per_ip": 3}) as (a,):
        for _ in range(3):
            raw = RawPeer()
            assert isinstance(await raw.connect(a.addr), Status)
            await raw.close()
        # Past it, the connection is reset before its upgrade request is read (no HTTP 503 to
        # build for each: X2, round 15), counted and said: the first at once, the rest in one
        # line when the interval is up, even with no reset after them (Z3). aiohttp's client may
        # try a reset connection once more.
        import node.network.service as service_module

        monkeypatch.setattr(service_module, "RESET_LOG_SECONDS", 1.0)
        caplog.set_level(logging.INFO)
        assert a.service.connections_reset == 0
        for _ in range(2):
            refused = RawPeer()
            with pytest.raises(aiohttp.ClientConnectionError):
                await refused.connect(a.addr)
            await refused.close()
        refused_count = a.service.connections_reset
        assert refused_count >= 2

        def said() -> list[str]:
            return [line for line in caplog.text.splitlines() if "on connecting since the last such line" in line]

        assert len(said()) == 1 and "reset 1 inbound connection(s) on connecting since the last such line: their " \
            "address had used its handshake allowance (the last from 127.0.0.1)" in said()[0]
        await wait_for(lambda: len(said()) == 2)
        assert f"reset {refused_count - 1} inbound connection(s)" in said()[1]
        other = RawPeer()  # another address of the loopback network
        assert isinstance(await other.connect(a.addr, host="127.0.0.2"), Status)
        await other.close()
        await asyncio.sleep(2.1)  # one handshake's worth refilled
        again = RawPeer()
        assert isinstance(await again.connect(a.addr), Status)
        await again.close()
        assert a.service.connections_reset == refused_count
        # A line still due when the node stops is said then
        monkeypatch.setattr(service_module, "RESET_LOG_SECONDS", 60.0)
        refused = RawPeer()
        with pytest.raises(aiohttp.ClientConnectionError):
            await refused.connect(a.addr)
        await refused.close()
        lines = len(said())
        await a.service.stop()
        assert len(said()) == lines + 1 and "(the last from 127.0.0.1)" in said()[-1]


async def test_a_late_answer_is_not_charged_as_unsolicited() -> None:
    async with nodes({}, {}) as (a, b):
        answer_blocks_late(a, 0.5)
        await b.service.dial(a.addr)
        with pytest.raises(RequestFailed, match="did not answer block request"):
            await b.service.request_blocks(a.id, 0, 2, timeout=0.1)
        await asyncio.sleep(0.6)
        assert b.service.reputation.score(a.id) == pytest.approx(Misbehaviour.REQUEST_TIMEOUT.cost, abs=2)


async def test_a_peer_silent_in_the_middle_of_an_answer_past_the_timeout_is_dropped(caplog) -> None:
    """The part of an answer we wait for is not counted against inbound_held_bytes; a peer that
    began one and went silent was charged a timeout and kept, holding it: 30 identities held
    476 MiB so (retest43's N3). Past the request timeout, it is dropped."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        raw = RawPeer()
        assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: len(a.service.peers()) == 1)
        asking = asyncio.create_task(a.service.request_blocks(raw.key.peer_id, 0, 2, timeout=0.5))
        assert isinstance(await raw.recv(), BlockRequest)
        await raw.send_encrypted(bytes((FLAG_MORE,)) + b"\x93" + bytes(MAX_CHUNK - 1))  # an answer's first part, no more
        with pytest.raises(RequestFailed, match="did not answer block request"):
            await asking
        await wait_for(lambda: a.service.peers() == [])
        assert f"disconnected from {raw.key.peer_id}: stopped in the middle of a message past the request timeout" in caplog.text
        comer = RawPeer()  # its address is held for shed_cooldown: a fresh key does not come back at once
        with pytest.raises((ConnectionError, aiohttp.ClientError)):
            await comer.connect(a.addr, host="127.0.0.2")
        for peer in (raw, comer):
            await peer.close()


async def test_a_peer_mid_message_is_kept_while_it_owes_us_another_answer(caplog) -> None:
    """The drop for silence mid-message waits until the peer owes us nothing: the part may be
    the answer to another request of ours still within its time."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({}) as (a,):
        raw = RawPeer()
        assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: len(a.service.peers()) == 1)
        short = asyncio.create_task(a.service.request_blocks(raw.key.peer_id, 0, 2, timeout=0.3))
        long = asyncio.create_task(a.service.request_blocks(raw.key.peer_id, 2, 2, timeout=1.5))
        for _ in range(2):
            assert isinstance(await raw.recv(), BlockRequest)
        await raw.send_encrypted(bytes((FLAG_MORE,)) + b"\x93" + bytes(MAX_CHUNK - 1))
        with pytest.raises(RequestFailed):
            await short
        await asyncio.sleep(0.1)
        assert [p.peer_id for p in a.service.peers()] == [raw.key.peer_id]  # it still owes the long one
        with pytest.raises(RequestFailed):
            await long
        await wait_for(lambda: a.service.peers() == [])
        assert "stopped in the middle of a message past the request timeout" in caplog.text
        await raw.close()


async def test_an_extrinsic_over_the_message_budget_is_not_gossiped(caplog) -> None:
    async with nodes({"max_message_size": 256 * 1024}, {"max_message_size": 256 * 1024}) as (a, b):
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        assert a.service.broadcast_transactions((bytes(300_000), b"small")) == 1
        await asyncio.wait_for(b.tx_event.wait(), 3)
        assert b.txs == [(a.id, (b"small",))]
        assert "not gossiping 1 extrinsic(s) over the" in caplog.text
        await asyncio.sleep(0.2)
        assert connected(a, b)


async def test_a_block_request_flood_gets_a_peer_banned(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")

    async def flood(raw: RawPeer) -> None:
        for i in range(30):
            await raw.send(BlockRequest(i + 1, 0, 64))

    async with nodes({"requests_per_second": 5.0, "request_burst": 10.0}, {}) as (a, b):
        await _banned_after(a, b, flood, Misbehaviour.FLOOD, caplog)
    assert "more than 5 block requests/s (burst 10)" in caplog.text


async def test_a_slow_handler_makes_the_reader_wait_not_ban_the_peer(caplog) -> None:
    """Review 9: the inbound queue fills when *we* are slow; the reader stops reading (TCP
    backpressure) instead of banning. What waits is still bounded in messages and bytes."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"max_message_size": 64 * 1024, "inbound_queue": 4}, {}) as (a, b):
        a.regossip = False
        handler = a.service.handlers.on_transactions
        peaks: list[int] = []

        async def slow(peer, xts) -> None:
            p = a.service._peers[peer]
            peaks.append(p.waiting_bytes)
            await asyncio.sleep(0.15)
            await handler(peer, xts)  # type: ignore[misc]

        a.service.handlers.on_transactions = slow
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))
        for i in range(6):  # 360 kB: over the 128 KiB waiting bound
            b.service.broadcast_transactions((bytes([i]) * 60_000,))
        for i in range(12):  # more messages than the inbound queue holds
            b.service.broadcast_transactions((b"small-%d" % i,))
        await wait_for(lambda: len(a.txs) == 18, timeout=8)
        assert [xts[0][:1] for _, xts in a.txs[:6]] == [bytes([i]) for i in range(6)]
        assert max(peaks) <= 2 * 64 * 1024
        assert connected(a, b) and a.service.reputation.score(b.id) == 0
        assert "misbehaved" not in caplog.text


async def test_four_nodes_that_all_bootnode_each_other_form_one_full_mesh() -> None:
    keys = [NodeKey.generate() for _ in range(4)]
    ports = [free_port() for _ in range(4)]
    addrs = [Multiaddr("ip4", "127.0.0.1", p, k.peer_id) for p, k in zip(ports, keys, strict=True)]
    configs = [
        {"key": k, "listen_addrs": (a.with_peer_id(None),), "bootnodes": tuple(x for x in addrs if x != a)}
        for k, a in zip(keys, addrs, strict=True)
    ]
    async with nodes(*configs) as started:
        await wait_for(lambda: all(len(n.service.peers()) == 3 for n in started), timeout=10)
        await asyncio.sleep(1.0)  # redials of the losing duplicates must not churn the mesh
        assert all(len(n.service.peers()) == 3 for n in started)
        for n in started:
            for p in n.service.peers():
                other = next(m for m in started if m.id == p.peer_id)
                assert other.service.peer(n.id).outbound != p.outbound  # type: ignore[union-attr]


async def test_a_peer_that_asks_for_blocks_and_never_reads_is_dropped_with_memory_bounded(caplog) -> None:
    """Review 1: responses are bounded in bytes per peer, not only in count; a peer that keeps
    asking and never reads is disconnected instead of pinning a response per request."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    mib = 1024 * 1024
    async with nodes({"max_message_size": mib, "send_queue_bytes": 2 * mib}, {}) as (a, b):
        fat = [BlockData(blk, bytes(100_000)) for blk in a.blocks]  # about 1 MiB a response

        async def serve(peer, req: BlockRequest) -> list[BlockData]:
            return fat[: req.count]

        a.service.handlers.serve_block_request = serve
        await b.service.dial(a.addr)
        raw = RawPeer()
        await raw.connect(a.addr)
        assert raw.ws is not None
        transport = raw.ws._response.connection.transport  # type: ignore[union-attr]
        transport.pause_reading()  # never reads
        await wait_for(lambda: len(a.service.peers()) == 2)
        peak = 0
        for i in range(30):  # 30 MiB of answers, far past the socket buffers
            await raw.send(BlockRequest(i + 1, 0, 10))
            await asyncio.sleep(0.05)
            p = a.service._peers.get(raw.key.peer_id)
            peak = max(peak, getattr(p, "queued_bytes", 0))
        await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [b.id], timeout=5)
        assert "send queue full: the peer does not read its responses" in caplog.text
        assert peak <= 3 * mib  # the bound plus the one message always let in
        assert [d.block.header.number for d in await b.service.request_blocks(a.id, 0, 3)] == [0, 1, 2]
        transport.abort()
        await raw.close()


async def test_gossiped_transactions_are_rate_limited_per_peer_in_count_and_bytes(caplog) -> None:
    """Review 5: a peer cannot make us take in (hash, decode, verify) more extrinsics than its
    allowance; the excess is dropped, not marked seen, and costs no ban (an honest burst)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {"tx_per_second": 10.0, "tx_burst": 20.0, "tx_bytes_per_second": 10_000.0, "tx_byte_burst": 20_000.0}
    async with nodes(limits, {}) as (a, b):
        a.regossip = False
        raw = RawPeer()
        await raw.connect(a.addr)
        await raw.send(Transactions(tuple(b"xt-%03d" % i for i in range(100))))
        await asyncio.wait_for(a.tx_event.wait(), 3)
        await asyncio.sleep(0.2)
        assert [len(xts) for _, xts in a.txs] == [20]
        assert "dropped 80 of 100 extrinsics from" in caplog.text
        await raw.send(Transactions((bytes(15_000), bytes([1]) * 15_000)))  # the byte bucket: one of two
        await wait_for(lambda: len(a.txs) == 2)
        assert a.txs[1][1] == (bytes(15_000),)
        assert raw.key.peer_id in [p.peer_id for p in a.service.peers()]
        assert a.service.reputation.score(raw.key.peer_id) == 0
        # The dropped ones were not marked seen: an honest peer can still bring them.
        await b.service.dial(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 2)
        b.service.broadcast_transactions((b"xt-050",))
        await wait_for(lambda: len(a.txs) == 3)
        assert a.txs[2] == (b.id, (b"xt-050",))
        await raw.close()


async def test_gossiped_fraud_proofs_take_from_an_allowance_of_their_own_before_anything_else(caplog) -> None:
    """A fraud proof costs a header's read, then a hash and perhaps a segment's re-run: each
    takes a token of its sender's fraud-proof allowance first, and one over it is dropped
    before the node is asked of it, not marked seen (another peer's copy is read) and not
    charged (an honest relay forwards every proof it judged true). That allowance is not the
    request allowance: taken from it, proofs we had seen left an honest relay's next block
    requests over the limit, and it was banned for flooding (an outside tester's AE3)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {"fraud_proofs_per_second": 1e-6, "fraud_proof_burst": 2.0, "requests_per_second": 1e-6, "request_burst": 2.0}
    async with nodes(limits, {}) as (a, b):
        asked: list[tuple[PeerId, bytes]] = []
        handled: list[tuple[PeerId, bytes]] = []

        def admit(peer: PeerId, proof: bytes) -> bool:
            asked.append((peer, proof))
            return True

        async def judged(peer: PeerId, proof: bytes) -> None:
            handled.append((peer, proof))

        a.service.handlers.admit_fraud_proof = admit
        a.service.handlers.on_fraud_proof = judged
        raw = RawPeer()
        await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 1)
        proofs = [b"proof %d" % i for i in range(4)]
        for proof in proofs:
            await raw.send(FraudProofGossip(proof))
        await wait_for(lambda: caplog.text.count(f"dropped a fraud proof from {raw.key.peer_id}: over its rate") == 2)
        assert asked == handled == [(raw.key.peer_id, proofs[0]), (raw.key.peer_id, proofs[1])]
        assert a.service.reputation.score(raw.key.peer_id) == 0
        for request_id in (1, 2):  # the request allowance is whole: both answered, no charge
            await raw.send(BlockRequest(request_id, 0, 1))
            answer = await raw.recv()
            assert isinstance(answer, BlockResponse) and answer.id == request_id
        assert a.service.reputation.score(raw.key.peer_id) == 0
        await b.service.dial(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 2)
        b.service.broadcast_fraud_proof(proofs[3])
        await wait_for(lambda: len(handled) == 3)
        assert handled[2] == (b.id, proofs[3])
        await raw.close()


async def test_all_inbound_peers_share_the_nodes_allowances_of_unasked_work(caplog) -> None:
    """Peers of several addresses, each within its own allowances and its address's, share
    the node's allowances of extrinsics, fraud proofs, justifications and votes
    (NetworkConfig.inbound_*, node.network.peer.WorkShare): past them, the excess of a peer over
    its part is dropped unseen and uncharged. Per peer and per address alone, 30 identities on
    30 addresses, each within its own 256 unpayable extrinsics a second, held a node at 90% of
    a core and its validator missed four slots in five (retest42's F3)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {
        "inbound_tx_per_second": 1e-6, "inbound_tx_burst": 30.0,
        "inbound_fraud_proofs_per_second": 1e-6, "inbound_fraud_proof_burst": 3.0,
        "inbound_justifications_per_second": 1e-6, "inbound_justification_burst": 3.0,
        "inbound_votes_per_second": 1e-6, "inbound_vote_burst": 3.0,
    }
    async with nodes(limits) as (a,):
        a.regossip = False
        judged: list[PeerId] = []
        justified: list[PeerId] = []

        async def judge(peer: PeerId, proof: bytes) -> None:
            judged.append(peer)

        async def justify(peer: PeerId, payload: bytes) -> None:
            justified.append(peer)

        a.service.handlers.on_fraud_proof = judge
        a.service.handlers.on_justification = justify
        first, second = RawPeer(), RawPeer()
        for raw, host in ((first, "127.0.0.2"), (second, "127.0.0.3")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 2)
        for n, (raw, dropped) in enumerate(((first, 0), (second, 1))):
            await raw.send(Transactions(tuple(b"xt-%d-%03d" % (n, i) for i in range(25))))
            await wait_for(lambda n=n: len(a.txs) == n + 1)
            for i in range(2):
                await raw.send(FraudProofGossip(b"proof %d %d" % (n, i)))
                await raw.send(Justification(b"justification %d %d" % (n, i)))
            for what in ("fraud proof", "justification"):
                drop = f"dropped a {what} from {raw.key.peer_id}: over its rate"
                await wait_for(lambda drop=drop, dropped=dropped: caplog.text.count(drop) == dropped)
            await raw.send(FinalityVotes(tuple(b"vote %d %d" % (n, i) for i in range(2))))
            if dropped:
                await wait_for(lambda raw=raw: f"dropped 1 of 2 votes from {raw.key.peer_id}" in caplog.text)
            else:
                await wait_for(lambda: len(a.votes) == 2)
        assert [(peer, len(xts)) for peer, xts in a.txs] == [(first.key.peer_id, 25), (second.key.peer_id, 5)]
        assert "dropped 20 of 25 extrinsics from" in caplog.text and "its address's or the node's" in caplog.text
        assert judged == justified == [first.key.peer_id] * 2 + [second.key.peer_id]
        assert a.votes == [b"vote 0 0", b"vote 0 1", b"vote 1 0"]
        # The node's votes spent and the second over its part: its next batch is not even decoded.
        await second.send(FinalityVotes((b"vote 1 2",)))
        await wait_for(lambda: f"dropped a batch of votes from {second.key.peer_id} unread" in caplog.text)
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (first, second))
        for raw in (first, second):
            await raw.close()


async def test_past_the_bytes_inbound_peers_may_hold_in_parts_the_oldest_part_is_dropped(caplog) -> None:
    """The byte shares are rates: 31 identities each sending 15.9 MiB of a message and never
    its last chunk held 476 MiB of a node's memory (retest42's F2). Past ``inbound_held_bytes``
    held so, the peer whose part is the oldest (by its first chunk) is dropped, uncharged:
    the one sending, or another, and then the one sending goes on."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    chunk = bytes((FLAG_MORE,)) + b"\x98" + bytes(MAX_CHUNK - 1)  # a Transactions message's first parts
    async with nodes({"inbound_held_bytes": 3.5 * MAX_CHUNK}) as (a,):
        a.regossip = False
        old, new, late = RawPeer(), RawPeer(), RawPeer()
        for raw, host in ((old, "127.0.0.2"), (new, "127.0.0.3"), (late, "127.0.0.4")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 3)
        # 4 parts, the old one sending the last: its part is the oldest (by its first chunk,
        # not its last), and it is dropped itself.
        for raw in (old, new, old, old):
            await raw.send_encrypted(chunk)
        said = "the node's inbound peers held more than 229313 bytes of messages not complete yet, its part the oldest"
        await wait_for(lambda: f"disconnected from {old.key.peer_id}: {said}" in caplog.text)
        assert {p.peer_id for p in a.service.peers()} == {new.key.peer_id, late.key.peer_id}
        for _ in range(3):  # 4 parts: the new one's is the oldest, and not the largest
            await late.send_encrypted(chunk)
        await wait_for(lambda: f"disconnected from {new.key.peer_id}: {said}" in caplog.text)
        assert [p.peer_id for p in a.service.peers()] == [late.key.peer_id]
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (old, new, late))
        for raw in (old, new, late):
            await raw.close()


def test_held_parts_shed_the_oldest_holder_and_raise_for_the_reader_itself() -> None:
    """FrameShare.hold as the read loop meets it: past the cap, another oldest holder is shed
    (the reader goes on); the reader oldest raises HostFlood for itself; a holder we asked
    for an answer is neither counted nor shed."""
    from types import SimpleNamespace

    from node.network.errors import HostFlood
    from node.network.peer import FrameShare
    from rpc.connections import RateLimiter

    class Holder:
        def __init__(self, held: int, since: float, asked: int = 0) -> None:
            self.session, self.held_since, self.asked = SimpleNamespace(held=held), since, asked

    shed: list[object] = []
    share = FrameShare(RateLimiter(1.0, 1.0), RateLimiter(1.0, 1.0), "they", lambda p, r: shed.append(p), held_cap=100)
    first, second, answering = Holder(60, 1.0), Holder(50, 2.0), Holder(1000, 0.0, asked=1)
    for p in (first, second, answering):
        share.peers.add(p)  # type: ignore[arg-type]
    share.hold(answering)  # type: ignore[arg-type]  (an answer we wait for: not counted)
    assert shed == []
    share.hold(second)  # type: ignore[arg-type]
    assert shed == [first] and first not in share.peers
    second.session.held = 120
    with pytest.raises(HostFlood, match=r"^they held more than 100 bytes of messages not complete yet, its part the oldest$"):
        share.hold(second)  # type: ignore[arg-type]
    assert shed == [first] and second not in share.peers


async def test_all_inbound_peers_share_the_nodes_allowance_of_extrinsic_bytes(caplog) -> None:
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"inbound_tx_bytes_per_second": 1e-6, "inbound_tx_byte_burst": 20_000.0}) as (a,):
        a.regossip = False
        raw = RawPeer()
        assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: len(a.service.peers()) == 1)
        await raw.send(Transactions((bytes(15_000), bytes([1]) * 15_000)))  # one of two
        await wait_for(lambda: len(a.txs) == 1)
        assert a.txs[0][1] == (bytes(15_000),) and "dropped 1 of 2 extrinsics from" in caplog.text
        await raw.close()


def test_a_work_share_lets_a_peer_within_its_part_pass_and_drops_the_excess_of_one_over_it() -> None:
    """Past the node's allowance of a kind of work, a sharer whose amount of it about the last
    second is within its part (the rate over the sharers) passes, in debt; one over it is
    refused. An honest peer that sends little is never the one dropped, whoever spent the
    allowance; and the sharers within their parts take no more than the rate in all."""
    import weakref

    from node.network.peer import WorkShare

    class Sharer:  # what a WorkShare keeps of a peer: a weak reference
        pass

    busy, light = Sharer(), Sharer()
    sharers: weakref.WeakSet = weakref.WeakSet((busy, light))
    share = WorkShare(100.0, 10.0, sharers)  # a part of 100 / 2 = 50 a second each
    passed = sum(share.take(busy) for _ in range(100))  # type: ignore[arg-type]
    assert 50 <= passed <= 53  # 10 from the allowance, then in debt up to its part
    assert share.allowance.wait_for(1.0) > 0.3
    assert not share.may_take(busy) and share.may_take(light)  # type: ignore[arg-type]
    assert all(share.take(light) for _ in range(40))  # type: ignore[arg-type]
    assert share.may_take(light)  # type: ignore[arg-type]  (41 <= 50)
    third = Sharer()
    sharers.add(third)  # three sharers: a part of 33 each
    assert not share.may_take(light) and not share.take(light)  # type: ignore[arg-type]
    assert share.may_take(third) and share.take(third, 30.0)  # type: ignore[arg-type]
    # The amounts are of about the last second: what a peer sent 10 s ago is forgotten.
    share.loads[light]._at -= 10.0  # type: ignore[index]
    assert share.loads[light].add(1.0) < 2.0 and share.take(light)  # type: ignore[index, arg-type]


async def test_the_inbound_peers_of_one_address_share_its_allowances_of_extrinsics_and_fraud_proofs(caplog) -> None:
    """Identities of one address each within their own allowance: together they get
    ``host_allowance_peers`` peers' worth of extrinsics, fraud proofs, justifications and votes, the
    excess dropped unseen and uncharged; another address has its own. Per peer alone, 30
    identities of one host each sent 256 unpayable extrinsics a second: 75% of a core (an
    outside tester's AF4)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {
        "tx_per_second": 1e-6, "tx_burst": 20.0, "tx_bytes_per_second": 1e-6, "tx_byte_burst": 1e6,
        "fraud_proofs_per_second": 1e-6, "fraud_proof_burst": 2.0, "host_allowance_peers": 1.5,
        "justifications_per_second": 1e-6, "justification_burst": 2.0,
        "votes_per_second": 1e-6, "vote_burst": 2.0,
    }
    async with nodes(limits) as (a,):
        a.regossip = False
        judged: list[tuple[PeerId, bytes]] = []
        justified: list[PeerId] = []

        async def judge(peer: PeerId, proof: bytes) -> None:
            judged.append((peer, proof))

        async def justify(peer: PeerId, payload: bytes) -> None:
            justified.append(peer)

        a.service.handlers.on_fraud_proof = judge
        a.service.handlers.on_justification = justify
        first, second, other = RawPeer(), RawPeer(), RawPeer()
        for raw, host in ((first, "127.0.0.2"), (second, "127.0.0.2"), (other, "127.0.0.3")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 3)
        for n, (raw, dropped) in enumerate(((first, 2), (second, 3), (other, 2))):
            await raw.send(Transactions(tuple(b"xt-%d-%03d" % (n, i) for i in range(100))))
            await wait_for(lambda n=n: len(a.txs) == n + 1)
            for i in range(4):
                await raw.send(FraudProofGossip(b"proof %d %d" % (n, i)))
            drop = f"dropped a fraud proof from {raw.key.peer_id}: over its rate"
            await wait_for(lambda drop=drop, dropped=dropped: caplog.text.count(drop) == dropped)
            for i in range(4):
                await raw.send(Justification(b"justification %d %d" % (n, i)))
            drop = f"dropped a justification from {raw.key.peer_id}: over its rate"
            await wait_for(lambda drop=drop, dropped=dropped: caplog.text.count(drop) == dropped)
            await raw.send(FinalityVotes(tuple(b"vote %d %d" % (n, i) for i in range(4))))
            drop = f"dropped {dropped} of 4 votes from {raw.key.peer_id}: over its rate"
            await wait_for(lambda drop=drop: drop in caplog.text)
        # Each may take 20 and 2; the address of the first two 30 and 3 in all.
        assert [(peer, len(xts)) for peer, xts in a.txs] == [(first.key.peer_id, 20), (second.key.peer_id, 10), (other.key.peer_id, 20)]
        assert [peer for peer, _ in judged] == [first.key.peer_id] * 2 + [second.key.peer_id] + [other.key.peer_id] * 2
        assert justified == [first.key.peer_id] * 2 + [second.key.peer_id] + [other.key.peer_id] * 2
        assert a.votes == [b"vote 0 0", b"vote 0 1", b"vote 1 0", b"vote 2 0", b"vote 2 1"]
        assert f"dropped 90 of 100 extrinsics from {second.key.peer_id}: over its rate" in caplog.text
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (first, second, other))
        for raw in (first, second, other):
            await raw.close()


async def test_the_inbound_peers_of_one_address_share_its_frames_and_past_them_its_busiest_is_dropped(caplog) -> None:
    """Identities of one address each within their own frame allowance: together they get
    ``host_allowance_peers`` peers' worth of frames (and bytes). Past them the address's peer
    with the most frames lately is dropped, not charged, and the frame passes: a light
    neighbour's frame sheds the busy identity, and our request to the neighbour is sent at
    once and its answer read. Another address has its own. Per peer alone, 16 identities of
    one host, each within its own 500 frames a second of votes that blame no one, held a node
    at 73% of a core (an outside tester's AG1, retest37). Dropping whichever peer's frame
    found the share spent dropped an honest neighbour in every run (retest39's F2), and our
    requests that waited for the share never went to it (F3)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {"frames_per_second": 1e-6, "frame_burst": 400.0, "host_allowance_peers": 1.0, "shed_cooldown": 1.0}
    async with nodes(limits) as (a,):
        votes = count_votes(a)
        first, neighbour, second, other = RawPeer(), RawPeer(), RawPeer(), RawPeer()
        for raw, host in ((first, "127.0.0.2"), (neighbour, "127.0.0.2"), (second, "127.0.0.2"), (other, "127.0.0.3")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 4)

        async def send(raw: RawPeer, n: int, expected: int) -> None:
            for _ in range(n):
                await raw.send(FinalityVotes((os.urandom(16),)))
            await wait_for(lambda: votes.count(raw.key.peer_id) == expected)

        for raw, n in ((first, 50), (neighbour, 2), (second, 348), (other, 350)):
            await send(raw, n, n)
        # The address's 400 frames are spent: the second's next one drops it, the busiest.
        await second.send(FinalityVotes((b"one too many",)))
        await wait_for(lambda: second.key.peer_id not in {p.peer_id for p in a.service.peers()})
        said = "its address's inbound peers passed the 1e-06 frames/s they share (burst 400), it with the most frames lately"
        assert f"disconnected from {second.key.peer_id}: {said}" in caplog.text
        assert votes.count(second.key.peer_id) == 348
        # Its address's new connections are reset for shed_cooldown, not its peers already in:
        # a shed identity came back at once with a fresh key (an outside tester's N1, retest41).
        comer = RawPeer()
        with pytest.raises((ConnectionError, aiohttp.ClientError)):
            await comer.connect(a.addr, host="127.0.0.2")
        await comer.close()
        await asyncio.sleep(1.0)
        comer = RawPeer()
        assert isinstance(await comer.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: comer.key.peer_id in {p.peer_id for p in a.service.peers()})
        await comer.close()
        await wait_for(lambda: comer.key.peer_id not in {p.peer_id for p in a.service.peers()})
        # Still spent. Our request to the neighbour is not held back by its address's share
        # (only by its own read limits), and its answer passes, shedding no one.
        assert a.service._peers[neighbour.key.peer_id].inbound_wait(100) == 0
        asked = asyncio.create_task(a.service.request_blocks(neighbour.key.peer_id, 0, 10))
        request = await neighbour.recv()
        assert isinstance(request, BlockRequest)
        # 10 MiB: 161 frames, more than the first's 50 in load if they counted
        answer = tuple(BlockData(block, bytes(MAX_JUSTIFICATION_SIZE)) for block in a.blocks[:10])
        await neighbour.send(BlockResponse(request.id, answer))
        assert [d.block for d in await asyncio.wait_for(asked, 5)] == a.blocks[:10]
        assert {p.peer_id for p in a.service.peers()} == {first.key.peer_id, neighbour.key.peer_id, other.key.peer_id}
        # Its vote (unasked) passes too, and drops the first, busier than it.
        await send(neighbour, 1, 3)
        await wait_for(lambda: {p.peer_id for p in a.service.peers()} == {neighbour.key.peer_id, other.key.peer_id})
        assert f"disconnected from {first.key.peer_id}: {said}" in caplog.text
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (first, neighbour, second, other))
        assert neighbour.ws is not None
        await neighbour.ws.ping()  # a ping is a frame too, and the neighbour is the last of its address
        await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [other.key.peer_id])
        assert a.service.reputation.score(neighbour.key.peer_id) == 0
        for raw in (first, neighbour, second, other):
            await raw.close()


async def test_all_inbound_peers_share_the_nodes_frames_and_past_them_the_busiest_is_dropped(caplog) -> None:
    """Peers of several addresses, each within its own allowance and its address's: together
    they get ``inbound_frames_per_second`` frames, and past them the busiest of all is
    dropped, uncharged, and the frame passes (30 identities on 30 addresses, each within its
    own 500 frames a second: 58% of a core, an outside tester's F1, retest39)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    limits = {"inbound_frames_per_second": 1e-6, "inbound_frame_burst": 100.0}
    async with nodes(limits) as (a,):
        votes = count_votes(a)
        busy, light = RawPeer(), RawPeer()
        for raw, host in ((busy, "127.0.0.2"), (light, "127.0.0.3")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 2)
        for raw, n, total in ((busy, 60, 60), (light, 40, 40), (light, 1, 41)):
            for _ in range(n):
                await raw.send(FinalityVotes((os.urandom(16),)))
            await wait_for(lambda raw=raw, total=total: votes.count(raw.key.peer_id) == total)
        await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [light.key.peer_id])
        said = "the node's inbound peers passed the 1e-06 frames/s they share (burst 100), it with the most frames lately"
        assert f"disconnected from {busy.key.peer_id}: {said}" in caplog.text
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (busy, light))
        comer = RawPeer()  # shed by another's frame, its address is held for shed_cooldown all the same
        with pytest.raises((ConnectionError, aiohttp.ClientError)):
            await comer.connect(a.addr, host="127.0.0.2")
        for raw in (busy, light, comer):
            await raw.close()


async def test_a_batch_of_votes_is_handled_a_slice_a_loop_turn() -> None:
    """The handler of a vote that finds the node's lock free never yields: a batch of 256
    handled in one go held the event loop for all of their signature checks (26 ms), and 30
    peers' batches for 0.8 s (retest42). The loop gets a turn every VOTES_PER_TURN votes."""
    async with nodes({}) as (a,):
        turns = 0
        seen: list[int] = []

        async def handle(peer: PeerId, payload: bytes) -> None:
            seen.append(turns)

        async def tick() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        a.service.handlers.on_vote = handle
        raw = RawPeer()
        assert isinstance(await raw.connect(a.addr), Status)
        ticker = asyncio.create_task(tick())
        try:
            await raw.send(FinalityVotes(tuple(os.urandom(16) for _ in range(MAX_VOTES_PER_MESSAGE))))
            await wait_for(lambda: len(seen) == MAX_VOTES_PER_MESSAGE)
        finally:
            ticker.cancel()
            await raw.close()
        slices = [seen[i : i + VOTES_PER_TURN] for i in range(0, MAX_VOTES_PER_MESSAGE, VOTES_PER_TURN)]
        assert all(len(set(part)) == 1 for part in slices)  # a slice in one turn
        assert all(later[0] > earlier[0] for earlier, later in itertools.pairwise(slices))  # a turn between


async def test_all_inbound_peers_share_the_nodes_bytes_too(caplog) -> None:
    """The node's inbound share holds bytes as well as frames: past them the busiest of all
    is dropped, uncharged."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"inbound_bytes_per_second": 1e-6, "inbound_byte_burst": 60_000.0}) as (a,):
        votes = count_votes(a)
        busy, light = RawPeer(), RawPeer()
        for raw, host in ((busy, "127.0.0.2"), (light, "127.0.0.3")):
            assert isinstance(await raw.connect(a.addr, host=host), Status)
        await wait_for(lambda: len(a.service.peers()) == 2)
        for raw, tag, total in ((busy, 1, 60), (busy, 2, 120), (busy, 3, 180), (light, 4, 60)):  # 15 kB each
            await raw.send(FinalityVotes(tuple(bytes([tag, k]) * 124 + b"v" for k in range(60))))
            await wait_for(lambda raw=raw, total=total: votes.count(raw.key.peer_id) == total)
        await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [light.key.peer_id])
        said = "the node's inbound peers passed the 1e-06 bytes/s they share (burst 60000), it with the most frames lately"
        assert f"disconnected from {busy.key.peer_id}: {said}" in caplog.text
        assert all(a.service.reputation.score(raw.key.peer_id) == 0 for raw in (busy, light))
        for raw in (busy, light):
            await raw.close()


async def test_the_inbound_peers_of_one_address_share_its_bytes_and_past_them_are_dropped_uncharged(caplog) -> None:
    """As their frames: the bytes the identities of one address send are
    ``host_allowance_peers`` peers' worth together."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"bytes_per_second": 1e-6, "byte_burst": 40_000.0, "host_allowance_peers": 1.5}) as (a,):
        votes = count_votes(a)
        first, second = RawPeer(), RawPeer()
        for raw in (first, second):
            assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
        await wait_for(lambda: len(a.service.peers()) == 2)
        def batch(n: int, i: int) -> FinalityVotes:  # 60 votes of 250 bytes: 15 kB
            return FinalityVotes(tuple(bytes([n, i, k]) * 83 + b"v" for k in range(60)))

        for raw, n in ((first, 2), (second, 1)):  # 45 kB of the address's 60
            for i in range(n):
                await raw.send(batch(n, i))
            await wait_for(lambda raw=raw, n=n: votes.count(raw.key.peer_id) == 60 * n)
        await second.send(batch(9, 9))  # 30 kB of its own 40, 60 kB and more of theirs
        await wait_for(lambda: [p.peer_id for p in a.service.peers()] == [first.key.peer_id])
        assert "its address's inbound peers passed the 1.5e-06 bytes/s they share (burst 60000), it with the most" in caplog.text
        assert votes.count(second.key.peer_id) == 60 and a.service.reputation.score(second.key.peer_id) == 0
        for raw in (first, second):
            await raw.close()


async def test_gossiped_justifications_take_from_an_allowance_before_they_are_hashed(caplog) -> None:
    """A justification (up to 1,024 votes, walked before a refusal that blames no one) takes a
    token of its sender's justification allowance first; over it, it is dropped unseen and
    uncharged (an outside tester's AF7: 250 a second from one peer, 46% of a core)."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"justifications_per_second": 1e-6, "justification_burst": 2.0}) as (a,):
        handled: list[bytes] = []

        async def judge(peer: PeerId, payload: bytes) -> None:
            handled.append(payload)

        a.service.handlers.on_justification = judge
        raw, other = RawPeer(), RawPeer()
        for r in (raw, other):
            await r.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 2)
        for i in range(4):
            await raw.send(Justification(b"justification %d" % i))
        await wait_for(lambda: caplog.text.count(f"dropped a justification from {raw.key.peer_id}: over its rate") == 2)
        await other.send(Justification(b"justification 3"))  # another peer's copy of a dropped one is read
        await wait_for(lambda: len(handled) == 3)
        assert handled == [b"justification 0", b"justification 1", b"justification 3"]
        assert a.service.reputation.score(raw.key.peer_id) == 0
        for r in (raw, other):
            await r.close()


async def test_messages_queued_behind_one_that_got_their_peer_banned_are_not_read() -> None:
    """A peer banned while messages of its are queued for their handler: they are dropped
    unread. Each was read on before, its charge skipped as its peer was gone: proofs a
    banned identity had queued, up to the queue's 256 (an outside tester's AE7, retest35)."""
    async with nodes({}) as (a,):
        asked: list[bytes] = []
        raw = RawPeer()

        def admit(peer: PeerId, proof: bytes) -> bool:
            asked.append(proof)
            return True

        async def judged(peer: PeerId, proof: bytes) -> None:
            # Four more queued behind this one, then the ban (as a false proof's charge would).
            queued = a.service._peers[peer]
            await wait_for(lambda: queued.waiting_bytes >= 5 * len(encode_message(FraudProofGossip(proof))))
            a.service.report_peer(peer, Misbehaviour.GARBAGE, "a test's ban")

        a.service.handlers.admit_fraud_proof = admit
        a.service.handlers.on_fraud_proof = judged
        await raw.connect(a.addr)
        await wait_for(lambda: len(a.service.peers()) == 1)
        proofs = [b"proof %d" % i for i in range(5)]
        for proof in proofs:
            await raw.send(FraudProofGossip(proof))
        await wait_for(lambda: a.service.reputation.banned_for(raw.key.peer_id) > 0)
        await asyncio.sleep(0.3)
        assert asked == proofs[:1]
        await raw.close()


async def test_one_address_holding_the_inbound_slots_gives_way_to_another_address() -> None:
    """One address with many identities took every inbound slot and kept everyone else out
    (an outside tester's finding, round 7). With every slot taken, a newcomer from another
    address now closes the newest peer of the address that holds the most, if that holds more
    than a quarter of the slots; a newcomer from the hog's own address is still refused, and
    peers of one address never evict each other (a local devnet). Nobody is charged."""
    async with nodes({"in_peers": 4}) as (a,):
        hogs = [RawPeer() for _ in range(4)]
        for raw in hogs:
            assert isinstance(await raw.connect(a.addr), Status)
        await wait_for(lambda: len(a.service.peers()) == 4)
        same = RawPeer()
        refused = await same.connect(a.addr)
        assert isinstance(refused, Disconnect) and "no free inbound slot (4/4)" in refused.reason
        newcomers = [RawPeer() for _ in range(3)]
        for n, raw in enumerate(newcomers, 1):
            assert isinstance(await raw.connect(a.addr, host="127.0.0.2"), Status)
            gone = await hogs[-n].recv()  # the newest hog left first
            assert isinstance(gone, Disconnect), gone
            assert gone.reason == f"evicted: its address holds {5 - n} of 4 inbound slots"
        # 127.0.0.1 holds 1 (a quarter) and 127.0.0.2 holds 3: a third address evicts from .2 only.
        await wait_for(lambda: len(a.service.peers()) == 4)
        third = RawPeer()
        assert isinstance(await third.connect(a.addr, host="127.0.0.3"), Status)
        assert isinstance(await newcomers[-1].recv(), Disconnect)
        await wait_for(lambda: sorted(p.peer_id for p in a.service.peers()) == sorted(
            r.key.peer_id for r in (hogs[0], newcomers[0], newcomers[1], third)
        ))
        assert all(a.service.reputation.score(r.key.peer_id) == 0 for r in (*hogs, *newcomers))
        for raw in (*hogs, same, *newcomers, third):
            await raw.close()


async def test_an_inbound_slot_is_given_way_only_by_an_address_holding_more_than_a_quarter() -> None:
    """The bound of _evict_inbound: with four slots held by four addresses, one each (a
    quarter, not more), a fifth address is refused and nobody is closed (choose_evictee keeps
    four peers by the keyed hash of their address: here every one); with no inbound slot
    at all (``in_peers=0``) a newcomer is refused for the slot, not failed by an empty
    ``max``. (Mutation testing, mut12: ``<`` for ``<=``, ``// 5`` for ``// 4``, the
    ``default`` of the ``max`` over no addresses.)"""
    async with nodes({"in_peers": 4}, {"in_peers": 0}) as (a, closed):
        held = [RawPeer() for _ in range(4)]
        for n, raw in enumerate(held, 1):
            assert isinstance(await raw.connect(a.addr, host=f"127.0.0.{n}"), Status)
        await wait_for(lambda: len(a.service.peers()) == 4)
        fifth = RawPeer()
        answer = await fifth.connect(a.addr, host="127.0.0.5")
        assert isinstance(answer, Disconnect) and "no free inbound slot (4/4)" in answer.reason
        await asyncio.sleep(0.2)
        assert sorted(p.peer_id for p in a.service.peers()) == sorted(r.key.peer_id for r in held)
        nobody = RawPeer()
        answer = await nobody.connect(closed.addr)
        assert isinstance(answer, Disconnect) and "no free inbound slot (0/0)" in answer.reason
        for raw in (*held, fifth, nobody):
            await raw.close()


async def test_inbound_slots_and_their_eviction_count_inbound_peers_only() -> None:
    """Our outbound peers hold outbound slots: they neither fill the inbound ones nor make an
    address (they have none, ``host`` None) that an inbound newcomer's eviction looks at. A
    node with five outbound peers still takes four inbound from one address, and a newcomer
    from another closes the newest of those. (Mutation testing, mut12: _check_allowed's and
    _evict_inbound's peer filters with an ``or`` for an ``and``.)"""
    async with nodes({"in_peers": 4}, {}, {}, {}, {}, {}) as (a, *others):
        for other in others:
            await a.service.dial(other.addr)
        await wait_for(lambda: sum(p.outbound for p in a.service.peers()) == 5)
        hogs = [RawPeer() for _ in range(4)]
        for raw in hogs:
            assert isinstance(await raw.connect(a.addr), Status)
        newcomer = RawPeer()
        assert isinstance(await newcomer.connect(a.addr, host="127.0.0.2"), Status)
        gone = await hogs[-1].recv()
        assert isinstance(gone, Disconnect) and gone.reason == "evicted: its address holds 4 of 4 inbound slots"
        await wait_for(lambda: sorted(p.peer_id for p in a.service.peers() if not p.outbound) == sorted(
            r.key.peer_id for r in (*hogs[:3], newcomer)
        ))
        assert sum(p.outbound for p in a.service.peers()) == 5
        for raw in (*hogs, newcomer):
            await raw.close()


async def test_idle_websocket_upgrades_from_one_address_cannot_lock_out_inbound_peers(caplog) -> None:
    """Review 7: bare upgrades that never send handshake message 1 hold at most the per-address
    share of the pending-handshake slots, and only for the short first-message deadline."""
    caplog.set_level(logging.INFO, logger="polchain.network")
    async with nodes({"first_message_timeout": 1.0}, {}) as (a, b):
        url = a.addr.websocket_url("/p2p")
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=0)  # another loopback address
        async with aiohttp.ClientSession(connector=connector) as http:

            async def upgrade() -> aiohttp.ClientWebSocketResponse | int:
                try:
                    return await http.ws_connect(url)
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status

            results = await asyncio.gather(*[upgrade() for _ in range(40)])
            idle = [r for r in results if not isinstance(r, int)]
            assert len(idle) == a.service.config.max_pending_per_ip
            assert set(r for r in results if isinstance(r, int)) == {503}
            await b.service.dial(a.addr)  # an honest peer from another address still gets in
            assert [p.peer_id for p in a.service.peers()] == [b.id]
            # The idle ones are cut at the first-message deadline, not the whole handshake's.
            async with asyncio.timeout(1.8):
                for ws in idle:
                    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await wait_for(lambda: a.service._pending_handshakes == 0)
            assert "sent no handshake message within 1 s" in caplog.text
            for ws in idle:
                await ws.close()


async def test_stalled_handshakes_give_way_to_a_new_one(caplog) -> None:
    """With every pending-handshake slot held by connections that sent message 1 and stalled
    (from two addresses, within the per-address share), a new inbound handshake closes the
    oldest one that has taken longer than first_message_timeout, and gets in: a slot was freed
    only by the handshake timeout and retaken at once, and 57 of 58 honest handshakes got 503
    (an outside tester's finding, round 7). Stalled handshakes younger than that are kept: a
    burst of honest ones is not cut."""
    from node.network.noise import StaticKey, _new_connection, _write

    caplog.set_level(logging.INFO, logger="polchain.network")
    # (3 s: the four stalled ones must still be young when the fifth is refused, on a loaded
    # machine too: at 0.5 s their own setup once took longer, and the fifth got in.)
    config = {"first_message_timeout": 3.0, "handshake_timeout": 30.0, "max_pending_handshakes": 4}
    async with nodes(config, {}) as (a, b):
        url = a.addr.websocket_url("/p2p")
        stalled = []
        for host in ("127.0.0.2", "127.0.0.3"):
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(host, 0), limit=0))
            for _ in range(2):
                ws = await http.ws_connect(url)
                await ws.send_bytes(_write(_new_connection(StaticKey.generate(NodeKey.generate()), True), b"", "message 1"))
                assert (await ws.receive()).type == aiohttp.WSMsgType.BINARY  # message 2; then silence
                stalled.append((http, ws))
        assert a.service._pending_handshakes == 4
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url)  # all four are younger than 3 s
        assert refused.value.status == 503
        async with aiohttp.ClientSession() as http:  # (the reason, in the refusal's body)
            key = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
            async with http.get(url.replace("ws://", "http://", 1), headers=key) as answer:
                assert (answer.status, await answer.text()) == (503, "too many handshakes in progress")
        await asyncio.sleep(3.1)
        await b.service.dial(a.addr)  # the oldest stalled one gives way
        assert [p.peer_id for p in a.service.peers()] == [b.id]
        message = await stalled[0][1].receive()
        assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 1013, "handshake too slow")
        for http, ws in stalled[1:]:
            assert not ws.closed and http is not None
            with pytest.raises(TimeoutError):  # no close frame waiting
                await ws.receive(timeout=0.05)
        # The slots are counted again once the evicted one and b's have unwound: with a fourth
        # stalled one (young) the table is full, and the next comer closes the oldest of the rest.
        await wait_for(lambda: a.service._pending_handshakes == 3 and not a.service._evicted)
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.4", 0), limit=0))
        ws = await http.ws_connect(url)
        await ws.send_bytes(_write(_new_connection(StaticKey.generate(NodeKey.generate()), True), b"", "message 1"))
        assert (await ws.receive()).type == aiohttp.WSMsgType.BINARY
        stalled.append((http, ws))
        c = await start_node()
        try:
            await c.service.dial(a.addr)
            message = await stalled[1][1].receive(timeout=2)
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1013)
        finally:
            await c.service.stop()
        for http, ws in stalled:
            await ws.close()
            await http.close()
    slow = [r.getMessage() for r in caplog.records if "held a slot" in r.getMessage()]
    assert slow == ["inbound connection from 127.0.0.2 closed: its handshake held a slot another wanted for over 3 s"] * 2


async def test_a_stall_of_our_own_event_loop_is_not_charged_as_a_request_timeout() -> None:
    """Review 14: the request timeout counts only time our loop was running; a stall of our
    own (here 1.5 s against a 1 s timeout) is not the peer's fault."""
    async with nodes({}, {}) as (a, b):
        await b.service.dial(a.addr)
        await wait_for(lambda: connected(a, b))

        async def stall() -> None:  # runs before our request is even written
            time.sleep(1.5)  # blocks the whole loop, as a long synchronous import would

        stalling = asyncio.create_task(stall())
        got = await b.service.request_blocks(a.id, 0, 2, timeout=1.0)
        await stalling
        assert [d.block.header.number for d in got] == [0, 1]
        assert b.service.reputation.score(a.id) == 0
        # A peer that really does not answer is still charged.
        async def silent(peer, req: BlockRequest) -> list[BlockData]:
            await asyncio.sleep(5)
            return []

        a.service.handlers.serve_block_request = silent
        with pytest.raises(RequestFailed, match="did not answer block request"):
            await b.service.request_blocks(a.id, 0, 2, timeout=0.5)
        assert b.service.reputation.score(a.id) == pytest.approx(Misbehaviour.REQUEST_TIMEOUT.cost, abs=2)


def test_the_frame_limit_is_above_what_an_honest_peer_sends_and_no_higher() -> None:
    """The default frame limit, from both sides. Below: an honest peer's most in a second, its
    votes and transactions one message a gossip window each, answers at the served-bytes rate
    in full Noise chunks, and a block's announcement and justification a slot at the shortest
    slot of a second (with room: a peer is banned past the limit). Above: reading the
    cheapest message costs about 110 us here, and one peer's 2,000 a second held a node at
    20% of a core (an outside tester's AF6): 500 keeps one peer near 5%."""
    from chain.config import RuntimeConfig
    from consensus.finality import MAX_VOTES
    from node.network.service import VOTE_GOSSIP_WINDOW, NetworkConfig
    from node.network.sync import TX_GOSSIP_WINDOW

    config = NetworkConfig()
    honest = 1 / VOTE_GOSSIP_WINDOW + 1 / TX_GOSSIP_WINDOW + config.served_bytes_per_second / MAX_CHUNK + 2
    assert honest < config.frames_per_second <= 500
    assert 0 < VOTE_GOSSIP_WINDOW <= 0.05  # (a relay hop adds at most this to finality's latency)
    # All inbound peers together: each honest one's unasked most (answers pass in debt).
    unasked = 1 / VOTE_GOSSIP_WINDOW + 1 / TX_GOSSIP_WINDOW + 2
    assert config.in_peers * unasked < config.inbound_frames_per_second <= config.in_peers * config.frames_per_second / 4
    # Votes: a round of the largest validator set in one burst, and not more a second than
    # one vote a frame used to allow.
    assert config.vote_burst >= 4 * MAX_VOTES and MAX_VOTES * 1000 / RuntimeConfig().slot_duration_ms <= config.votes_per_second <= 500
    assert config.frame_burst >= 2 * honest


def test_an_address_past_its_share_sheds_its_busiest_peer_once_and_a_shed_one_sheds_no_one() -> None:
    """HostShare.take_frame alone, its peers stand-ins with a load: past the share the busiest
    is shed and the frame passes; a frame the shed one still sends (read before its drop
    takes effect) raises for it and sheds no one else; the last one raises for itself."""

    from node.network.errors import HostFlood
    from node.network.peer import HostShare, Lately, Peer
    from node.network.service import NetworkConfig, NetworkService

    class Loaded:  # what take_frame reads of a peer: its frame load, whether it owes us an answer
        def __init__(self, load: float) -> None:
            self._frames_lately, self.asked = Lately(), 0
            self._frames_lately.add(load)

    config = NetworkConfig(frames_per_second=1e-6, frame_burst=3.0)
    limits = NetworkService(NodeKey.generate(), config, genesis_hash=GENESIS, chain_status=lambda: None)._limits
    shed: list[tuple[object, str]] = []
    share = HostShare(limits, 1.0, lambda peer, reason: shed.append((peer, reason)))
    busy, light, middle = Loaded(10.0), Loaded(1.0), Loaded(5.0)
    for p in (busy, light, middle):
        share.peers.add(p)  # type: ignore[arg-type]
    for _ in range(3):
        share.take_frame(light, 10)  # type: ignore[arg-type]
    assert shed == []
    light.asked = 1  # an answer we wait for passes, in debt, and sheds no one
    share.take_frame(light, 10)  # type: ignore[arg-type]
    assert shed == []
    light.asked = 0
    share.take_frame(light, 10)  # type: ignore[arg-type]
    assert [p for p, _ in shed] == [busy] and "it with the most frames lately" in shed[0][1]
    with pytest.raises(HostFlood, match="passed the 1e-06 frames/s they share"):
        share.take_frame(busy, 10)  # type: ignore[arg-type]
    assert [p for p, _ in shed] == [busy]
    share.take_frame(light, 10)  # type: ignore[arg-type]
    assert [p for p, _ in shed] == [busy, middle]
    with pytest.raises(HostFlood):
        share.take_frame(light, 10)  # type: ignore[arg-type]
    assert [p for p, _ in shed] == [busy, middle] and list(share.peers) == []
    # A frame passed in debt is owed: the share refills it before the next (frames and bytes).
    share = HostShare(NetworkService(
        NodeKey.generate(), NetworkConfig(frames_per_second=1.0, frame_burst=1.0, bytes_per_second=10.0, byte_burst=10.0),
        genesis_hash=GENESIS, chain_status=lambda: None,
    )._limits, 1.0, lambda peer, reason: shed.append((peer, reason)))
    light, heavier = Loaded(0.0), Loaded(1.0)
    share.peers.add(light)  # type: ignore[arg-type]
    share.peers.add(heavier)  # type: ignore[arg-type]
    share.take_frame(light, 10)  # type: ignore[arg-type]
    share.take_frame(light, 10)  # type: ignore[arg-type]  (spent: the other shed, this one in debt)
    assert share.frames.wait_for(1.0) > 1.5 and share.bytes.wait_for(10.0) > 1.5
    # Past the frames, a busiest within its part (the rate over the sharers) is not shed: the
    # frame passes in debt. An attacker's fresh identities, light, spent the share and left
    # an honest neighbour at 5 frames a second the busiest (retest40's F9).
    share = HostShare(NetworkService(
        NodeKey.generate(), NetworkConfig(frames_per_second=100.0, frame_burst=2.0), genesis_hash=GENESIS,
        chain_status=lambda: None,
    )._limits, 1.0, lambda peer, reason: shed.append((peer, reason)))
    fresh, neighbour = Loaded(0.0), Loaded(5.0)
    for p in (fresh, neighbour):
        share.peers.add(p)  # type: ignore[arg-type]
    shed.clear()
    for _ in range(4):
        share.take_frame(fresh, 10)  # type: ignore[arg-type]
    assert shed == [] and share.frames.wait_for(1.0) > 0  # in debt, no one shed: 5 is within 100 / 2
    neighbour._frames_lately.add(55.0)
    share.take_frame(fresh, 10)  # type: ignore[arg-type]
    assert [p for p, _ in shed] == [neighbour]
    # The load is of about the last second: a peer busy 10 s ago is not the busiest now.
    long_ago, lately = Loaded(100.0), Loaded(5.0)
    long_ago._frames_lately._at -= 10.0
    assert Peer.frame_load(long_ago) < 1.0 < Peer.frame_load(lately)  # type: ignore[arg-type]
