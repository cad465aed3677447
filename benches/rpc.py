"""RPC throughput of the node's real method table against a bare aiohttp JSON-RPC handler.

    python -m benches.rpc [--seconds 5] [--requests 30000] [--rounds 3] [--blocks 8]

Each server process opens its own dev chain in a temporary database, authors ``--blocks``
blocks of transfers (so the best header carries a seal and the state has history) and
builds the node's method table from it, as ``polchain node`` does. For each method it
measures requests/s over HTTP keep-alive and over one WebSocket against (1) `RpcServer`
serving that table and (2) a bare aiohttp app that only parses, looks the method up in
a dict, awaits the *same* handler and dumps the response. The methods and their params:

* ``system_health`` ``[]``: the cheapest call, close to the cost of the transport alone;
* ``chain_getHeader`` ``[]``: the best header read from LevelDB and decoded;
* ``state_getStorage`` ``[Bob's System.Account key]``: one state read (flat column);
* ``ml_getModel`` ``[0]``: the model's info, spec and lineage from state.

Both servers run each handler with its parameter parsing (rpc.params), so the ratio is
the cost of the JSON-RPC machinery around the handler (request validation, limits,
CORS, error mapping, subscriptions), and the rates are what a client gets from the node.

Each server runs in its own process and the load generator in another, pinned to
different cores where the OS allows, so client and server never share one core. The
load generator is a raw asyncio protocol that pipelines pre-encoded requests (HTTP/1.1
pipelining over a few keep-alive connections; back-to-back frames on one WebSocket)
because an aiohttp client would cost as much CPU as the server and measure itself.
Each cell stops at ``--requests`` responses or ``--seconds`` seconds, whichever first,
after a short warm-up; each cell runs ``--rounds`` times, alternating which server goes
first, and the median with its spread (min-max) is reported, with the ratio polchain/bare
taken within each round. ``polchain bench rpc`` runs the same cells (``run``). The first response of every cell must be a non-null result. Only 127.0.0.1
is used. Results are printed and written to bench-results/rpc.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import struct
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from benches.record import write_record
from chain import calls
from chain.config import SPEC_VERSION
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import balances
from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.methods import MethodTable
from rpc.server import RpcServer

METHODS = ("system_health", "chain_getHeader", "state_getStorage", "ml_getModel")
TRANSPORTS = ("http", "ws")
SERVERS = ("polchain", "bare")
RESULTS = Path("bench-results") / "rpc.json"


def method_params(method: str) -> list[Any]:
    """The params each benchmarked method is called with (all answer a non-null result)."""
    if method == "state_getStorage":
        return ["0x" + balances.ACCOUNT.compute_key(dev_keypair("Bob").public).hex()]
    if method == "ml_getModel":
        return [0]
    return []


async def open_node(blocks: int) -> tuple[NodeService, MethodTable]:
    """A dev node in a temporary database with ``blocks`` blocks of one transfer each,
    and its method table (the same `build_method_table` the CLI serves)."""
    service = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    bob, charlie = dev_keypair("Bob"), dev_keypair("Charlie")
    for nonce in range(blocks):
        xt = sign_extrinsic(
            bob, calls.Transfer(charlie.public, 10**9), nonce=nonce,
            genesis_hash=service.chain.genesis_hash, spec_version=SPEC_VERSION,
        )
        service.submit(xt.encode())
        if await service.author_block() is None:
            raise RuntimeError("the bench node could not author a block")
    return service, build_method_table(service)


def pin(cpu: int) -> None:
    """Pin this process to one core when there are at least two (Linux only)."""
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(0, {cpu})


# --- servers -------------------------------------------------------------------------


def bare_app(table: MethodTable) -> web.Application:
    """The baseline: parse, one dict lookup, the same handler, dump. No checks at all."""
    decode = msgspec.json.Decoder().decode
    encode = msgspec.json.Encoder().encode
    handlers = {spec.name: spec.handler for spec in table.methods()}

    async def answer(data: bytes | str) -> bytes:
        request = decode(data)
        result = await handlers[request["method"]](request.get("params", []))
        return encode({"jsonrpc": "2.0", "result": result, "id": request.get("id")})

    async def post(request: web.Request) -> web.Response:
        return web.Response(
            body=await answer(await request.read()), content_type="application/json"
        )

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        with contextlib.suppress(ConnectionError):  # the load generator just hangs up
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await ws.send_frame(await answer(msg.data), WSMsgType.TEXT)
        return ws

    app = web.Application()
    app.router.add_post("/", post)
    app.router.add_get("/", websocket)
    return app


async def _serve(kind: str, blocks: int, port_q: Any, stop: Any) -> None:
    service, table = await open_node(blocks)
    try:
        await _serve_table(kind, table, port_q, stop)
    finally:
        service.close()


async def _serve_table(kind: str, table: MethodTable, port_q: Any, stop: Any) -> None:
    loop = asyncio.get_running_loop()
    if kind == "polchain":
        server = RpcServer(table, host="127.0.0.1", port=0)
        await server.start()
        port_q.put(server.port)
        await loop.run_in_executor(None, stop.wait)
        await server.stop()
    else:
        runner = web.AppRunner(bare_app(table), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(runner.addresses[0][1])
        await loop.run_in_executor(None, stop.wait)
        await runner.cleanup()


def server_main(kind: str, blocks: int, port_q: Any, stop: Any) -> None:
    pin(0)
    asyncio.run(_serve(kind, blocks, port_q, stop))


# --- load generator ------------------------------------------------------------------


class _Load:
    """Counts responses; stops at a count or a deadline."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.count = 0
        self.started = 0.0
        self.finished = 0.0
        self.first_body: bytes | None = None
        self.done = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self.started = time.perf_counter()

    def add(self, n: int) -> bool:
        """Record n responses; False once the cell is over."""
        self.count += n
        now = time.perf_counter()
        if self.count >= self.limit or now - self.started >= self.seconds:
            if not self.done.done():
                self.finished = now
                self.done.set_result(None)
            return False
        return True


