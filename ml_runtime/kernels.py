"""Bit-exact SGD kernels, compiled by numba.

One kernel per family runs a whole segment (many SGD steps) per call, so Python's
overhead is paid once per segment. Consensus rules (docs/architecture.md §3), and how they are kept:

* float32 only: every constant is an ``np.float32`` global (numba freezes it as a float32
  constant; a bare ``0.5`` would be float64 and promote the expression);
* fixed order: every sum is a plain sequential loop. Without ``fastmath`` LLVM neither
  reassociates nor contracts ``a*b + c`` into an FMA, so the order written is the order
  run. Loops are arranged so the innermost loop updates independent accumulators; LLVM
  may vectorise those, which changes no bits;
* no ``parallel``/``prange``, no BLAS, no libm: exp/log come from :mod:`ml_runtime.f32math`
  (exp through :func:`_exp32_lane`, the same operations written without branches);
* ``nogil=True``: a kernel touches only arrays and float32 scalars, never a Python
  object, so it runs with the GIL released. The node builds blocks in a worker thread;
  a kernel holding the GIL would stop its event loop (and every RPC caller) for the
  whole segment. Releasing the GIL changes only the CPython wrapper, not the compiled
  arithmetic, so no bit changes (the golden vectors and twin tests check this). It also
  lets a validator re-run several segments at once on threads
  (:func:`ml_runtime.job.recompute_segments`).

SGD step t, with batch rows r_0..r_{B-1} (from the batch PRF) and weights w:

    g  = sum over samples in batch order of the per-sample gradient (at w)
    w' = w - lr * (g * (1/B) + l2 * w)        for every parameter, biases included
    loss_t = (sum over samples in batch order of the per-sample loss) * (1/B)

A segment returns ``(sum_t loss_t) / nsteps`` (sequential) and a status: -1 when every
step finished with finite weights and the running sum ``loss_0 + ... + loss_t`` stayed
finite, else the index within the segment of the first step whose updated weights or
running sum are not finite (the kernel stops there; the partially updated weights are
meaningless and must be discarded). The running sum, not each step's loss: step losses of
about 1e38, each finite, overflowed the sum, and the segment committed an infinite mean
that every importer refuses (chain.pallets.training.verify_result_shape), so one TRAIN
split every honest node from the block's author (an outside tester's finding, round 12).
A sum that stays finite implies every loss in it is finite (finite + inf or NaN is not
finite), and its mean ``sum / nsteps`` (nsteps >= 1) is then finite too.

Layout (why it is fast, and why the bits are those of the per-sample formulation that
:mod:`ml_runtime.twins` spells out): a step works on the whole batch at once.

* The batch rows are gathered once per step, feature-major (``xt[i, s]``), so the
  forward sums ``z[c, s] = b[c] + x_s0*W[0,c] + x_s1*W[1,c] + ...`` run their innermost
  loop over the samples s: B independent sums, each still taken over i in order. Eight
  (or four) terms go in per pass as ``(((z + t0) + t1) + ...)``, the same order with a
  load and store of z per eight terms instead of per term.
* Activations and output gradients are class-major (``z[c, s]``), so softmax's loops
  also run over independent samples; exp is :func:`_exp32_lane`, exp32 without branches,
  which LLVM vectorises.
* Inside a segment the weight matrices are held class-major (``wt[c, i]``, the transpose
  of the canonical ``W[i, c]``) and so are their gradients (``gt[c, i]``): adding the
  samples' ``x_s ⊗ dz_s`` is a contiguous loop over i, four samples per pass in batch
  order, each ``gt[c, i]`` summed from +0; the update is a contiguous loop. The segment
  transposes W in at its start and out at its end (two exact copies per segment, about
  2P loads and stores, counted in the benchmark figures), so ``w`` leaves in the
  canonical layout of :mod:`ml_runtime.spec`, the layout that is hashed.
* Scratch arrays are allocated once per segment, never per step.
* The MLP's output-layer gradient sums its own hidden rows (sample-major scratch, no row
  map) eight samples per pass (:func:`_accumulate_own_t`).
* Every step helper is compiled with numba's ``noalias`` flag (:class:`_NoAlias`): its
  loops then vectorise without run-time overlap checks. That was worth 10–13% per family at
  the benchmark shapes, more than any loop order tried (sample-major MLP layers, sixteen
  terms per pass, two classes per loop, a branch-free log: all slower here).

Each arrangement changes which independent sums are computed together, never the
order of the terms within one sum, so the bits are those of the per-sample loops; the
twin tests check it on shapes that hit every remainder of the blocking, with the JIT on
and off (``tests/ml_runtime/test_mlrt_kernel_layout.py``), and the golden vectors pin it.

:mod:`ml_runtime.twins` holds the same computations written as plain NumPy scalar code.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit
from numba.core.compiler import Compiler

from ml_runtime.f32math import (
    C2,
    C3,
    C4,
    C5,
    C6,
    C7,
    EXP_MAX,
    EXP_MIN,
    INF,
    LN2_HI,
    LN2_LO,
    LOG2E,
    POW2,
    exp32_jit,
    log32_jit,
)

_Z: Final = np.float32(0.0)
_HALF: Final = np.float32(0.5)
_ONE: Final = np.float32(1.0)


class _NoAlias(Compiler):
    """numba's compiler with its ``noalias`` flag set: every pointer argument of the compiled
    function is marked ``noalias`` in LLVM (numba sets the flag itself for its parallel
    gufuncs; ``njit`` has no option for it, hence the pipeline class).

    Used only on the step helpers below, and true for each by construction: a helper writes
    only scratch arrays that its segment kernel allocated (or ``w`` while reading only such
    scratch), never memory that another of its arguments reaches. Without the promise LLVM
    guards every vectorised inner loop with run-time overlap checks of the stored row
    against each loaded one (about a hundred instructions per call of a 32- or 64-long
    loop) and, past eight pointers, does not vectorise at all. The attribute changes which
    loads may be reordered past stores, never an arithmetic operation, so no bit changes
    (the twins and golden vectors check it; ``tests/ml_runtime/test_mlrt_compiled_ir.py``
    checks the IR has no fast-math flags).
    """

    def __init__(self, typingctx, targetctx, library, args, return_type, flags, locals):
        flags = flags.copy()
        flags.noalias = True
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


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


@njit(cache=True, nogil=True, inline="always")
def _exp32_lane(x):
    """:func:`ml_runtime.f32math.exp32`, bit for bit, without branches (so LLVM vectorises it).

    exp32 returns early for NaN (x itself), x > 88 (+inf) and x < -87 (+0). Here the
    ordinary path runs on x clamped into [-87, 88] — equal to x whenever exp32 takes that
    path, so the same float32 operations on the same value — and the three edge results
    are selected afterwards. The clamp keeps k in -126..127, so POW2[k + 126] is always
    in the table; int32 truncation of |tt| < 128 is the same as exp32's int(). A test
    compares the two on every 97th float32 bit pattern and on the edges.
    """
    xc = x if x < EXP_MAX else EXP_MAX
    xc = xc if xc > EXP_MIN else EXP_MIN
    t = xc * LOG2E
    tt = t + _HALF if t >= _Z else t - _HALF
    k = np.int32(tt)
    kf = np.float32(k)
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = C7
    p = p * r + C6
    p = p * r + C5
    p = p * r + C4
    p = p * r + C3
    p = p * r + C2
    p = p * r + _ONE
    p = p * r + _ONE
    e = p * POW2[k + 126]
    e = INF if x > EXP_MAX else e
    e = _Z if x < EXP_MIN else e
    return x if x != x else e


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _gather_t(x, idx, base, batch, d, xt):
    """xt[i, s] = x[idx[base + s], i]: the step's batch, feature-major (exact copies).

    Four rows per pass over i, so each row of xt is written four values at a time.
    """
    b4 = batch - batch % 4
    for s in range(0, b4, 4):
        x0 = x[idx[base + s]]
        x1 = x[idx[base + s + 1]]
        x2 = x[idx[base + s + 2]]
        x3 = x[idx[base + s + 3]]
        for i in range(d):
            xi = xt[i]
            xi[s] = x0[i]
            xi[s + 1] = x1[i]
            xi[s + 2] = x2[i]
            xi[s + 3] = x3[i]
    for s in range(b4, batch):
        xr = x[idx[base + s]]
        for i in range(d):
            xt[i, s] = xr[i]


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _transpose(src, rows, cols, dst):
    """dst[c, r] = src[r, c] (exact copies), four source rows per pass."""
    r4 = rows - rows % 4
    for r in range(0, r4, 4):
        s0 = src[r]
        s1 = src[r + 1]
        s2 = src[r + 2]
        s3 = src[r + 3]
        for c in range(cols):
            dc = dst[c]
            dc[r] = s0[c]
            dc[r + 1] = s1[c]
            dc[r + 2] = s2[c]
            dc[r + 3] = s3[c]
    for r in range(r4, rows):
        sr = src[r]
        for c in range(cols):
            dst[c, r] = sr[c]


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _affine_t(wt, w, o_b, srct, n_in, n_out, batch, out):
    """out[c, s] = b[c] + src[s,0]*W[0,c] + src[s,1]*W[1,c] + ... (left to right in i).

    ``wt`` is W class-major (n_out × n_in), ``b`` is ``w[o_b:o_b + n_out]``, ``srct``
    feature-major (n_in × batch) and ``out`` class-major (n_out × batch): the innermost
    loop runs over the samples, independent sums. Eight (then four) terms are added per
    pass, still one after the other in i (``((o + t0) + t1) + ...``), so out is loaded
    and stored once per eight terms; the n_in % 4 last terms take one pass each.
    """
    for c in range(n_out):
        bc = w[o_b + c]
        oc = out[c]
        for s in range(batch):
            oc[s] = bc
    n8 = n_in - n_in % 8
    for i in range(0, n8, 8):
        x0 = srct[i]
        x1 = srct[i + 1]
        x2 = srct[i + 2]
        x3 = srct[i + 3]
        x4 = srct[i + 4]
        x5 = srct[i + 5]
        x6 = srct[i + 6]
        x7 = srct[i + 7]
        for c in range(n_out):
            wc = wt[c]
            w0 = wc[i]
            w1 = wc[i + 1]
            w2 = wc[i + 2]
            w3 = wc[i + 3]
            w4 = wc[i + 4]
            w5 = wc[i + 5]
            w6 = wc[i + 6]
            w7 = wc[i + 7]
            oc = out[c]
            for s in range(batch):
                oc[s] = (((((((oc[s] + x0[s] * w0) + x1[s] * w1) + x2[s] * w2) + x3[s] * w3)
                           + x4[s] * w4) + x5[s] * w5) + x6[s] * w6) + x7[s] * w7
    n4 = n_in - n_in % 4
    for i in range(n8, n4, 4):
        x0 = srct[i]
        x1 = srct[i + 1]
        x2 = srct[i + 2]
        x3 = srct[i + 3]
        for c in range(n_out):
            wc = wt[c]
            w0 = wc[i]
            w1 = wc[i + 1]
            w2 = wc[i + 2]
            w3 = wc[i + 3]
            oc = out[c]
            for s in range(batch):
                oc[s] = (((oc[s] + x0[s] * w0) + x1[s] * w1) + x2[s] * w2) + x3[s] * w3
    for i in range(n4, n_in):
        si = srct[i]
        for c in range(n_out):
            wic = wt[c, i]
            oc = out[c]
            for s in range(batch):
                oc[s] = oc[s] + si[s] * wic


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _to_class_major(w, o_w, n_in, n_out, wt):
    """wt[c, i] = W[i, c] for the canonical row-major W at ``w[o_w:]`` (exact copies)."""
    for i in range(n_in):
        p0 = o_w + i * n_out
        for c in range(n_out):
            wt[c, i] = w[p0 + c]


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _to_canonical(wt, n_in, n_out, o_w, w):
    """W[i, c] = wt[c, i]: back to the canonical layout that is hashed (spec.py)."""
    for i in range(n_in):
        p0 = o_w + i * n_out
        for c in range(n_out):
            w[p0 + c] = wt[c, i]


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _accumulate_t(gt, gb, src, rowmap, dzt, n_in, n_out, batch, skip_zero, live):
    """gt[c, i] += src[rowmap[s], i] * dz[c, s] and gb[c] += dz[c, s], s in batch order.

    ``gt`` is the weight gradient class-major (n_out × n_in) and must hold +0 on entry
    (:func:`_update_t` leaves it so); ``gb`` is written; ``live`` is scratch (batch).
    The innermost loop runs over i (independent sums); four samples are added per pass,
    still one after the other in batch order (``((g + t0) + t1) + ...``).

    With ``skip_zero`` a term whose dz is ±0 is left out, which changes no bit when
    ``src`` is finite (only the job's data x, which :class:`ml_runtime.job.TrainingJob`
    checks): the sums start at +0, a round-to-nearest sum is -0 only when both operands
    are -0, so they are never -0, and adding x*(±0) = ±0 to anything that is not -0
    returns it unchanged. In the MLP about half the hidden units are inactive (ReLU) for
    each sample, so about half the work goes.
    """
    # Bias: gb[c] = dz[c, 0] + dz[c, 1] + ... from +0; s outer so that the n_out sums
    # advance side by side instead of one long chain of dependent adds at a time.
    for c in range(n_out):
        gb[c] = _Z
    for s in range(batch):
        for c in range(n_out):
            gb[c] = gb[c] + dzt[c, s]
    for c in range(n_out):
        dc = dzt[c]
        n = 0
        for s in range(batch):  # branch-free: a skipped s is overwritten by the next one
            live[n] = s
            n += 0 if skip_zero and dc[s] == _Z else 1
        row = gt[c]
        n4 = n - n % 4
        for q in range(0, n4, 4):
            s0 = live[q]
            s1 = live[q + 1]
            s2 = live[q + 2]
            s3 = live[q + 3]
            d0 = dc[s0]
            d1 = dc[s1]
            d2 = dc[s2]
            d3 = dc[s3]
            x0 = src[rowmap[s0]]
            x1 = src[rowmap[s1]]
            x2 = src[rowmap[s2]]
            x3 = src[rowmap[s3]]
            for i in range(n_in):
                row[i] = (((row[i] + x0[i] * d0) + x1[i] * d1) + x2[i] * d2) + x3[i] * d3
        for q in range(n4, n):
            s0 = live[q]
            d0 = dc[s0]
            x0 = src[rowmap[s0]]
            for i in range(n_in):
                row[i] = row[i] + x0[i] * d0


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _accumulate_own_t(gt, gb, src, dzt, n_in, n_out, batch):
    """gt[c, i] = sum_s src[s, i] * dz[c, s] and gb[c] = sum_s dz[c, s], from +0 in batch order.

    :func:`_accumulate_t`'s sums for a source that is the step's own sample-major scratch
    (the MLP's hidden activations): no row map, no skipping, and eight samples per pass
    (``((g + t0) + t1) + ...``, still in batch order), which halves the passes over each
    row. Writes ``gt`` (which need not be zero on entry) and ``gb``.
    """
    for c in range(n_out):
        gb[c] = _Z
    for s in range(batch):
        for c in range(n_out):
            gb[c] = gb[c] + dzt[c, s]
    b8 = batch - batch % 8
    for c in range(n_out):
        dc = dzt[c]
        row = gt[c]
        for i in range(n_in):
            row[i] = _Z
        for q in range(0, b8, 8):
            d0 = dc[q]
            d1 = dc[q + 1]
            d2 = dc[q + 2]
            d3 = dc[q + 3]
            d4 = dc[q + 4]
            d5 = dc[q + 5]
            d6 = dc[q + 6]
            d7 = dc[q + 7]
            x0 = src[q]
            x1 = src[q + 1]
            x2 = src[q + 2]
            x3 = src[q + 3]
            x4 = src[q + 4]
            x5 = src[q + 5]
            x6 = src[q + 6]
            x7 = src[q + 7]
            for i in range(n_in):
                row[i] = (((((((row[i] + x0[i] * d0) + x1[i] * d1) + x2[i] * d2) + x3[i] * d3)
                            + x4[i] * d4) + x5[i] * d5) + x6[i] * d6) + x7[i] * d7
        for q in range(b8, batch):
            d0 = dc[q]
            x0 = src[q]
            for i in range(n_in):
                row[i] = row[i] + x0[i] * d0


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _update_t(wt, gt, w, o_b, gb, n_in, n_out, inv_b, lr, l2):
    """w <- w - lr*(g/B + l2*w) for one layer, weights and gradient both class-major.

    Zeroes ``gt`` for the next step. Returns False if any new weight is not finite:
    x - x is 0 for finite x and NaN for ±inf/NaN, and NaN != 0; LLVM keeps the test
    without fastmath.
    """
    ok = True
    for c in range(n_out):
        wr = wt[c]
        gr = gt[c]
        for i in range(n_in):
            wp = wr[i]
            nw = wp - lr * (gr[i] * inv_b + l2 * wp)
            ok = ok & (nw - nw == _Z)
            wr[i] = nw
            gr[i] = _Z
    for c in range(n_out):
        wp = w[o_b + c]
        nw = wp - lr * (gb[c] * inv_b + l2 * wp)
        ok = ok & (nw - nw == _Z)
        w[o_b + c] = nw
    return ok


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _softmax_xent_t(z, y, idx, base, n_cls, batch, m, tot, p):
    """Per sample s: p[:, s] = softmax(z[:, s]) - onehot(label_s); returns the loss sum.

    The operations of :func:`_softmax_probs` per sample — max, exp(z - max), their sum
    in class order, division, then the label's -1 — with loss = log(sum) - (z_label -
    max), so the log argument is in [1, n_cls]. Class-major, so every loop but the last
    runs over independent samples; the losses are summed in batch order.
    """
    z0 = z[0]
    for s in range(batch):
        m[s] = z0[s]
        tot[s] = _Z
    for c in range(1, n_cls):
        zc = z[c]
        for s in range(batch):
            v = zc[s]
            m[s] = v if v > m[s] else m[s]
    for c in range(n_cls):
        zc = z[c]
        pc = p[c]
        for s in range(batch):
            pc[s] = _exp32_lane(zc[s] - m[s])
        for s in range(batch):
            tot[s] = tot[s] + pc[s]
    for c in range(n_cls):
        pc = p[c]
        for s in range(batch):
            pc[s] = pc[s] / tot[s]
    lsum = _Z
    for s in range(batch):
        lab = y[idx[base + s]]
        p[lab, s] = p[lab, s] - _ONE
        lsum = lsum + (log32_jit(tot[s]) - (z[lab, s] - m[s]))
    return lsum


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _relu_t(a, h, batch, hid):
    """hid[j, s] = a[j, s] if a[j, s] > 0 else +0 (NaN gives +0; the step's checks catch it)."""
    for j in range(h):
        aj = a[j]
        hj = hid[j]
        for s in range(batch):
            v = aj[s]
            hj[s] = v if v > _Z else _Z


@njit(cache=True, nogil=True, pipeline_class=_NoAlias)
def _backprop_hidden_t(w2, p, a, h, k, batch, da):
    """Back-propagate through W2 with the pre-update weights: for an active unit
    da[j, s] = sum_c dz[c, s] * W2[j, c] from +0 in class order, else +0.

    ``w2`` is W2 class-major (k × h), ``p`` the output gradient dz (k × batch), ``a`` the
    pre-activations (h × batch). Four classes per pass, still added in class order.
    """
    k4 = k - k % 4
    for j in range(h):
        dj = da[j]
        for s in range(batch):
            dj[s] = _Z
        for c in range(0, k4, 4):
            v0 = w2[c, j]
            v1 = w2[c + 1, j]
            v2 = w2[c + 2, j]
            v3 = w2[c + 3, j]
            p0 = p[c]
            p1 = p[c + 1]
            p2 = p[c + 2]
            p3 = p[c + 3]
            for s in range(batch):
                dj[s] = (((dj[s] + p0[s] * v0) + p1[s] * v1) + p2[s] * v2) + p3[s] * v3
        for c in range(k4, k):
            wjc = w2[c, j]
            pc = p[c]
            for s in range(batch):
                dj[s] = dj[s] + pc[s] * wjc
        aj = a[j]
        for s in range(batch):
            dj[s] = dj[s] if aj[s] > _Z else _Z


@njit(cache=True, nogil=True)
def linear_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Run ``nsteps`` SGD steps of least squares in place on ``w``; see module doc."""
    xt = np.empty((d, batch), dtype=np.float32)
    z = np.empty((k, batch), dtype=np.float32)
    sq = np.empty(batch, dtype=np.float32)
    gt = np.zeros((k, d), dtype=np.float32)
    gb = np.empty(k, dtype=np.float32)
    live = np.empty(batch, dtype=np.int64)
    wt = np.empty((k, d), dtype=np.float32)
    _to_class_major(w, 0, d, k, wt)
    inv_b = _ONE / np.float32(batch)
    o_b = d * k
    total = _Z
    for t in range(nsteps):
        base = t * batch
        rowmap = idx[base : base + batch]
        _gather_t(x, idx, base, batch, d, xt)
        _affine_t(wt, w, o_b, xt, d, k, batch, z)
        # Per sample: e = out - y, acc = e_0² + e_1² + ... from +0 in class order; the
        # samples side by side, then the losses summed in batch order.
        for s in range(batch):
            sq[s] = _Z
        for c in range(k):
            zc = z[c]
            for s in range(batch):
                e = zc[s] - y[rowmap[s], c]
                zc[s] = e
                sq[s] = sq[s] + e * e
        lsum = _Z
        for s in range(batch):
            lsum = lsum + _HALF * sq[s]
        _accumulate_t(gt, gb, x, rowmap, z, d, k, batch, False, live)
        step_loss = lsum * inv_b
        ok = _update_t(wt, gt, w, o_b, gb, d, k, inv_b, lr, l2)
        total = total + step_loss
        if not ok or total - total != _Z:
            _to_canonical(wt, d, k, 0, w)
            return _Z, t
    _to_canonical(wt, d, k, 0, w)
    return total / np.float32(nsteps), -1


@njit(cache=True, nogil=True)
def softmax_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k):
    """Run ``nsteps`` SGD steps of multinomial logistic regression in place on ``w``."""
    xt = np.empty((d, batch), dtype=np.float32)
    z = np.empty((k, batch), dtype=np.float32)
    p = np.empty((k, batch), dtype=np.float32)
    m = np.empty(batch, dtype=np.float32)
    tot = np.empty(batch, dtype=np.float32)
    gt = np.zeros((k, d), dtype=np.float32)
    gb = np.empty(k, dtype=np.float32)
    live = np.empty(batch, dtype=np.int64)
    wt = np.empty((k, d), dtype=np.float32)
    _to_class_major(w, 0, d, k, wt)
    inv_b = _ONE / np.float32(batch)
    o_b = d * k
    total = _Z
    for t in range(nsteps):
        base = t * batch
        _gather_t(x, idx, base, batch, d, xt)
        _affine_t(wt, w, o_b, xt, d, k, batch, z)
        lsum = _softmax_xent_t(z, y, idx, base, k, batch, m, tot, p)
        _accumulate_t(gt, gb, x, idx[base : base + batch], p, d, k, batch, False, live)
        step_loss = lsum * inv_b
        ok = _update_t(wt, gt, w, o_b, gb, d, k, inv_b, lr, l2)
        total = total + step_loss
        if not ok or total - total != _Z:
            _to_canonical(wt, d, k, 0, w)
            return _Z, t
    _to_canonical(wt, d, k, 0, w)
    return total / np.float32(nsteps), -1


@njit(cache=True, nogil=True)
def mlp_segment(w, x, y, idx, nsteps, batch, lr, l2, d, k, h):
    """Run ``nsteps`` SGD steps of the one-hidden-layer ReLU MLP in place on ``w``."""
    xt = np.empty((d, batch), dtype=np.float32)
    a = np.empty((h, batch), dtype=np.float32)
    hid = np.empty((h, batch), dtype=np.float32)
    hs = np.empty((batch, h), dtype=np.float32)
    da = np.empty((h, batch), dtype=np.float32)
    z = np.empty((k, batch), dtype=np.float32)
    p = np.empty((k, batch), dtype=np.float32)
    m = np.empty(batch, dtype=np.float32)
    tot = np.empty(batch, dtype=np.float32)
    g1 = np.zeros((h, d), dtype=np.float32)
    gb1 = np.empty(h, dtype=np.float32)
    g2 = np.zeros((k, h), dtype=np.float32)
    gb2 = np.empty(k, dtype=np.float32)
    live = np.empty(batch, dtype=np.int64)
    w1 = np.empty((h, d), dtype=np.float32)
    w2 = np.empty((k, h), dtype=np.float32)
    inv_b = _ONE / np.float32(batch)
    o_b1 = d * h
    o_w2 = o_b1 + h
    o_b2 = o_w2 + h * k
    _to_class_major(w, 0, d, h, w1)
    _to_class_major(w, o_w2, h, k, w2)
    total = _Z
    for t in range(nsteps):
        base = t * batch
        _gather_t(x, idx, base, batch, d, xt)
        _affine_t(w1, w, o_b1, xt, d, h, batch, a)
        _relu_t(a, h, batch, hid)
        _transpose(hid, h, batch, hs)
        _affine_t(w2, w, o_b2, hid, h, k, batch, z)
        lsum = _softmax_xent_t(z, y, idx, base, k, batch, m, tot, p)
        _backprop_hidden_t(w2, p, a, h, k, batch, da)
        _accumulate_own_t(g2, gb2, hs, p, h, k, batch)
        _accumulate_t(g1, gb1, x, idx[base : base + batch], da, d, h, batch, True, live)
        step_loss = lsum * inv_b
        ok1 = _update_t(w1, g1, w, o_b1, gb1, d, h, inv_b, lr, l2)
        ok2 = _update_t(w2, g2, w, o_b2, gb2, h, k, inv_b, lr, l2)
        total = total + step_loss
        if not (ok1 and ok2) or total - total != _Z:
            _to_canonical(w1, d, h, 0, w)
            _to_canonical(w2, h, k, o_w2, w)
            return _Z, t
    _to_canonical(w1, d, h, 0, w)
    _to_canonical(w2, h, k, o_w2, w)
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
