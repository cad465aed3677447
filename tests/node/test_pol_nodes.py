"""Proof-of-learning between real ``polchain node`` processes: a TRAIN block authored on one node
is imported by another, which fetches only the checkpoints its secret sample needs over the
p2p protocol (real aiohttp WebSockets and Noise), verifies them, stores them and serves them."""

from __future__ import annotations

import asyncio
import time

from netkit import RawPeer
from nodekit import free_port, start_node

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.proofs import verify_opening
from node.metrics import scrape
from node.network.identity import NodeKey
from node.network.messages import (
    BlockRequest,
    BlockResponse,
    Status,
    TranscriptRequest,
    TranscriptResponse,
)
from node.network.multiaddr import Multiaddr
from rpc.client import RpcClient

BOB = dev_keypair("Bob")
KEY_A, KEY_B = "21" * 32, "22" * 32
STEPS, SEGMENT = 160, 10  # 16 segments, 17 transcript entries
ENTRIES = STEPS // SEGMENT + 1
PARAMS = 64 * 10 + 10  # the dev chain's model 0: softmax, d = 64, k = 10


async def _until(client: RpcClient, method: str, params: list, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await client.call(method, params)
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{method}{params} never satisfied the check; last {value}")
        await asyncio.sleep(0.1)


async def _request(raw: RawPeer, msg):
    await raw.send(msg)
    while True:
        answer = await raw.recv(5)
        if isinstance(answer, (BlockResponse, TranscriptResponse)):
            return answer


def test_a_validator_fetches_every_checkpoint_re_runs_its_sample_and_serves_them_on(tmp_path) -> None:
    """B samples (the default): it fetches every checkpoint, as C, the auditor (--pol full),
    does, so that its request does not tell A its sample (consensus.pol), and re-runs m."""
    pa, pb, ma, mb, mc = free_port(), free_port(), free_port(), free_port(), free_port()
    id_a, id_b = NodeKey.from_hex(KEY_A).peer_id, NodeKey.from_hex(KEY_B).peer_id
    a = start_node(
        tmp_path, "--chain", "dev", "--alice", "--instant-seal", "--base-path", str(tmp_path / "a"),
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{pa}", "--node-key", KEY_A, "--prometheus-port", str(ma),
    )
    b = c = None
    try:
        b = start_node(
            tmp_path, "--chain", "dev", "--base-path", str(tmp_path / "b"), "--node-key", KEY_B,
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{pb}", "--bootnodes", f"/ip4/127.0.0.1/tcp/{pa}/p2p/{id_a}",
            "--prometheus-port", str(mb),
        )
        c = start_node(
            tmp_path, "--chain", "dev", "--pol", "full", "--base-path", str(tmp_path / "c"),
            "--listen-addr", "/ip4/127.0.0.1/tcp/0", "--reserved-nodes", f"/ip4/127.0.0.1/tcp/{pa}/p2p/{id_a}",
            "--reserved-only", "--prometheus-port", str(mc),
        )
        secret = tmp_path / "b" / "chains" / "dev" / "keystore" / "pol_secret"
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and len(secret.read_bytes()) == 32

        async def run() -> None:
            async with RpcClient(a.ws_url) as ca, RpcClient(b.ws_url) as cb, RpcClient(c.ws_url) as cc:
                await _until(cb, "system_health", [], lambda h: h["peers"] == 1)
                await _until(cc, "system_health", [], lambda h: h["peers"] == 1)
                genesis = bytes.fromhex((await ca.call("chain_getBlockHash", [0]))[2:])
                version = (await ca.call("state_getRuntimeVersion", []))["specVersion"]
                train = calls.Train(0, 0, STEPS, 16, calls.compute_f32_bits(0.5), 0, SEGMENT)
                xt = sign_extrinsic(BOB, train, nonce=0, genesis_hash=genesis, spec_version=version)
                await ca.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])
                header_a = await _until(ca, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1)
                header_b = await _until(cb, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1)
                assert header_b == header_a
                assert await _until(cc, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1) == header_a
                block_hash = bytes.fromhex((await cb.call("chain_getBlockHash", [1]))[2:])

                # B fetched every entry, each segment's input checkpoint with its weights (the
                # last entry's hash is all a re-run is compared with), and A served exactly those.
                mb_ = scrape(mb)
                fetched = mb_[("polchain_pol_openings_fetched_total", ())]
                checkpoints = mb_[("polchain_pol_checkpoints_fetched_total", ())]
                fetched_bytes = mb_[("polchain_pol_fetched_bytes_total", ())]
                assert (fetched, checkpoints) == (ENTRIES, ENTRIES - 1)
                assert fetched_bytes > (ENTRIES - 1) * 4 * PARAMS
                assert mb_[("polchain_pol_verify_seconds_count", ())] == 1
                assert mb_[("polchain_pol_unavailable_total", ())] == 0
                assert mb_[("polchain_pol_frauds_detected_total", ())] == 0
                # C, the auditor, asked just what B asked (a request that differs tells the author
                # whom to refuse), and re-ran every segment.
                mc_ = scrape(mc)
                assert mc_[("polchain_pol_checkpoints_fetched_total", ())] == ENTRIES - 1
                assert mc_[("polchain_pol_fetched_bytes_total", ())] > (ENTRIES - 1) * 4 * PARAMS
                ma_ = scrape(ma)
                assert ma_[("polchain_pol_openings_served_total", ())] == fetched + ENTRIES

                # B serves what it fetched, to anyone: a raw peer asks B for every entry.
                raw = RawPeer()
                assert isinstance(await raw.connect(Multiaddr("ip4", "127.0.0.1", pb, id_b), genesis=genesis), Status)
                try:
                    blocks = await _request(raw, BlockRequest(1, block_hash, 1))
                    (result,) = blocks.blocks[0].block.body.results
                    every = tuple((j, False) for j in range(ENTRIES))
                    held = (await _request(raw, TranscriptRequest(2, block_hash, result.extrinsic_index, every))).openings
                    assert len(held) == fetched
                    for opening in held:
                        verify_opening(result, opening, need_weights=False)
                    every = tuple((j, True) for j in range(ENTRIES))
                    with_weights = (await _request(raw, TranscriptRequest(3, block_hash, result.extrinsic_index, every))).openings
                    assert len(with_weights) == checkpoints
                    for opening in with_weights:
                        verify_opening(result, opening, need_weights=True)
                    # A block nobody has: an empty answer, and the connection stays.
                    unknown = await _request(raw, TranscriptRequest(4, b"\x09" * 32, 0, ((0, True),)))
                    assert unknown.openings == ()
                    assert (await _request(raw, BlockRequest(5, 0, 1))).blocks
                finally:
                    await raw.close()
                assert scrape(mb)[("polchain_pol_openings_served_total", ())] == fetched + checkpoints

        asyncio.run(run())
        assert secret.read_bytes().hex() not in b.read_log()
    finally:
        for node in (b, c):
            if node is not None:
                assert node.stop() == 0, node.read_log()
        assert a.stop() == 0, a.read_log()