class _HttpPipeline(asyncio.Protocol):
    """HTTP/1.1 keep-alive with ``depth`` pipelined requests in flight."""

    def __init__(self, request: bytes, depth: int, load: _Load) -> None:
        self.request = request
        self.depth = depth
        self.load = load
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request * self.depth)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        pos = 0
        n = 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = buf[pos:end]
            i = head.find(b"Content-Length: ")
            length = int(head[i + 16 : head.find(b"\r\n", i)]) if i >= 0 else 0
            stop = end + 4 + length
            if stop > len(buf):
                break
            if self.load.first_body is None:
                self.load.first_body = head[:12] + b" " + buf[end + 4 : stop]
            pos = stop
            n += 1
        self.buf = buf[pos:]
        if n and self.load.add(n) and self.transport is not None:
            self.transport.write(self.request * n)


def _ws_frame(payload: bytes) -> bytes:
    """One masked client text frame (RFC 6455 §5.2)."""
    mask = b"\x12\x34\x56\x78"
    size = len(payload)
    head = (
        bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + struct.pack("!H", size)
    )
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class _WsPipeline(asyncio.Protocol):
    """One WebSocket with ``depth`` requests in flight."""

    def __init__(self, host: str, port: int, payload: bytes, depth: int, load: _Load) -> None:
        self.frame = _ws_frame(payload)
        self.depth = depth
        self.load = load
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        key = base64.b64encode(os.urandom(16)).decode()
        self.handshake = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        pos = 0
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"websocket upgrade refused: {buf[:80]!r}")
            self.upgraded = True
            pos = end + 4
            assert self.transport is not None
            self.transport.write(self.frame * self.depth)
        n = 0
        size = len(buf)
        while pos + 2 <= size:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if start + 2 > size:
                    break
                length = (buf[start] << 8) | buf[start + 1]
                start += 2
            elif length == 127:
                if start + 8 > size:
                    break
                (length,) = struct.unpack_from("!Q", buf, start)
                start += 8
            if start + length > size:
                break
            if self.load.first_body is None:
                self.load.first_body = buf[start : start + length]
            pos = start + length
            n += 1
        self.buf = buf[pos:]
        if n and self.load.add(n) and self.transport is not None:
            self.transport.write(self.frame * n)


