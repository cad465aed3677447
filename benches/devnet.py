"""``polchain devnet`` from the outside: start-up, first block, first finalized block, idle CPU.

    python -m benches.devnet [--validators 4] [--block-time 1000] [--finality-timeout 60] [--idle-seconds 10]

One run, side by side on the same machine and minute:

1. A single ``polchain node --chain local --alice --tmp`` (the baseline): seconds from launch
   until its RPC answers.
2. ``polchain devnet --validators N --no-tui`` on a fresh temporary base path: seconds from
   launch until the chain spec is written and every node process launched, until every node's
   RPC answers, until the first block on any node, until every
   node has a block (best >= 1 on each: authored alone, or received once the nodes network), and until the first finalized block on any node,
   or "no finality yet" if none comes within ``--finality-timeout`` (finality is another
   branch's work; this measures what the checked-out node does).
3. CPU per node at idle: utime + stime from ``/proc/<pid>/stat`` over ``--idle-seconds``, once
   every node is up, as a percentage of one core; RSS from ``/proc/<pid>/status``. The devnet
   supervisor (which polls each node's RPC every second) is measured too.
4. Seconds from SIGINT to the devnet's exit (every node finishing its block and closing).

The numba cache should be warm (run any node once before); the cache state is not changed here.
Ports are free ones on 127.0.0.1. Prints a table and writes bench-results/devnet.json. Figures,
never assertions; the machine is shared, so the load average at start is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benches.record import write_record
from node.devnet import find_free_port_range

OUT = Path("bench-results") / "devnet.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")




def _rpc(port: int, method: str, params: list[Any] | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())["result"]


def _heads(port: int) -> tuple[int, int] | None:
    """(best, finalized) numbers, or None if the node does not answer."""
    try:
        best = int(_rpc(port, "chain_getHeader")["number"], 16)
        finalized = int(_rpc(port, "chain_getHeader", [_rpc(port, "chain_getFinalizedHead")])["number"], 16)
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return best, finalized


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def _rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def solo_start(workdir: Path) -> float:
    """Seconds until a lone ``polchain node --chain local --alice --tmp`` answers RPC."""
    port = find_free_port_range(2)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "--chain", "local", "--alice", "--tmp", "--rpc-port", str(port),
         "--no-prometheus"],
        stdout=(workdir / "solo.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        while _heads(port) is None:
            if proc.poll() is not None:
                raise RuntimeError((workdir / "solo.log").read_text())
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def devnet_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.validators
    first = find_free_port_range(3 * n)
    out = workdir / "devnet.out"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", str(n), "--base-path", str(workdir / "net"),
         "--rpc-port", str(first), "--port", str(first + n), "--prometheus-port", str(first + 2 * n),
         "--block-time", str(args.block_time), "--no-tui"],
        stdout=out.open("w"), stderr=subprocess.STDOUT,
    )
    ports = [first + i for i in range(n)]
    marks: dict[str, float | None] = {"nodes_launched": None, "all_rpc": None, "first_block": None, "every_node_has_a_block": None, "first_finalized": None}
    deadline = started + args.finality_timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(out.read_text())
            heads = [_heads(p) for p in ports]
            now = time.monotonic() - started
            if marks["nodes_launched"] is None and len(re.findall(r"^\w+ pid \d+:", out.read_text(), re.M)) == n:
                marks["nodes_launched"] = now
            if marks["all_rpc"] is None and all(h is not None for h in heads):
                marks["all_rpc"] = now
            if marks["first_block"] is None and any(h is not None and h[0] >= 1 for h in heads):
                marks["first_block"] = now
            if marks["every_node_has_a_block"] is None and all(h is not None and h[0] >= 1 for h in heads):
                marks["every_node_has_a_block"] = now
            if marks["first_finalized"] is None and any(h is not None and h[1] >= 1 for h in heads):
                marks["first_finalized"] = now
            if all(v is not None for v in marks.values()):
                break
            time.sleep(0.05)
        pids = {name: int(pid) for name, pid in re.findall(r"^(\w+) pid (\d+):", out.read_text(), re.M)}
        watched = {**pids, "devnet supervisor": proc.pid}
        before = {name: _cpu_ticks(pid) for name, pid in watched.items()}
        t0 = time.monotonic()
        time.sleep(args.idle_seconds)
        elapsed = time.monotonic() - t0
        idle = {
            name: {"cpu_percent": 100 * (_cpu_ticks(pid) - before[name]) / CLK_TCK / elapsed, "rss_mb": _rss_mb(pid)}
            for name, pid in watched.items()
        }
        final_heads = [_heads(p) for p in ports]
    finally:
        stop_started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(120)
        stop_seconds = time.monotonic() - stop_started
    return {"marks": marks, "idle": idle, "stop_seconds": stop_seconds, "exit_status": code,
            "final_heads": final_heads, "idle_seconds": elapsed}


def _fmt(seconds: float | None, missing: str) -> str:
    return missing if seconds is None else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-time", type=int, default=1000, help="ms")
    parser.add_argument("--finality-timeout", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="polchain-bench-devnet-") as tmp:
        workdir = Path(tmp)
        solo = solo_start(workdir)
        run = devnet_run(args, workdir)
    marks = run["marks"]
    finality_note = "no finality yet" if marks["first_finalized"] is None else "finalized"
    rows = [
        ("one node alone: RPC answers", _fmt(solo, "-")),
        (f"devnet of {args.validators}: spec written, nodes launched", _fmt(marks["nodes_launched"], "never")),
        ("devnet: every RPC answers", _fmt(marks["all_rpc"], "never")),
        ("devnet: first block (any node)", _fmt(marks["first_block"], "never")),
        ("devnet: every node has block #1", _fmt(marks["every_node_has_a_block"], "never")),
        ("devnet: first finalized block", _fmt(marks["first_finalized"], f"no finality yet (waited {args.finality_timeout:.0f} s)")),
        ("devnet: Ctrl-C until every node stopped", f"{run['stop_seconds']:.2f} s (exit {run['exit_status']})"),
    ]
    rows += [
        (f"idle CPU / RSS: {name}", f"{v['cpu_percent']:.1f} % of a core, {v['rss_mb']:.0f} MB")
        for name, v in run["idle"].items()
    ]
    width = max(len(r[0]) for r in rows)
    print(f"polchain devnet, {args.validators} validators, block time {args.block_time} ms, "
          f"load average at start {load[0]:.2f} on {os.cpu_count()} cores")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    write_record(
        OUT, "devnet", validators=args.validators, block_time_ms=args.block_time,
        solo_node_rpc_seconds=solo, finality=finality_note, **run,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
