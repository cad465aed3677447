"""Hostile churn against a real node process: does its memory stay bounded?

    python -m benches.churn [--quick] [--cycles 8] [--peers 250] [--rpc 40] [--tree PATH] [--label NAME]

Starts ``polchain node --dev --tmp`` (RPC, p2p and Prometheus on free loopback ports) from the
source tree ``--tree`` (default: this one; point it at an export of another commit to compare
trees: ``git archive <commit> | tar -x -C /tmp/before``), then runs ``--cycles`` cycles. In
each, ``--peers`` scripted peers with fresh identities (a new ed25519 key each: what an
adversary's identities cost) connect 4 at a time (the handshakes one address may have in progress), complete the Noise
handshake and the Status exchange, gossip a finality vote, a fraud proof and a transaction
that do not decode and an announcement of a block that does not exist, and leave; every
other one ends with a frame that does not decode, so it is banned as it goes. Alongside,
``--rpc`` WebSocket clients each subscribe to new and finalized heads and drop the
connection without unsubscribing.

After the start and after each cycle (once the node has no peers left and a short pause),
it records the node's resident memory (VmRSS from /proc/PID/status) and the table sizes the
node exports (``polchain_table_entries{table=...}``, where the tree has them). Reported: the
table per cycle, and the RSS growth per 1,000 peers: the least-squares slope of RSS against
peers connected so far, over the cycles after the first (the first cycle warms caches,
imports and allocator arenas), and over the second half of the cycles (once bans of the
first have run out: the steady state a long-running node is in). Written to bench-results/churn[-LABEL].json. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from benches.record import write_record
from chain.header import Header
from node.devnet import find_free_port_range
from node.metrics import scrape
from node.network.identity import NodeKey
from node.network.messages import (
    PROTOCOL_VERSION,
    ROLE_FULL,
    BlockAnnounce,
    FinalityVotes,
    FraudProofGossip,
    Status,
    Transactions,
    decode_message,
    encode_message,
)
from node.network.noise import StaticKey, handshake

HERE = Path(__file__).resolve().parent.parent
CONCURRENCY = 4  # the node takes at most 4 handshakes at once from one address (max_pending_per_ip)
GARBAGE = b"\x00\xc1"  # a last chunk holding 0xc1, which MessagePack never uses: a ban at once
SHOWN = ("reputation_scores", "reputation_bans", "reputation_fresh_bans", "seen_votes", "sync_budgets")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def tables(metrics_port: int) -> dict[str, int]:
    return {labels[0][1]: int(value) for (name, labels), value in scrape(metrics_port).items()
            if name == "polchain_table_entries"}


def peers_connected(metrics_port: int) -> int:
    return int(scrape(metrics_port).get(("substrate_sub_libp2p_peers_count", ()), 0))


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as r:
        return (await r.json())["result"]


async def one_peer(p2p_port: int, genesis: bytes, index: int) -> None:
    """A fresh identity: handshake, Status, junk gossip, leave (every other one banned first)."""
    key = NodeKey.generate()
    static = StaticKey.generate(key)
    # From an address of its own in 127/8 (Linux routes all of it to loopback): the node starts
    # at most a few handshakes a second from one address (NetworkConfig.handshakes_per_ip), and
    # what this measures is memory under churn, not that limit.
    local = (f"127.{1 + index // 62500 % 250}.{index // 250 % 250}.{1 + index % 250}", 0)
    connector = aiohttp.TCPConnector(local_addr=local)
    async with aiohttp.ClientSession(connector=connector) as http, http.ws_connect(f"ws://127.0.0.1:{p2p_port}/p2p", max_msg_size=0) as ws:

        async def recv() -> bytes:
            return bytes((await ws.receive()).data)

        session = await handshake(static, initiator=True, send=ws.send_bytes, recv=recv, expected=None,
                                  max_message=1 << 24, timeout=10)

        async def send(message: Any) -> None:
            for frame in session.encrypt(encode_message(message)):
                await ws.send_bytes(frame)

        await send(Status(PROTOCOL_VERSION, genesis, ROLE_FULL, 0, genesis, 0, genesis))
        while True:  # the node's Status
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.BINARY:
                return
            data = session.decrypt(msg.data)
            if data is not None:
                decode_message(data)
                break
        salt = index.to_bytes(8, "big")
        await send(FinalityVotes((b"vote" + salt,)))
        await send(FraudProofGossip(b"proof" + salt))
        await send(Transactions((b"xt" + salt,)))
        await send(BlockAnnounce(Header(salt * 4, 1 + index, bytes(32), bytes(32), 10**9 + index, bytes(32))))
        if index % 2:
            await ws.send_bytes(session.conn.encrypt(GARBAGE))
        await asyncio.sleep(0.02)


async def one_rpc_client(ws_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        for i, method in enumerate(("chain_subscribeNewHeads", "chain_subscribeFinalizedHeads")):
            await ws.send_json({"jsonrpc": "2.0", "id": i, "method": method, "params": []})
            await ws.receive(timeout=10)
    # dropped without unsubscribing


async def cycle(p2p_port: int, rpc_port: int, genesis: bytes, start: int, peers: int, clients: int) -> int:
    """One cycle; the number of peers that failed (refused or cut off: counted, not fatal)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    failed = 0

    async def gated(coro: Any) -> None:
        nonlocal failed
        async with gate:
            try:
                await coro
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, RuntimeError) as exc:
                failed += 1
                if failed <= 3:
                    print(f"  a client failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    jobs = [gated(one_peer(p2p_port, genesis, start + i)) for i in range(peers)]
    jobs += [gated(one_rpc_client(f"ws://127.0.0.1:{rpc_port}")) for _ in range(clients)]
    await asyncio.gather(*jobs)
    return failed


def start_node(tree: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int, int, int, Path]:
    rpc_port, p2p_port, metrics_port = range(find_free_port_range(3), 10**6)[:3]
    log = workdir / "node.log"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "--dev", "--tmp", "--rpc-port", str(rpc_port),
         "--port", str(p2p_port), "--prometheus-port", str(metrics_port)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tree,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rpc_port}/health", timeout=2):
                return proc, rpc_port, p2p_port, metrics_port, log
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("node did not start")


