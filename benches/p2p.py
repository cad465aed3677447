"""p2p throughput: messages over one Noise connection between two NetworkServices.

    python -m benches.p2p [--messages 20000] [--size 128] [--rounds 3]

Both services run in one process on one event loop over 127.0.0.1, so every figure is the
cost of *both* ends on one core (sender: encode, chunk, encrypt, WebSocket write; receiver:
WebSocket read, rate limit, decrypt, canonical decode, seen-set, handler). Rows:

- ``connect``: dial to connected (TCP, WebSocket upgrade, Noise XX with the ed25519
  identity check, Status exchange), mean over ``--connects`` dials;
- ``votes``: FinalityVotes messages of one vote of ``--size`` payload bytes, one direction, in windows of
  256 (the sender waits for the window to arrive, so no queue ever overflows);
- ``plain ws``: the same number of frames of the same encoded size over a bare aiohttp
  WebSocket, no Noise, no msgspec: the baseline the ``votes`` row is compared with;
- ``1 MiB transactions``: Transactions messages carrying one 1 MiB extrinsic (17 Noise frames);
- ``block ranges``: request_blocks of 64 header-only blocks, request and checked answer.

Each row runs ``--rounds`` times and the best round is reported (other work on a shared
machine only slows a round down). Results are printed and written to bench-results/p2p.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benches.record import write_record
from chain.block import Block, Body
from chain.header import ZERO_HASH, Header
from node.network.identity import NodeKey, PeerId
from node.network.messages import (
    MAX_VOTE_SIZE,
    BlockData,
    BlockRequest,
    FinalityVotes,
    encode_message,
)
from node.network.multiaddr import Multiaddr
from node.network.service import ChainStatus, NetworkConfig, NetworkHandlers, NetworkService

RESULTS = Path("bench-results") / "p2p.json"
GENESIS = b"\x42" * 32
WINDOW = 256
CONFIG = NetworkConfig(
    listen_addrs=(Multiaddr("ip4", "127.0.0.1", 0),),
    frames_per_second=1e9, frame_burst=1e9, bytes_per_second=1e12, byte_burst=1e12,
    inbound_queue=4 * WINDOW, send_queue=4 * WINDOW, seen_capacity=1 << 20,
    requests_per_second=1e9, request_burst=1e9, votes_per_second=1e9, vote_burst=1e9,
    tx_per_second=1e9, tx_burst=1e9, tx_bytes_per_second=1e12, tx_byte_burst=1e12,
)


def _chain(n: int) -> list[Block]:
    blocks, parent = [], ZERO_HASH
    for i in range(n):
        h = Header(parent, i, bytes(32), bytes(32), i, bytes(32))
        blocks.append(Block(h, Body()))
        parent = h.hash()
    return blocks


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.event = asyncio.Event()

    def hit(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self.target:
            self.event.set()

    async def wait_for(self, target: int) -> None:
        self.target = target
        if self.count < target:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 60)


async def _pair() -> tuple[NetworkService, NetworkService, Counter, Counter]:
    blocks = _chain(64)
    votes, txs = Counter(), Counter()

    async def on_vote(peer: PeerId, payload: bytes) -> bool:
        votes.hit()
        return True

    async def on_transactions(peer: PeerId, xts: tuple[bytes, ...]) -> None:
        txs.hit(len(xts))

    async def serve(peer: PeerId, req: BlockRequest) -> list[BlockData]:
        return [BlockData(b) for b in blocks[: req.count]]

    def status() -> ChainStatus:
        return ChainStatus(63, blocks[-1].hash(), 0, blocks[0].hash())

    recv = NetworkService(
        NodeKey.generate(), CONFIG, genesis_hash=GENESIS, chain_status=status,
        handlers=NetworkHandlers(on_vote=on_vote, on_transactions=on_transactions, serve_block_request=serve),
    )
    send = NetworkService(NodeKey.generate(), replace(CONFIG), genesis_hash=GENESIS, chain_status=status)
    await recv.start()
    await send.start()
    await send.dial(recv.listen_addresses[0])
    return send, recv, votes, txs


async def bench_connect(n: int) -> float:
    a = NetworkService(NodeKey.generate(), CONFIG, genesis_hash=GENESIS, chain_status=lambda: ChainStatus(0, GENESIS, 0, GENESIS))
    await a.start()
    try:
        total = 0.0
        for _ in range(n):
            b = NetworkService(NodeKey.generate(), CONFIG, genesis_hash=GENESIS, chain_status=lambda: ChainStatus(0, GENESIS, 0, GENESIS))
            await b.start()
            t = time.perf_counter()
            await b.dial(a.listen_addresses[0])
            total += time.perf_counter() - t
            await b.stop()
        return total / n
    finally:
        await a.stop()


async def bench_votes(messages: int, size: int) -> float:
    send, recv, votes, _ = await _pair()
    try:
        body = bytes(size - 8)
        t = time.perf_counter()
        for start in range(0, messages, WINDOW):
            for i in range(start, min(messages, start + WINDOW)):
                send.broadcast_vote(i.to_bytes(8, "big") + body)
            await votes.wait_for(min(messages, start + WINDOW))
        return messages / (time.perf_counter() - t)
    finally:
        await send.stop()
        await recv.stop()


async def bench_plain_ws(messages: int, frame_size: int) -> float:
    counter = Counter()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                counter.hit()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/", compress=0) as ws:
            frame = bytes(frame_size)
            t = time.perf_counter()
            for start in range(0, messages, WINDOW):
                for _ in range(start, min(messages, start + WINDOW)):
                    await ws.send_bytes(frame)
                await counter.wait_for(min(messages, start + WINDOW))
            return messages / (time.perf_counter() - t)
    finally:
        await runner.cleanup()


async def bench_big_transactions(count: int) -> float:
    send, recv, _, txs = await _pair()
    try:
        t = time.perf_counter()
        for i in range(count):
            send.broadcast_transactions((i.to_bytes(8, "big") + bytes(1024 * 1024 - 8),))
            await txs.wait_for(i + 1)
        return count * 1024 * 1024 / (time.perf_counter() - t) / 1e6
    finally:
        await send.stop()
        await recv.stop()


async def bench_ranges(requests: int) -> float:
    send, recv, _, _ = await _pair()
    try:
        t = time.perf_counter()
        for _ in range(requests):
            got = await send.request_blocks(recv.local_peer_id, 0, 64)
            assert len(got) == 64
        return requests / (time.perf_counter() - t)
    finally:
        await send.stop()
        await recv.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    frame = len(encode_message(FinalityVotes((bytes(args.size),)))) + 1 + 16  # + flag + Noise tag
    rows: dict[str, tuple[float, str]] = {}

    async def best(name: str, unit: str, fn: Any, *fa: Any, lower: bool = False) -> None:
        results = [await fn(*fa) for _ in range(args.rounds)]
        rows[name] = (min(results) if lower else max(results), unit)

    await best("connect (TCP + WS + Noise XX + Status)", "ms", lambda: _ms(bench_connect(args.connects)), lower=True)
    await best(f"votes, {args.size} B payload, Noise", "msg/s", bench_votes, args.messages, args.size)
    await best(f"plain ws, {frame} B frames, no Noise", "msg/s", bench_plain_ws, args.messages, frame)
    await best("1 MiB transactions", "MB/s", bench_big_transactions, args.big)
    await best("block ranges of 64 headers", "req/s", bench_ranges, args.ranges)
    return {k: {"value": round(v, 3), "unit": u} for k, (v, u) in rows.items()}


async def _ms(coro: Any) -> float:
    return float(await coro) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument("--big", type=int, default=20)
    parser.add_argument("--ranges", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 8 <= args.size <= MAX_VOTE_SIZE:
        parser.error(f"--size must be 8 to {MAX_VOTE_SIZE} bytes (a vote's most: the receiver refuses a longer one)")
    rows = asyncio.run(run(args))
    print(f"{'p2p (both ends on one core)':45} {'best':>12}")
    for name, r in rows.items():
        print(f"{name:45} {r['value']:>12,.1f} {r['unit']}")
    votes = next(v["value"] for k, v in rows.items() if k.startswith("votes"))
    plain = next(v["value"] for k, v in rows.items() if k.startswith("plain"))
    print(f"Noise + msgspec cost: votes run at {votes / plain:.0%} of bare WebSocket frames")
    write_record(RESULTS, "p2p", args=vars(args), rows=rows)


if __name__ == "__main__":
    main()
