"""Connection floods against a real node: what it holds, and how fast a new caller is served.

    python -m benches.rpc_flood [--calls 200] [--half-open 2000] [--churn-seconds 5]
                                [--rpc-rate-limit N] [--only SCENARIO,...]

Starts ``polchain node --dev`` on a free loopback port with the default RPC limits (100
WebSockets, 256 other connections, 10 s header timeout), then for each scenario measures a
*new caller*: a fresh TCP connection that POSTs ``system_health`` and reads the answer
(``Connection: close``), ``--calls`` times one after another, 5 s timeout each. Reported:
connections the node holds for the flood once it settles (flood sockets the server has not
closed), new-caller successes, and latency p50/p99/max.

Scenarios:

* ``baseline``: nothing else connected.
* ``idle-ws``: 100 idle WebSockets (the whole WebSocket budget) held open, then 50 more
  WebSocket upgrades (each evicts the least recently active idle one; "ws refused" counts
  429s).
* ``half-open``: ``--half-open`` TCP connections that never send a byte, held open.
* ``churn``: another process opens silent connections as fast as it can for
  ``--churn-seconds`` while the new callers are measured (eviction under pressure).
* ``churn-reset``: the same from one blocking opener whose connections each send a POST head
  and a byte of body and are closed with a reset (retest49's M3: before asyncio accepted 64
  connections a loop turn rather than 1,024, connected clients stalled up to a second).
* ``heavy-reads``: 16 keep-alive connections call ``state_getReadProof`` of 1,000 keys back to
  back (about 20 ms of Python each, on the RPC read threads) while the new callers ask for a
  read proof of one key (``small read``: a read on those threads too; measured alone first, as
  ``read-baseline``). The read threads serve addresses in turn (rpc.reads); in one FIFO queue
  such a flood multiplied a caller's latency 30-100x (retest45's F2). With ``--rpc-rate-limit N``
  the node is started with that flag (and 127.0.0.1, the new callers' address, whitelisted: an
  honest caller within its rate), and the flood's calls past it are refused or wait:
  ``heavy-reads`` then shows what the limit leaves of the flood, and what its refusals cost.

Before issue 7's fix the node answered 429 to every HTTP caller while 100 idle WebSockets
were open, and stopped accepting at about 1,010 half-open connections (1,024 open files).
The floods come from 127.0.0.2 (FLOOD_HOST), the new callers from 127.0.0.1: the node's
per-address rules (its new connections a second, its share of connections) tell them apart,
as they would two hosts. Results are printed and written to bench-results/rpc_flood.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from benches.record import write_record
from node.devnet import CLI, compute_child_env, find_free_port_range

RESULTS = Path("bench-results") / "rpc_flood.json"
REQUEST = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
BODY = b'{"jsonrpc":"2.0","id":1,"method":"system_health"}'
SMALL_READ = b'{"jsonrpc":"2.0","id":1,"method":"state_getReadProof","params":[["0x%s"]]}' % (b"ab" * 32)
HEAVY_READ = b'{"jsonrpc":"2.0","id":1,"method":"state_getReadProof","params":[[%s]]}' % b",".join(
    b'"0x%064x"' % (n * 0x9E3779B97F4A7C15) for n in range(1, 1001)
)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def start_node(
    workdir: Path, port: int, nofile: tuple[int, int], timeout: float = 180, flags: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], Path]:
    """The node starts with ``nofile`` as its open-file limit (the shell's, not the bench's)."""
    log = workdir / "node.log"
    proc = subprocess.Popen(
        [*CLI, "node", "--dev", "--rpc-port", str(port), *flags],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=compute_child_env(),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, log
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("node did not start")


FLOOD_HOST = "127.0.0.2"


async def new_caller(port: int, timeout: float = 5.0, body: bytes = BODY) -> float | None:
    """Seconds for one fresh-connection call (system_health by default); None if it failed."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST % (len(body), body))
            data = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return None
    if not data.startswith(b"HTTP/1.1 200") or b'"error"' in data:
        return None
    return time.perf_counter() - started


async def measure(port: int, calls: int, body: bytes = BODY) -> dict[str, Any]:
    times: list[float] = []
    failed = 0
    for _ in range(calls):
        t = await new_caller(port, body=body)
        if t is None:
            failed += 1
        else:
            times.append(t)
    times.sort()

    def pct(q: float) -> float | None:
        return round(1000 * times[min(len(times) - 1, int(q * len(times)))], 2) if times else None

    return {
        "calls": calls,
        "ok": len(times),
        "failed": failed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * times[-1], 2) if times else None,
    }


