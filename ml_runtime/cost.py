"""Cost model: work units of one SGD step, for the runtime's fees and weights.

A work unit is one float32 multiply-add (or comparable scalar op) in the kernels:

* linear:  B·(2dk + 2k) + 2P  — forward and gradient outer product per sample, the
  squared error, and the update (P = parameter count);
* softmax: B·(2dk + (2 + EXP_UNITS)·k + LOG_UNITS) + 2P — as linear plus exp per class
  and one log per sample;
* mlp:     B·(2dh + 2h + 3hk + (2 + EXP_UNITS)·k + LOG_UNITS) + 2P — two layers forward,
  back-propagation through W2 and both gradient outer products.

``NS_PER_UNIT`` converts units to time on the reference machine; it was measured by
``python -m benches.kernels`` (see ``calibrate``) and is for documentation and fee
tuning only: consensus uses the integer units, never a timing.
"""

from __future__ import annotations

from typing import Final

from ml_runtime.errors import InvalidJob
from ml_runtime.spec import ModelSpec

EXP_UNITS: Final = 16  # range reduction + degree-7 Horner + table scale
LOG_UNITS: Final = 24  # scaling loop + division + degree-4 Horner in s**2

# Nanoseconds per work unit of the numba kernels on the reference machine (2-core x86-64 VM,
# numba 0.68.1), from `polchain bench kernels --reps 5` on the quiet machine (README,
# Performance): the mean over the three families at d=64, k=10, h=32, B=32 of
# 1e9 / (steps/s x step_cost): linear 269,602 steps/s x 42,900 units -> 0.086 ns, softmax
# 201,536 x 48,788 -> 0.102 ns, mlp 76,783 x 175,188 -> 0.074 ns. It was 0.265 before the
# kernels' rework (issue 12); at MNIST sizes a unit is cheaper still (0.029-0.073 ns), as
# the larger loops vectorise better. So the default max_block_weight (2e9 units) is now about
# 0.18 s of training at the small shapes, not the 0.53 s it was set for: a chain that wants
# more training per block raises it by referendum (chain.pallets.democracy).
NS_PER_UNIT: Final = 0.087


def step_cost(spec: ModelSpec, batch_size: int) -> int:
    """Work units of one SGD step of ``spec`` at ``batch_size``."""
    if not isinstance(spec, ModelSpec):
        raise InvalidJob(f"step_cost needs a ModelSpec, got {type(spec).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidJob(f"batch_size {batch_size!r} must be a positive int")
    d, k, h, p = spec.d, spec.k, spec.h, spec.param_count
    if spec.family == "linear":
        per_sample = 2 * d * k + 2 * k
    elif spec.family == "softmax":
        per_sample = 2 * d * k + (2 + EXP_UNITS) * k + LOG_UNITS
    else:
        per_sample = 2 * d * h + 2 * h + 3 * h * k + (2 + EXP_UNITS) * k + LOG_UNITS
    return batch_size * per_sample + 2 * p
