"""Three real validator processes (Alice, Bob, Charlie) on loopback, on a chain whose whole
block reward goes to finality voters: every author notes the votes it has seen on chain
(rewards.note_votes), and at each era start the voters' pot is paid by vote points. Every
validator's free balance grows, and it grows from voting: the authors' pot gets nothing on
this chain and a note's fee goes to its own author."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from importlib import resources
from pathlib import Path

from nodekit import NodeProcess, free_port, start_nodes
from test_cli import polchain

from chain.codec import decode
from chain.crypto import blake2_256, dev_keypair, ss58_encode
from chain.pallets import balances
from node.network.identity import NodeKey
from rpc.client import RpcClient

NAMES = ("alice", "bob", "charlie")
KEYS = {name: dev_keypair(name.capitalize()) for name in NAMES}
BLOCK_TIME_MS = 1000


def _write_spec(path: Path) -> Path:
    spec = json.loads(resources.files("genesis").joinpath("presets", "local.json").read_text())
    spec["id"] = "voter_rewards"
    spec["genesis"]["runtimeGenesisConfig"]["validators"] = ["//Alice", "//Bob", "//Charlie"]
    spec["runtimeConfig"] = {
        "block_reward": 1_000_000_000, "voter_reward_share_ppm": 1_000_000, "era_length": 4, "challenge_blocks": 1,
        "slot_duration_ms": BLOCK_TIME_MS,  # the chain's: no node gets a --block-time
    }
    path.write_text(json.dumps(spec))
    return path


async def _free(client: RpcClient, who: bytes, at: str | None = None) -> int:
    key = "0x" + balances.ACCOUNT.compute_key(who).hex()
    raw = await client.call("state_getStorage", [key] if at is None else [key, at])
    return decode(bytes.fromhex(raw[2:]), balances.AccountInfo).free if raw else 0


def test_validators_are_paid_for_their_finality_votes(tmp_path) -> None:
    spec = _write_spec(tmp_path / "spec.json")
    p2p = {name: free_port() for name in NAMES}
    node_keys = {name: blake2_256(name.encode()).hex() for name in NAMES}
    addrs = {name: f"/ip4/127.0.0.1/tcp/{p2p[name]}/p2p/{NodeKey.from_hex(node_keys[name]).peer_id}" for name in NAMES}
    nodes: dict[str, NodeProcess] = {}
    try:
        nodes = dict(zip(NAMES, start_nodes(tmp_path, *(
            ["--chain", str(spec), "--base-path", str(tmp_path / name), f"--{name}",
             "--listen-addr", f"/ip4/127.0.0.1/tcp/{p2p[name]}",
             "--node-key", node_keys[name], "--bootnodes", *(addrs[n] for n in NAMES if n != name)]
            for name in NAMES
        )), strict=True))

        async def scenario() -> None:
            async with RpcClient(nodes["alice"].ws_url) as client:
                genesis = await client.call("chain_getBlockHash", [0])
                before = {name: await _free(client, KEYS[name].public, genesis) for name in NAMES}
                deadline = time.monotonic() + 120
                while True:
                    rewards = await client.call("pol_getRewards", [])
                    grown = {name: await _free(client, KEYS[name].public) - before[name] for name in NAMES}
                    if all(g > 0 for g in grown.values()):
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"not every validator was paid for voting: {grown}, {rewards}")
                    await asyncio.sleep(0.5)
                assert rewards["authorPot"] == "0" and rewards["voterRewardSharePpm"] == 1_000_000
                credited = {v["account"]: v["creditedTo"] for v in rewards["validators"]}
                assert all(credited[ss58_encode(KEYS[name].public)] for name in NAMES), credited
                final = await client.call("chain_getFinalizedHead", [])
                assert int((await client.call("chain_getHeader", [final]))["number"], 16) > 0

        asyncio.run(scenario())
        assert "Finalized #" in nodes["alice"].read_log()
        out = polchain("query", "rewards", "--rpc", nodes["bob"].url)
        assert out.returncode == 0, out.stderr
        shown = json.loads(out.stdout)
        assert {v["account"] for v in shown["validators"]} == {KEYS[n].address for n in NAMES}
        assert {"authoredPoints", "votedPoints", "creditedTo"} <= set(shown["validators"][0])
    finally:
        for node in nodes.values():
            node.stop(signal.SIGKILL)
