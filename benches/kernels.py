"""Benchmark of the ml_runtime training kernels: ``python -m benches.kernels``.

For each family at d=64, k=10 (classes or outputs), h=32, batch 32 it measures SGD
steps per second of

  (a) the numba kernel (bit-exact, the consensus path),
  (b) its plain NumPy scalar twin (bit-exact reference),
  (c) a vectorised NumPy/BLAS version (np.exp, ``@``; fast but not bit-exact),
  (d) PyTorch CPU doing the same SGD step with autograd and torch.optim.SGD (if installed),

plus, for a 1,000-step job with 10 segments, the time to re-run one segment (what a
validator does) against the whole job (what the author does), both including the batch
PRF and hashing. Every variant trains on the same rows (the consensus batch indices).
It prints a table and writes bench-results/kernels.json. Figures, never assertions.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

import ml_runtime as mr
from ml_runtime import kernels, twins

D, K, H, B = 64, 10, 32, 32
LR, L2 = np.float32(0.05), np.float32(1e-4)
KERNEL_STEPS = 2000
TWIN_STEPS = 3
BLAS_STEPS = 2000
TORCH_STEPS = 1000
REPEATS = 5
OUT = Path("bench-results") / "kernels.json"


def _best(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best wall time of ``repeats`` runs (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _problem(family: str) -> tuple[mr.ModelSpec, np.ndarray, np.ndarray, np.ndarray]:
    x, labels = mr.load_digits()
    if family == "linear":
        spec = mr.ModelSpec("linear", D, K)
        onehot = np.eye(K, dtype=np.float32)[labels]
        y: np.ndarray = onehot
    else:
        spec = mr.ModelSpec(family, D, K, H if family == "mlp" else 0)
        y = labels
    w = mr.init_weights(spec, b"\x11" * 32)
    return spec, w, x, y


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _numba_step_fn(spec: mr.ModelSpec, w: np.ndarray, x: np.ndarray, y: np.ndarray,
                   idx: np.ndarray, steps: int) -> Callable[[], object]:
    xr, yr = _ro(x), _ro(y)
    if spec.family == "linear":
        return lambda: kernels.linear_segment(w.copy(), xr, yr, idx, steps, B, LR, L2, D, K)
    if spec.family == "softmax":
        return lambda: kernels.softmax_segment(w.copy(), xr, yr, idx, steps, B, LR, L2, D, K)
    return lambda: kernels.mlp_segment(w.copy(), xr, yr, idx, steps, B, LR, L2, D, K, H)


def _twin_fn(spec: mr.ModelSpec, w: np.ndarray, x: np.ndarray, y: np.ndarray,
             idx: np.ndarray, steps: int) -> Callable[[], object]:
    fn = {"linear": twins.linear_segment, "softmax": twins.softmax_segment,
          "mlp": twins.mlp_segment}[spec.family]
    extra = (H,) if spec.family == "mlp" else ()
    return lambda: fn(w.copy(), x, y, idx, steps, B, LR, L2, D, K, *extra)


def _blas_fn(spec: mr.ModelSpec, w0: np.ndarray, x: np.ndarray, y: np.ndarray,
             idx: np.ndarray, steps: int) -> Callable[[], object]:
    """Vectorised float32 NumPy with BLAS matmuls and libm exp: the usual way, not bit-exact."""

    def softmax_grad(z: np.ndarray, yb: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(B), yb] -= 1
        return p

    def run() -> np.ndarray:
        w = w0.copy()
        rows = idx.reshape(steps, B)
        for t in range(steps):
            xb = x[rows[t]]
            yb = y[rows[t]]
            g = np.empty_like(w)
            if spec.family == "mlp":
                w1 = w[: D * H].reshape(D, H)
                b1 = w[D * H : D * H + H]
                w2 = w[D * H + H : D * H + H + H * K].reshape(H, K)
                b2 = w[D * H + H + H * K :]
                a = xb @ w1 + b1
                r = np.maximum(a, 0)
                dz = softmax_grad(r @ w2 + b2, yb)
                da = (dz @ w2.T) * (a > 0)
                g[: D * H] = (xb.T @ da).ravel()
                g[D * H : D * H + H] = da.sum(axis=0)
                g[D * H + H : D * H + H + H * K] = (r.T @ dz).ravel()
                g[D * H + H + H * K :] = dz.sum(axis=0)
            else:
                wm = w[: D * K].reshape(D, K)
                z = xb @ wm + w[D * K :]
                dz = z - yb if spec.family == "linear" else softmax_grad(z, yb)
                g[: D * K] = (xb.T @ dz).ravel()
                g[D * K :] = dz.sum(axis=0)
            w -= LR * (g / np.float32(B) + L2 * w)
        return w

    return run


def _torch_fn(spec: mr.ModelSpec, w0: np.ndarray, x: np.ndarray, y: np.ndarray,
              idx: np.ndarray, steps: int) -> Callable[[], object] | None:
    try:
        import torch
    except ImportError:
        return None
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y.astype(np.int64) if spec.family != "linear" else y)
    rows = torch.from_numpy(idx.reshape(steps, B))

    def run() -> None:
        w = torch.from_numpy(w0.copy())
        if spec.family == "mlp":
            w1 = w[: D * H].reshape(D, H).clone().requires_grad_()
            b1 = w[D * H : D * H + H].clone().requires_grad_()
            w2 = w[D * H + H : D * H + H + H * K].reshape(H, K).clone().requires_grad_()
            b2 = w[D * H + H + H * K :].clone().requires_grad_()
            params = [w1, b1, w2, b2]
        else:
            wm = w[: D * K].reshape(D, K).clone().requires_grad_()
            bm = w[D * K :].clone().requires_grad_()
            params = [wm, bm]
        opt = torch.optim.SGD(params, lr=float(LR), weight_decay=float(L2))
        for t in range(steps):
            xb, yb = xt[rows[t]], yt[rows[t]]
            out = torch.relu(xb @ w1 + b1) @ w2 + b2 if spec.family == "mlp" else xb @ wm + bm
            if spec.family == "linear":
                loss = 0.5 * ((out - yb) ** 2).sum(dim=1).mean()
            else:
                loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def _segment_vs_job(family: str) -> dict[str, float]:
    spec, w, x, y = _problem(family)
    job = mr.TrainingJob(spec, w, x, y, steps=1000, batch_size=B, lr=float(LR), l2=float(L2),
                         seed=b"\x22" * 32, segment_len=100)
    res = mr.run_job(job)
    t_job = _best(lambda: mr.run_job(job), 3)
    t_seg = _best(lambda: mr.recompute_segment(job, 5, res.checkpoints[5]), 3)
    t_idx = _best(lambda: mr.batch_indices(job.seed, 0, 100, x.shape[0], B), 3)
    return {"job_s": t_job, "segment_s": t_seg, "segments": job.num_segments,
            "batch_prf_per_segment_s": t_idx}


def main() -> None:
    mr.warm_up()
    torch_note = None
    try:
        import torch

        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        print("PyTorch is not installed: column (d) skipped (pip install '.[bench]').")
    results: dict[str, Any] = {}
    for family in ("linear", "softmax", "mlp"):
        spec, w, x, y = _problem(family)
        n = x.shape[0]
        idx = mr.batch_indices(b"\x33" * 32, 0, KERNEL_STEPS, n, B)
        numba_fn = _numba_step_fn(spec, w, x, y, idx, KERNEL_STEPS)
        numba_fn()  # first call after warm_up: make sure nothing compiles in the timing
        r: dict[str, Any] = {"step_cost_units": mr.step_cost(spec, B)}
        r["numba_steps_s"] = KERNEL_STEPS / _best(numba_fn)
        r["twin_steps_s"] = TWIN_STEPS / _best(_twin_fn(spec, w, x, y, idx, TWIN_STEPS), 2)
        r["blas_steps_s"] = BLAS_STEPS / _best(_blas_fn(spec, w, x, y, idx, BLAS_STEPS), 3)
        tfn = _torch_fn(spec, w, x, y, idx[: TORCH_STEPS * B], TORCH_STEPS)
        if tfn is not None:
            tfn()
            r["torch_steps_s"] = TORCH_STEPS / _best(tfn, 3)
        r["ns_per_unit"] = 1e9 / r["numba_steps_s"] / r["step_cost_units"]
        r.update(_segment_vs_job(family))
        results[family] = r

    header = (f"{'family':8} {'numba st/s':>11} {'twin st/s':>10} {'BLAS st/s':>10} "
              f"{'torch st/s':>11} {'numba/twin':>11} {'numba/torch':>12} {'ns/unit':>8} "
              f"{'segment':>9} {'job (S=10)':>11}")
    print(f"SGD steps/s at d={D}, k={K}, h={H}, batch {B} "
          f"({platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}, "
          f"numpy {np.__version__}{', ' + torch_note if torch_note else ''})")
    print(header)
    print("-" * len(header))
    for family, r in results.items():
        torch_s = r.get("torch_steps_s")
        vs_torch = f"{r['numba_steps_s'] / torch_s:11.2f}x" if torch_s else "           -"
        torch_col = f"{torch_s:11.0f}" if torch_s else "    skipped"
        print(f"{family:8} {r['numba_steps_s']:11.0f} {r['twin_steps_s']:10.1f} "
              f"{r['blas_steps_s']:10.0f} "
              f"{torch_col} {r['numba_steps_s'] / r['twin_steps_s']:10.0f}x {vs_torch} "
              f"{r['ns_per_unit']:8.3f} {r['segment_s'] * 1e3:7.1f}ms {r['job_s'] * 1e3:9.1f}ms")
    mean_ns = float(np.mean([r["ns_per_unit"] for r in results.values()]))
    print(f"mean ns per work unit (cost.NS_PER_UNIT calibration): {mean_ns:.3f}")
    print("segment = re-running 1 of 10 segments (100 steps, incl. batch PRF and hashing); "
          "job = all 1,000 steps with checkpoints and transcript")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "config": {"d": D, "k": K, "h": H, "batch": B, "kernel_steps": KERNEL_STEPS,
                   "twin_steps": TWIN_STEPS, "repeats": REPEATS},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numba": numba.__version__, "numpy": np.__version__, "torch": torch_note},
        "mean_ns_per_unit": mean_ns,
        "results": results,
    }, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