def slope_per_1000(points: list[tuple[int, int]]) -> float | None:
    """Least-squares slope of RSS (KiB) against peers, per 1,000 peers, in MiB."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 1000 / 1024


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    tree = Path(args.tree).resolve()
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
        proc, rpc_port, p2p_port, metrics_port, log = start_node(tree, Path(tmp))
        try:
            async with aiohttp.ClientSession() as http:
                genesis = bytes.fromhex((await rpc(http, f"http://127.0.0.1:{rpc_port}", "chain_getBlockHash", [0]))[2:])
            rows: list[dict[str, Any]] = []

            def record(cycle_no: int, total: int, failed: int, seconds: float) -> None:
                row = {"cycle": cycle_no, "peers": total, "rpc_clients": cycle_no * args.rpc, "failed": failed,
                       "seconds": round(seconds, 2), "rss_kib": rss_kib(proc.pid), "tables": tables(metrics_port)}
                rows.append(row)
                shown = " ".join(f"{k}={row['tables'].get(k, '-')}" for k in SHOWN)
                print(f"cycle {cycle_no:>3}  peers {total:>6}  rss {row['rss_kib'] / 1024:8.1f} MiB  "
                      f"{seconds:6.1f} s  failed {failed:>3}  {shown}", flush=True)

            record(0, 0, 0, 0.0)
            total = 0
            for c in range(1, args.cycles + 1):
                t0 = time.perf_counter()
                failed = await cycle(p2p_port, rpc_port, genesis, total, args.peers, args.rpc)
                total += args.peers
                for _ in range(100):  # until every peer is gone
                    if peers_connected(metrics_port) == 0:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(args.settle)
                record(c, total, failed, time.perf_counter() - t0)
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proc.returncode not in (0, -15):
            print(log.read_text()[-4000:], file=sys.stderr)
    warm = [(r["peers"], r["rss_kib"]) for r in rows[1:]]
    late = [(r["peers"], r["rss_kib"]) for r in rows[len(rows) // 2:]]
    return {
        "tree": str(tree),
        "label": args.label,
        "cycles": rows,
        "rss_growth_mib_per_1000_peers": slope_per_1000(warm),
        "rss_growth_mib_per_1000_peers_second_half": slope_per_1000(late),
        "rss_start_mib": rows[0]["rss_kib"] / 1024,
        "rss_end_mib": rows[-1]["rss_kib"] / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches.churn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 cycles of 40 peers and 8 RPC clients")
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--peers", type=int, default=250, help="fresh-identity peers per cycle")
    parser.add_argument("--rpc", type=int, default=40, help="RPC WebSocket clients per cycle")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of pause before each reading")
    parser.add_argument("--tree", default=str(HERE), help="the source tree the node runs from")
    parser.add_argument("--label", default="", help="names the JSON file: churn-LABEL.json")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.peers, args.rpc = 3, 40, 8
    result = asyncio.run(measure(args))
    print()
    print(f"{'cycle':>5} {'peers':>7} {'RSS MiB':>9} " + " ".join(f"{k:>22}" for k in SHOWN))
    for r in result["cycles"]:
        print(f"{r['cycle']:>5} {r['peers']:>7} {r['rss_kib'] / 1024:>9.1f} "
              + " ".join(f"{r['tables'].get(k, '-')!s:>22}" for k in SHOWN))
    growth, late = result["rss_growth_mib_per_1000_peers"], result["rss_growth_mib_per_1000_peers_second_half"]
    print(f"RSS growth: {'-' if growth is None else f'{growth:.2f}'} MiB per 1,000 peers after the first cycle, "
          f"{'-' if late is None else f'{late:.2f}'} over the second half "
          f"({result['rss_start_mib']:.1f} -> {result['rss_end_mib']:.1f} MiB)")
    name = f"churn-{args.label}.json" if args.label else "churn.json"
    write_record(args.out / name, "churn", quick=args.quick, **result)
    json.dumps(result)  # the record is plain JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
