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

``polchain bench devnet`` (``run``) measures the devnet under load instead: N validators on
loopback and M RPC clients (one dev account each, at most IN_FLIGHT extrinsics not yet in a
block; client 0 sends a small TRAIN call in place of every 10th transfer), then included tx/s
and the latency from submission to in-block and to finalized (p50, p99) as one node sees
them, per window of the load (the repetitions), median and spread.

The numba cache should be warm (run any node once before); the cache state is not changed here.
Ports are free ones on 127.0.0.1. Prints a table and writes bench-results/devnet.json. Figures,
never assertions; the machine is shared, so the load average at start is recorded with them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benches.record import write_record
from chain import calls
from chain.crypto import DEV_ACCOUNTS, dev_keypair, ss58_encode
from chain.extrinsic import sign_extrinsic
from node.devnet import CLI, compute_child_env, find_free_port_range

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
        [*CLI, "node", "--chain", "local", "--alice", "--tmp", "--rpc-port", str(port), "--no-prometheus"],
        stdout=(workdir / "solo.log").open("w"), stderr=subprocess.STDOUT, env=compute_child_env(),
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
        [*CLI, "devnet", "--validators", str(n), "--base-path", str(workdir / "net"),
         "--rpc-port", str(first), "--port", str(first + n), "--prometheus-port", str(first + 2 * n),
         "--block-time", str(args.block_time), "--no-tui"],
        stdout=out.open("w"), stderr=subprocess.STDOUT, env=compute_child_env(),
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


# --- load: polchain bench devnet --------------------------------------------------------------

TRAIN_EVERY = 10  # client 0 sends a small TRAIN call in place of every 10th transfer
IN_FLIGHT = 192  # per client: submitted and not yet in a block (the pool allows 256 per sender)
POLL = 0.05  # seconds between the watcher's polls: the resolution of every latency


@dataclass
class _Tx:
    client: int
    kind: str
    submitted: float
    in_block: float | None = None
    finalized: float | None = None
    block: int | None = None


@dataclass
class _Load:
    """What the clients submitted and the watcher saw, shared between threads (under ``lock``)."""

    txs: dict[str, _Tx] = field(default_factory=dict)  # 0x-hex of the extrinsic's bytes
    outstanding: list[int] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # clients stop submitting
    done: threading.Event = field(default_factory=threading.Event)  # the watcher stops


