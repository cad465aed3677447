"""Four real validator processes on loopback (the `local` chain: Alice, Bob, Charlie, Dave):
finality over the network, faults, and a new node syncing from genesis.

One devnet serves the tests of this module, in order: they are the phases of one scenario
(finalize; lose one validator; lose two; bring one back; add a fresh node). After every
phase, every running node must agree on every finalized height (no two nodes ever finalize
different blocks at one height).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nodekit import NodeProcess, free_port, start_node, start_nodes

from chain import calls
from chain.crypto import blake2_256, dev_keypair
from chain.extrinsic import sign_extrinsic
from node.network.identity import NodeKey
from rpc.client import RpcClient

BLOCK_TIME_MS = 750
VALIDATORS = ("alice", "bob", "charlie", "dave")
BOB, CHARLIE = dev_keypair("Bob"), dev_keypair("Charlie")


@dataclass
class Devnet:
    workdir: Path
    p2p: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    def addr(self, name: str) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p[name]}/p2p/{NodeKey.from_hex(self.keys[name]).peer_id}"

    def command(self, name: str, *, validator: bool = True) -> list[str]:
        if name not in self.p2p:
            self.p2p[name] = free_port()
            self.keys[name] = blake2_256(name.encode()).hex()
        others = [self.addr(n) for n in self.p2p if n != name]
        args = [
            "--chain", "local", "--base-path", str(self.workdir / name), "--block-time", str(BLOCK_TIME_MS),
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{self.p2p[name]}", "--node-key", self.keys[name],
            "--bootnodes", *others,
        ]
        if validator:
            args.append(f"--{name}")
        return args

    def start(self, name: str, *, validator: bool = True) -> NodeProcess:
        node = start_node(self.workdir, *self.command(name, validator=validator))
        self.nodes[name] = node
        return node

    def kill(self, name: str) -> None:
        self.nodes.pop(name).stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("devnet"))
    for name in VALIDATORS:  # ports and keys first, so every node knows every bootnode
        net.p2p[name] = free_port()
        net.keys[name] = blake2_256(name.encode()).hex()
    try:
        net.nodes.update(zip(VALIDATORS, start_nodes(net.workdir, *(net.command(n) for n in VALIDATORS)), strict=True))
        yield net
    finally:
        for node in net.nodes.values():
            node.stop(signal.SIGKILL)


async def _finalized(client: RpcClient) -> tuple[int, str]:
    head = await client.call("chain_getFinalizedHead", [])
    header = await client.call("chain_getHeader", [head])
    return int(header["number"], 16), head


async def _lowest_finalized(clients: dict[str, RpcClient]) -> int:
    return min([(await _finalized(c))[0] for c in clients.values()])


async def _best(client: RpcClient) -> int:
    return int((await client.call("chain_getHeader", []))["number"], 16)


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


def run(net: Devnet, scenario) -> None:
    async def main() -> None:
        clients = {name: RpcClient(node.ws_url) for name, node in net.nodes.items()}
        for c in clients.values():
            await c.__aenter__()
        try:
            await scenario(clients)
            await _agree(clients)
        finally:
            for c in clients.values():
                await c.__aexit__(None, None, None)

    asyncio.run(main())


async def _agree(clients: dict[str, RpcClient]) -> None:
    """Every node's finalized chain is a prefix of one chain: the same hash at each height."""
    finalized = {name: await _finalized(c) for name, c in clients.items()}
    low = min(n for n, _ in finalized.values())
    heights = list(range(low + 1))
    chains = {name: await c.call("chain_getBlockHash", [heights]) for name, c in clients.items()}
    assert len({tuple(v) for v in chains.values()}) == 1, chains
    for name, (number, head) in finalized.items():
        for other, c in clients.items():
            if (await _finalized(c))[0] >= number:
                assert await c.call("chain_getBlockHash", [number]) == head, (name, other, number)


