"""Reference twins of the kernels in plain NumPy scalar code.

Each function performs the same float32 operations in the same order as its kernel in
:mod:`ml_runtime.kernels`, but is written independently, as straight-line loops over
``np.float32`` scalars that CPython and NumPy execute without any compiler. The tests
require twin and kernel to agree bit for bit; a disagreement means one of them breaks
the determinism profile (docs/architecture.md §3). The twins are slow (about 1 µs per operation) and
are meant for tests and the benchmark, not for the chain.

Signatures mirror the kernels: each ``*_segment`` takes a weight vector (updated in
place), the data, the flattened batch indices, and returns ``(mean_loss, status)`` with
status -1 or the index of the first diverged step.
"""

from __future__ import annotations

import numpy as np

from ml_runtime.f32math import exp32, log32

F32 = np.float32
_Z = F32(0.0)
_HALF = F32(0.5)
_ONE = F32(1.0)


def _finite(v: np.float32) -> bool:
    return bool(v - v == _Z)


def _update(w: np.ndarray, g: np.ndarray, batch: int, lr: np.float32, l2: np.float32) -> bool:
    inv_b = _ONE / F32(batch)
    ok = True
    for p in range(len(w)):
        old = w[p]
        grad = g[p] * inv_b + l2 * old
        new = old - lr * grad
        ok = ok and _finite(new)
        w[p] = new
    return ok


def _logits(w: np.ndarray, off_w: int, off_b: int, inp: list[np.float32], n_out: int) -> list[np.float32]:
    # Accumulate row by row of W, exactly the kernel's order: b, then + x_0 W_0, + x_1 W_1...
    acc = [w[off_b + c] for c in range(n_out)]
    for i, xi in enumerate(inp):
        base = off_w + i * n_out
        for c in range(n_out):
            acc[c] = acc[c] + xi * w[base + c]
    return acc


def _softmax(z: list[np.float32]) -> tuple[list[np.float32], np.float32, np.float32]:
    top = z[0]
    for v in z[1:]:
        if v > top:
            top = v
    exps = [exp32(v - top) for v in z]
    total = _Z
    for e in exps:
        total = total + e
    return [e / total for e in exps], top, total


def _xent(z: list[np.float32], label: int) -> tuple[np.float32, list[np.float32]]:
    probs, top, total = _softmax(z)
    probs[label] = probs[label] - _ONE
    return log32(total) - (z[label] - top), probs


def _add_outer(g: np.ndarray, off_w: int, off_b: int, inp: list[np.float32], delta: list[np.float32]) -> None:
    n_out = len(delta)
    for i, xi in enumerate(inp):
        for c in range(n_out):
            g[off_w + i * n_out + c] = g[off_w + i * n_out + c] + xi * delta[c]
    for c in range(n_out):
        g[off_b + c] = g[off_b + c] + delta[c]


def _run(per_sample, w, idx, nsteps, batch, lr, l2):
    """Shared step loop; ``per_sample(row, g)`` adds one sample's gradient, returns its loss."""
    total = _Z
    inv_b = _ONE / F32(batch)
    with np.errstate(all="ignore"):
        for t in range(nsteps):
            g = np.zeros(len(w), dtype=np.float32)
            loss = _Z
            for s in range(batch):
                loss = loss + per_sample(int(idx[t * batch + s]), g)
            step_loss = loss * inv_b
            total = total + step_loss
            if not _update(w, g, batch, lr, l2) or not _finite(total):
                return _Z, t
        return total / F32(nsteps), -1


def linear_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Twin of :func:`ml_runtime.kernels.linear_segment`."""

    def sample(r: int, g: np.ndarray) -> np.float32:
        xr = [x[r, i] for i in range(d)]
        out = _logits(w, 0, d * k, xr, k)
        err = [out[c] - y[r, c] for c in range(k)]
        sq = _Z
        for e in err:
            sq = sq + e * e
        _add_outer(g, 0, d * k, xr, err)
        return _HALF * sq

    return _run(sample, w, idx, nsteps, batch, lr, l2)


def softmax_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Twin of :func:`ml_runtime.kernels.softmax_segment`."""

    def sample(r: int, g: np.ndarray) -> np.float32:
        xr = [x[r, i] for i in range(d)]
        loss, dz = _xent(_logits(w, 0, d * k, xr, k), int(y[r]))
        _add_outer(g, 0, d * k, xr, dz)
        return loss

    return _run(sample, w, idx, nsteps, batch, lr, l2)


def mlp_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k, h):
    """Twin of :func:`ml_runtime.kernels.mlp_segment`."""
    o_b1 = d * h
    o_w2 = o_b1 + h
    o_b2 = o_w2 + h * k

    def sample(r: int, g: np.ndarray) -> np.float32:
        xr = [x[r, i] for i in range(d)]
        pre = _logits(w, 0, o_b1, xr, h)
        hid = [v if v > _Z else _Z for v in pre]
        loss, dz = _xent(_logits(w, o_w2, o_b2, hid, k), int(y[r]))
        dpre = []
        for j in range(h):
            acc = _Z
            if pre[j] > _Z:
                for c in range(k):
                    acc = acc + dz[c] * w[o_w2 + j * k + c]
            dpre.append(acc)
        _add_outer(g, o_w2, o_b2, hid, dz)
        _add_outer(g, 0, o_b1, xr, dpre)
        return loss

    return _run(sample, w, idx, nsteps, batch, lr, l2)


def forward(family: str, w: np.ndarray, x: np.ndarray, d: int, k: int, h: int) -> np.ndarray:
    """Twin of the ``*_forward`` kernels (outputs or class probabilities)."""
    out = np.empty((x.shape[0], k), dtype=np.float32)
    with np.errstate(all="ignore"):
        for r in range(x.shape[0]):
            xr = [x[r, i] for i in range(d)]
            if family == "linear":
                out[r] = _logits(w, 0, d * k, xr, k)
            elif family == "softmax":
                out[r] = _softmax(_logits(w, 0, d * k, xr, k))[0]
            else:
                pre = _logits(w, 0, d * h, xr, h)
                hid = [v if v > _Z else _Z for v in pre]
                out[r] = _softmax(_logits(w, d * h + h, d * h + h + h * k, hid, k))[0]
    return out


def fedavg(updates: np.ndarray, counts: np.ndarray, total: int) -> tuple[np.ndarray, int]:
    """Twin of :func:`ml_runtime.fedavg.fedavg_kernel`: (out, status)."""
    u, n_params = updates.shape
    denom = F32(total)
    coef = [F32(int(counts[i])) / denom for i in range(u)]
    out = np.empty(n_params, dtype=np.float32)
    status = -1
    with np.errstate(all="ignore"):
        for p in range(n_params):
            acc = _Z
            for i in range(u):
                acc = acc + coef[i] * updates[i, p]
            out[p] = acc
            if status < 0 and not _finite(acc):
                status = p
    return out, status
