"""The training kernels as they were before issue 12, kept only to measure "before".

A frozen copy of ml_runtime/kernels.py at commit 6092c0b (not on any consensus path;
benches/kernels.py runs it side by side with the current kernels and checks that both
produce the same bits). Its original docstring follows.

Bit-exact SGD kernels, compiled by numba.

One kernel per family runs a whole segment (many SGD steps) per call, so Python's
overhead is paid once per segment. Consensus rules (docs/architecture.md §3), and how they are kept:

* float32 only: every constant is an ``np.float32`` global (numba freezes it as a float32
  constant; a bare ``0.5`` would be float64 and promote the expression);
* fixed order: every sum is a plain sequential loop. Without ``fastmath`` LLVM neither
  reassociates nor contracts ``a*b + c`` into an FMA, so the order written is the order
  run. Loops are arranged so the innermost loop updates independent accumulators
  (``z[c] += x_i * W[i, c]`` over c); LLVM may vectorise those, which changes no bits;
* no ``parallel``/``prange``, no BLAS, no libm: exp/log come from :mod:`ml_runtime.f32math`;
* ``nogil=True``: a kernel touches only arrays and float32 scalars, never a Python
  object, so it runs with the GIL released. The node builds blocks in a worker thread;
  a kernel holding the GIL would stop its event loop (and every RPC caller) for the
  whole segment. Releasing the GIL changes only the CPython wrapper, not the compiled
  arithmetic, so no bit changes (the golden vectors and twin tests check this).

SGD step t, with batch rows r_0..r_{B-1} (from the batch PRF) and weights w:

    g  = sum over samples in batch order of the per-sample gradient (at w)
    w' = w - lr * (g * (1/B) + l2 * w)        for every parameter, biases included
    loss_t = (sum over samples in batch order of the per-sample loss) * (1/B)

A segment returns ``(sum_t loss_t) / nsteps`` (sequential) and a status: -1 when every
step finished with finite weights and a finite loss, else the index within the segment
of the first step whose loss or updated weights are not finite (the kernel stops there;
the partially updated weights are meaningless and must be discarded).

:mod:`ml_runtime.twins` holds the same computations written as plain NumPy scalar code.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

import numpy as np
from numba import njit

from ml_runtime.f32math import exp32_jit, log32_jit

_Z: Final = np.float32(0.0)
_HALF: Final = np.float32(0.5)
_ONE: Final = np.float32(1.0)


@njit(cache=True, nogil=True)
def _affine(w, o_w, o_b, src, n_in, n_out, out):
    """out[c] = b[c] + src[0]*W[0,c] + src[1]*W[1,c] + ... (left to right)."""
    for c in range(n_out):
        out[c] = w[o_b + c]
    for i in range(n_in):
        s = src[i]
        row = o_w + i * n_out
        for c in range(n_out):
            out[c] = out[c] + s * w[row + c]


@njit(cache=True, nogil=True)
def _accumulate_outer(g, o_w, o_b, src, delta, n_in, n_out):
    """g[W] += src ⊗ delta; g[b] += delta (one sample's contribution)."""
    for i in range(n_in):
        s = src[i]
        row = o_w + i * n_out
        for c in range(n_out):
            g[row + c] = g[row + c] + s * delta[c]
    for c in range(n_out):
        g[o_b + c] = g[o_b + c] + delta[c]


@njit(cache=True, nogil=True)
def _softmax_probs(z, n_cls, p):
    """p = softmax(z) with max subtraction; returns (m, s) = (max z, sum exp(z - m))."""
    m = z[0]
    for c in range(1, n_cls):
        if z[c] > m:
            m = z[c]
    s = _Z
    for c in range(n_cls):
        e = exp32_jit(z[c] - m)
        p[c] = e
        s = s + e
    for c in range(n_cls):
        p[c] = p[c] / s
    return m, s


@njit(cache=True, nogil=True)
def _softmax_xent(z, label, n_cls, dz):
    """Cross-entropy of softmax(z) at ``label``; writes dz = softmax(z) - onehot(label).

    loss = log(sum_c exp(z_c - m)) - (z_label - m) with m = max z, so the log argument
    is in [1, n_cls] and never 0.
    """
    m, s = _softmax_probs(z, n_cls, dz)
    dz[label] = dz[label] - _ONE
    return log32_jit(s) - (z[label] - m)


@njit(cache=True, nogil=True)
def _sgd_update(w, g, inv_b, lr, l2):
    """w <- w - lr*(g/B + l2*w); zeroes g; returns False if any new weight is not finite."""
    ok = True
    for p in range(w.shape[0]):
        wp = w[p]
        nw = wp - lr * (g[p] * inv_b + l2 * wp)
        # x - x is 0 for finite x and NaN for ±inf/NaN, and NaN != 0; LLVM keeps the test without fastmath.
        if nw - nw != _Z:
            ok = False
        w[p] = nw
        g[p] = _Z
    return ok


@njit(cache=True, nogil=True)
def linear_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Run ``nsteps`` SGD steps of least squares in place on ``w``; see module doc."""
    g = np.zeros(w.shape[0], dtype=np.float32)
    out = np.empty(k, dtype=np.float32)
    inv_b = _ONE / np.float32(batch)
    o_b = d * k
    total = _Z
    for t in range(nsteps):
        lsum = _Z
        for s in range(batch):
            r = idx[t * batch + s]
            xr = x[r]
            _affine(w, 0, o_b, xr, d, k, out)
            acc = _Z
            for c in range(k):
                e = out[c] - y[r, c]
                out[c] = e
                acc = acc + e * e
            lsum = lsum + _HALF * acc
            _accumulate_outer(g, 0, o_b, xr, out, d, k)
        step_loss = lsum * inv_b
        ok = _sgd_update(w, g, inv_b, lr, l2)
        if not ok or step_loss - step_loss != _Z:
            return _Z, t
        total = total + step_loss
    return total / np.float32(nsteps), -1


@njit(cache=True, nogil=True)
def softmax_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Run ``nsteps`` SGD steps of multinomial logistic regression in place on ``w``."""
    g = np.zeros(w.shape[0], dtype=np.float32)
    z = np.empty(k, dtype=np.float32)
    dz = np.empty(k, dtype=np.float32)
    inv_b = _ONE / np.float32(batch)
    o_b = d * k
    total = _Z
    for t in range(nsteps):
        lsum = _Z
        for s in range(batch):
            r = idx[t * batch + s]
            xr = x[r]
            _affine(w, 0, o_b, xr, d, k, z)
            lsum = lsum + _softmax_xent(z, y[r], k, dz)
            _accumulate_outer(g, 0, o_b, xr, dz, d, k)
        step_loss = lsum * inv_b
        ok = _sgd_update(w, g, inv_b, lr, l2)
        if not ok or step_loss - step_loss != _Z:
            return _Z, t
        total = total + step_loss
    return total / np.float32(nsteps), -1


@njit(cache=True, nogil=True)
def mlp_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k, h):
    """Run ``nsteps`` SGD steps of the one-hidden-layer ReLU MLP in place on ``w``."""
    g = np.zeros(w.shape[0], dtype=np.float32)
    a = np.empty(h, dtype=np.float32)
    hid = np.empty(h, dtype=np.float32)
    da = np.empty(h, dtype=np.float32)
    z = np.empty(k, dtype=np.float32)
    dz = np.empty(k, dtype=np.float32)
    inv_b = _ONE / np.float32(batch)
    o_b1 = d * h
    o_w2 = o_b1 + h
    o_b2 = o_w2 + h * k
    total = _Z
    for t in range(nsteps):
        lsum = _Z
        for s in range(batch):
            r = idx[t * batch + s]
            xr = x[r]
            _affine(w, 0, o_b1, xr, d, h, a)
            for j in range(h):
                hid[j] = a[j] if a[j] > _Z else _Z
            _affine(w, o_w2, o_b2, hid, h, k, z)
            lsum = lsum + _softmax_xent(z, y[r], k, dz)
            # Back-propagate through W2 with the pre-update weights, before g changes.
            for j in range(h):
                if a[j] > _Z:
                    acc = _Z
                    row = o_w2 + j * k
                    for c in range(k):
                        acc = acc + dz[c] * w[row + c]
                    da[j] = acc
                else:
                    da[j] = _Z
            _accumulate_outer(g, o_w2, o_b2, hid, dz, h, k)
            _accumulate_outer(g, 0, o_b1, xr, da, d, h)
        step_loss = lsum * inv_b
        ok = _sgd_update(w, g, inv_b, lr, l2)
        if not ok or step_loss - step_loss != _Z:
            return _Z, t
        total = total + step_loss
    return total / np.float32(nsteps), -1


