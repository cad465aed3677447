"""What holds a node's event loop: its loop lag on a loaded devnet, what runs on the loop
meanwhile, and the slashing-protection record's write on and off the loop.

    python -m benches.looplag [--validators 3] [--block-time 1000] [--idle-seconds 10]
                              [--seconds 30] [--readers 2] [--no-py-spy] [--only devnet|record]

Three parts, one record (bench-results/looplag.json):

1. **devnet**: ``polchain devnet --validators N`` on loopback, first idle for
   ``--idle-seconds``, then loaded for ``--seconds``: a transfer client per node (one dev
   account each, at a fixed rate), a TRAIN call every 2 s to node 0 (the quickstart's job,
   300 steps of batch 32), and ``--readers`` RPC clients hammering node 0's read methods
   back to back: ``state_getStorage`` of genesis keys at random old block hashes,
   ``state_getKeysPaged`` with the largest count allowed (1000) at an old block, and
   ``chain_getBlock`` of the largest block seen so far (the training blocks). Each node's
   ``polchain_event_loop_lag_seconds`` histogram (node.metrics.LoopLagProbe, a 50 ms timer) is
   scraped at the phase bounds: per phase, the probe's samples, the lag per second of wall
   time (the loop's lateness summed: 0.1 s/s means a caller waits 10 % of the time), how
   many wake-ups were later than 10, 50, 100 and 250 ms, and the largest lag of the last
   minute. Unless ``--no-py-spy``, ``py-spy record --nonblocking --threads`` samples every
   node during the load (200 Hz, never stopping the process, which would itself be a lag),
   and the main thread's samples inside an event-loop callback (``Handle._run``) are summed
   by callback (the first frame the loop calls) and by the deepest polchain frame: loop
   milliseconds per second of each, all nodes together. Sampled CPU, not wall time: a
   callback waiting on a syscall (fsync) shows only while py-spy catches it on CPU or in
   the kernel call.
2. **record** (in this process, no devnet): a LoopLagProbe on an asyncio loop while
   ``--votes`` slashing-protection records are written every 50 ms, (a) synchronously on the
   loop (``store_record``: how every vote's record was written) and (b) through
   ``node.voter_record.RecordWriter`` (one writer thread, the loop awaits it), beside (c) the
   same loop writing nothing (the machine's floor: the probe's own jitter), interleaved
   over ``--reps`` repetitions: the probe's lags, and each write's latency from request to
   durable. Real fsyncs in a temporary directory on this machine's disk (the current
   directory's), with the node's GIL switch interval (node.service.LOOP_SWITCH_INTERVAL).
3. **reads** (in this process): how long each read method's handler holds the loop at the
   largest sizes a caller may ask for, on a dev node (instant seal) whose blocks hold
   ``--reads-transfers`` transfers to new accounts each (so that the state has keys to
   page through and the blocks are large): ``state_getKeysPaged`` of 1000 keys at the
   first and the best block, ``state_getReadProof`` of 1000 keys, ``chain_getBlock`` of the
   largest block, ``state_getStorage`` at an old block. The handler's own time, awaited on
   the loop as the RPC server awaits it (the server encodes a large answer off the loop).

Ports are free ones on 127.0.0.1. Figures, never assertions; the machine is shared, so the
load average is recorded with them. The numba cache should be warm (run a node once before).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benches.record import write_record
from chain import calls
from chain.crypto import DEV_ACCOUNTS, dev_keypair, ss58_encode
from chain.extrinsic import sign_extrinsic
from consensus.finality import Checkpoint, VoterState
from node.devnet import CLI, compute_child_env, find_free_port_range
from node.metrics import LAG_BUCKETS, LoopLagProbe, scrape
from node.service import LOOP_SWITCH_INTERVAL
from node.voter_record import store_record

OUT = Path("bench-results") / "looplag.json"
LAG = "polchain_event_loop_lag_seconds"
THRESHOLDS = ("0.01", "0.05", "0.1", "0.25")
PY_SPY = Path(sys.executable).with_name("py-spy")
PACKAGES = ("chain/", "consensus/", "ml_runtime/", "node/", "rpc/", "genesis/")
TRANSFERS_PER_S = 20  # per node
TRAIN_EVERY_S = 2.0


# --- RPC -------------------------------------------------------------------------------------
class _Rpc:
    """One keep-alive HTTP connection to a node's JSON-RPC."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.ids = 0

    def call(self, method: str, params: list[Any] | None = None) -> tuple[Any, int]:
        """The result and the answer's size in bytes; RuntimeError for an error answer."""
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or []})
        try:
            self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
            raw = self.conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        answer = json.loads(raw)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"], len(raw)