async def still_open(readers: list[asyncio.StreamReader]) -> int:
    async def alive(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), 0.05) != b""
        except TimeoutError:
            return True
        except OSError:
            return False

    return sum(await asyncio.gather(*(alive(r) for r in readers)))


async def scenario_idle_ws(port: int, calls: int) -> dict[str, Any]:
    # limit=0: aiohttp's client otherwise queues connections past 100 per session.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, local_addr=(FLOOD_HOST, 0)), timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        sockets = [await session.ws_connect(f"ws://127.0.0.1:{port}") for _ in range(100)]
        refused = 0
        extra = []
        for _ in range(50):
            try:
                extra.append(await session.ws_connect(f"ws://127.0.0.1:{port}"))
            except (aiohttp.WSServerHandshakeError, TimeoutError):
                refused += 1
        await asyncio.sleep(0.5)
        held = 0
        for ws in (*sockets, *extra):
            try:
                msg = await ws.receive(timeout=0.05)
                held += msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            except TimeoutError:
                held += 1
        result = await measure(port, calls)
        for ws in (*sockets, *extra):
            await ws.close()
    return {"flood": "100 idle WebSockets + 50 more upgrades", "held": held, "ws_refused": refused, **result}


async def scenario_half_open(port: int, calls: int, count: int) -> dict[str, Any]:
    flood = []
    for _ in range(count):
        try:
            async with asyncio.timeout(2):
                flood.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(FLOOD_HOST, 0)))
        except (OSError, TimeoutError):
            break  # the node stopped accepting (its backlog is full)
    await asyncio.sleep(0.5)
    held = await still_open([r for r, _ in flood])
    result = await measure(port, calls)
    for _, w in flood:
        w.close()
    return {"flood": f"{count} silent TCP connections", "opened": len(flood), "held": held, **result}


def _churn(port: int, seconds: float, counter: Any) -> None:
    """32 concurrent openers; the newest 4,000 sockets are kept open (the flooder's own
    descriptors are finite too), older ones closed."""
    _raise_fd_limit()

    async def flood() -> None:
        end = time.monotonic() + seconds
        held: list[asyncio.StreamWriter] = []

        async def opener() -> None:
            while time.monotonic() < end:
                try:
                    async with asyncio.timeout(1):
                        _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(FLOOD_HOST, 0))
                except (OSError, TimeoutError):
                    continue
                held.append(writer)
                counter.value += 1
                if len(held) > 4000:
                    held.pop(0).close()

        await asyncio.gather(*(opener() for _ in range(32)))
        for writer in held:
            writer.close()

    asyncio.run(flood())


