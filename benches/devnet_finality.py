"""A 4-validator devnet of real node processes on loopback: finality, propagation, sync, idle CPU.

    python -m benches.devnet_finality [--block-time 1000] [--blocks 30] [--challenge-blocks N]

Four ``polchain node --chain local --alice|--bob|--charlie|--dave`` processes, each with its own
LevelDB, p2p port, node key and RPC port, all bootnodes of each other (what ``polchain
devnet --validators 4`` starts). Rows:

- ``first finalized``: from spawning the four processes until the first node reports a
  finalized block above genesis (``chain_getFinalizedHead``), and until all four do. Process
  start is included (Python, numba's cached kernels: run once before to warm the cache); the
  row above it shows when all four answered RPC;
- ``propagation p50/p99``: for each block, the time a node's ``chain_subscribeNewHeads``
  delivers it minus the time the author's own subscription delivers it (both go through the
  same RPC path, so its cost cancels), over ``--blocks`` blocks and the three other nodes;
- ``finality lag``: per block, new-head time at the author to finalized-head time at the
  same node, p50; and in blocks: Alice's best number minus the number of each block she
  finalizes, when she finalizes it. Validators vote for a block only once it has
  ``challenge_blocks`` descendants (consensus.finality), so this is about
  ``challenge_blocks`` + 1 (``--challenge-blocks N`` runs the devnet on the `local` spec
  with that runtime parameter instead of the preset's);
- ``idle CPU``: each validator's CPU time (``/proc/<pid>/stat``, user + system) over 5 s of
  empty blocks, as a share of one core;
- ``sync from genesis``: a fifth node (no validator key, empty database) joins and catches up
  to the head: blocks/s from its first imported block to the head, beside the speed of a
  solo import of the same blocks (``Blockchain.import_block`` in this process with the same
  consensus rules, no network), and the share of it the sync reaches.

Prints a table and writes bench-results/devnet_finality.json. Figures only, never assertions:
the machine is shared, so every figure is one run's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from benches.record import write_record
from chain.blockchain import Blockchain
from chain.crypto import blake2_256, dev_keypair
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import ChainSpec, load_chain_spec, with_slot_duration
from node.devnet import CLI, compute_child_env, find_free_port_range
from node.network.identity import NodeKey
from rpc.client import RpcClient

RESULTS = Path("bench-results") / "devnet_finality.json"
NAMES = ("alice", "bob", "charlie", "dave")
AUTHORS = {dev_keypair(n.capitalize()).address: n for n in NAMES}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Net:
    def __init__(self, workdir: Path, block_time: int, challenge_blocks: int | None = None) -> None:
        self.workdir = workdir
        self.block_time = block_time
        # The slot duration is the chain's: "--chain local --block-time MS" builds this spec.
        self.spec: ChainSpec = with_slot_duration(load_chain_spec("local"), block_time)
        self.chain = "local"
        if challenge_blocks is not None:
            self.spec = replace(self.spec, runtime_config=replace(self.spec.runtime_config, challenge_blocks=challenge_blocks))
            self.chain = str(workdir / "local-spec.json")
            Path(self.chain).write_text(json.dumps(self.spec.to_json()))
        self.p2p = {n: find_free_port_range(1) for n in (*NAMES, "eve")}
        self.rpc = {n: find_free_port_range(1) for n in (*NAMES, "eve")}
        self.keys = {n: blake2_256(n.encode()).hex() for n in (*NAMES, "eve")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def addr(self, name: str) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p[name]}/p2p/{NodeKey.from_hex(self.keys[name]).peer_id}"

    def spawn(self, name: str, *, validator: bool = True) -> None:
        args = [
            *CLI, "node", "--chain", self.chain, "--base-path", str(self.workdir / name),
            "--block-time", str(self.block_time), "--rpc-port", str(self.rpc[name]),
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{self.p2p[name]}", "--node-key", self.keys[name],
            "--bootnodes", *[self.addr(n) for n in NAMES if n != name],
        ]
        if validator:
            args.append(f"--{name}")
        log = (self.workdir / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=compute_child_env())

    def wait_healthy(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.rpc[name]}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{name} did not start:\n{(self.workdir / f'{name}.log').read_text()}")

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.rpc[name]}"

    def cpu_seconds(self, name: str) -> float:
        fields = Path(f"/proc/{self.procs[name].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


async def _finalized_number(client: RpcClient) -> int:
    head = await client.call("chain_getFinalizedHead", [])
    return int((await client.call("chain_getHeader", [head]))["number"], 16)


async def _first_finality(net: Net, started: float) -> tuple[float, float, float]:
    done: dict[str, float] = {}
    up: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients = {n: await stack.enter_async_context(RpcClient(f"http://127.0.0.1:{net.rpc[n]}")) for n in NAMES}
        await _poll_finality(clients, started, done, up)
    return max(up.values()), min(done.values()), max(done.values())


async def _poll_finality(
    clients: dict[str, RpcClient], started: float, done: dict[str, float], up: dict[str, float]
) -> None:
    while len(done) < len(clients):
        for name, client in clients.items():
            if name in done:
                continue
            try:
                number = await _finalized_number(client)
            except Exception:  # not answering yet
                continue
            up.setdefault(name, time.monotonic() - started)
            if number > 0:
                done[name] = time.monotonic() - started
        await asyncio.sleep(0.02)


async def _propagation(net: Net, blocks: int) -> tuple[list[float], list[float], list[int]]:
    seen: dict[tuple[int, int], dict[str, float]] = {}
    authors: dict[tuple[int, int], str] = {}
    final_at: dict[int, float] = {}
    alice_best = [0]
    lag_blocks: list[int] = []

    async def heads(name: str) -> None:
        async with RpcClient(net.url(name)) as client:
            sub = await client.subscribe("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads")
            async with sub:
                while True:
                    header = await sub.next(30)
                    key = (int(header["number"], 16), int(header["slot"], 16))
                    seen.setdefault(key, {})[name] = time.monotonic()
                    if name == "alice":
                        alice_best[0] = key[0]
                    authors[key] = AUTHORS.get(header["author"], "?")

    async def finalized(name: str) -> None:
        async with RpcClient(net.url(name)) as client:
            sub = await client.subscribe("chain_subscribeFinalizedHeads", [], "chain_unsubscribeFinalizedHeads")
            async with sub:
                while True:
                    header = await sub.next(30)
                    number = int(header["number"], 16)
                    final_at.setdefault(number, time.monotonic())
                    if alice_best[0] >= number:
                        lag_blocks.append(alice_best[0] - number)

    tasks = [asyncio.create_task(heads(n)) for n in NAMES] + [asyncio.create_task(finalized("alice"))]
    try:
        while sum(1 for k in seen if len(seen[k]) == len(NAMES)) < blocks:
            await asyncio.sleep(0.1)
            for t in tasks:
                if t.done():
                    t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies: list[float] = []
    lags: list[float] = []
    for key, times in seen.items():
        author = authors[key]
        if len(times) < len(NAMES) or author not in times:
            continue
        latencies += [(t - times[author]) * 1000 for n, t in times.items() if n != author]
        if key[0] in final_at and "alice" in times:
            lags.append((final_at[key[0]] - times["alice"]) * 1000)
    return latencies, lags, lag_blocks


def _idle_cpu(net: Net, seconds: float = 5.0) -> dict[str, float]:
    before = {n: net.cpu_seconds(n) for n in NAMES}
    time.sleep(seconds)
    return {n: (net.cpu_seconds(n) - before[n]) / seconds * 100 for n in NAMES}


async def _sync(net: Net) -> tuple[int, float]:
    async with RpcClient(f"http://127.0.0.1:{net.rpc['alice']}") as alice:
        target = int((await alice.call("chain_getHeader", []))["number"], 16)
    net.spawn("eve", validator=False)
    net.wait_healthy("eve")
    async with RpcClient(f"http://127.0.0.1:{net.rpc['eve']}") as eve:
        start: tuple[int, float] | None = None
        while True:
            best = int((await eve.call("chain_getHeader", []))["number"], 16)
            now = time.monotonic()
            if start is None and best > 0:
                start = (best, now)
            if best >= target:
                assert start is not None
                return target - start[0], now - start[1]
            await asyncio.sleep(0.005)


def _solo_import(net: Net, count: int) -> float:
    """Blocks/s importing Alice's first ``count`` blocks into a fresh database, no network
    (best of three rounds)."""
    spec = net.spec
    source_db = Database(net.workdir / "alice" / "chains" / spec.id / "db")
    try:
        source = Blockchain(source_db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        blocks = []
        for n in range(1, count + 1):
            block_hash = source.get_hash(n)
            assert block_hash is not None
            blocks.append(source.get_block(block_hash))
    finally:
        source_db.close()
    best = 0.0
    for _ in range(3):  # best of three: other work on a shared machine only slows a round down
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(Path(tmp) / "db")
            try:
                chain = Blockchain(
                    db, chain_id=spec.id, build_genesis=spec.apply_genesis, rules=ConsensusRules(Aura(net.block_time))
                )
                started = time.perf_counter()
                for block in blocks:
                    chain.import_block(block)
                best = max(best, count / (time.perf_counter() - started))
            finally:
                db.close()
    return best


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="devnet-bench-") as tmp:
        net = Net(Path(tmp), args.block_time, args.challenge_blocks)
        try:
            started = time.monotonic()
            for name in NAMES:
                net.spawn(name)
            up, first, all_four = asyncio.run(_first_finality(net, started))
            latencies, lags, lag_blocks = asyncio.run(_propagation(net, args.blocks))
            cpu = _idle_cpu(net)
            synced, sync_seconds = asyncio.run(_sync(net))
            net.stop("eve")
            net.stop("alice")
            solo = _solo_import(net, synced)
        finally:
            net.stop_all()
    sync_rate = synced / sync_seconds if sync_seconds > 0 else float("nan")
    return {
        "block_time_ms": args.block_time,
        "challenge_blocks": net.spec.runtime_config.challenge_blocks,
        "all_rpc_up_s": round(up, 3),
        "first_finalized_any_s": round(first, 3),
        "first_finalized_all_s": round(all_four, 3),
        "propagation_ms": {
            "samples": len(latencies), "p50": round(_pct(latencies, 0.5), 2), "p99": round(_pct(latencies, 0.99), 2),
            "max": round(max(latencies, default=float("nan")), 2),
        },
        "finality_lag_ms": {"samples": len(lags), "p50": round(_pct(lags, 0.5), 1), "p99": round(_pct(lags, 0.99), 1)},
        "finality_lag_blocks": {
            "samples": len(lag_blocks), "p50": _pct([float(b) for b in lag_blocks], 0.5), "max": max(lag_blocks, default=-1),
        },
        "idle_cpu_percent": {n: round(v, 1) for n, v in cpu.items()},
        "sync": {
            "blocks": synced, "seconds": round(sync_seconds, 3), "blocks_per_s": round(sync_rate, 1),
            "solo_import_blocks_per_s": round(solo, 1), "share_of_solo": round(sync_rate / solo, 3),
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block-time", type=int, default=1000, metavar="MS")
    parser.add_argument("--blocks", type=int, default=30, help="blocks to measure propagation over")
    parser.add_argument(
        "--challenge-blocks", type=int, default=None, metavar="N",
        help="run the local spec with this challenge window (default: the preset's)",
    )
    result = run(parser.parse_args())
    p, lag, sync = result["propagation_ms"], result["finality_lag_ms"], result["sync"]
    lag_blocks = result["finality_lag_blocks"]
    rows = [
        ("all 4 processes answering RPC", f"{result['all_rpc_up_s']:.2f} s"),
        ("first finalized block, any node", f"{result['first_finalized_any_s']:.2f} s"),
        ("first finalized block, all 4 nodes", f"{result['first_finalized_all_s']:.2f} s"),
        (f"propagation p50 / p99 ({p['samples']} samples)", f"{p['p50']:.1f} / {p['p99']:.1f} ms"),
        (f"finality lag p50 / p99 ({lag['samples']} blocks)", f"{lag['p50']:.0f} / {lag['p99']:.0f} ms"),
        (
            f"finality lag in blocks p50 / max ({lag_blocks['samples']} finalizations)",
            f"{lag_blocks['p50']:.0f} / {lag_blocks['max']} blocks",
        ),
        ("idle CPU per node", ", ".join(f"{n} {v:.1f}%" for n, v in result["idle_cpu_percent"].items())),
        (f"sync from genesis ({sync['blocks']} blocks)", f"{sync['blocks_per_s']:.1f} blocks/s"),
        ("solo import of the same blocks", f"{sync['solo_import_blocks_per_s']:.1f} blocks/s"),
        ("sync / solo", f"{sync['share_of_solo'] * 100:.1f}%"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"devnet of 4 validators, block time {result['block_time_ms']} ms, challenge window {result['challenge_blocks']} blocks")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    write_record(RESULTS, "devnet_finality", **result)


if __name__ == "__main__":
    main()
