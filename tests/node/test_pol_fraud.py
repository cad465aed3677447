"""Fraud and withholding on the node side, with real ``polchain node`` processes and a
hand-driven peer (real WebSocket and Noise) that relays a forged block and serves its forged
checkpoints (or withholds them).

The block is the strongest forgery: one checkpoint of a TRAIN call's transcript is made up, the
transcript, results root, state root and seal are recomputed from it, so only re-running one
of the two segments around it shows the fault. Each node's proof-of-learning secret is written
into its keystore before it starts, chosen so its sample covers the forged segments (a
detector) or misses them (a node that imports the block and learns of the fraud from a peer).
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from pathlib import Path

import msgspec
import numpy as np
from netkit import RawPeer
from nodekit import free_port, start_node
from prometheus_client.parser import text_string_to_metric_families

import ml_runtime
from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.extrinsic import decode_extrinsic, sign_extrinsic
from chain.fraud import decode_fraud_proof, verify_fraud_proof
from chain.storage import Database
from chain.transcripts import LocalSource
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from consensus.pol import SampledVerifier, compute_sample
from genesis.spec import load_chain_spec
from node.network.identity import NodeKey
from node.network.messages import (
    DESCENDING,
    BlockAnnounce,
    BlockData,
    BlockRequest,
    BlockResponse,
    FraudProofGossip,
    Status,
    TranscriptRequest,
    TranscriptResponse,
)
from node.network.multiaddr import Multiaddr
from node.pol_keystore import compute_secret_path
from rpc.client import RpcClient

ALICE, BOB, CHARLIE = dev_keypair("Alice"), dev_keypair("Bob"), dev_keypair("Charlie")
STEPS, SEGMENT = 80, 10  # 8 segments, 9 entries
FORGED = 4  # checkpoint 4 is made up: segments 3 and 4 do not re-run
FAULTY = {FORGED - 1, FORGED}
SAMPLES = 4  # the dev chain's pol_samples


def _forging_trainer(job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
    honest = ml_runtime.run_job(job)
    checkpoints = list(honest.checkpoints)
    checkpoints[FORGED] = (checkpoints[FORGED] + np.float32(0.01)).astype(np.float32)
    entries = [
        ml_runtime.TranscriptEntry(e.index, ml_runtime.hash_weights(checkpoints[e.index]), e.loss)
        for e in honest.transcript.entries
    ]
    return ml_runtime.JobResult(honest.weights, tuple(checkpoints), ml_runtime.Transcript.build(entries), True)


def _forged_block(path: Path, trainer=_forging_trainer, slot: int | None = None) -> tuple[Blockchain, Block]:
    spec = load_chain_spec("dev")
    author = Blockchain(
        Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis,
        rules=ConsensusRules(Aura(6000)), trainer=trainer,
    )
    train = calls.Train(0, 0, STEPS, 16, calls.compute_f32_bits(0.5), 0, SEGMENT)
    xt = sign_extrinsic(BOB, train, nonce=0, genesis_hash=author.genesis_hash, spec_version=author.runtime.spec_version)
    slot = _slot() if slot is None else slot
    return author, author.build_block([xt], ALICE, slot).block


def _slot() -> int:
    return int(time.time() * 1000) // 6000


def _secret(block_hash: bytes, *, covers: bool) -> bytes:
    for i in range(10_000):
        secret = i.to_bytes(4, "little") * 8
        if bool(FAULTY & set(compute_sample(secret, block_hash, 0, STEPS // SEGMENT, SAMPLES))) == covers:
            return secret
    raise AssertionError("no such secret")


def _write_secret(base: Path, secret: bytes) -> None:
    path = compute_secret_path(base / "chains" / "dev")
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples if not s.labels}


class Relay:
    """A raw peer that announces the forged block, serves it and its checkpoints, and keeps
    every fraud proof it is sent."""

    def __init__(self, author: Blockchain, block: Block, *, withhold: bool = False) -> None:
        self.author, self.block = author, block
        self.blocks = {block.hash(): block}  # more can be added: served by hash and by number
        self.withhold = withhold  # answer every transcript request with nothing
        self.transcript_requests = 0
        self.raw = RawPeer()
        self.proofs: list[bytes] = []
        self.got_proof = asyncio.Event()
        self.responses: asyncio.Queue[BlockResponse] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int, peer_id) -> None:
        first = await self.raw.connect(Multiaddr("ip4", "127.0.0.1", port, peer_id), genesis=self.author.genesis_hash)
        assert isinstance(first, Status)
        self._task = asyncio.create_task(self._serve())

    async def announce(self, block: Block | None = None) -> None:
        await self.raw.send(BlockAnnounce((block or self.block).header))

    async def _serve(self) -> None:
        while (msg := await self.raw.recv(60)) is not None:
            if isinstance(msg, BlockRequest):
                by_number = {b.header.number: b for b in self.blocks.values()}
                first = self.blocks.get(msg.start) if isinstance(msg.start, bytes) else by_number.get(msg.start)
                out = []
                while first is not None and len(out) < msg.count:
                    out.append(BlockData(first))
                    step = 1 if msg.direction == 0 else -1
                    first = by_number.get(first.header.number + step)
                await self.raw.send(BlockResponse(msg.id, tuple(out)))
            elif isinstance(msg, TranscriptRequest):
                self.transcript_requests += 1
                if self.withhold:
                    await self.raw.send(TranscriptResponse(msg.id, ()))
                    continue
                store = self.author.transcripts
                found = [store.get(msg.block_hash, msg.extrinsic_index, j) for j, _ in msg.wanted]
                openings = tuple(
                    o if w else msgspec.structs.replace(o, weights=None)
                    for o, (_, w) in zip(found, msg.wanted, strict=True) if o is not None
                )
                await self.raw.send(TranscriptResponse(msg.id, openings))
            elif isinstance(msg, BlockResponse):
                await self.responses.put(msg)
            elif isinstance(msg, FraudProofGossip):
                self.proofs.append(msg.proof)
                self.got_proof.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.raw.close()


async def _until(client: RpcClient, method: str, params: list, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await client.call(method, params)
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{method}{params} never satisfied the check; last {value}")
        await asyncio.sleep(0.1)


def test_a_validator_that_samples_the_forgery_rejects_stores_gossips_and_reports_it(tmp_path) -> None:
    author, block = _forged_block(tmp_path / "author")
    base = tmp_path / "d"
    _write_secret(base, _secret(block.hash(), covers=True))
    port, metrics, key = free_port(), free_port(), "31" * 32
    d = start_node(
        tmp_path, "--chain", "dev", "--bob", "--base-path", str(base), "--node-key", key,
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{port}", "--prometheus-port", str(metrics),
    )
    try:
        async def run() -> None:
            relay = Relay(author, block)
            await relay.start(port, NodeKey.from_hex(key).peer_id)
            try:
                await relay.announce()
                await asyncio.wait_for(relay.got_proof.wait(), 20)
                (encoded,) = relay.proofs
                proof = decode_fraud_proof(encoded)
                assert proof.block_hash() == block.hash() and proof.segment in FAULTY
                verify_fraud_proof(author.genesis_hash, author.state_at(author.genesis_hash), author.config, proof)  # a valid proof
                async with RpcClient(d.ws_url) as client:
                    # Not imported: the best block is still genesis; the report is in the pool.
                    assert int((await client.call("chain_getHeader", []))["number"], 16) == 0
                    pending = await _until(client, "author_pendingExtrinsics", [], lambda p: len(p) == 1)
                    xt = decode_extrinsic(bytes.fromhex(pending[0][2:]))
                    assert xt.signer == BOB.public and xt.call == calls.ReportFraud(encoded)
                    # The same proof sent back is known here: dropped quietly, nothing charged.
                    await relay.raw.send(FraudProofGossip(encoded))
                    await asyncio.sleep(0.3)
                    assert len(await client.call("system_peers", [])) == 1
            finally:
                await relay.close()

        asyncio.run(run())
        m = scrape(metrics)
        assert m["polchain_pol_frauds_detected_total"] == 1
        assert m["polchain_pol_fraud_proofs_accepted_total"] == 0
        assert m["polchain_pol_verify_seconds_count"] == 1
        log = d.read_log()
        assert f"Fraud in block #1 (0x{block.hash().hex()[:12]}…)" in log
        assert "Submitted pol.report_fraud" in log
    finally:
        assert d.stop() == 0, d.read_log()
        author.db.close()


def test_a_node_that_imported_a_forged_block_drops_it_on_a_valid_fraud_proof_and_charges_bad_ones(tmp_path) -> None:
    author, block = _forged_block(tmp_path / "author")
    detector = Blockchain(
        Database(tmp_path / "detector"), chain_id="dev", build_genesis=load_chain_spec("dev").apply_genesis,
        rules=ConsensusRules(Aura(6000)), verifier=SampledVerifier(_secret(block.hash(), covers=True), SAMPLES),
    )
    try:
        detector.import_block(block, LocalSource(author.transcripts))
        raise AssertionError("the detector imported the forged block")
    except Exception as exc:  # FraudFound
        proof = exc.proof  # type: ignore[attr-defined]
    detector.db.close()
    encoded = proof.encode()
    base = tmp_path / "c"
    _write_secret(base, _secret(block.hash(), covers=False))
    port, metrics, key = free_port(), free_port(), "32" * 32
    c = start_node(
        tmp_path, "--chain", "dev", "--charlie", "--base-path", str(base), "--node-key", key,
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{port}", "--prometheus-port", str(metrics),
    )
    try:
        async def run() -> None:
            relay = Relay(author, block)
            await relay.start(port, NodeKey.from_hex(key).peer_id)
            try:
                async with RpcClient(c.ws_url) as client:
                    await relay.announce()
                    # Its sample missed the forged segments: C imports the block...
                    await _until(client, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1)
                    await relay.raw.send(BlockRequest(77, block.hash(), 1))
                    assert [d.block for d in (await asyncio.wait_for(relay.responses.get(), 5)).blocks] == [block]
                    # ...a proof that shows no fault costs the sender, the valid one drops
                    # the block here too, and a malformed one costs the sender again.
                    wrong = msgspec.structs.replace(proof, segment=(proof.segment + 2) % (STEPS // SEGMENT))
                    await relay.raw.send(FraudProofGossip(wrong.encode()))
                    await relay.raw.send(FraudProofGossip(encoded))
                    await _until(client, "chain_getHeader", [], lambda h: int(h["number"], 16) == 0)
                    assert await client.call("chain_getBlockHash", [1]) is None
                    # C keeps the block stored but no longer serves it.
                    await relay.raw.send(BlockRequest(78, block.hash(), 1, DESCENDING))  # as a fork fetch asks
                    assert (await asyncio.wait_for(relay.responses.get(), 5)).blocks == ()
                    # C has a key and the offence is not punished yet: it reports it too.
                    pending = await _until(client, "author_pendingExtrinsics", [], lambda p: len(p) >= 1)
                    reports = [decode_extrinsic(bytes.fromhex(x[2:])) for x in pending]
                    reports = [x for x in reports if isinstance(x.call, calls.ReportFraud)]
                    assert len(reports) == 1 and reports[0].signer == CHARLIE.public
                    assert reports[0].call == calls.ReportFraud(encoded)
                    await relay.raw.send(FraudProofGossip(b"\x93\x01\x02"))
                    await _until(client, "system_peers", [], lambda p: p == [])  # two bad proofs: banned
            finally:
                await relay.close()

        asyncio.run(run())
        m = scrape(metrics)
        assert m["polchain_pol_fraud_proofs_accepted_total"] == 1
        assert m["polchain_pol_frauds_detected_total"] == 0
        log = c.read_log()
        assert "invalid fraud proof (bad_opening: " in log  # the second is a repeat: the log filter counts it
        assert "disconnected from" in log and ": banned: invalid fraud proof" in log
        assert f"Fraud proof from a peer: block #1 (0x{block.hash().hex()[:12]}…)" in log
    finally:
        assert c.stop() == 0, c.read_log()
        author.db.close()


def test_a_withheld_block_is_not_asked_of_the_same_peer_again_until_a_cooldown_ends(tmp_path) -> None:
    """A peer that cannot serve a block's checkpoints is not asked again for that block on its
    next announcement (each try holds the node's block lock for up to the fetch timeout), but
    is once the cooldown (max(slot, 4 fetch timeouts) = 6 s here) is over."""
    slot = _slot()
    author, block_1 = _forged_block(tmp_path / "author", ml_runtime.run_job, slot - 1)  # honest training
    block_2 = author.build_block([], ALICE, slot).block
    port, metrics, key = free_port(), free_port(), "33" * 32
    b = start_node(
        tmp_path, "--chain", "dev", "--base-path", str(tmp_path / "b"), "--node-key", key, "--pol-fetch-timeout", "0.5",
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{port}", "--prometheus-port", str(metrics),
    )
    try:
        async def run() -> None:
            relay = Relay(author, block_1, withhold=True)
            relay.blocks[block_2.hash()] = block_2
            await relay.start(port, NodeKey.from_hex(key).peer_id)
            try:
                async with RpcClient(b.ws_url) as client:
                    await relay.announce(block_1)
                    deadline = time.monotonic() + 10
                    while scrape(metrics).get("polchain_pol_unavailable_total", 0) < 1:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
                    asked, failed_at = relay.transcript_requests, time.monotonic()
                    assert asked >= 1
                    await relay.announce(block_2)  # a sync round from #1: block #1 is cooling down
                    await asyncio.sleep(1.0)
                    assert relay.transcript_requests == asked
                    assert scrape(metrics)["polchain_pol_unavailable_total"] == 1
                    assert int((await client.call("chain_getHeader", []))["number"], 16) == 0
                    # Cooled down and served now: the next announcement brings both blocks in.
                    relay.withhold = False
                    while time.monotonic() < failed_at + 6.2 or _slot() <= slot:
                        await asyncio.sleep(0.1)
                    block_3 = author.build_block([], ALICE, _slot()).block
                    relay.blocks[block_3.hash()] = block_3
                    await relay.announce(block_3)
                    await _until(client, "chain_getHeader", [], lambda h: int(h["number"], 16) == 3)
                    assert relay.transcript_requests > asked
            finally:
                await relay.close()

        asyncio.run(run())
        assert b.read_log().count(f"(0x{block_1.hash().hex()[:12]}…) from ") == 1  # logged once
    finally:
        assert b.stop() == 0, b.read_log()
        author.db.close()
