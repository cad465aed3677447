"""State-layer benchmark: writes/s including the new state root, reads/s, proof sizes.

Run ``python -m benches.state`` (``--sizes 10000,100000 --batches 1000,10000 --blocks 5``).
It prints a table and writes bench-results/state.json. Figures only, never assertions.

Workload: keys are Substrate-like map keys (a 16-byte storage prefix, then a 32-byte
hash), values 40 bytes; a block's writes are 80% updates of existing keys and 20% new
keys. For each (state size, batch size) a fresh LevelDB state is bulk-loaded, then
``--blocks`` blocks are written one after another; the median block is reported as:

* ``root w/s``  — writes per second of ``StateDB.compute_commit`` (trie update and new root);
* ``block w/s`` — the whole path: overlay writes, compute_commit, staging into a write batch,
  the atomic LevelDB write (sync=True) and ``advance``;
* ``root best`` — the fastest block's root w/s; ``w/cpu-s`` — writes per second of the main
  thread's CPU time, which a machine shared with other jobs does not distort as it does
  wall time (LevelDB's background compaction runs in its own thread and is not counted).

The load is compacted and two warm-up blocks are written before the measured ones.

Reads: ``flat`` from the STATE column, ``trie`` through the trie at the best root with a warm
node cache, ``cold`` after clearing it. Proofs: one present key, one absent key, 100 keys.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benches.record import write_record
from chain.state import StateDB
from chain.storage import Database
from chain.trie import verify_read_proof

PREFIX = hashlib.blake2b(b"Balances.Account", digest_size=16).digest()


def make_key(i: int) -> bytes:
    return PREFIX + hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).digest()


def make_value(i: int, version: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "little") + version.to_bytes(4, "little")).digest()[:40]


def bulk_load(state: StateDB, db: Database, n: int) -> float:
    overlay = state.overlay()
    for i in range(n):
        overlay.set(make_key(i), make_value(i, 0))
    t0 = time.perf_counter()
    commit = state.compute_commit(overlay)
    with db.write_batch() as batch:
        state.stage_commit(batch, commit)
    state.advance(commit)
    return time.perf_counter() - t0


def run_case(n: int, batch: int, blocks: int, rng: random.Random, cache: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="polchain-bench-") as tmp:
        db = Database(Path(tmp) / "db")
        state = StateDB(db, cache_size=cache)
        load_s = bulk_load(state, db, n)
        db.compact()  # so the measured blocks do not share the CPU with compacting the load
        next_new = n
        root_times: list[float] = []
        block_times: list[float] = []
        root_cpu: list[float] = []
        block_cpu: list[float] = []
        nodes: list[int] = []
        node_bytes: list[int] = []
        warmup = 2
        for version in range(1, warmup + blocks + 1):
            writes = []
            for _ in range(batch):
                if rng.random() < 0.2:
                    i = next_new
                    next_new += 1
                else:
                    i = rng.randrange(n)
                writes.append((make_key(i), make_value(i, version)))
            c0, t0 = time.thread_time(), time.perf_counter()
            overlay = state.overlay()
            for key, value in writes:
                overlay.set(key, value)
            c1, t1 = time.thread_time(), time.perf_counter()
            commit = state.compute_commit(overlay)
            c2, t2 = time.thread_time(), time.perf_counter()
            with db.write_batch(sync=True) as wb:
                state.stage_commit(wb, commit)
            state.advance(commit)
            c3, t3 = time.thread_time(), time.perf_counter()
            if version <= warmup:
                continue
            root_times.append(t2 - t1)
            block_times.append(t3 - t0)
            root_cpu.append(c2 - c1)
            block_cpu.append(c3 - c0)
            nodes.append(len(commit.trie_nodes))
            node_bytes.append(sum(len(v) for v in commit.trie_nodes.values()))
        result = {
            "state_keys": n,
            "cache_nodes": cache,
            "batch": batch,
            "blocks": blocks,
            "bulk_load_s": round(load_s, 3),
            "bulk_load_writes_per_s": round(n / load_s),
            "root_writes_per_s": round(batch / statistics.median(root_times)),
            "block_writes_per_s": round(batch / statistics.median(block_times)),
            "root_writes_per_s_best": round(batch / min(root_times)),
            "root_writes_per_cpu_s": round(batch / statistics.median(root_cpu)),
            "block_writes_per_cpu_s": round(batch / statistics.median(block_cpu)),
            "root_ms_median": round(1000 * statistics.median(root_times), 2),
            "block_ms_median": round(1000 * statistics.median(block_times), 2),
            "new_nodes_per_block": round(statistics.median(nodes)),
            "new_node_bytes_per_block": round(statistics.median(node_bytes)),
        }
        result.update(measure_reads(state, n, rng))
        db.close()
    return result


def measure_reads(state: StateDB, n: int, rng: random.Random) -> dict[str, Any]:
    keys = [make_key(rng.randrange(n)) for _ in range(20_000)]
    root = state.root()
    t0 = time.perf_counter()
    for key in keys:
        state.get(key)
    flat = len(keys) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for key in keys:
        state.get(key, at=root)
    trie_warm = len(keys) / (time.perf_counter() - t0)
    state.trie.clear_cache()
    cold_keys = keys[:5000]
    t0 = time.perf_counter()
    for key in cold_keys:
        state.get(key, at=root)
    trie_cold = len(cold_keys) / (time.perf_counter() - t0)
    sizes = []
    node_counts = []
    for key in keys[:200]:
        proof = state.prove([key])
        if verify_read_proof(root, key, proof) is None:
            raise RuntimeError(f"proof of present key 0x{key.hex()} proved absence")
        node_counts.append(len(proof))
        sizes.append(sum(len(p) for p in proof))
    absent = PREFIX + b"\xff" * 32
    absent_proof = state.prove([absent])
    batch_proof = state.prove(keys[:100])
    return {
        "flat_reads_per_s": round(flat),
        "trie_reads_per_s_warm": round(trie_warm),
        "trie_reads_per_s_cold": round(trie_cold),
        "proof_nodes_median": statistics.median(node_counts),
        "proof_bytes_median": round(statistics.median(sizes)),
        "proof_bytes_absent": sum(len(p) for p in absent_proof),
        "proof_bytes_100_keys": sum(len(p) for p in batch_proof),
    }


COLUMNS = [
    ("state_keys", "keys"),
    ("batch", "batch"),
    ("root_writes_per_s", "root w/s"),
    ("block_writes_per_s", "block w/s"),
    ("root_writes_per_s_best", "root best"),
    ("root_writes_per_cpu_s", "root w/cpu-s"),
    ("block_writes_per_cpu_s", "block w/cpu-s"),
    ("root_ms_median", "root ms"),
    ("block_ms_median", "block ms"),
    ("new_nodes_per_block", "nodes/blk"),
    ("new_node_bytes_per_block", "bytes/blk"),
    ("flat_reads_per_s", "flat r/s"),
    ("trie_reads_per_s_warm", "trie r/s"),
    ("trie_reads_per_s_cold", "cold r/s"),
    ("proof_bytes_median", "proof B"),
    ("proof_nodes_median", "proof n"),
    ("proof_bytes_absent", "absent B"),
    ("proof_bytes_100_keys", "100-key B"),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = [max(len(title), *(len(f"{r[k]}") for r in rows)) for k, title in COLUMNS]
    print("  ".join(t.rjust(w) for (_, t), w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(f"{row[k]}".rjust(w) for (k, _), w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print(
            f"bulk load of {row['state_keys']} keys (batch {row['batch']} run): "
            f"{row['bulk_load_s']} s = {row['bulk_load_writes_per_s']} writes/s"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--batches", default="1000,10000")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--cache", type=int, default=1_000_000, help="decoded-node cache size")
    parser.add_argument("--out", default="bench-results/state.json")
    args = parser.parse_args(argv)
    rng = random.Random(2024)
    rows = [
        run_case(n, b, args.blocks, rng, args.cache)
        for n in (int(s) for s in args.sizes.split(","))
        for b in (int(s) for s in args.batches.split(","))
    ]
    print_table(rows)
    write_record(
        Path(args.out), "state", workload="48-byte keys, 40-byte values, 80% updates / 20% inserts per block",
        results=rows,
    )


if __name__ == "__main__":
    main()
