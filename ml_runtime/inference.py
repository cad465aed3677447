"""Read-only inference with the same bit-exact forward pass the training kernels use."""

from __future__ import annotations

import numpy as np

from ml_runtime import kernels
from ml_runtime.errors import InvalidJob
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
    return np.asarray(out, dtype=np.float32)
