"""The node's event-loop lag probe (node.metrics.LoopLagProbe): exported on a real node's
Prometheus endpoint, and moved by a callback that holds the loop.

A NodeService runs in this process (LevelDB in a temporary directory, the dev chain) with its
MetricsServer on a free loopback port, scraped over HTTP by prometheus-client's own parser;
the test then blocks the node's loop itself, as a synchronous fsync or a long encode would.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from dataclasses import replace

import aiohttp
import netkit
from netkit import FAST, running, wait_for
from netkit import start_node as start_peer
from nodekit import free_port
from prometheus_client.parser import text_string_to_metric_families

from chain.codec import decode
from chain.crypto import dev_keypair
from consensus.aura import compute_slot_author
from consensus.finality import SignedVote, VoterState
from genesis.spec import load_chain_spec, with_slot_duration
from node import voter_record
from node.metrics import LoopLagProbe, MetricsServer
from node.service import NodeConfig, NodeService
from node.voter_record import load_record

LAG = "polchain_event_loop_lag_seconds"
ALICE = dev_keypair("Alice")
STALL = 0.4  # seconds the test holds the loop: the probe (every 50 ms) sees at least 0.35 s


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(url) as response:
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _over(m: dict, seconds: str) -> float:
    """Lags observed above ``seconds`` (a bucket bound), from the cumulative buckets."""
    return m[(f"{LAG}_count", ())] - m[(f"{LAG}_bucket", (("le", seconds),))]


async def test_a_blocked_event_loop_shows_in_the_nodes_loop_lag_metrics(tmp_path) -> None:
    service = NodeService(NodeConfig(base_path=tmp_path), load_chain_spec("dev"))
    server = MetricsServer(service.metrics, port=free_port())
    await server.start()
    run = asyncio.create_task(service.run())
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.3)
            before = await _scrape(session, server.url)
            assert before[(f"{LAG}_count", ())] >= 2, "the probe does not run"
            time.sleep(STALL)  # a synchronous call on the node's loop
            await asyncio.sleep(0.2)
            after = await _scrape(session, server.url)
    finally:
        service.request_stop()
        await run
        await server.stop()
    assert _over(after, "0.25") >= _over(before, "0.25") + 1
    assert after[(f"{LAG}_sum", ())] - before[(f"{LAG}_sum", ())] >= STALL - 0.05
    assert after[("polchain_event_loop_lag_max_seconds", ())] >= STALL - 0.05
    assert run.done() and not run.cancelled()  # the probe ended with the node


def test_the_recent_maximum_forgets_a_stall_after_its_window() -> None:
    lags: list[float] = []
    probe = LoopLagProbe(lags.append, window=60.0)
    assert probe.recent_max() == 0.0
    probe.note(100.0, 2.0)
    probe.note(101.0, 0.5)
    probe.note(102.0, 0.7)  # drops 0.5: it can never be the maximum again
    assert probe.recent_max() == 2.0 and lags == [2.0, 0.5, 0.7]
    probe.note(160.5, 0.1)  # 2.0 is older than 60 s now
    assert probe.recent_max() == 0.7
    probe.note(163.0, 0.0)
    assert probe.recent_max() == 0.1


# --- the slashing-protection record is written off the loop, in order, before what it records leaves
def _local_spec(slot_ms: int = 1000):
    # No challenge window, so that a vote has a target (genesis) at once.
    local = load_chain_spec("local")
    return with_slot_duration(replace(local, runtime_config=replace(local.runtime_config, challenge_blocks=0)), slot_ms)


class _Writes:
    """node.voter_record.replace_file, held ``delay`` seconds (or until ``gate`` opens) before
    the real write: which thread wrote, how many at once, and what, in order."""

    def __init__(self, monkeypatch, *, delay: float = 0.0) -> None:
        self.real = voter_record.replace_file
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.on_loop_thread = 0
        self.states: list[VoterState] = []
        monkeypatch.setattr(voter_record, "replace_file", self)

    def __call__(self, path, data: bytes) -> None:
        on_loop = threading.current_thread() is threading.main_thread()  # the tests' loop runs there
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.on_loop_thread += on_loop
        try:
            time.sleep(self.delay)
            if not on_loop:  # (on the loop, a closed gate could never open)
                self.gate.wait(30)
            self.real(path, data)
            self.states.append(decode(data, VoterState))
        finally:
            with self.lock:
                self.in_flight -= 1


async def test_every_vote_a_peer_receives_is_on_disk_first_and_the_record_is_written_off_the_loop(tmp_path, monkeypatch) -> None:
    """A real validator (//Alice of the local chain, in this process) and a real peer over
    Noise: when each vote reaches the peer, the record on disk already covers it (its round,
    its source), though every write now takes 0.2 s more; the writes run one at a time, in
    order, and not on the event loop's thread (before: all of them on it, each ~5 ms of fsync
    for every peer and RPC caller to wait behind; 0.2 s here)."""
    slot_ms = 1000
    await asyncio.sleep((slot_ms - time.time() * 1000 % slot_ms) / 1000 + 0.02)
    writes = _Writes(monkeypatch, delay=0.2)
    config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice", network=FAST)
    node = NodeService(config, _local_spec(slot_ms))
    record = node._voter_record
    uncovered: list[str] = []
    real_on_vote = netkit.Node.on_vote

    async def on_vote(peer_node, peer, payload: bytes) -> bool:
        vote = decode(payload, SignedVote).vote
        state = load_record(record)  # read the moment the vote arrives
        if state is None or state.voted_round < vote.round or (state.justified.round, state.justified.block_number) < (
            vote.source.round, vote.source.block_number
        ):
            uncovered.append(f"round {vote.round} from #{vote.source.block_number}: record {state}")
        return await real_on_vote(peer_node, peer, payload)

    monkeypatch.setattr(netkit.Node, "on_vote", on_vote)
    async with running(node):
        assert node.network is not None
        peer = await start_peer(genesis=node.chain.genesis_hash, blocks=1)
        peer.blocks = [node.chain.get_block(node.chain.genesis_hash)]
        try:
            await peer.service.dial(node.network.listen_addresses[0])
            await wait_for(lambda: len(peer.votes) >= 3, 8 * slot_ms / 1000, "three votes")
        finally:
            await peer.service.stop()
    assert uncovered == []
    assert writes.on_loop_thread == 0, f"{writes.on_loop_thread} of {len(writes.states)} record writes held the event loop"
    assert writes.most_in_flight == 1
    rounds = [s.voted_round for s in writes.states]
    assert rounds == sorted(rounds) and len(writes.states) >= 3
    assert load_record(record) == writes.states[-1]  # the last write is the one on disk


async def test_nothing_is_signed_while_a_record_write_is_in_flight(tmp_path, monkeypatch) -> None:
    """The write of a vote's record is held: meanwhile the vote does not leave, no other
    vote or block is signed (authoring and finality wait), and once the write completes the
    vote is counted once, then the block is made and recorded after it."""
    slot = int(time.time() * 1000) // 1000
    now = [(slot + 0.1)]
    config = NodeConfig(chain="local", base_path=tmp_path / "alice", author="//Alice")
    node = NodeService(config, _local_spec(), clock=lambda: now[0])
    writes = _Writes(monkeypatch)
    try:
        validators = node._validators()
        alices = next(s for s in range(slot + 2, slot + 2 + len(validators)) if compute_slot_author(validators, s) == ALICE.public)
        now[0] = alices + 0.1  # Alice's slot: a round to vote in, and a slot to author in
        writes.gate.clear()

        async def vote() -> None:
            async with node._lock:
                voted = node._vote_if_due()
                if inspect.isawaitable(voted):  # (it was a plain call, with the write on the loop)
                    await voted

        voting = asyncio.create_task(vote())
        await wait_for(lambda: writes.in_flight == 1 or voting.done(), 10, "the vote's record write")
        assert not voting.done(), "the vote's record was written at once, on the loop"
        authoring = asyncio.create_task(node.author_block())
        second = asyncio.create_task(vote())
        await asyncio.sleep(0.3)  # time enough for either to sign, were it not waiting
        assert writes.in_flight == 1 and not voting.done() and not authoring.done() and not second.done()
        assert [v for v in node.collector.recent_votes() if v.voter == ALICE.public] == []
        assert node.chain.best_number == 0
        writes.gate.set()
        await asyncio.gather(voting, second)
        imported = await authoring
        own = [v for v in node.collector.recent_votes() if v.voter == ALICE.public]
        assert [v.vote.round for v in own] == [alices]
        assert imported is not None and imported.block.header.slot == alices
        vote_record, block_record = writes.states[-2:]
        assert vote_record.voted_round == alices and vote_record.authored_slot < alices
        assert (block_record.voted_round, block_record.authored_slot) == (alices, alices)
        assert load_record(node._voter_record) == block_record
        assert writes.most_in_flight == 1
    finally:
        node.close()


async def test_finality_is_imported_off_the_loop(tmp_path, monkeypatch) -> None:
    """A validator that finalizes with its own votes (the only validator of a chain without a
    challenge window) imports each justification, its vote signatures checked and the
    finalized pointer written in a synced batch, on a thread, not on the event loop (before:
    every time on it, about 5 ms of fsync plus 70 us a vote, once a round)."""
    from node import service as service_module

    on_loop: list[bool] = []
    real_verify = service_module.verify_justification
    real_finalize = service_module.finalize_verified
    real_follow = service_module.follow_justified

    def verify_justification(chain, justification, **kwargs):
        on_loop.append(threading.current_thread() is threading.main_thread())  # the tests' loop runs there
        return real_verify(chain, justification, **kwargs)

    def finalize_verified(chain, justification):
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real_finalize(chain, justification)

    def follow_justified(chain, justified):
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real_follow(chain, justified)

    monkeypatch.setattr(service_module, "verify_justification", verify_justification)
    monkeypatch.setattr(service_module, "finalize_verified", finalize_verified)
    monkeypatch.setattr(service_module, "follow_justified", follow_justified)
    dev = load_chain_spec("dev")
    spec = with_slot_duration(replace(dev, runtime_config=replace(dev.runtime_config, challenge_blocks=0)), 500)
    config = NodeConfig(base_path=tmp_path, author="//Alice", network=FAST)
    node = NodeService(config, spec)
    async with running(node):
        await wait_for(lambda: node.chain.finalized_number >= 2, 15, "two blocks finalized")
    assert on_loop and not any(on_loop), f"{sum(on_loop)} of {len(on_loop)} finality imports ran on the event loop"


def test_the_record_writer_keeps_order_and_close_and_flush_wait_for_queued_writes(tmp_path, monkeypatch) -> None:
    """node.voter_record.RecordWriter alone: states queued back to back are written one at a
    time, in order (the last one queued is the one on disk); flush() and close() return only
    once every queued write is on disk (NodeService.close relies on it for the raised records
    queued without waiting)."""
    from consensus.finality import Checkpoint

    writes = _Writes(monkeypatch, delay=0.05)
    states = [VoterState(Checkpoint(b"\x01" * 32, n, n), voted_round=n) for n in range(1, 5)]
    path = tmp_path / "record"
    writer = voter_record.RecordWriter(path)
    for state in states[:2]:
        writer.submit(state)
    writer.flush()
    assert writes.states == states[:2] and load_record(path) == states[1]
    for state in states[2:]:
        writer.submit(state)
    writer.close()
    assert writes.states == states and load_record(path) == states[-1]
    assert writes.most_in_flight == 1 and writes.on_loop_thread == 0
