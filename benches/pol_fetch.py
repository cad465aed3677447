"""Bytes of proof-of-learning per block and per validator: what a block carries, what a sampling
validator fetches, what a full auditor fetches, against what the block carried before issue 9.

    python -m benches.pol_fetch [--jobs 4] [--steps 160] [--segment 10] [--hidden 256]

Three real ``polchain node`` processes on loopback: A authors (Alice, 2 s slots), B imports
with ``--pol sampled`` (the default: ``pol_samples`` segments a job), C with ``--pol full``.
Alice registers an MLP 64 -> ``--hidden`` -> 10 (the digits data set) and submits ``--jobs``
TRAIN calls of ``--steps`` steps in ``--segment``-step segments, all in one block. Figures,
read from the nodes' Prometheus metrics and from the block itself (fetched over p2p by a raw
peer):

- ``block now``: the encoded block (header, extrinsics, one TrainingResult a call);
- ``block before``: the same block with each result replaced by the TrainingProof of before
  issue 9 (every checkpoint in the body), computed exactly from the author's openings;
- ``sampled fetch`` / ``full fetch``: encoded openings fetched by B and by C
  (``polchain_pol_fetched_bytes_total``), and how many of them carried a checkpoint.

Printed as a table and written to bench-results/pol_fetch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "node"))

import msgspec
from netkit import RawPeer
from nodekit import free_port, start_node
from prometheus_client.parser import text_string_to_metric_families

import ml_runtime
from benches.record import write_record
from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from node.network.identity import NodeKey
from node.network.messages import (
    BlockRequest,
    BlockResponse,
    Status,
    TranscriptRequest,
    TranscriptResponse,
)
from node.network.multiaddr import Multiaddr
from rpc.client import RpcClient

ALICE = dev_keypair("Alice")
KEYS = ("41" * 32, "42" * 32, "43" * 32)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


async def _ask(raw: RawPeer, msg: Any) -> Any:
    await raw.send(msg)
    while True:
        answer = await raw.recv(30)
        if isinstance(answer, (BlockResponse, TranscriptResponse)) and answer.id == msg.id:
            return answer


def _old_proof_bytes(index: int, openings: tuple[Any, ...], result: Any) -> int:
    """The encoded TrainingProof of before issue 9: (index, checkpoints, losses, root, diverged)."""
    return len(msgspec.msgpack.encode(
        [index, [o.weights for o in openings], list(result.losses), result.transcript_root, result.diverged_segment]
    ))


async def _measure(args: argparse.Namespace, a: Any, b: Any, c: Any, ports: dict[str, int]) -> dict[str, Any]:
    async with RpcClient(a.ws_url) as ca, RpcClient(b.ws_url) as cb, RpcClient(c.ws_url) as cc:
        for client in (cb, cc):
            while (await client.call("system_health", []))["peers"] < 1:
                await asyncio.sleep(0.1)
        genesis = bytes.fromhex((await ca.call("chain_getBlockHash", [0]))[2:])
        version = (await ca.call("state_getRuntimeVersion", []))["specVersion"]

        def signed(call: Any, nonce: int) -> str:
            xt = sign_extrinsic(ALICE, call, nonce=nonce, genesis_hash=genesis, spec_version=version)
            return "0x" + xt.encode().hex()

        spec = ml_runtime.ModelSpec("mlp", 64, 10, args.hidden)
        await ca.call("author_submitExtrinsic", [signed(calls.RegisterModel("bench", spec.encode(), b"\x07" * 32), 0)])
        while int((await ca.call("chain_getHeader", []))["number"], 16) < 1:
            await asyncio.sleep(0.1)
        start = int((await ca.call("chain_getHeader", []))["number"], 16)
        lr = calls.compute_f32_bits(0.05)
        for i in range(args.jobs):
            train = calls.Train(1, 0, args.steps, 32, lr, 0, args.segment, max_model_license=0)
            await ca.call("author_submitExtrinsic", [signed(train, 1 + i)])
        while await ca.call("author_pendingExtrinsics", []):
            await asyncio.sleep(0.1)
        number = int((await ca.call("chain_getHeader", []))["number"], 16)
        for client in (cb, cc):
            while int((await client.call("chain_getHeader", []))["number"], 16) < number:
                await asyncio.sleep(0.1)
        block_hash = bytes.fromhex((await ca.call("chain_getBlockHash", [number]))[2:])
        assert number == start + 1 or number > start, "the TRAIN calls did not make a block"

        raw = RawPeer()
        first = await raw.connect(Multiaddr("ip4", "127.0.0.1", ports["p2p_a"], NodeKey.from_hex(KEYS[0]).peer_id), genesis=genesis)
        assert isinstance(first, Status)
        try:
            (data,) = (await _ask(raw, BlockRequest(1, block_hash, 1))).blocks
            block = data.block
            results = block.body.results
            assert len(results) == args.jobs, f"the block holds {len(results)} results, not {args.jobs}"
            now = len(block.encode())
            before = now - sum(len(msgspec.msgpack.encode(r)) for r in results)
            for i, result in enumerate(results):
                wanted = tuple((j, True) for j in range(len(result.losses)))
                openings = (await _ask(raw, TranscriptRequest(10 + i, block_hash, result.extrinsic_index, wanted))).openings
                assert len(openings) == len(wanted), "the author did not serve every checkpoint"
                before += _old_proof_bytes(result.extrinsic_index, openings, result)
        finally:
            await raw.close()
    mb, mc = scrape(ports["metrics_b"]), scrape(ports["metrics_c"])
    return {
        "jobs": args.jobs, "steps": args.steps, "segment": args.segment, "params": spec.param_count,
        "segments": args.steps // args.segment, "block_now_bytes": now, "block_before_bytes": before,
        "sampled_fetched_bytes": int(mb["polchain_pol_fetched_bytes_total"]),
        "sampled_checkpoints": int(mb["polchain_pol_checkpoints_fetched_total"]),
        "sampled_openings": int(mb["polchain_pol_openings_fetched_total"]),
        "full_fetched_bytes": int(mc["polchain_pol_fetched_bytes_total"]),
        "full_checkpoints": int(mc["polchain_pol_checkpoints_fetched_total"]),
        "full_openings": int(mc["polchain_pol_openings_fetched_total"]),
        "sampled_verify_seconds": mb["polchain_pol_verify_seconds_sum"],
        "full_verify_seconds": mc["polchain_pol_verify_seconds_sum"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--segment", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--block-time", type=int, default=3000)
    args = parser.parse_args(argv)
    ports = {name: free_port() for name in ("p2p_a", "p2p_b", "p2p_c", "metrics_b", "metrics_c")}
    id_a = NodeKey.from_hex(KEYS[0]).peer_id
    boot = f"/ip4/127.0.0.1/tcp/{ports['p2p_a']}/p2p/{id_a}"
    with tempfile.TemporaryDirectory(prefix="pol-fetch-") as tmp:
        work = Path(tmp)
        common = ("--chain", "dev", "--block-time", str(args.block_time))
        a = start_node(work, *common, "--alice", "--base-path", str(work / "a"), "--node-key", KEYS[0],
                       "--listen-addr", f"/ip4/127.0.0.1/tcp/{ports['p2p_a']}", "--no-prometheus")
        nodes = [a]
        try:
            b = start_node(work, *common, "--base-path", str(work / "b"), "--node-key", KEYS[1], "--bootnodes", boot,
                           "--listen-addr", f"/ip4/127.0.0.1/tcp/{ports['p2p_b']}", "--prometheus-port", str(ports["metrics_b"]))
            nodes.append(b)
            c = start_node(work, *common, "--pol", "full", "--base-path", str(work / "c"), "--node-key", KEYS[2],
                           "--bootnodes", boot, "--listen-addr", f"/ip4/127.0.0.1/tcp/{ports['p2p_c']}",
                           "--prometheus-port", str(ports["metrics_c"]))
            nodes.append(c)
            started = time.monotonic()
            figures = asyncio.run(_measure(args, a, b, c, ports))
            figures["wall_seconds"] = round(time.monotonic() - started, 1)
        finally:
            for node in reversed(nodes):
                node.stop()
    f = figures
    rows = [
        ("block before issue 9 (every checkpoint in the body)", f["block_before_bytes"], ""),
        ("block now (results: root, losses, new weights)", f["block_now_bytes"], ""),
        ("fetched by a sampling validator (--pol sampled)", f["sampled_fetched_bytes"],
         f"{f['sampled_openings']} openings, {f['sampled_checkpoints']} with a checkpoint"),
        ("fetched by an auditor (--pol full)", f["full_fetched_bytes"],
         f"{f['full_openings']} openings, {f['full_checkpoints']} with a checkpoint"),
    ]
    print(f"{f['jobs']} TRAIN calls, {f['segments']} segments each, MLP of {f['params']} parameters "
          f"({4 * f['params']} bytes a checkpoint)")
    for name, value, note in rows:
        print(f"  {name:<55} {value:>12,} B  {note}")
    print(f"  sampled / before: {f['sampled_fetched_bytes'] / f['block_before_bytes']:.3f}; "
          f"verify time sampled {f['sampled_verify_seconds']:.2f} s, full {f['full_verify_seconds']:.2f} s")
    write_record(Path("bench-results/pol_fetch.json"), "pol_fetch", **figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
