"""The batch PRF's cost per segment, before and after the compiled blake2b: ``python -m benches.prf``.

A validator re-running a sampled segment first derives its batch rows (ml_runtime.prf): 25
steps of batch 32 are 50 blake2b blocks. "before" is the hashlib path as it was
(``benches/_reference_kernels.batch_indices_hashlib``, one hashlib call per block with
Python around it), "after" is ``ml_runtime.batch_indices``; both give the same bits (checked
here). The third and fourth columns put them beside the segment they feed: the softmax
64→10 kernel over the same 25 steps, so "segment" = PRF + kernel, as
``ml_runtime.recompute_segment`` spends it (less hashing the weights). Median (min–max) of
``--rounds`` interleaved rounds, CPU time of this thread, so other work on the shared
machine changes the spread more than the medians. Writes bench-results/prf.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import ml_runtime as mr
from benches._reference_kernels import batch_indices_hashlib
from benches.record import write_record
from ml_runtime import kernels

OUT = Path("bench-results") / "prf.json"
SEED = b"\x22" * 32
LR, L2 = np.float32(0.05), np.float32(1e-4)


def measure(rounds: int, segments: int, seg_len: int = 25, batch: int = 32) -> dict[str, object]:
    x, labels = mr.load_digits()
    x.flags.writeable = False
    spec = mr.ModelSpec("softmax", 64, 10)
    w0 = mr.init_weights(spec, b"\x11" * 32)
    n = x.shape[0]
    starts = [j * seg_len for j in range(segments)]
    for s in starts[:50]:
        assert mr.batch_indices(SEED, s, seg_len, n, batch).tolist() == \
            batch_indices_hashlib(SEED, s, seg_len, n, batch).tolist()

    def prf(fn: Callable[..., np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            for s in starts:
                fn(SEED, s, seg_len, n, batch)
        return run

    def segment(fn: Callable[..., np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            for s in starts:
                idx = fn(SEED, s, seg_len, n, batch)
                kernels.softmax_segment(w0.copy(), x, labels, idx, seg_len, batch, LR, L2, 64, 10)
        return run

    fns = {"prf_before": prf(batch_indices_hashlib), "prf_after": prf(mr.batch_indices),
           "segment_before": segment(batch_indices_hashlib), "segment_after": segment(mr.batch_indices)}
    for fn in fns.values():
        fn()
    us: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            c0 = time.thread_time()
            fn()
            us[k].append((time.thread_time() - c0) / segments * 1e6)
    stats = {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v} for k, v in us.items()}
    ratios = {
        "prf_speedup": [b / a for b, a in zip(us["prf_before"], us["prf_after"], strict=True)],
        "segment_speedup": [b / a for b, a in zip(us["segment_before"], us["segment_after"], strict=True)],
    }
    return {"us_per_segment": stats,
            "ratios": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in ratios.items()},
            "segment": {"steps": seg_len, "batch": batch, "rows": n, "family": "softmax 64-10"},
            "rounds": rounds, "segments_per_round": segments}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--segments", type=int, default=400, help="segments per round")
    args = ap.parse_args()
    mr.warm_up()
    res = measure(args.rounds, args.segments)
    st = res["us_per_segment"]
    assert isinstance(st, dict)
    print(f"µs per segment of 25 steps, batch 32 (digits, 1797 rows), median (min-max) of {args.rounds} rounds, "
          "CPU time")
    print(f"{'':10}{'batch PRF':>26}{'PRF + softmax kernel':>26}")
    for when in ("before", "after"):
        p, s = st[f"prf_{when}"], st[f"segment_{when}"]
        print(f"{when:10}{p['median']:>12.1f} ({p['min']:.1f}-{p['max']:.1f})".ljust(36)
              + f"{s['median']:>12.1f} ({s['min']:.1f}-{s['max']:.1f})")
    r = res["ratios"]
    assert isinstance(r, dict)
    print(f"{'speed-up':10}{r['prf_speedup']['median']:>12.2f}x".ljust(36)
          + f"{r['segment_speedup']['median']:>12.2f}x")
    print(f"load average at the end: {os.getloadavg()}")
    write_record(OUT, "prf", **res)


if __name__ == "__main__":
    main()