@njit(cache=True, nogil=True)
def linear_forward(w, x, d, k):
    """Outputs x @ W + b for every row, in the training kernel's order."""
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.float32)
    for r in range(n):
        _affine(w, 0, d * k, x[r], d, k, out[r])
    return out


@njit(cache=True, nogil=True)
def softmax_forward(w, x, d, k):
    """Class probabilities softmax(x @ W + b) for every row."""
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.float32)
    z = np.empty(k, dtype=np.float32)
    for r in range(n):
        _affine(w, 0, d * k, x[r], d, k, z)
        _softmax_probs(z, k, out[r])
    return out


@njit(cache=True, nogil=True)
def mlp_forward(w, x, d, k, h):
    """Class probabilities of the MLP for every row."""
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.float32)
    a = np.empty(h, dtype=np.float32)
    z = np.empty(k, dtype=np.float32)
    o_w2 = d * h + h
    for r in range(n):
        _affine(w, 0, d * h, x[r], d, h, a)
        for j in range(h):
            if not a[j] > _Z:
                a[j] = _Z
        _affine(w, o_w2, o_w2 + h * k, a, h, k, z)
        _softmax_probs(z, k, out[r])
    return out


def batch_indices_hashlib(seed: bytes, first_step: int, num_steps: int, n: int, batch: int) -> np.ndarray:
    """ml_runtime.prf.batch_indices as it was before the compiled blake2b (commit b5fd9a1).

    One ``hashlib`` call per 64-byte block with Python around each; kept to measure "before"
    side by side (benches/prf.py) and as the reference the tests compare the compiled PRF
    with. Same output bits: blake2b(key=seed, person=b"polchain/ml/bat", u64 t || u32 block),
    16 little-endian u32 words per block, rejection sampling below 2**32 - 2**32 mod n.
    """
    limit = 2**32 - (2**32 % n)
    base = hashlib.blake2b(key=seed, person=b"polchain/ml/bat", digest_size=64)
    per_step = -(-batch // 16)
    parts = []
    for t in range(first_step, first_step + num_steps):
        for b in range(per_step):
            h = base.copy()
            h.update(struct.pack("<QI", t, b))
            parts.append(h.digest())
    words = np.frombuffer(b"".join(parts), dtype="<u4").reshape(num_steps, -1)[:, :batch]
    out = (words % np.uint32(n)).astype(np.int64)
    bad_rows: list[int] = []
    if limit < 2**32:
        bad_rows = np.nonzero((words >= np.uint32(limit)).any(axis=1))[0].tolist()
    for r in bad_rows:
        row: list[int] = []
        block = 0
        while len(row) < batch:
            h = base.copy()
            h.update(struct.pack("<QI", first_step + r, block))
            for (word,) in struct.iter_unpack("<I", h.digest()):
                if word < limit and len(row) < batch:
                    row.append(word % n)
            block += 1
        out[r, :] = row
    return out.reshape(-1)
