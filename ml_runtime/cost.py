"""Cost model: work units of one SGD step, for the runtime's fees and weights.

A work unit is one float32 multiply-add (or comparable scalar op) in the kernels:

* linear:  B·(2dk + 2k) + 2P  — forward and gradient outer product per sample, the
  squared error, and the update (P = parameter count);
* softmax: B·(2dk + (2 + EXP_UNITS)·k + LOG_UNITS) + 2P — as linear plus exp per class
  and one log per sample;
* mlp:     B·(2dh + 2h + 3hk + (2 + EXP_UNITS)·k + LOG_UNITS) + 2P — two layers forward,
  back-propagation through W2 and both gradient outer products;

with d, k and h each counted at least LANES in the products (short loops do not vectorise).

``NS_PER_UNIT`` converts units to time on the reference machine; it was measured by
``python -m benches.kernels`` (see ``calibrate``) and is for documentation and fee
tuning only: consensus uses the integer units, never a timing.
"""

from __future__ import annotations

from typing import Final

from ml_runtime.errors import InvalidJob
from ml_runtime.spec import ModelSpec

# An exp: range reduction, a degree-7 Horner and the table scale, in strict float32 (no
# vector exp). Counted at 16 until 2026-11-30; a softmax of 2 features and 4,096 classes then
# took 37 us a sample (9 ns a class, about 100 units) where its weight gave 18 units a class
# (a reviewer's finding, scratch widesweep.py): 64.
EXP_UNITS: Final = 64
# The least extent a matrix loop (d, k or h) is counted at in step_cost. The kernels' inner
# loops run over one of them; one shorter than a vector's lanes does a lane's work per element
# and pays the loop around it: a linear model of 4,096 features and one output at a batch of
# 4,096 took 12.9 times its weighed time, and a softmax of 2 features and 4,096 classes 4.8
# times (a reviewer's finding, 2026-11-30; scratch widesweep.py). Counted at 16 (an AVX-512
# register of float32, two AVX2 ones), they are weighed at or above their time; shapes with
# every extent of 16 or more weigh as before, and the reference shape (k = 10) a third more.
LANES: Final = 16
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
# Work units of drawing one sample's row index for an SGD step (ml_runtime.prf.batch_indices:
# a sixteenth of a blake2b compression and a modulo). step_cost counts only the arithmetic,
# so a 1 x 1 linear model at a batch of 4,096 was weighed at 16,388 units a step (1.4 ns at
# NS_PER_UNIT) while drawing its batch took 57 us: a block's weight of such steps ran 9 s
# instead of 0.18 (an outside tester's finding). Measured on the reference machine, 2,000
# steps drawn at a time: 10.0 ns a draw at a batch of 32, 13.9 at 4,096 (2026-11-29), so
# 160 units (13.9 ns).
DRAW_UNITS: Final = 160
# Fixed work units of a training step and of a segment, whatever the model: the kernels' loop
# around a step, and per segment the checkpoint (copied, hashed, its transcript entry) and the
# call into the compiled segment. A 1 x 1 model at a batch of 1 was weighed at 164 units a
# step while a step took 0.23 us and a segment 9.3 us: 1,024 segments of one step ran 16.7 s
# a block's weight (the outside tester's cost_train.py, re-run on this tree). Solved from two
# shapes on the reference machine (2026-11-29: 1,024 steps in 1,024 segments, 9.8 ms; 100,000
# steps in 1,021 segments, 32.2 ms) at NS_PER_UNIT: 2,600 and 107,000 units; rounded up.
STEP_UNITS: Final = 2_600
SEGMENT_UNITS: Final = 110_000
# Work units a parameter costs each step and each segment, beyond step_cost's 2P for the
# update. A step zeroes the gradient, accumulates into it and applies it, streaming every
# weight and gradient through memory; a segment copies and hashes its checkpoint (4 bytes a
# parameter). At a batch of 1 on a model of 2^18 parameters a step took 0.55 ms and a
# one-step segment 3.4 ms more, weighed at 0.10 ms and 9.6 us: a block's weight of such calls
# ran 1-6 s instead of 0.18 (an outside tester's finding, round 4). Measured on the reference
# machine at a batch of 1 (MLP 32 -> h -> 30, h from 16 to 4,096, P from 1,038 to 258,078;
# 200 steps in one segment, then in 200): a step 1.5-2.3 ns a parameter, a segment 5.4-13.2
# ns beyond SEGMENT_UNITS. 22 units (1.9 ns) and 160 (13.9 ns) cover them. At the shapes
# NS_PER_UNIT was measured on (B = 32) the per-sample terms dominate and these add 10-25%:
# small models are now weighed a little above their time rather than large ones far below.
STEP_PARAM_UNITS: Final = 22
SEGMENT_PARAM_UNITS: Final = 160


def train_step_cost(spec: ModelSpec, batch_size: int) -> int:
    """Work units of one SGD step as training runs it: :func:`step_cost`, the drawing of its
    batch (DRAW_UNITS a sample), the step's fixed part (STEP_UNITS) and its memory traffic
    (STEP_PARAM_UNITS a parameter). What TRAIN, a fraud report's re-run and a federated reveal
    weigh, with :func:`segment_cost` a segment; inference and evaluation draw no batch, update
    nothing and run no segments, and weigh step_cost."""
    return step_cost(spec, batch_size) + DRAW_UNITS * batch_size + STEP_UNITS + STEP_PARAM_UNITS * spec.param_count


def segment_cost(spec: ModelSpec) -> int:
    """Work units of one segment besides its steps: SEGMENT_UNITS and its checkpoint's copy and
    hash (SEGMENT_PARAM_UNITS a parameter)."""
    return SEGMENT_UNITS + SEGMENT_PARAM_UNITS * spec.param_count


def train_cost(spec: ModelSpec, batch_size: int, steps: int, segments: int) -> int:
    """Work units of ``steps`` SGD steps in ``segments`` segments: the one formula TRAIN, a fraud
    report's re-run of one segment and a federated reveal weigh."""
    return train_step_cost(spec, batch_size) * steps + segment_cost(spec) * segments


def step_cost(spec: ModelSpec, batch_size: int) -> int:
    """Work units of one SGD step of ``spec`` at ``batch_size``."""
    if not isinstance(spec, ModelSpec):
        raise InvalidJob(f"step_cost needs a ModelSpec, got {type(spec).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidJob(f"batch_size {batch_size!r} must be a positive int")
    d, k, h, p = spec.d, spec.k, spec.h, spec.param_count
    # The matrix loops' extents, each counted as at least LANES (the constant's comment).
    wide_d, wide_k, wide_h = max(d, LANES), max(k, LANES), max(h, LANES)
    if spec.family == "linear":
        per_sample = 2 * wide_d * wide_k + 2 * k
    elif spec.family == "softmax":
        per_sample = 2 * wide_d * wide_k + (2 + EXP_UNITS) * k + LOG_UNITS
    else:
        per_sample = 2 * wide_d * wide_h + 2 * h + 3 * wide_h * wide_k + (2 + EXP_UNITS) * k + LOG_UNITS
    return batch_size * per_sample + 2 * p