def _client(i: int, port: int, load: _Load, genesis: bytes, spec_version: int) -> None:
    """One RPC client: //<dev account i> sends transfers (and, for client 0, TRAIN calls)
    to node ``port`` with at most IN_FLIGHT not yet in a block; a refused submission is
    counted and retried after a pause with the same nonce."""
    signer = dev_keypair(DEV_ACCOUNTS[i])
    dest = dev_keypair(DEV_ACCOUNTS[(i + 1) % len(DEV_ACCOUNTS)]).public
    nonce = int(_rpc(port, "system_accountNextIndex", [ss58_encode(signer.public)]))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # keep-alive: one per client
    sent = 0
    while not load.stop.is_set():
        with load.lock:
            busy = load.outstanding[i] >= IN_FLIGHT
        if busy:
            time.sleep(POLL / 2)
            continue
        train = i == 0 and sent % TRAIN_EVERY == TRAIN_EVERY - 1
        call = (calls.Train(0, 0, 40, 16, calls.compute_f32_bits(0.1), calls.compute_f32_bits(0.0), 10, max_model_license=0)
                if train else calls.Transfer(dest, 10**9))
        xt = sign_extrinsic(signer, call, nonce=nonce, genesis_hash=genesis, spec_version=spec_version)
        raw = "0x" + xt.encode().hex()
        submitted = time.monotonic()
        try:
            body = json.dumps({"jsonrpc": "2.0", "id": sent, "method": "author_submitExtrinsic", "params": [raw]})
            conn.request("POST", "/", body, {"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())
            if "result" not in answer:
                raise ValueError(answer.get("error"))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()  # reconnects on the next request
            with load.lock:
                load.refused += 1
                if len(load.errors) < 5:
                    load.errors.append(f"client {i}: {exc!r}")
            time.sleep(0.2)
            continue
        with load.lock:
            load.txs[raw] = _Tx(i, "train" if train else "transfer", submitted)
            load.outstanding[i] += 1
        nonce += 1
        sent += 1


def _watch(port: int, load: _Load, start_number: int) -> None:
    """Poll one node every POLL s: each new best block's extrinsics are "in block" now; each
    advance of the finalized head finalizes the blocks up to it (as this node saw them on
    its best chain; the bench does not follow reorgs and counts a tx once)."""
    seen = finalized = start_number
    by_block: dict[int, list[str]] = {}
    while not load.done.is_set():
        try:
            best, fin = _heads(port) or (seen, finalized)
            for number in range(seen + 1, best + 1):
                block = _rpc(port, "chain_getBlock", [_rpc(port, "chain_getBlockHash", [number])])
                now = time.monotonic()
                mine = []
                with load.lock:
                    for raw in block["block"]["extrinsics"]:
                        tx = load.txs.get(raw)
                        if tx is not None and tx.in_block is None:
                            tx.in_block, tx.block = now, number
                            load.outstanding[tx.client] -= 1
                            mine.append(raw)
                by_block[number] = mine
                seen = number
            if fin > finalized:
                now = time.monotonic()
                with load.lock:
                    for number in range(finalized + 1, min(fin, seen) + 1):
                        for raw in by_block.pop(number, []):
                            load.txs[raw].finalized = now
                finalized = min(fin, seen)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            with load.lock:
                if len(load.errors) < 5:
                    load.errors.append(f"watcher: {exc!r}")
        time.sleep(POLL)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_load(validators: int, clients: int, block_ms: int, seconds: float, windows: int,
                 drain: float, advance: Any, workdir: Path) -> dict[str, Any]:
    """Launch ``polchain devnet``, wait for its first finalized block, load it for
    ``seconds`` (``windows`` equal windows, the repetitions), let it drain, stop it."""
    first = find_free_port_range(3 * validators)
    out = workdir / "devnet.out"
    proc = subprocess.Popen(
        [*CLI, "devnet", "--validators", str(validators),
         "--base-path", str(workdir / "net"), "--rpc-port", str(first), "--port", str(first + validators),
         "--prometheus-port", str(first + 2 * validators), "--block-time", str(block_ms), "--no-tui"],
        stdout=out.open("w"), stderr=subprocess.STDOUT, env=compute_child_env(),
    )
    ports = [first + i for i in range(validators)]
    load = _Load(outstanding=[0] * clients)
    try:
        started = time.monotonic()
        while True:  # every RPC up and a first finalized block: the devnet is live
            if proc.poll() is not None:
                raise RuntimeError(f"devnet exited: {_tail_text(out)}")
            heads = [_heads(port) for port in ports]
            if all(h is not None for h in heads) and any(h[1] >= 1 for h in heads if h):
                break
            if time.monotonic() - started > 120:
                raise RuntimeError(f"no finalized block within 120 s: {_tail_text(out)}")
            time.sleep(0.1)
        ready_s = time.monotonic() - started
        advance(1)
        genesis = bytes.fromhex(_rpc(ports[0], "chain_getBlockHash", [0])[2:])
        # Every port must be this devnet's: a port taken by another process's node between the
        # free-port probe and the bind answers for another chain (a reviewer's run that ended
        # with "bad ed25519 signature" and nothing finalized, 2026-11-30).
        others = [port for port in ports[1:] if bytes.fromhex(_rpc(port, "chain_getBlockHash", [0])[2:]) != genesis]
        if others or proc.poll() is not None:
            raise RuntimeError(f"RPC ports {others} answer for another chain than port {ports[0]}'s: {_tail_text(out)}")
        spec_version = int(_rpc(ports[0], "state_getRuntimeVersion")["specVersion"])
        head = _heads(ports[0])
        watcher = threading.Thread(target=_watch, args=(ports[0], load, head[0] if head else 0), daemon=True)
        watcher.start()
        workers = [threading.Thread(target=_client, args=(i, ports[i % validators], load, genesis, spec_version),
                                    daemon=True) for i in range(clients)]
        load_start = time.monotonic()
        for w in workers:
            w.start()
        bounds = [load_start + seconds * k / windows for k in range(windows + 1)]
        for k in range(windows):
            time.sleep(max(0.0, bounds[k + 1] - time.monotonic()))
            advance(1)
        stop_submitting = time.monotonic()
        load.stop.set()
        for w in workers:
            w.join(10)
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            with load.lock:
                if all(tx.finalized is not None for tx in load.txs.values()):
                    break
            time.sleep(POLL)
        load.done.set()
        watcher.join(10)
        advance(1)
    finally:
        load.stop.set()
        load.done.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    txs = list(load.txs.values())
    if any(t.in_block is not None for t in txs) and not any(t.finalized is not None for t in txs):
        # A devnet that includes but never finalizes is broken (a validator down, a port taken),
        # not a figure: say so instead of printing "-" for finality.
        raise RuntimeError(f"no transaction was finalized ({len(txs)} submitted; errors {load.errors[:3]}): {_tail_text(out)}")
    per_window = []
    for k in range(windows):
        lo, hi = bounds[k], bounds[k + 1]
        included = [t for t in txs if t.in_block is not None and lo <= t.in_block < hi]
        sent = [t for t in txs if lo <= t.submitted < hi]
        to_block = [t.in_block - t.submitted for t in sent if t.in_block is not None]
        to_final = [t.finalized - t.submitted for t in sent if t.finalized is not None]
        per_window.append({
            "submitted": len(sent), "included": len(included), "included_per_s": len(included) / (hi - lo),
            "in_block_p50_s": _percentile(to_block, 0.5), "in_block_p99_s": _percentile(to_block, 0.99),
            "finalized_p50_s": _percentile(to_final, 0.5), "finalized_p99_s": _percentile(to_final, 0.99),
            "not_in_block": len(sent) - len(to_block), "not_finalized": len(sent) - len(to_final),
        })
    all_block = [t.in_block - t.submitted for t in txs if t.in_block is not None]
    all_final = [t.finalized - t.submitted for t in txs if t.finalized is not None]
    return {
        "ready_s": ready_s, "load_seconds": stop_submitting - load_start, "windows": per_window,
        "submitted": len(txs), "trains": sum(t.kind == "train" for t in txs),
        "in_block": len(all_block), "finalized": len(all_final), "refused_submissions": load.refused,
        "errors": load.errors,
        "overall": {"in_block_p50_s": _percentile(all_block, 0.5), "in_block_p99_s": _percentile(all_block, 0.99),
                    "finalized_p50_s": _percentile(all_final, 0.5), "finalized_p99_s": _percentile(all_final, 0.99)},
    }


def _tail_text(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


#: Blocks a window of the load (a repetition) must span: a shorter window may hold no block at
#: all, and its rate and latencies are noise, not a figure.
MIN_WINDOW_BLOCKS = 2


def resolve_options(quick: bool, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the defaults of the sizes it leaves out (``polchain bench`` records them all)."""
    return {"validators": 2 if quick else 4, "clients": 2 if quick else 4, "seconds": 9 if quick else 60, **options}


def _load_sizes(quick: bool, options: dict[str, Any]) -> tuple[float, int]:
    """(seconds of load, block time in ms) for these options."""
    return float(resolve_options(quick, options)["seconds"]), 500 if quick else 1000


def check_options(quick: bool, reps: int, options: dict[str, Any]) -> str | None:
    """Why these options cannot give figures, or None; ``polchain bench`` asks before launching."""
    seconds, block_ms = _load_sizes(quick, options)
    if seconds * 1000 / reps >= MIN_WINDOW_BLOCKS * block_ms:
        return None
    most = int(seconds * 1000 // (MIN_WINDOW_BLOCKS * block_ms))
    return (f"--seconds {seconds:g} in --reps {reps} windows of {seconds / reps:.2f} s: a window must hold "
            f"{MIN_WINDOW_BLOCKS} blocks ({MIN_WINDOW_BLOCKS} x {block_ms} ms): at most {most} repetitions, or more --seconds")


def run(ctx: Any) -> Any:
    """``polchain bench devnet``: N validators on loopback, M clients submitting transfers and
    training over RPC; included tx/s and latency from submission to in-block and to
    finalized (p50, p99), per window of the load (the repetitions), median and spread."""
    from benches.runner import Report, fmt, summarize

    options = resolve_options(ctx.quick, ctx.options)
    validators, clients = options["validators"], min(options["clients"], len(DEV_ACCOUNTS))
    seconds, block_ms = _load_sizes(ctx.quick, ctx.options)
    drain = 8.0 if ctx.quick else 20.0
    with tempfile.TemporaryDirectory(prefix="polchain-bench-devnet-") as tmp, \
            ctx.progress(ctx.reps + 2, f"devnet {validators} validators, {clients} clients") as advance:
        res = measure_load(validators, clients, block_ms, seconds, ctx.reps, drain, advance, Path(tmp))
    if not res["in_block"]:
        raise RuntimeError(f"no submitted extrinsic reached a block ({res['submitted']} submitted; {res['errors']})")
    keys = ("included_per_s", "in_block_p50_s", "in_block_p99_s", "finalized_p50_s", "finalized_p99_s")
    stats = {k: summarize([w[k] for w in res["windows"] if w[k] is not None])
             if any(w[k] is not None for w in res["windows"]) else None for k in keys}
    res["summary"] = stats
    labels = {"included_per_s": ("included tx/s", 1, ""), "in_block_p50_s": ("submission -> in block, p50", 2, " s"),
              "in_block_p99_s": ("submission -> in block, p99", 2, " s"),
              "finalized_p50_s": ("submission -> finalized, p50", 2, " s"),
              "finalized_p99_s": ("submission -> finalized, p99", 2, " s")}
    rows = [[label, fmt(stats[k], d, u)] for k, (label, d, u) in labels.items()]
    rows += [["submitted / in a block / finalized (all windows)",
              f"{res['submitted']} / {res['in_block']} / {res['finalized']}"],
             ["of which TRAIN calls", str(res["trains"])],
             ["refused submissions (retried)", str(res["refused_submissions"])],
             ["launch until every RPC up and a block finalized", f"{res['ready_s']:.1f} s"]]

    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(range(1, len(res["windows"]) + 1), [w["included_per_s"] for w in res["windows"]], "o-")
        ax.set_xlabel("window")
        ax.set_ylabel("included tx/s")
        ax.set_ylim(bottom=0)
        ax2 = fig.add_subplot(1, 2, 2)
        for k in ("in_block_p50_s", "in_block_p99_s", "finalized_p50_s", "finalized_p99_s"):
            ax2.plot(range(1, len(res["windows"]) + 1), [w[k] or float("nan") for w in res["windows"]], "o-", label=k)
        ax2.set_xlabel("window")
        ax2.set_ylabel("seconds after submission")
        ax2.legend(fontsize=7)

    return Report(
        title=f"devnet: {validators} validators, {block_ms} ms blocks, {clients} RPC clients (<= {IN_FLIGHT} in flight "
              f"each, a TRAIN call every {TRAIN_EVERY} from client 0); {seconds:g} s of load in {ctx.reps} windows, "
              "median (min–max) over the windows",
        columns=["what", "value"], rows=rows, results={
            "validators": validators, "clients": clients, "block_time_ms": block_ms, "seconds": seconds,
            "in_flight_per_client": IN_FLIGHT, "poll_s": POLL, **res},
        plot=plot,
        notes=[f"latencies are measured by polling node 0 every {POLL * 1000:.0f} ms (their resolution); "
               "a window's latencies are those of the extrinsics submitted in it"],
    )


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