def lag_between(before: dict, after: dict, seconds: float) -> dict[str, Any]:
    """The probe's figures between two scrapes ``seconds`` apart."""

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    count = delta(f"{LAG}_count")
    over = {t: count - delta(f"{LAG}_bucket", (("le", t),)) for t in THRESHOLDS}
    p99 = None
    if count:  # the upper bound of the bucket holding the 99th percentile
        for bound in [*(str(b) for b in LAG_BUCKETS), "+Inf"]:
            if delta(f"{LAG}_bucket", (("le", bound),)) >= 0.99 * count:
                p99 = bound
                break
    return {
        "samples": count, "lag_per_s": delta(f"{LAG}_sum") / seconds, "over_s": over, "p99_bucket": p99,
        "max_last_minute_s": after.get(("polchain_event_loop_lag_max_seconds", ())),
    }


# --- load ------------------------------------------------------------------------------------
class _Load:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.largest_block: tuple[int, str | None] = (0, None)
        self.latencies: dict[str, list[float]] = {}

    def timed(self, rpc: _Rpc, method: str, params: list[Any]) -> tuple[Any, int]:
        started = time.perf_counter()
        answer = rpc.call(method, params)
        with self.lock:
            self.latencies.setdefault(method, []).append(time.perf_counter() - started)
        return answer

    def error(self, what: str) -> None:
        with self.lock:
            self.counts["errors"] += 1
            if len(self.errors) < 8:
                self.errors.append(what)


def _sender(port: int, account: str, load: _Load, genesis: bytes, spec_version: int, *, train: bool) -> None:
    """Transfers at TRANSFERS_PER_S (or, with ``train``, a TRAIN call every TRAIN_EVERY_S)."""
    signer = dev_keypair(account)
    dest = dev_keypair(DEV_ACCOUNTS[(DEV_ACCOUNTS.index(account) + 1) % len(DEV_ACCOUNTS)]).public
    rpc = _Rpc(port)
    nonce = None
    period = TRAIN_EVERY_S if train else 1 / TRANSFERS_PER_S
    due = time.monotonic()
    while not load.stop.is_set():
        due += period
        try:
            if nonce is None:
                nonce = int(rpc.call("system_accountNextIndex", [ss58_encode(signer.public)])[0])
            call = (calls.Train(0, 0, 300, 32, calls.compute_f32_bits(0.5), calls.compute_f32_bits(0.0), 10, max_model_license=0)
                    if train else calls.Transfer(dest, 10**9))
            xt = sign_extrinsic(signer, call, nonce=nonce, genesis_hash=genesis, spec_version=spec_version)
            rpc.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])
            nonce += 1
            with load.lock:
                load.counts["trains" if train else "transfers"] += 1
        except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
            load.error(f"{account}: {exc!r}"[:200])
            nonce = None
        load.stop.wait(max(0.0, due - time.monotonic()))


def _reader(port: int, load: _Load, keys: list[str], seed: int) -> None:
    """Read methods back to back: old-state reads, the largest key page, the largest block."""
    rng = random.Random(seed)
    rpc = _Rpc(port)
    step = 0
    while not load.stop.is_set():
        step += 1
        try:
            best = int(rpc.call("chain_getHeader")[0]["number"], 16)
            old = rpc.call("chain_getBlockHash", [rng.randint(0, max(0, best - 1))])[0]
            kind = step % 3
            if kind == 0:
                load.timed(rpc, "state_getStorage", [rng.choice(keys), old])
                name = "state_getStorage"
            elif kind == 1:
                load.timed(rpc, "state_getKeysPaged", ["0x", 1000, None, old])
                name = "state_getKeysPaged"
            else:  # a random block, then the largest seen so far
                _, size = rpc.call("chain_getBlock", [old])
                with load.lock:
                    if size > load.largest_block[0]:
                        load.largest_block = (size, old)
                    target = load.largest_block[1]
                load.timed(rpc, "chain_getBlock", [target])
                name = "chain_getBlock"
            with load.lock:
                load.counts[name] += 1
        except (OSError, http.client.HTTPException, RuntimeError, ValueError, TypeError) as exc:
            load.error(f"reader: {exc!r}"[:200])
            time.sleep(0.1)


