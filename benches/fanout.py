"""What one new block costs a node's event loop when many WebSockets follow the heads.

    python -m benches.fanout [--connections 100] [--subs 1024] [--blocks 5]

A dev node (instant seal, in this process) serves its real method table on a free loopback
port; a client process opens ``--connections`` WebSockets with ``--subs``
``chain_subscribeNewHeads`` each (subscriptions the node refuses are counted, not retried)
and reads every notification. Then the node authors ``--blocks`` blocks, one every second,
and for each block a `node.metrics.LoopLagProbe` (5 ms timer) records the largest lag of
the loop in the second after it; the client reports how many notifications arrived. The
node's RSS is read at the end (``/proc/self/status``). Figures, never assertions.

Before the shared fan-out (rpc/namespaces/chain.py's `HeadFanout`) each subscription was
its own task reading its own queue and encoding its own header: 100 x 1,024 subscriptions
held the loop for seconds per block. Results go to bench-results/fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

OUT = Path("bench-results") / "fanout.json"


def _client(url: str, connections: int, subs: int, ready: Any, counts: Any, stop: Any) -> None:
    import aiohttp
    import msgspec

    async def one(session: aiohttp.ClientSession, index: int, tally: list[int]) -> None:
        ws = await session.ws_connect(url, max_msg_size=0)
        for first in range(0, subs, 256):  # the server's batch limit
            payload = b"[" + b",".join(
                msgspec.json.encode({"jsonrpc": "2.0", "id": i, "method": "chain_subscribeNewHeads"})
                for i in range(first, min(subs, first + 256))
            ) + b"]"
            await ws.send_bytes(payload)
            while True:
                answer = msgspec.json.decode((await ws.receive()).data)
                if isinstance(answer, list):
                    break
                tally[0] += 1  # a head notification of an earlier subscription
            tally[1] += sum(1 for a in answer if "result" in a)
            tally[2] += sum(1 for a in answer if "error" in a)
        tally[3] += 1
        while True:
            msg = await ws.receive()
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return
            tally[0] += 1

    async def main() -> None:
        tally = [0, 0, 0, 0]  # notifications, accepted, refused, connections ready
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(one(session, i, tally)) for i in range(connections)]
            while tally[3] < connections and not all(t.done() for t in tasks):
                await asyncio.sleep(0.1)
            counts[1], counts[2] = tally[1], tally[2]
            ready.set()
            while not stop.is_set():
                counts[0] = tally[0]
                await asyncio.sleep(0.1)
            counts[0] = tally[0]
            for t in tasks:
                t.cancel()

    asyncio.run(main())


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from genesis.spec import load_chain_spec
    from node.metrics import LoopLagProbe
    from node.service import NodeConfig, NodeService
    from rpc.api import build_method_table
    from rpc.server import RpcServer

    service = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    limit = {} if args.node_limit is None else {"max_subscriptions": args.node_limit}
    server = RpcServer(build_method_table(service), port=0, **limit)
    await server.start()
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    counts = ctx.Array("q", 3)
    proc = ctx.Process(target=_client, args=(f"ws://127.0.0.1:{server.port}", args.connections, args.subs, ready, counts, stop))
    proc.start()
    try:
        while not ready.is_set():
            await asyncio.sleep(0.1)
        accepted, refused = counts[1], counts[2]
        await asyncio.sleep(1.0)
        rss_subscribed = _rss_mb()
        lags: list[float] = []
        delivered: list[int] = []
        for _ in range(args.blocks):
            seen: list[float] = []
            halt = asyncio.Event()
            probe = LoopLagProbe(seen.append, interval=0.005)
            probing = asyncio.ensure_future(probe.run(halt))
            before = counts[0]
            started = time.perf_counter()
            await service.author_block()
            while time.perf_counter() - started < 1.0:
                await asyncio.sleep(0.05)
            halt.set()
            await probing
            lags.append(max(seen, default=0.0))
            delivered.append(counts[0] - before)
        return {
            "node_limit": getattr(server, "max_subscriptions", None),
            "connections": args.connections,
            "subs_per_connection": args.subs,
            "subscriptions_accepted": accepted,
            "subscriptions_refused": refused,
            "max_loop_lag_s_per_block": [round(x, 4) for x in lags],
            "notifications_delivered_within_1s_per_block": delivered,
            "rss_mb_subscribed": round(rss_subscribed, 1),
            "rss_mb_end": round(_rss_mb(), 1),
        }
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
        await server.stop()
        service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--subs", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--node-limit", type=int, default=None, metavar="N",
                        help="the server's max_subscriptions (default: its default; ignored before the node-wide cap existed)")
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    from benches.record import write_record

    print(result)
    write_record(OUT, "fanout", **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
