"""Online state pruning's cost to block import, side by side with an archive node.

    python -m benches.pruning [--blocks 96] [--per-block 1000] [--keep 16] [--reps 2]
                              [--out bench-results/pruning.json]

Builds ``--blocks`` blocks of ``--per-block`` signed transfers once (benches.chain, the
transfers bench's accounts), then imports them into fresh LevelDB databases, in turn, as a
syncing node does (``benches.chain.import_all``, one block at a time) with the block two
below the best made final after each import:

* ``archive``: nothing pruned (``--state-pruning archive``);
* ``pruned``: what ``NodeService._maybe_prune`` does with ``--state-pruning K``: each time
  finality has moved min(K, 32) blocks and no run is under way, a ``chain.pruning.LivePrune``
  is made between two imports and run on a thread while the next blocks are imported.

Reported per variant (the median of ``--reps`` interleaved repetitions): blocks imported a
second, the pruned/archive ratio of that rate (the figure the machine's noise cancels in),
the TRIE column's nodes and bytes at the end, the runs made and their median seconds and
nodes deleted. Both variants must end on the same state root, and the pruned one with every
kept state whole (checked, not timed). Figures only, never assertions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benches import chain as bc
from benches.record import write_record
from chain import signatures
from chain.block import decode_block
from chain.blockchain import Blockchain
from chain.pruning import LivePrune, PruneReport
from chain.state import TrieColumn
from chain.storage import Column
from chain.trie import Trie

PRUNE_EVERY = 32  # node.service.PRUNE_EVERY (not imported: the bench needs no node service)


def _import(path: Path, spec: Any, encoded: list[bytes], keep: int | None) -> dict[str, Any]:
    node = bc.open_node(path, spec)
    runs: list[PruneReport] = []
    worker: threading.Thread | None = None
    pruned_at = 0
    try:
        started = time.perf_counter()
        for raw in encoded:
            node.import_block(decode_block(raw))
            if node.best_number > 2:
                node.set_finalized(node.get_hash(node.best_number - 2))
            if keep is None or (worker is not None and worker.is_alive()):
                continue
            if node.finalized_number - pruned_at >= max(1, min(keep, PRUNE_EVERY)):
                pruned_at = node.finalized_number
                run = LivePrune(node.db, node.state, keep)  # between two imports: no batch in flight
                worker = threading.Thread(target=lambda run=run: runs.append(run.run()))
                worker.start()
        seconds = time.perf_counter() - started
        if worker is not None:
            worker.join()
        nodes = size = 0
        for _key, value in node.db.iterate(Column.TRIE):
            nodes += 1
            size += 33 + len(value)
        if keep is not None:  # every state the last run kept, and every later one, is whole
            lowest = max(0, runs[-1].finalized_number - keep) if runs else 0
            marked: set[bytes] = set()
            for n in range(lowest, node.best_number + 1):
                Trie(TrieColumn(node.db)).mark_reachable(node.get_header(node.get_hash(n)).state_root, marked)
        return {
            "blocks_per_s": len(encoded) / seconds, "root": node.state.root().hex(), "trie_nodes": nodes,
            "trie_mb": size / 1e6, "runs": len(runs),
            "run_seconds": statistics.median(r.seconds for r in runs) if runs else None,
            "run_deleted": statistics.median(r.nodes_deleted for r in runs) if runs else None,
        }
    finally:
        node.db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=96)
    parser.add_argument("--per-block", type=int, default=1000)
    parser.add_argument("--keep", type=int, default=16)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/pruning.json"))
    args = parser.parse_args(argv)
    senders = bc.compute_keys(b"bench-chain-sender", args.per_block)
    receivers = [k.public for k in bc.compute_keys(b"bench-chain-receiver", args.per_block)]
    spec = bc.compute_bench_spec(senders)
    signatures.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        author: Blockchain = bc.open_node(Path(tmp) / "author", spec)
        try:
            encoded, _xts, build_seconds = bc.compute_transfer_blocks(author, senders, receivers, args.blocks, args.per_block)
        finally:
            author.db.close()
        print(f"built {args.blocks} blocks of {args.per_block} transfers in {build_seconds:.1f} s")
        results: dict[str, list[dict[str, Any]]] = {"archive": [], "pruned": []}
        for rep in range(args.reps):
            for name, keep in (("archive", None), ("pruned", args.keep)):
                results[name].append(_import(Path(tmp) / f"{name}-{rep}", spec, encoded, keep))
    roots = {r["root"] for rows in results.values() for r in rows}
    if len(roots) != 1:
        raise SystemExit(f"the variants ended on different state roots: {sorted(roots)}")
    ratios = [p["blocks_per_s"] / a["blocks_per_s"] for a, p in zip(results["archive"], results["pruned"], strict=True)]
    summary = {
        name: {key: statistics.median(r[key] for r in rows) for key in ("blocks_per_s", "trie_nodes", "trie_mb", "runs")}
        | {key: rows[-1][key] for key in ("run_seconds", "run_deleted")}
        for name, rows in results.items()
    }
    print(f"{'variant':8} {'blocks/s':>9} {'TRIE nodes':>11} {'TRIE MB':>8} {'runs':>5} {'s/run':>6} {'deleted/run':>12}")
    for name, row in summary.items():
        run_s = "" if row["run_seconds"] is None else f"{row['run_seconds']:.2f}"
        deleted = "" if row["run_deleted"] is None else f"{row['run_deleted']:,.0f}"
        print(f"{name:8} {row['blocks_per_s']:9.2f} {row['trie_nodes']:11,.0f} {row['trie_mb']:8.1f} {row['runs']:5.0f} {run_s:>6} {deleted:>12}")
    print("pruned / archive import rate, each repetition: " + ", ".join(f"{r:.3f}" for r in ratios))
    write_record(
        args.out, "pruning", blocks=args.blocks, per_block=args.per_block, keep=args.keep, reps=args.reps,
        summary=summary, ratios=ratios, repetitions=results,
    )


if __name__ == "__main__":
    main()