# --- py-spy ----------------------------------------------------------------------------------
_CALLBACK = "Handle._run (asyncio/events.py"


def summarize_py_spy(text: str, seconds: float, rate: int, top: int = 15) -> dict[str, Any]:
    """Main-thread samples of ``py-spy record --format raw --threads`` output: those inside
    an event-loop callback, summed by the callback's first frame and by the deepest frame in
    a polchain package (with its caller chain in polchain), as loop ms per second."""
    by_callback: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    in_callbacks = main_total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack.startswith("thread (") or ": MainThread" not in stack.split(";", 1)[0]:
            continue
        count = int(count_text)
        main_total += count
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames) if f.startswith(_CALLBACK)), None)
        if at is None or at + 1 >= len(frames):
            continue
        in_callbacks += count
        inner = frames[at + 1:]
        by_callback[_strip_line(inner[0])] += count
        own = [f for f in inner if any(f"({p}" in f for p in PACKAGES)]
        by_frame[" < ".join(_strip_line(f) for f in reversed(own[-3:])) if own else f"(library) {_strip_line(inner[-1])}"] += count

    def per_s(samples: int) -> float:
        return samples / rate / seconds * 1000

    return {
        "main_thread_ms_per_s": per_s(main_total), "in_callbacks_ms_per_s": per_s(in_callbacks),
        "by_callback": [(name, per_s(n)) for name, n in by_callback.most_common(top)],
        "by_polchain_frame": [(name, per_s(n)) for name, n in by_frame.most_common(top)],
    }


def _strip_line(frame: str) -> str:
    """``name (path:line)`` without the line: one row per function."""
    return re.sub(r":\d+\)$", ")", frame)


# --- asyncio debug mode: the slowest callbacks -----------------------------------------------
# Put first on the nodes' PYTHONPATH with PYTHONASYNCIODEBUG=1: every event loop logs each
# callback that held it longer than LOOPLAG_SLOW_SECONDS (asyncio's slow_callback_duration,
# 0.1 s by default) to a file of its own per process, apart from the node's log, whose repeat
# filter would collapse them into one line per 10 s.
_SITECUSTOMIZE = """
import asyncio.base_events, logging, os
_init = asyncio.base_events.BaseEventLoop.__init__
def _looplag_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.slow_callback_duration = float(os.environ["LOOPLAG_SLOW_SECONDS"])
asyncio.base_events.BaseEventLoop.__init__ = _looplag_init
_handler = logging.FileHandler(f"{os.environ['LOOPLAG_SLOW_LOG']}.{os.getpid()}")
_handler.setFormatter(logging.Formatter("%(message)s"))
_logger = logging.getLogger("asyncio")
_logger.addHandler(_handler)
_logger.setLevel(logging.WARNING)
_logger.propagate = False
"""
_SLOW = re.compile(r"^Executing (.*) took (\d+\.\d+) seconds$", re.M)
_TASK = re.compile(r"coro=<([\w.<>]+)\(\)")
_HANDLE = re.compile(r"^<(?:Timer)?Handle ([\w.<>]+)\(")


def summarize_slow_callbacks(texts: list[str], top: int = 15) -> list[dict[str, Any]]:
    """asyncio's "Executing ... took N seconds" lines, by the coroutine (a task's current
    coroutine: where it resumes next, not where it spent the time) or callback they name:
    count, total and longest, longest first."""
    by_name: dict[str, list[float]] = {}
    for text in texts:
        for what, took in _SLOW.findall(text):
            match = _TASK.search(what) or _HANDLE.search(what)
            by_name.setdefault(match.group(1) if match else what[:80], []).append(float(took))
    rows: list[dict[str, Any]] = [
        {"callback": name, "count": len(v), "total_s": sum(v), "max_s": max(v)} for name, v in by_name.items()
    ]
    return sorted(rows, key=lambda r: -r["max_s"])[:top]