async def _run_cell(
    port: int, transport: str, method: str, limit: int, seconds: float, connections: int, depth: int,
    warmup: int = 2000,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payload = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": method_params(method)}, separators=(",", ":")
    ).encode()
    protocols: list[asyncio.BaseTransport] = []

    async def run(count: int, secs: float) -> _Load:
        load = _Load(count, secs)
        load.start()
        if transport == "http":
            request = (
                f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode() + payload
            for _ in range(connections):
                t, _ = await loop.create_connection(
                    lambda: _HttpPipeline(request, depth, load), "127.0.0.1", port
                )
                protocols.append(t)
        else:
            t, _ = await loop.create_connection(
                lambda: _WsPipeline("127.0.0.1", port, payload, depth * connections, load),
                "127.0.0.1",
                port,
            )
            protocols.append(t)
        try:
            await asyncio.wait_for(load.done, secs + 10)
        finally:
            for opened in protocols:
                opened.close()
            protocols.clear()
        return load

    await run(min(warmup, limit), seconds)  # warm-up: imports, caches, first allocations
    load = await run(limit, seconds)
    elapsed = load.finished - load.started
    first = load.first_body or b""
    if b'"result"' not in first or b'"result":null' in first:
        raise RuntimeError(f"{method} over {transport}: unexpected response {first[:200]!r}")
    return {
        "requests": load.count,
        "seconds": round(elapsed, 4),
        "rps": round(load.count / elapsed, 1),
    }


def client_main(cells: Any, result_q: Any) -> None:
    """The load generator: one process for every cell (spawning one per cell would cost
    more than a quick cell), pinned to the core the servers are not on. Reads
    (port, transport, method, limit, seconds, connections, depth, warmup) tuples from
    ``cells`` until None; answers each with its result or {"error": ...}."""
    pin(1)
    while (cell := cells.get()) is not None:
        try:
            result_q.put(asyncio.run(_run_cell(*cell)))
        except Exception as e:  # report, do not hang the parent
            result_q.put({"error": repr(e)})


# --- orchestration -------------------------------------------------------------------


def measure(
    blocks: int, seconds: float, requests: int, connections: int, depth: int, rounds: int,
    warmup: int = 2000, advance: Any = lambda n=1: None,
) -> list[dict[str, Any]]:
    """Every cell, ``rounds`` times: both servers, both transports, every method. Within a
    round the two servers run back to back, alternating which goes first, so other load
    on the machine hits both alike; ``advance`` is called once per cell."""
    ctx = mp.get_context("spawn")
    cells: list[dict[str, Any]] = []
    servers: dict[str, tuple[Any, Any, int]] = {}
    cell_q, result_q = ctx.Queue(), ctx.Queue()
    client = ctx.Process(target=client_main, args=(cell_q, result_q))
    try:
        for kind in SERVERS:
            port_q = ctx.Queue()
            stop = ctx.Event()
            proc = ctx.Process(target=server_main, args=(kind, blocks, port_q, stop))
            proc.start()
            servers[kind] = (proc, stop, port_q)
        servers = {kind: (proc, stop, q.get(timeout=120)) for kind, (proc, stop, q) in servers.items()}
        client.start()
        for transport in TRANSPORTS:
            for method in METHODS:
                for round_no in range(rounds):
                    order = SERVERS if round_no % 2 == 0 else SERVERS[::-1]
                    for kind in order:
                        cell_q.put((servers[kind][2], transport, method, requests, seconds,
                                    connections, depth, warmup))
                        result = result_q.get(timeout=seconds * 2 + 60)
                        if "error" in result:
                            raise RuntimeError(f"{kind} {transport} {method}: {result['error']}")
                        cells.append({"server": kind, "transport": transport, "method": method,
                                      "round": round_no, **result})
                        advance(1)
    finally:
        if client.is_alive():
            cell_q.put(None)
            client.join(30)
        for proc, stop, _port in servers.values():
            stop.set()
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
    return cells


def compute_rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and transport: each server's req/s over the rounds, and the ratio
    polchain / bare taken within each round (same machine state), summarised."""
    from benches.runner import summarize

    rows = []
    for transport in TRANSPORTS:
        for method in METHODS:
            mine = [c for c in cells if (c["transport"], c["method"]) == (transport, method)]
            by_round: dict[int, dict[str, float]] = {}
            for c in mine:
                by_round.setdefault(c["round"], {})[c["server"]] = c["rps"]
            ours = [r["polchain"] for r in by_round.values()]
            bare = [r["bare"] for r in by_round.values()]
            rows.append({
                "method": method, "transport": transport,
                "polchain_rps": summarize(ours), "bare_rps": summarize(bare),
                "ratio": summarize([o / b for o, b in zip(ours, bare, strict=True)]),
            })
    return rows


def run(ctx: Any) -> Any:
    """``polchain bench rpc``: see the module docstring; median and spread of ``ctx.reps`` rounds."""
    from benches.runner import Report, errorbars, fmt

    if ctx.quick:
        blocks, seconds, requests, warmup = 2, 0.4, 4000, 300
    else:
        blocks, seconds, requests, warmup = 8, 2.0, 30000, 1000
    connections, depth = 4, 8
    total = len(TRANSPORTS) * len(METHODS) * ctx.reps * len(SERVERS)
    with ctx.progress(total, "rpc cells") as advance:
        cells = measure(blocks, seconds, requests, connections, depth, ctx.reps, warmup, advance)
    rows = compute_rows(cells)

    def plot(fig: Any) -> None:
        for i, transport in enumerate(TRANSPORTS):
            ax = fig.add_subplot(1, 2, i + 1)
            mine = [r for r in rows if r["transport"] == transport]
            for j, kind in enumerate(SERVERS):
                med, err = errorbars([r[f"{kind}_rps"] for r in mine])
                ax.bar([x + j * 0.4 for x in range(len(mine))], med, 0.4, yerr=err, capsize=3, label=kind)
            ax.set_xticks([x + 0.2 for x in range(len(mine))], [r["method"] for r in mine], rotation=20, fontsize=7)
            ax.set_title(f"{transport}: req/s, median and min–max")
            ax.legend(fontsize=7)

    return Report(
        title=f"RPC req/s: the dev node's method table ({blocks} blocks) vs a bare aiohttp handler, "
              f"median (min–max) of {ctx.reps} rounds; HTTP {connections} keep-alive conns x {depth} pipelined, "
              f"one WebSocket x {connections * depth} in flight",
        columns=["method", "transport", "polchain req/s", "bare req/s", "polchain / bare"],
        rows=[[r["method"], r["transport"], fmt(r["polchain_rps"]), fmt(r["bare_rps"]), fmt(r["ratio"], 2)]
              for r in rows],
        results={"methods": {m: method_params(m) for m in METHODS}, "blocks": blocks,
                 "bounds": {"requests": requests, "seconds": seconds, "warmup": warmup},
                 "load": {"http_connections": connections, "depth": depth}, "rows": rows, "cells": cells},
        plot=plot,
        notes=["each cell stops at its request count or time bound; the ratio is taken within a round"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benches.rpc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--blocks", type=int, default=8, help="blocks the bench node authors before serving")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound per cell")
    parser.add_argument("--requests", type=int, default=30000, help="request bound per cell")
    parser.add_argument("--connections", type=int, default=4, help="HTTP keep-alive connections")
    parser.add_argument(
        "--depth",
        type=int,
        default=8,
        help="requests in flight per HTTP connection (WS: depth x connections)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell, alternating server order")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cells = measure(args.blocks, args.seconds, args.requests, args.connections, args.depth, args.rounds)
    rows = compute_rows(cells)
    print(
        f"RPC throughput (the dev node's method table after {args.blocks} blocks; median (min-max) of {args.rounds} "
        f"rounds of <= {args.requests} requests or {args.seconds:g} s; "
        f"HTTP {args.connections} conns x {args.depth} pipelined, WS 1 conn x "
        f"{args.connections * args.depth} in flight)"
    )
    print(f"{'method':<18} {'transport':<9} {'polchain req/s':>24} {'bare req/s':>24} {'ratio':>18}")
    for row in rows:
        o, b, r = row["polchain_rps"], row["bare_rps"], row["ratio"]
        print(
            f"{row['method']:<18} {row['transport']:<9} "
            f"{o['median']:>8,.0f} ({o['min']:,.0f}-{o['max']:,.0f})".ljust(54)
            + f"{b['median']:>8,.0f} ({b['min']:,.0f}-{b['max']:,.0f})".rjust(24)
            + f"{r['median']:>7.2f} ({r['min']:.2f}-{r['max']:.2f})".rjust(20)
        )
    write_record(
        args.out, "rpc",
        methods={m: method_params(m) for m in METHODS}, blocks=args.blocks,
        bounds={"requests": args.requests, "seconds": args.seconds, "rounds": args.rounds},
        load={"http_connections": args.connections, "depth": args.depth},
        rows=rows, cells=cells,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
