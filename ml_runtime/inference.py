"""Read-only inference with the same bit-exact forward pass the training kernels use."""

from __future__ import annotations

import numpy as np

from ml_runtime import kernels
from ml_runtime.errors import InvalidJob
from ml_runtime.job import MAX_BATCH, run_kernel
from ml_runtime.spec import ModelSpec


def predict(spec: ModelSpec, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Outputs (linear) or class probabilities (softmax, mlp), float32 of shape (n, k)."""
    if not isinstance(spec, ModelSpec):
        raise InvalidJob(f"predict needs a ModelSpec, got {type(spec).__name__}")
    if not isinstance(weights, np.ndarray) or weights.dtype != np.float32:
        raise InvalidJob("weights must be a float32 numpy array")
    if weights.shape != (spec.param_count,):
        raise InvalidJob(f"weights have shape {weights.shape}; expected ({spec.param_count},)")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != spec.d:
        raise InvalidJob(f"x must be a float32 array of shape (n, {spec.d})")
    # Read-only contiguous copies give the kernels the same argument types as training,
    # so no second specialisation is compiled.
    w = np.array(weights, copy=True)
    xs = np.array(x, order="C", copy=True)
    w.flags.writeable = False
    xs.flags.writeable = False
    with np.errstate(all="ignore"):
        if spec.family == "linear":
            out = kernels.linear_forward(w, xs, spec.d, spec.k)
        elif spec.family == "softmax":
            out = kernels.softmax_forward(w, xs, spec.d, spec.k)
        else:
            out = kernels.mlp_forward(w, xs, spec.d, spec.k, spec.h)
    out = np.asarray(out, dtype=np.float32)
    # One NaN for every CPU: a NaN's bits are the hardware's default NaN (0xffc00000 on x86,
    # 0x7fc00000 on AArch64 and RISC-V), and INFER puts the outputs' bits in its receipt.
    # np.float32("nan") is the canonical quiet NaN, 0x7fc00000, everywhere.
    out[np.isnan(out)] = np.float32("nan")
    return out


def compute_loss(spec: ModelSpec, weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.float32 | None:
    """The mean training loss of ``weights`` over every row of (x, y), or None if it is not
    finite: the number a bounty's target is compared with.

    It is computed by the training kernel itself, as one SGD step whose batch is every row in
    row order at learning rate 0 and decay 0: the step's loss is the mean over the batch in
    the kernel's fixed order, and the weights it "updates" stay what they were (w - 0 x g).
    So it is bit-exact wherever training is (the kernels' twins and golden vectors pin it),
    with no second loss implementation to keep in step. At most MAX_BATCH rows.
    """
    if not isinstance(spec, ModelSpec):
        raise InvalidJob(f"compute_loss needs a ModelSpec, got {type(spec).__name__}")
    if not isinstance(weights, np.ndarray) or weights.dtype != np.float32 or weights.shape != (spec.param_count,):
        raise InvalidJob(f"weights must be float32 of shape ({spec.param_count},)")
    n = x.shape[0] if isinstance(x, np.ndarray) and x.ndim == 2 else 0
    if not 1 <= n <= MAX_BATCH or x.dtype != np.float32 or x.shape[1] != spec.d:
        raise InvalidJob(f"x must be float32 of shape (n, {spec.d}) with 1..{MAX_BATCH} rows")
    w = np.array(weights, copy=True)
    xs = np.array(x, order="C", copy=True)
    ys = np.array(y, order="C", copy=True)
    xs.flags.writeable = ys.flags.writeable = False  # as a TrainingJob's: the one compiled specialisation
    idx = np.arange(n, dtype=np.int64)
    zero = np.float32(0.0)
    loss, status = run_kernel(spec, w, xs, ys, idx, 1, n, zero, zero)
    return None if status >= 0 else loss