def test_a_training_block_is_checked_from_a_validator_when_its_author_is_gone(tmp_path) -> None:
    """C imported A's TRAIN block and, having fetched every checkpoint, holds them all. With A
    down, B (syncing from C alone) fetches them from C and imports the block: the author's copy
    is not the only one (when each validator fetched its sample only, B could not get its own
    and waited for A to come back)."""
    pa, pb, pc, mb = free_port(), free_port(), free_port(), free_port()
    key_c = "23" * 32
    id_a, id_c = (NodeKey.from_hex(k).peer_id for k in (KEY_A, key_c))
    a_args = (
        "--chain", "dev", "--alice", "--instant-seal", "--base-path", str(tmp_path / "a"),
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{pa}", "--node-key", KEY_A, "--no-prometheus",
    )
    a = start_node(tmp_path, *a_args)
    b = c = None
    try:
        c = start_node(
            tmp_path, "--chain", "dev", "--base-path", str(tmp_path / "c"), "--node-key", key_c, "--no-prometheus",
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{pc}", "--reserved-nodes", f"/ip4/127.0.0.1/tcp/{pa}/p2p/{id_a}",
        )

        async def author() -> str:
            async with RpcClient(a.ws_url) as ca, RpcClient(c.ws_url) as cc:
                await _until(cc, "system_health", [], lambda h: h["peers"] == 1)
                genesis = bytes.fromhex((await ca.call("chain_getBlockHash", [0]))[2:])
                version = (await ca.call("state_getRuntimeVersion", []))["specVersion"]
                train = calls.Train(0, 0, STEPS, 16, calls.compute_f32_bits(0.5), 0, SEGMENT)
                xt = sign_extrinsic(BOB, train, nonce=0, genesis_hash=genesis, spec_version=version)
                await ca.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])
                await _until(cc, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1)
                return await cc.call("chain_getBlockHash", [1])

        block_1 = asyncio.run(author())
        assert a.stop() == 0
        b = start_node(
            tmp_path, "--chain", "dev", "--base-path", str(tmp_path / "b"), "--node-key", KEY_B,
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{pb}", "--prometheus-port", str(mb), "--pol-fetch-timeout", "0.5",
            "--reserved-nodes", f"/ip4/127.0.0.1/tcp/{pc}/p2p/{id_c}",
        )

        async def imported() -> None:
            async with RpcClient(b.ws_url) as cb:
                await _until(cb, "system_health", [], lambda h: h["peers"] == 1)
                await _until(cb, "chain_getHeader", [], lambda h: int(h["number"], 16) == 1)
                assert await cb.call("chain_getBlockHash", [1]) == block_1
                (peer,) = await cb.call("system_peers", [])
                assert peer["peerId"] == str(id_c)

        asyncio.run(imported())
        assert scrape(mb)[("polchain_pol_unavailable_total", ())] == 0
        assert scrape(mb)[("polchain_pol_checkpoints_fetched_total", ())] == ENTRIES - 1
    finally:
        for node in (b, c):
            if node is not None:
                assert node.stop() == 0, node.read_log()
        assert a.stop() == 0, a.read_log()
