"""Random small training jobs, a twin-driven job runner, and a way to run code on a thread with
x86 FTZ/DAZ set (``run_flushing``), shared by the ml_runtime tests.

Also a script: ``NUMBA_DISABLE_JIT=1 python tests/ml_runtime/mlrtkit.py FAMILY COUNT [shaped]``
runs COUNT random jobs (``make_random_job``, or ``make_shaped_job`` with ``shaped``)
through ``ml_runtime.run_job`` in this process and prints one JSON line per job
(checkpoint hashes, losses, status), so a test can compare a JIT-off run against the
twins bit for bit.
"""

from __future__ import annotations

import json
import platform
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

import ml_runtime as mr
from ml_runtime import twins

FAMILIES = ("linear", "softmax", "mlp")
T = TypeVar("T")


def make_random_job(family: str, seed: int) -> mr.TrainingJob:
    """A small random job; scales span ordinary training up to overflow and divergence."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    d = int(rng.integers(1, 7))
    k = int(rng.integers(1 if family == "linear" else 2, 5))
    h = int(rng.integers(1, 6)) if family == "mlp" else 0
    spec = mr.ModelSpec(family, d, k, h)
    n = int(rng.integers(1, 9))
    x_scale = np.float32(rng.choice([0.1, 1.0, 30.0, 1e4]))
    x = (rng.standard_normal((n, d)) * x_scale).astype(np.float32)
    if family == "linear":
        y = (rng.standard_normal((n, k)) * 3).astype(np.float32)
    else:
        y = rng.integers(0, k, n).astype(np.int32)
    w_scale = np.float32(rng.choice([0.01, 1.0, 20.0, 1e5, 1e36]))
    if rng.random() < 0.3:
        w = mr.init_weights(spec, rng.bytes(32))
    else:
        w = (rng.standard_normal(spec.param_count) * w_scale).astype(np.float32)
    steps = int(rng.integers(1, 5))
    lr = float(10 ** rng.uniform(-3, 4))
    l2 = 0.0 if rng.random() < 0.3 else float(10 ** rng.uniform(-4, 0))
    return mr.TrainingJob(
        spec=spec,
        weights=w,
        x=x,
        y=y,
        steps=steps,
        batch_size=int(rng.integers(1, min(n, 4) + 1)),
        lr=lr,
        l2=l2,
        seed=rng.bytes(32),
        segment_len=int(rng.integers(1, steps + 1)),
    )


def make_shaped_job(family: str, seed: int) -> mr.TrainingJob:
    """A job with the kernels' blocking in mind: d, h and batch up to 23, k up to 12.

    The kernels add four terms per pass over inputs (``_affine_t``) and over samples
    (``_accumulate_t``) and take the remainder one at a time, and the MLP skips inactive
    units; these sizes cover every remainder 0..3 of each, batches larger than the rows
    (rows repeat), several segments, and weights from ordinary to diverging.
    """
    rng = np.random.default_rng([seed, FAMILIES.index(family), 12])
    d = int(rng.integers(1, 24))
    k = int(rng.integers(1 if family == "linear" else 2, 13))
    h = int(rng.integers(1, 24)) if family == "mlp" else 0
    spec = mr.ModelSpec(family, d, k, h)
    n = int(rng.integers(1, 40))
    x = (rng.standard_normal((n, d)) * np.float32(rng.choice([0.1, 1.0, 30.0]))).astype(np.float32)
    if family == "linear":
        y = (rng.standard_normal((n, k)) * 3).astype(np.float32)
    else:
        y = rng.integers(0, k, n).astype(np.int32)
    if rng.random() < 0.6:
        w = mr.init_weights(spec, rng.bytes(32))
    else:
        w = (rng.standard_normal(spec.param_count) * np.float32(rng.choice([0.01, 1.0, 1e5, 1e36]))).astype(np.float32)
    steps = int(rng.integers(1, 5))
    return mr.TrainingJob(
        spec=spec, weights=w, x=x, y=y, steps=steps,
        batch_size=int(rng.integers(1, min(n, 23) + 1)),
        lr=float(10 ** rng.uniform(-3, 3)),
        l2=0.0 if rng.random() < 0.3 else float(10 ** rng.uniform(-4, -1)),
        seed=rng.bytes(32),
        segment_len=int(rng.integers(1, steps + 1)),
    )


def twin_run(job: mr.TrainingJob) -> dict:
    """Run ``job`` segment by segment with the NumPy twins; same summary as ``summary``."""
    w = np.array(job.weights, copy=True)
    hashes = [mr.hash_weights(w).hex()]
    losses = [np.float32(0.0).tobytes().hex()]
    spec = job.spec
    fn = {"linear": twins.linear_segment, "softmax": twins.softmax_segment,
          "mlp": twins.mlp_segment}[spec.family]
    extra = (spec.h,) if spec.family == "mlp" else ()
    for j in range(job.num_segments):
        steps = job.segment_steps(j)
        idx = mr.batch_indices(job.seed, steps.start, len(steps), job.x.shape[0], job.batch_size)
        loss, status = fn(w, job.x, job.y, idx, len(steps), job.batch_size, job.lr, job.l2,
                          spec.d, spec.k, *extra)
        if status >= 0:
            return {"hashes": hashes, "losses": losses, "diverged_step": steps.start + status}
        hashes.append(mr.hash_weights(w).hex())
        losses.append(np.float32(loss).tobytes().hex())
    return {"hashes": hashes, "losses": losses, "diverged_step": None}


# MXCSR, the x86 SSE control register: FTZ (flush-to-zero) is bit 15, DAZ (denormals-are-zero)
# bit 6, the rounding control (RC) bits 13-14: 00 to nearest, 01 down, 10 up, 11 toward zero
# (Intel SDM vol. 1, 10.2.3). A thread's value is its own; a thread it starts inherits it.
FTZ: Final = 0x8000
DAZ: Final = 0x0040
RC_DOWN: Final = 0x2000
RC_UP: Final = 0x4000
RC_ZERO: Final = 0x6000
X86_64: Final = platform.machine().lower() in {"x86_64", "amd64"}


def _mxcsr_call(builder, name: str, slot) -> None:
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.sse.{name}")
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


@intrinsic
def _stmxcsr(typingctx):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def _ldmxcsr(typingctx, value):
    def codegen(context, builder, signature, args):
        _mxcsr_call(builder, "ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


@njit(nogil=True)
def _set_flush_bits(bits):
    _ldmxcsr((_stmxcsr() & np.uint32(0xFFFF1FBF)) | bits)
    return _stmxcsr()


def set_flush_bits(bits: int) -> int:
    """Set this thread's FTZ, DAZ and RC bits to ``bits`` (FTZ | DAZ, one, a RC_* mode, or 0: the
    others cleared) and return its MXCSR: what a shared library built with -ffast-math does
    when it is loaded (crtfastmath.o), or fesetround, done here with LLVM's intrinsics, so no
    C compiler is needed. x86-64 only (X86_64)."""
    return int(_set_flush_bits(np.uint32(bits)))


def run_flushing(bits: int, fn: Callable[[], T]) -> T:
    """``fn()`` on a new thread whose FTZ/DAZ/RC bits are ``bits``; its result, or its exception."""
    out: dict[str, Any] = {}

    def body() -> None:
        set_flush_bits(bits)
        try:
            out["result"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    result: T = out["result"]
    return result


def summary(result: mr.JobResult) -> dict:
    """The bits of a JobResult that twin_run reproduces."""
    return {
        "hashes": [e.weights_hash.hex() for e in result.transcript.entries],
        "losses": [np.float32(e.loss).tobytes().hex() for e in result.transcript.entries],
        "diverged_step": result.diverged_step,
    }


if __name__ == "__main__":
    family, count = sys.argv[1], int(sys.argv[2])
    make = make_shaped_job if sys.argv[3:] == ["shaped"] else make_random_job
    for i in range(count):
        print(json.dumps(summary(mr.run_job(make(family, i)))))