def _churn_head_reset(port: int, seconds: float, counter: Any) -> None:
    """One blocking opener: connect, send a POST head and a byte of its body, close with a
    reset (SO_LINGER 0), as fast as it can."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            sock.bind((FLOOD_HOST, 0))
            sock.connect(("127.0.0.1", port))
            sock.send(head)
            counter.value += 1
        except OSError:
            pass
        finally:
            sock.close()


async def scenario_churn(port: int, calls: int, seconds: float, *, reset: bool = False) -> dict[str, Any]:
    counter = mp.Value("q", 0)
    flooder = mp.Process(target=_churn_head_reset if reset else _churn, args=(port, seconds, counter))
    flooder.start()
    await asyncio.sleep(0.5)
    result = await measure(port, calls)
    flooder.join()
    rate = round(counter.value / seconds)
    what = "connections each sending a head and a byte, then reset," if reset else "silent connections"
    return {"flood": f"{what} opened as fast as possible for {seconds:g} s",
            "opened": counter.value, "opened_per_s": rate, "held": None, **result}


async def scenario_heavy_reads(port: int, calls: int, pid: int) -> dict[str, Any]:
    stop = asyncio.Event()
    done = refused = 0

    async def reader() -> None:
        nonlocal done, refused
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(FLOOD_HOST, 0))) as session:
            while not stop.is_set():
                async with session.post(f"http://127.0.0.1:{port}", data=HEAVY_READ,
                                        headers={"Content-Type": "application/json"}) as answer:
                    body = await answer.read()
                    if answer.status == 200 and b'"error"' not in body:
                        done += 1
                    else:  # (past --rpc-rate-limit: -32009, or 429 before it is read or at the connection gate)
                        refused += 1

    flood = [asyncio.ensure_future(reader()) for _ in range(16)]
    await asyncio.sleep(1.0)
    started, before, refused_before = time.perf_counter(), done, refused
    cpu_before = _node_cpu(pid)
    result = await measure(port, calls, SMALL_READ)
    seconds = time.perf_counter() - started
    rate, refusals = round((done - before) / seconds), round((refused - refused_before) / seconds)
    cpu = round((_node_cpu(pid) - cpu_before) / seconds, 2)
    stop.set()
    await asyncio.gather(*flood)
    return {"flood": f"16 connections of state_getReadProof x 1,000 keys ({rate}/s answered, {refusals}/s refused; "
            f"node CPU {cpu} cores)", "held": None, "flood_answered_per_s": rate, "flood_refused_per_s": refusals,
            "node_cpu_cores": cpu, **result}


async def _baseline(port: int, calls: int) -> dict[str, Any]:
    return {"flood": "none", "held": 0, **await measure(port, calls)}


async def _read_baseline(port: int, calls: int) -> dict[str, Any]:
    return {"flood": "none (small read)", "held": 0, **await measure(port, calls, SMALL_READ)}


def _node_cpu(pid: int) -> float:
    """The node process's CPU seconds so far (user + system, /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SCENARIOS = ("baseline", "idle-ws", "half-open", "churn", "churn-reset", "read-baseline", "heavy-reads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--half-open", type=int, default=2000)
    parser.add_argument("--churn-seconds", type=float, default=5.0)
    parser.add_argument("--rpc-rate-limit", type=int, default=None, metavar="N", help="start the node with it")
    parser.add_argument("--only", default=",".join(SCENARIOS), metavar="SCENARIO,...",
                        help=f"these scenarios, in the usual order (default all: {', '.join(SCENARIOS)})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if only - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(only - set(SCENARIOS)))}")
    flags = () if args.rpc_rate_limit is None else (
        "--rpc-rate-limit", str(args.rpc_rate_limit), "--rpc-rate-limit-whitelisted-ips", "127.0.0.1/32")
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _raise_fd_limit()
    port = find_free_port_range(1)
    with tempfile.TemporaryDirectory() as tmp:
        proc, log = start_node(Path(tmp), port, nofile, flags=flags)
        try:

            async def run() -> list[dict[str, Any]]:
                scenarios = {
                    "baseline": lambda: _baseline(port, args.calls),
                    "idle-ws": lambda: scenario_idle_ws(port, args.calls),
                    "half-open": lambda: scenario_half_open(port, args.calls, args.half_open),
                    "churn": lambda: scenario_churn(port, args.calls, args.churn_seconds),
                    "churn-reset": lambda: scenario_churn(port, args.calls, args.churn_seconds, reset=True),
                    "read-baseline": lambda: _read_baseline(port, args.calls),
                    "heavy-reads": lambda: scenario_heavy_reads(port, args.calls, proc.pid),
                }
                rows = []
                for name in SCENARIOS:
                    if name in only:
                        rows.append({"scenario": name, **await scenarios[name]()})
                        await asyncio.sleep(1)
                return rows

            rows = asyncio.run(run())
        finally:
            proc.terminate()
            proc.wait(30)
        log_bytes = log.stat().st_size
        tracebacks = log.read_text().count("Traceback")
    print(f"{'scenario':<13} {'held':>6} {'new callers ok':>15} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  flood")
    for row in rows:
        held = "-" if row["held"] is None else str(row["held"])
        print(
            f"{row['scenario']:<13} {held:>6} {row['ok']:>7}/{row['calls']:<7} "
            f"{row['p50_ms'] or '-':>8} {row['p99_ms'] or '-':>8} {row['max_ms'] or '-':>8}  {row['flood']}"
            + (f" ({row['ws_refused']} refused)" if "ws_refused" in row else "")
            + (f" ({row['opened_per_s']}/s)" if "opened_per_s" in row else "")
        )
    print(f"node open-file limit at start: {nofile[0]} (hard {nofile[1]})")
    print(f"node log: {log_bytes} bytes, {tracebacks} tracebacks")
    write_record(
        args.out, "rpc_flood",
        limits={"websockets": 100, "http_connections": 256, "header_timeout_s": 10, "rpc_rate_limit": args.rpc_rate_limit},
        node_nofile_at_start=list(nofile), rows=rows, node_log_bytes=log_bytes, node_log_tracebacks=tracebacks,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