def test_four_validators_finalize_a_transfer_and_a_training_call(devnet: Devnet) -> None:
    async def scenario(clients: dict[str, RpcClient]) -> None:
        dave = clients["dave"]
        genesis = bytes.fromhex((await dave.call("chain_getBlockHash", [0]))[2:])
        version = (await dave.call("state_getRuntimeVersion", []))["specVersion"]
        xts = [
            sign_extrinsic(BOB, calls.Transfer(CHARLIE.public, 10**9), nonce=0, genesis_hash=genesis, spec_version=version),
            sign_extrinsic(
                BOB, calls.Train(0, 0, 40, 16, calls.compute_f32_bits(0.5), 0, 20), nonce=1,
                genesis_hash=genesis, spec_version=version,
            ),
        ]

        async def watch(raw: bytes) -> str:
            statuses = []
            sub = await dave.subscribe("author_submitAndWatchExtrinsic", ["0x" + raw.hex()], "author_unwatchExtrinsic")
            async with sub:
                while not (statuses and isinstance(statuses[-1], dict) and "finalized" in statuses[-1]):
                    statuses.append(await sub.next(60))
            assert any(isinstance(s, dict) and "inBlock" in s for s in statuses), statuses
            return str(statuses[-1]["finalized"])

        heads = await clients["bob"].subscribe("chain_subscribeFinalizedHeads", [], "chain_unsubscribeFinalizedHeads")
        final_blocks = await asyncio.gather(*(watch(xt.encode()) for xt in xts))
        numbers = [int((await dave.call("chain_getHeader", [h]))["number"], 16) for h in final_blocks]
        top = max(numbers)
        async with heads:  # Bob's finalized-heads subscription follows the votes too, in order
            seen = [int((await heads.next(30))["number"], 16)]
            while seen[-1] < top:
                seen.append(int((await heads.next(30))["number"], 16))
        assert seen == sorted(seen) and seen[-1] == top, seen

        async def all_final() -> bool:
            return await _lowest_finalized(clients) >= top

        await _until(all_final, 30, f"every node to finalize #{top}")
        for number, block_hash in zip(numbers, final_blocks, strict=True):
            assert {await c.call("chain_getBlockHash", [number]) for c in clients.values()} == {block_hash}
        roots = {(await c.call("chain_getHeader", [final_blocks[-1]]))["stateRoot"] for c in clients.values()}
        assert len(roots) == 1
        receipt = await clients["alice"].call("ml_getTrainingReceipt", ["0x" + xts[1].hash().hex()])
        assert "ModelTrained" in {e["name"] for e in receipt["events"]}
        assert "by 3 votes" in devnet.nodes["alice"].read_log() or "by 4 votes" in devnet.nodes["alice"].read_log()

    run(devnet, scenario)


def test_finality_survives_one_lost_validator_and_stops_without_a_second(devnet: Devnet) -> None:
    devnet.kill("dave")

    async def one_down(clients: dict[str, RpcClient]) -> None:
        start = (await _finalized(clients["alice"]))[0]

        async def advanced() -> bool:
            return await _lowest_finalized(clients) >= start + 3

        await _until(advanced, 30, "finality to continue with 3 of 4 validators")

    run(devnet, one_down)
    devnet.kill("charlie")

    async def two_down(clients: dict[str, RpcClient]) -> None:
        await asyncio.sleep(3 * BLOCK_TIME_MS / 1000)  # votes and justifications in flight land
        stalled = (await _finalized(clients["alice"]))[0]
        best = await _best(clients["alice"])
        await asyncio.sleep(8 * BLOCK_TIME_MS / 1000)
        assert (await _finalized(clients["alice"]))[0] == stalled
        assert (await _finalized(clients["bob"]))[0] == stalled
        assert await _best(clients["alice"]) >= best + 2  # Alice and Bob still author their slots

    run(devnet, two_down)


def test_a_restarted_validator_brings_finality_back(devnet: Devnet) -> None:
    devnet.start("charlie")  # same database and key: it catches up, then votes again

    async def resumed(clients: dict[str, RpcClient]) -> None:
        stalled = (await _finalized(clients["alice"]))[0]

        async def moved() -> bool:
            return await _lowest_finalized(clients) >= stalled + 2

        await _until(moved, 40, "finality to resume with 3 of 4 validators")

    run(devnet, resumed)


def test_a_new_node_syncs_from_genesis_checking_justifications(devnet: Devnet) -> None:
    devnet.start("eve", validator=False)

    async def synced(clients: dict[str, RpcClient]) -> None:
        target = (await _finalized(clients["alice"]))[0]

        async def caught_up() -> bool:
            return (await _finalized(clients["eve"]))[0] >= target

        await _until(caught_up, 40, f"the new node to finalize #{target}")

    run(devnet, synced)
    log = devnet.nodes["eve"].read_log()
    # Finality came with the synced blocks' justifications (checked before import), not from
    # live votes: the first block it finalized lies far below the head it synced to.
    first = next(line for line in log.splitlines() if "Finalized #" in line)
    first_number = int(first.split("Finalized #")[1].split()[0])
    connected = next(line for line in log.splitlines() if "connected to" in line)
    synced_to = int(connected.split("best #")[1].split(")")[0])
    assert first_number < synced_to - 2, (first, connected)
    assert "misbehaved" not in log and "banned" not in log
