"""A real ``polchain node --dev`` process driven over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request

import numpy as np
import pytest
from nodekit import start_node

from chain import calls
from chain.crypto import blake2_256, dev_keypair
from chain.extrinsic import sign_extrinsic
from ml_runtime import hash_weights
from rpc.client import RpcCallError, RpcClient

BOB, CHARLIE = dev_keypair("Bob"), dev_keypair("Charlie")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("node")
    proc = start_node(workdir, "--dev", "--instant-seal")
    yield proc
    assert proc.stop() == 0, proc.read_log()


async def _signed(client: RpcClient, key, call, nonce: int | None = None) -> str:
    genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
    version = (await client.call("state_getRuntimeVersion", []))["specVersion"]
    if nonce is None:
        nonce = await client.call("system_accountNextIndex", [key.address])
    xt = sign_extrinsic(key, call, nonce=nonce, genesis_hash=genesis, spec_version=version)
    return "0x" + xt.encode().hex()


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_training_over_websocket_reaches_in_block_and_changes_the_model(node) -> None:
    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            before = await client.call("ml_getModel", [0])
            xt = await _signed(client, BOB, calls.Train(0, 0, 120, 32, calls.compute_f32_bits(0.5), 0, 20))
            xt_hash = "0x" + blake2_256(bytes.fromhex(xt[2:])).hex()
            statuses = []
            sub = await client.subscribe("author_submitAndWatchExtrinsic", [xt], "author_unwatchExtrinsic")
            async with sub:
                while True:
                    status = await sub.next(60)
                    statuses.append(status)
                    if isinstance(status, dict) and "finalized" in status:
                        break
            assert statuses[0] == "ready"
            assert any(isinstance(s, dict) and "inBlock" in s for s in statuses)
            block_hash = statuses[-1]["finalized"]

            after = await client.call("ml_getModel", [0])
            assert after["latestVersion"] == before["latestVersion"] + 1
            newest = after["lineage"][-1]
            assert newest["parent"] == before["latestVersion"]
            assert newest["training"]["extrinsicHash"] == xt_hash
            curve = newest["training"]["lossCurve"]
            assert len(curve) == 120 // 20 and all(np.isfinite(curve))  # one loss per segment

            weights = await client.call("ml_getWeights", [0])
            raw = np.frombuffer(bytes.fromhex(weights["weights"][2:]), "<f4")
            assert "0x" + hash_weights(raw).hex() == weights["weightsHash"] == after["weightsHash"]

            receipt = await client.call("ml_getTrainingReceipt", [xt_hash])
            assert receipt["blockHash"] == block_hash and receipt["success"] is True
            assert receipt["licensePaid"] == str(120 * 32 * 1000)
            assert receipt["lossCurve"] == curve
            assert {e["name"] for e in receipt["events"]} >= {"LicensePaid", "ModelTrained"}

    asyncio.run(scenario())


def test_new_heads_subscription_delivers_blocks(node) -> None:
    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            sub = await client.subscribe("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads")
            async with sub:
                first = await sub.next(10)
                xt = await _signed(client, CHARLIE, calls.Transfer(BOB.public, 10**9))
                await client.call("author_submitExtrinsic", [xt])
                nxt = await sub.next(30)
                assert int(nxt["number"], 16) == int(first["number"], 16) + 1
                assert nxt["parentHash"] == await client.call("chain_getBlockHash", [int(first["number"], 16)])
                assert set(nxt) >= {"parentHash", "number", "stateRoot", "extrinsicsRoot", "digest"}

    asyncio.run(scenario())


def test_bad_input_gets_specific_errors_and_changes_nothing(node) -> None:
    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            # Bob's nonce 0 used first, in a block of its own, so that the test makes its own
            # stale nonce rather than relying on the module's earlier tests.
            sub = await client.subscribe(
                "author_submitAndWatchExtrinsic", [await _signed(client, BOB, calls.Remark(b"first"))], "author_unwatchExtrinsic"
            )
            async with sub:
                while not (isinstance(status := await sub.next(30), dict) and "inBlock" in status):
                    pass
            head = await client.call("chain_getHeader", [])
            good = await _signed(client, BOB, calls.Remark(b"x"))
            forged = bytearray(bytes.fromhex(good[2:]))
            forged[40] ^= 1  # inside the signature
            with pytest.raises(RpcCallError) as bad_sig:
                await client.call("author_submitExtrinsic", ["0x" + forged.hex()])
            assert bad_sig.value.code == 1010 and "bad_proof" in str(bad_sig.value.data)
            stale = await _signed(client, BOB, calls.Remark(b"x"), nonce=0)
            with pytest.raises(RpcCallError) as stale_nonce:
                await client.call("author_submitExtrinsic", [stale])
            assert stale_nonce.value.code == 1010 and "stale" in str(stale_nonce.value.data)
            with pytest.raises(RpcCallError) as bad_format:
                await client.call("author_submitExtrinsic", ["0x0102"])
            assert bad_format.value.code == 1001
            with pytest.raises(RpcCallError) as bad_hex:
                await client.call("author_submitExtrinsic", ["0xzz"])
            assert bad_hex.value.code == -32602
            bad_train = await _signed(client, BOB, calls.Train(0, 0, 0, 32, calls.compute_f32_bits(0.5), 0, 1))
            with pytest.raises(RpcCallError) as bad_steps:  # arguments no state can make right: refused, no fee
                await client.call("author_submitExtrinsic", [bad_train])
            assert bad_steps.value.code == 1010 and str(bad_steps.value.data).startswith("call: training.InvalidSteps: ")
            await asyncio.sleep(1.0)
            assert await client.call("chain_getHeader", []) == head  # no block: every input above was refused

    asyncio.run(scenario())
    status, body = _post(node.url, b"{not json")
    assert status == 200 and body["error"]["code"] == -32700
    status, body = _post(node.url, b'{"jsonrpc":"2.0","id":1,"method":"no_such"}')
    assert body["error"]["code"] == -32601
    status, body = _post(node.url, b'{"jsonrpc":"2.0","id":1,"method":"chain_getBlockHash","params":[-1]}')
    assert body["error"]["code"] == -32602
    status, body = _post(node.url, b'{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":["0x1234"]}')
    assert body["error"]["code"] == -32602 and "32 bytes" in body["error"]["message"]
    unknown = '{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":["0x' + "ab" * 32 + '"]}'
    status, body = _post(node.url, unknown.encode())
    assert body["result"] is None
    status, _ = _post(node.url, b"[" * 100_000 + b"]" * 100_000)
    assert status in (200, 400, 413)
    status, body = _post(node.url, b'{"jsonrpc":"2.0","id":1,"method":"system_health"}')
    assert status == 200 and body["result"]["peers"] == 0  # still serving


def test_sigterm_closes_cleanly_and_the_database_reopens(tmp_path) -> None:
    base = tmp_path / "base"
    node = start_node(tmp_path, "--chain", "dev", "--alice", "--base-path", str(base), "--instant-seal")

    async def submit() -> str:
        async with RpcClient(node.ws_url) as client:
            xt = await _signed(client, BOB, calls.Transfer(CHARLIE.public, 10**9))
            sub = await client.subscribe("author_submitAndWatchExtrinsic", [xt], "author_unwatchExtrinsic")
            async with sub:
                while not (isinstance(status := await sub.next(30), dict) and "inBlock" in status):
                    pass
            return (await client.call("chain_getHeader", []))["stateRoot"]

    root = asyncio.run(submit())
    assert node.stop(signal.SIGTERM) == 0
    assert "Shut down cleanly at block #1" in node.read_log()
    again = start_node(tmp_path, "--chain", "dev", "--alice", "--base-path", str(base), "--instant-seal")
    try:
        async def head() -> dict:
            async with RpcClient(again.url) as client:
                return await client.call("chain_getHeader", [])

        header = asyncio.run(head())
        assert int(header["number"], 16) == 1 and header["stateRoot"] == root
    finally:
        assert again.stop() == 0


def test_slot_authoring_makes_a_block_per_slot(tmp_path) -> None:
    node = start_node(tmp_path, "--dev", "--block-time", "400")
    try:
        async def heads() -> list[dict]:
            async with RpcClient(node.ws_url) as client:
                sub = await client.subscribe("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads")
                async with sub:
                    return [await sub.next(10) for _ in range(4)]

        got = asyncio.run(heads())
        numbers = [int(h["number"], 16) for h in got]
        slots = [int(h["slot"], 16) for h in got]
        assert numbers == list(range(numbers[0], numbers[0] + 4))
        assert slots[1:] == sorted(slots[1:]) and len(set(slots[1:])) == 3
    finally:
        assert node.stop() == 0
