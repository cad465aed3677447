"""The gradient each family applies is the true gradient of its loss (finite differences).

Kernels and twins are checked against each other bit for bit, and the golden vectors pin
their bits; neither says the bits are *right*: a sign error or a missing term written into
both would pass. Here a float64 reference, written in plain vectorised NumPy from the loss
definitions in :class:`ml_runtime.ModelSpec` and sharing no code with the kernels, gives
the gradient by central differences, and one SGD step of the kernel (and of the twin)
must have applied it: with ``w1 = w0 - lr * (g/B + l2 * w0)`` the applied gradient is
``(w0 - w1) / lr`` in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import ml_runtime as mr
from ml_runtime import kernels, selfcheck, twins

FAMILIES = ("linear", "softmax", "mlp")
H = 1e-6  # central-difference step in float64

# Tolerance, per parameter: |applied - reference| <= ATOL + RTOL * |reference|.
# * float32 arithmetic: every +, -, *, / rounds with relative error <= u = 2**-24 (6e-8),
#   exp/log are accurate to a few ulp (ml_runtime.f32math). Each gradient component is a
#   sum over the batch (4 rows) of products through at most d + h + k + 4 < 30 rounded
#   operations, so its error is at most ~30 u times the sum of the magnitudes involved,
#   which is below 5 here (|x| < 2, |w| < 1, probabilities <= 1): 30 * 6e-8 * 5 = 9e-6.
# * recovering it: w1 is rounded to float32, so w0 - w1 is off by up to ulp(w)/2 <= u
#   (|w| < 1), divided by lr = 0.25: 2.4e-7.
# * the reference: central differences have truncation error ~ H**2 * (third derivative)
#   ~ 1e-12 and rounding error ~ 1e-16 * |L| / H ~ 1e-10 in float64.
# Hence ATOL = RTOL = 1e-5 (measured errors: under 2e-7 for every family). A real error in
# a gradient (a sign, a missing term or factor, the L2 term of 1e-3 * w) is far larger, and
# the test requires gradients of at least 0.05 to be present.
ATOL = 1e-5
RTOL = 1e-5
LR = 0.25
L2 = 0.001


def _split(family: str, spec: mr.ModelSpec, w: np.ndarray) -> list[np.ndarray]:
    d, k, h = spec.d, spec.k, spec.h
    if family != "mlp":
        return [w[: d * k].reshape(d, k), w[d * k : d * k + k]]
    o1 = d * h
    o2 = o1 + h
    o3 = o2 + h * k
    return [w[:o1].reshape(d, h), w[o1:o2], w[o2:o3].reshape(h, k), w[o3 : o3 + k]]


def _xent(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return lse - z[np.arange(len(labels)), labels]


def reference_loss(spec: mr.ModelSpec, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean per-sample loss over the rows given, in float64 (ModelSpec's definitions)."""
    parts = _split(spec.family, spec, w)
    if spec.family == "linear":
        out = x @ parts[0] + parts[1]
        return float(np.mean(0.5 * ((out - y) ** 2).sum(axis=1)))
    if spec.family == "softmax":
        return float(np.mean(_xent(x @ parts[0] + parts[1], y)))
    hid = np.maximum(x @ parts[0] + parts[1], 0.0)
    return float(np.mean(_xent(hid @ parts[2] + parts[3], y)))


def reference_gradient(spec: mr.ModelSpec, w0: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Central differences of the float64 loss, plus the L2 term the update adds."""
    w = w0.astype(np.float64)
    g = np.empty_like(w)
    for p in range(len(w)):
        up, down = w.copy(), w.copy()
        up[p] += H
        down[p] -= H
        g[p] = (reference_loss(spec, up, x, y) - reference_loss(spec, down, x, y)) / (2 * H)
    return g + L2 * w


def _one_step_job(family: str) -> mr.TrainingJob:
    job = selfcheck.golden_job(family)  # small, fixed inputs: |x| < 2, |w| < 1
    return mr.TrainingJob(
        spec=job.spec, weights=job.weights, x=job.x, y=job.y, steps=1, batch_size=job.batch_size,
        lr=LR, l2=L2, seed=job.seed, segment_len=1,
    )


ENGINES: dict[str, Callable[..., tuple[float, int]]] = {
    "kernel": lambda fam, *a: getattr(kernels, f"{fam}_segment")(*a),
    "twin": lambda fam, *a: getattr(twins, f"{fam}_segment")(*a),
}


def applied_gradient(engine: str, job: mr.TrainingJob) -> np.ndarray:
    """(w0 - w1) / lr in float64 after one SGD step of ``engine`` on ``job``."""
    spec = job.spec
    idx = mr.batch_indices(job.seed, 0, 1, job.x.shape[0], job.batch_size)
    w = np.array(job.weights, copy=True)
    extra = (spec.h,) if spec.family == "mlp" else ()
    _, status = ENGINES[engine](spec.family, w, job.x, job.y, idx, 1, job.batch_size,
                                job.lr, job.l2, spec.d, spec.k, *extra)
    assert status == -1
    return (job.weights.astype(np.float64) - w.astype(np.float64)) / np.float64(job.lr)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("family", FAMILIES)
def test_one_sgd_step_applies_the_finite_difference_gradient(family: str, engine: str) -> None:
    job = _one_step_job(family)
    spec = job.spec
    rows = mr.batch_indices(job.seed, 0, 1, job.x.shape[0], job.batch_size)
    x = job.x[rows].astype(np.float64)
    y = job.y[rows].astype(np.float64) if family == "linear" else job.y[rows]
    if family == "mlp":  # finite differences need every ReLU away from its kink
        w1, b1 = _split(family, spec, job.weights.astype(np.float64))[:2]
        assert np.abs(x @ w1 + b1).min() > 1e-3
    want = reference_gradient(spec, job.weights, x, y)
    got = applied_gradient(engine, job)
    assert np.abs(want).max() > 0.05, "the check needs gradients well above its tolerance"
    err = np.abs(got - want)
    bad = np.nonzero(err > ATOL + RTOL * np.abs(want))[0]
    assert bad.size == 0, (
        f"{family} {engine}: parameters {bad.tolist()[:8]} applied {got[bad][:4]} where the "
        f"float64 finite-difference gradient is {want[bad][:4]} (max error {err.max():.2e})"
    )