# --- part 1: the devnet ----------------------------------------------------------------------
def measure_devnet(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.validators
    first = find_free_port_range(3 * n)
    out = workdir / "devnet.out"
    env = dict(os.environ)
    slow_log = workdir / "slow-callbacks"
    if args.asyncio_debug_ms:
        hook = workdir / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        env.update(PYTHONASYNCIODEBUG="1", LOOPLAG_SLOW_SECONDS=str(args.asyncio_debug_ms / 1000),
                   LOOPLAG_SLOW_LOG=str(slow_log), PYTHONPATH=os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [*CLI, "devnet", "--validators", str(n), "--base-path", str(workdir / "net"),
         "--rpc-port", str(first), "--port", str(first + n), "--prometheus-port", str(first + 2 * n),
         "--block-time", str(args.block_time), "--no-tui"],
        stdout=out.open("w"), stderr=subprocess.STDOUT, env=compute_child_env(env),
    )
    rpc_ports = [first + i for i in range(n)]
    metric_ports = [first + 2 * n + i for i in range(n)]
    load = _Load()
    spies: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        started = time.monotonic()
        while True:  # every RPC up and a first finalized block
            if proc.poll() is not None:
                raise RuntimeError(f"devnet exited: {out.read_text()[-2000:]}")
            try:
                finalized = [int(_Rpc(p).call("chain_getHeader", [_Rpc(p).call("chain_getFinalizedHead")[0]])[0]["number"], 16)
                             for p in rpc_ports]
                if any(f >= 1 for f in finalized):
                    break
            except (OSError, http.client.HTTPException, RuntimeError, TypeError):
                pass
            if time.monotonic() - started > 180:
                raise RuntimeError(f"no finalized block within 180 s: {out.read_text()[-2000:]}")
            time.sleep(0.2)
        pids = [int(pid) for _, pid in re.findall(r"^(\w+) pid (\d+):", out.read_text(), re.M)]
        rpc = _Rpc(rpc_ports[0])
        genesis = bytes.fromhex(rpc.call("chain_getBlockHash", [0])[0][2:])
        spec_version = int(rpc.call("state_getRuntimeVersion")[0]["specVersion"])
        keys = rpc.call("state_getKeysPaged", ["0x", 1000, None, "0x" + genesis.hex()])[0]

        m0 = [scrape(p) for p in metric_ports]
        t0 = time.monotonic()
        time.sleep(args.idle_seconds)
        m1 = [scrape(p) for p in metric_ports]
        t1 = time.monotonic()
        if args.py_spy:
            for pid in pids:
                path = workdir / f"py-spy-{pid}.txt"
                spies.append((subprocess.Popen(
                    [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", str(args.rate),
                     "--format", "raw", "--threads", "--nonblocking", "--output", str(path)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ), path))
        threads = [threading.Thread(target=_sender, args=(rpc_ports[i], DEV_ACCOUNTS[i], load, genesis, spec_version),
                                    kwargs={"train": False}, daemon=True) for i in range(n)]
        threads.append(threading.Thread(target=_sender, args=(rpc_ports[0], DEV_ACCOUNTS[n], load, genesis, spec_version),
                                        kwargs={"train": True}, daemon=True))
        threads += [threading.Thread(target=_reader, args=(rpc_ports[0], load, keys, r), daemon=True) for r in range(args.readers)]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        load.stop.set()
        for t in threads:
            t.join(30)
        m2 = [scrape(p) for p in metric_ports]
        t2 = time.monotonic()
        heads = [int(_Rpc(p).call("chain_getHeader")[0]["number"], 16) for p in rpc_ports]
        finals = [int(_Rpc(p).call("chain_getHeader", [_Rpc(p).call("chain_getFinalizedHead")[0]])[0]["number"], 16)
                  for p in rpc_ports]
        spy: dict[str, Any] | None = None
        if spies:
            texts = []
            for spy_proc, path in spies:
                spy_proc.wait(60)
                texts.append(path.read_text() if path.exists() else "")
            spy = summarize_py_spy("\n".join(texts), args.seconds * len(pids), args.rate)
            spy["nodes"] = len(pids)
    finally:
        load.stop.set()
        for spy_proc, _ in spies:
            if spy_proc.poll() is None:
                spy_proc.kill()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
    slow = None
    if args.asyncio_debug_ms:  # the load phase's lines only would need timestamps: all of the run
        slow = summarize_slow_callbacks([p.read_text(errors="replace") for p in workdir.glob("slow-callbacks.*")])
    nodes = [
        {"idle": lag_between(m0[i], m1[i], t1 - t0), "load": lag_between(m1[i], m2[i], t2 - t1),
         "best": heads[i], "finalized": finals[i]}
        for i in range(n)
    ]
    reads = {
        method: {"calls": len(v), "p50_ms": 1000 * statistics.median(v), "p99_ms": 1000 * _pct(sorted(v), 0.99), "max_ms": 1000 * max(v)}
        for method, v in load.latencies.items()
    }
    return {"nodes": nodes, "requests": dict(load.counts), "reads": reads, "errors": load.errors,
            "largest_block_bytes": load.largest_block[0], "py_spy": spy, "slow_callbacks": slow, "idle_seconds": t1 - t0, "load_seconds": t2 - t1}


# --- part 2: the record write on and off the loop --------------------------------------------
async def _record_run(path: Path, votes: int, *, off_loop: bool | None) -> dict[str, Any]:
    from node.voter_record import RecordWriter  # the writer this bench compares with the old path

    lags: list[float] = []
    probe = LoopLagProbe(lags.append, interval=0.005)
    stop = asyncio.Event()
    probing = asyncio.create_task(probe.run(stop))
    writer = RecordWriter(path)
    latencies = []
    try:
        for i in range(votes):
            state = VoterState(Checkpoint(bytes(32), 0, 0), voted_round=i + 1, authored_slot=i)
            started = time.perf_counter()
            if off_loop:
                await writer.write(state)
            elif off_loop is not None:
                store_record(path, state)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await probing
        writer.close()
    return {"lags": lags, "latencies": latencies}


def measure_record(votes: int, reps: int) -> dict[str, Any]:
    variants: dict[str, bool | None] = {
        "no writes (the floor)": None, "on the loop (store_record)": False, "writer thread (RecordWriter)": True,
    }
    runs: dict[str, dict[str, list[float]]] = {name: {"lags": [], "latencies": []} for name in variants}
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL)  # as a node runs (node.service)
    with tempfile.TemporaryDirectory(prefix="polchain-bench-looplag-", dir=Path.cwd()) as tmp:
        path = Path(tmp) / "keystore" / "slashing_protection"
        path.parent.mkdir(mode=0o700)
        for _ in range(reps):
            for name, off in variants.items():
                got = asyncio.run(_record_run(path, votes, off_loop=off))
                runs[name]["lags"] += got["lags"]
                runs[name]["latencies"] += got["latencies"]
    sys.setswitchinterval(switch_interval)
    out = {}
    for name, got in runs.items():
        lags, lat = sorted(got["lags"]), sorted(got["latencies"])
        out[name] = {
            "writes": len(lat), "write_p50_ms": 1000 * statistics.median(lat), "write_p99_ms": 1000 * _pct(lat, 0.99),
            "probe_samples": len(lags), "lag_p50_ms": 1000 * statistics.median(lags), "lag_p99_ms": 1000 * _pct(lags, 0.99),
            "lag_max_ms": 1000 * lags[-1], "lags_over_2ms": sum(v > 0.002 for v in lags),
        }
    return out


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- part 3: read methods at their largest ---------------------------------------------------
async def _reads(transfers: int, blocks: int, reps: int) -> dict[str, Any]:
    from genesis.spec import load_chain_spec
    from node.service import NodeConfig, NodeService
    from rpc.api import build_method_table

    with tempfile.TemporaryDirectory(prefix="polchain-bench-looplag-", dir=Path.cwd()) as tmp:
        service = NodeService(NodeConfig(base_path=Path(tmp), author="//Alice", instant_seal=True), load_chain_spec("dev"))
        try:
            genesis, version = service.chain.genesis_hash, service.chain.runtime.spec_version
            senders = [dev_keypair(name) for name in DEV_ACCOUNTS[1:]]
            nonce = dict.fromkeys((s.public for s in senders), 0)
            rng = random.Random(7)
            for _ in range(blocks):
                for i in range(transfers):  # the pool holds 256 a sender: spread over five
                    signer = senders[i % len(senders)]
                    xt = sign_extrinsic(signer, calls.Transfer(rng.randbytes(32), 10**10), nonce=nonce[signer.public],
                                        genesis_hash=genesis, spec_version=version)
                    nonce[signer.public] += 1
                    service.submit(xt.encode())
                await service.author_block()
            table = build_method_table(service, node_name="bench")
            chain = service.chain
            first, best = "0x" + chain.get_hash(1).hex(), "0x" + chain.best_hash.hex()  # type: ignore[union-attr]
            keys = ["0x" + k.hex() for k in chain.state.keys_paged(b"", 1000, None, at=chain.best_header.state_root)]
            cases: list[tuple[str, str, list[Any]]] = [
                ("state_getKeysPaged 1000 at #1", "state_getKeysPaged", ["0x", 1000, None, first]),
                ("state_getKeysPaged 1000 at best", "state_getKeysPaged", ["0x", 1000, None, best]),
                (f"state_getReadProof {len(keys)} keys", "state_getReadProof", [keys, None]),
                ("chain_getBlock (largest)", "chain_getBlock", [best]),
                ("state_getStorage at #1", "state_getStorage", [keys[len(keys) // 2], first]),
            ]
            out: dict[str, Any] = {"state_keys_paged": len(keys), "block_extrinsics": len(chain.get_block(chain.best_hash).body.extrinsics)}
            for label, method, params in cases:
                spec = table.get_method(method)
                assert spec is not None, method
                took = []
                for _ in range(reps):
                    started = time.perf_counter()
                    answer = await spec.handler(params)
                    took.append(time.perf_counter() - started)
                out[label] = {"p50_ms": 1000 * statistics.median(took), "max_ms": 1000 * max(took),
                              "answer_bytes": len(json.dumps(answer))}
            return out
        finally:
            service.close()


def measure_reads(transfers: int, blocks: int, reps: int) -> dict[str, Any]:
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL)
    try:
        return asyncio.run(_reads(transfers, blocks, reps))
    finally:
        sys.setswitchinterval(switch_interval)


# --- output ----------------------------------------------------------------------------------
def _print_devnet(res: dict[str, Any]) -> None:
    print(f"\nEvent-loop lag per node (probe every 50 ms): idle {res['idle_seconds']:.0f} s, then load {res['load_seconds']:.0f} s")
    print(f"  load requests: {res['requests']}; largest block read {res['largest_block_bytes']:,} B (JSON)")
    head = f"  {'node':<6}{'phase':<6}{'samples':>8}{'lag s/s':>9}{'>10ms':>7}{'>50ms':>7}{'>100ms':>7}{'>250ms':>7}{'p99 ≤':>7}{'max 60s':>9}{'best/fin':>10}"
    print(head)
    for i, node in enumerate(res["nodes"]):
        for phase in ("idle", "load"):
            f = node[phase]
            over = f["over_s"]
            mx = f["max_last_minute_s"]
            print(f"  {i:<6}{phase:<6}{f['samples']:>8.0f}{f['lag_per_s']:>9.3f}{over['0.01']:>7.0f}{over['0.05']:>7.0f}"
                  f"{over['0.1']:>7.0f}{over['0.25']:>7.0f}{f['p99_bucket']!s:>7}{'' if mx is None else f'{mx:.3f}':>9}"
                  f"{(str(node['best']) + '/' + str(node['finalized'])) if phase == 'load' else '':>10}")
    print("  the readers' calls to node 0, as they saw them (queueing included):")
    for method, f in res["reads"].items():
        print(f"    {method:<20}{f['calls']:>7} calls  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  max {f['max_ms']:6.1f} ms")
    if res["errors"]:
        print(f"  load errors ({res['requests'].get('errors', 0)}): {res['errors'][:3]}")
    spy = res["py_spy"]
    if spy:
        print(f"\nWhat runs on the loop under load (py-spy, {spy['nodes']} nodes): main thread {spy['main_thread_ms_per_s']:.0f} ms/s, "
              f"in callbacks {spy['in_callbacks_ms_per_s']:.0f} ms/s")
        print("  by callback (the loop's entry), ms of loop time per second per node:")
        for name, ms in spy["by_callback"]:
            print(f"    {ms:7.1f}  {name}")
        print("  by the deepest polchain frame (< its callers):")
        for name, ms in spy["by_polchain_frame"]:
            print(f"    {ms:7.1f}  {name}")
    if res["slow_callbacks"] is not None:
        print("\nCallbacks over the asyncio debug threshold (all nodes, the whole run; a task is named by where it resumes):")
        print(f"  {'count':>6}{'total s':>9}{'max ms':>8}  callback")
        for row in res["slow_callbacks"]:
            print(f"  {row['count']:>6}{row['total_s']:>9.2f}{1000 * row['max_s']:>8.0f}  {row['callback']}")


def _print_record(res: dict[str, Any]) -> None:
    print("\nSlashing-protection record writes every 50 ms, the loop probed every 5 ms")
    print(f"  {'path':<30}{'writes':>7}{'write p50':>11}{'p99':>8}{'lag p50':>9}{'p99':>8}{'max':>8}{'lags>2ms':>9}")
    for name, f in res.items():
        print(f"  {name:<30}{f['writes']:>7}{f['write_p50_ms']:>9.2f}ms{f['write_p99_ms']:>6.2f}ms{f['lag_p50_ms']:>7.2f}ms"
              f"{f['lag_p99_ms']:>6.2f}ms{f['lag_max_ms']:>6.2f}ms{f['lags_over_2ms']:>9}")


def _print_reads(res: dict[str, Any]) -> None:
    print(f"\nRead methods at their largest: the handler's time on the loop ({res['state_keys_paged']} keys paged, "
          f"a block of {res['block_extrinsics']} extrinsics)")
    for label, f in res.items():
        if isinstance(f, dict):
            print(f"  {label:<34} p50 {f['p50_ms']:7.2f} ms  max {f['max_ms']:7.2f} ms  answer {f['answer_bytes']:>9,} B")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--validators", type=int, default=3, choices=range(2, 6), metavar="2..5")
    parser.add_argument("--block-time", type=int, default=1000, help="ms")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="of load")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--no-py-spy", dest="py_spy", action="store_false")
    parser.add_argument("--asyncio-debug-ms", type=float, default=0.0, metavar="MS",
                        help="run the nodes in asyncio debug mode and list callbacks longer than MS (changes the lag figures)")
    parser.add_argument("--only", choices=("devnet", "record", "reads"), help="run one part only")
    parser.add_argument("--reads-transfers", type=int, default=1250, help="transfers a block (part 3; the pool holds 5 x 256)")
    parser.add_argument("--reads-blocks", type=int, default=3)
    parser.add_argument("--votes", type=int, default=100, help="record writes per repetition (part 2)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.py_spy and not PY_SPY.exists():
        parser.error(f"{PY_SPY} not found (pip install py-spy, or --no-py-spy)")
    load_average = os.getloadavg()
    results: dict[str, Any] = {"load_average_at_start": load_average}
    if args.only in (None, "devnet"):
        with tempfile.TemporaryDirectory(prefix="polchain-bench-looplag-") as tmp:
            results["devnet"] = measure_devnet(args, Path(tmp))
        _print_devnet(results["devnet"])
    if args.only in (None, "record"):
        results["record"] = measure_record(args.votes, args.reps)
        _print_record(results["record"])
    if args.only in (None, "reads"):
        results["reads"] = measure_reads(args.reads_transfers, args.reads_blocks, 10)
        _print_reads(results["reads"])
    write_record(OUT if args.only is None else OUT.with_name(f"looplag-{args.only}.json"), "looplag", options=vars(args), **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
