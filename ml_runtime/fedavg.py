"""Federated averaging (FedAvg), bit-exact: the aggregate of a federated round.

FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017, Algorithm 1) replaces the model with the average of the
participants' updated weights, each weighted by its sample count n_i: w = sum_i (n_i / N) w_i
with N = sum_i n_i. On chain every node must compute the same bits, so the average follows
the determinism profile of docs/architecture.md §3 exactly:

1. **Counts.** Each n_i is an integer in 1..MAX_SAMPLES and N = sum n_i is at most
   MAX_SAMPLES = 2**24. Every integer up to 2**24 is a float32 exactly, so ``float32(n_i)``
   and ``float32(N)`` are exact conversions, not roundings.
2. **Coefficients.** ``c_i = float32(n_i) / float32(N)``: one IEEE 754 float32 division,
   correctly rounded (round to nearest even). c_i is in (0, 1]; with one update c_0 = 1
   exactly, so the aggregate of one update is that update, bit for bit. The c_i need not
   sum to exactly 1 in float32; the definition is these operations, not the real quotient.
3. **Sum.** For each parameter p, independently: ``acc = +0.0``; then for i = 0, 1, ...
   in the order of the ``updates`` rows, ``acc = acc + c_i * w_i[p]`` (a float32 multiply,
   then a float32 add; no fused multiply-add, no pairwise or vectorised reduction).

Why this order and not ``(sum_i n_i * w_i[p]) / N``: each product c_i * w_i[p] has
magnitude at most |w_i[p]|, so no partial sum of finite weights can overflow unless the
weights themselves are within a factor of the update count of float32's maximum, whereas
n_i * w_i[p] overflows for ordinary weights once n_i is large; and the coefficients are
computed once (u divisions instead of P). The caller fixes the row order (the chain sorts
updates by account id, so the aggregate depends on the set of accepted updates, not on the
order blocks included them). A non-finite result is reported, never hashed (as for
training, NaN payloads are platform-specific).

:func:`ml_runtime.twins.fedavg` is the NumPy scalar twin; the tests compare the two bit for
bit with the JIT on and with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numba import njit

from ml_runtime.errors import InvalidJob, NonFiniteWeights
from ml_runtime.fpenv import require_default_environment

MAX_SAMPLES: Final = 1 << 24  # the largest N for which every count is an exact float32
MAX_UPDATES: Final = 1024


@njit(cache=True, nogil=True)
def fedavg_kernel(updates, counts, total, out):
    """out[p] = sum_i (f32(counts[i]) / f32(total)) * updates[i, p], accumulated in row order.

    ``updates`` float32 (u, P), ``counts`` int64 (u,), ``total`` = sum(counts) as int64,
    ``out`` float32 (P,). Returns -1 if every output is finite, else the first parameter
    index whose result is not.
    """
    u = updates.shape[0]
    n_params = updates.shape[1]
    denom = np.float32(total)
    coef = np.empty(u, dtype=np.float32)
    for i in range(u):
        coef[i] = np.float32(counts[i]) / denom
    status = -1
    for p in range(n_params):
        acc = np.float32(0.0)
        for i in range(u):
            acc = acc + coef[i] * updates[i, p]
        out[p] = acc
        if status < 0 and acc - acc != np.float32(0.0):  # inf - inf and NaN - NaN are NaN
            status = p
    return status


def verify_inputs(updates: Sequence[np.ndarray], counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Check and stack the inputs of :func:`federated_average`; InvalidJob says what is wrong.

    At least one update and at most MAX_UPDATES; every update a finite float32 vector of one
    common length; every count an int in 1..MAX_SAMPLES with a sum of at most MAX_SAMPLES.
    """
    if not 1 <= len(updates) <= MAX_UPDATES:
        raise InvalidJob(f"FedAvg needs 1..{MAX_UPDATES} updates, got {len(updates)}")
    if len(counts) != len(updates):
        raise InvalidJob(f"{len(updates)} updates but {len(counts)} sample counts")
    first = updates[0]
    for i, w in enumerate(updates):
        if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.ndim != 1:
            raise InvalidJob(f"update {i} must be a 1-D float32 numpy array")
        if w.shape != first.shape:
            raise InvalidJob(f"update {i} has {w.shape[0]} parameters; update 0 has {first.shape[0]}")
        if not np.isfinite(w).all():
            raise InvalidJob(f"update {i} contains NaN or infinity")
    total = 0
    for i, n in enumerate(counts):
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or not 1 <= int(n) <= MAX_SAMPLES:
            raise InvalidJob(f"sample count {i} must be an int in 1..{MAX_SAMPLES}, got {n!r}")
        total += int(n)
    if total > MAX_SAMPLES:
        raise InvalidJob(f"the sample counts sum to {total}; at most {MAX_SAMPLES}")
    stacked = np.ascontiguousarray(np.stack(updates), dtype=np.float32)
    return stacked, np.asarray([int(n) for n in counts], dtype=np.int64), total


def federated_average(updates: Sequence[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    """FedAvg of ``updates`` weighted by ``counts``, in the given order (see the module doc).

    Raises InvalidJob for bad inputs and NonFiniteWeights (segment 0, step = the parameter
    index) if a result overflows, and FloatEnvironmentChanged (not an MLRuntimeError: no verdict
    on the round) on a thread that flushes subnormals or rounds otherwise (ml_runtime.fpenv).
    """
    stacked, cnt, total = verify_inputs(updates, counts)
    require_default_environment("FedAvg")
    out = np.empty(stacked.shape[1], dtype=np.float32)
    with np.errstate(all="ignore"):  # only matters with NUMBA_DISABLE_JIT=1
        status = int(fedavg_kernel(stacked, cnt, np.int64(total), out))
    if status >= 0:
        raise NonFiniteWeights(f"the federated average of parameter {status} is not finite", segment=0, step=status)
    return out
