"""The floating-point environment the kernels need: IEEE 754 subnormals, not flushed.

x86's MXCSR register has two bits that change float32 results without changing any
instruction: FTZ (flush-to-zero: a subnormal result becomes ±0) and DAZ
(denormals-are-zero: a subnormal operand is read as ±0). They are per thread, a new thread
inherits its creator's, and a shared library built with ``-ffast-math``/``-Ofast`` sets
both when it is loaded (its ``crtfastmath.o``), so a dependency or plugin of the node
could switch them on with no change to this package. Subnormals are legal consensus
inputs (a data set's rows, a model's weights) and honest training produces subnormal
weights, so a thread with either bit set computes other training roots, losses and FedAvg
aggregates than the network: it would fork the chain (an outside tester's determinism
round, finding 4: ``ml_runtime.verify_build`` passed on such a thread).

:func:`require_subnormals` asks the hardware directly, with :func:`keeps_subnormals`, a
compiled function on operands it cannot fold (a read-only array): about half a
microsecond, so every consensus kernel entry (:func:`ml_runtime.job.run_kernel`, under
training, segment re-runs and ``compute_loss``; :func:`ml_runtime.fedavg.federated_average`)
checks the thread it runs on, per call, and a change of MXCSR after a thread's first call
is caught too. A flushing thread raises :class:`SubnormalsFlushed` before any kernel runs.
The probe measures the thread it runs on, so it must be a call on that thread (numba's
code and NumPy's both run under the thread's MXCSR; with ``NUMBA_DISABLE_JIT=1`` the
probe runs as NumPy scalar code, which the bits affect just the same).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

from ml_runtime.errors import SubnormalsFlushed

# The probe's operands: a subnormal (2**-140, read as 0 under DAZ), the smallest normal
# float32 and a factor whose product with it is an inexact subnormal (0 under FTZ), and +0.
# Read-only, and an argument: numba freezes a global array's values into constants, which
# LLVM would fold at compile time, under the compiler's environment instead of the thread's.
_OPERANDS: Final = np.array([2.0**-140, 2.0**-126, 0.3, 0.0], dtype=np.float32)
_OPERANDS.flags.writeable = False


@njit(cache=True, nogil=True)
def keeps_subnormals(v):
    """True unless this thread flushes subnormals: ``v[0] + v[3]`` (a subnormal plus +0) is
    +0 under DAZ, and ``v[1] * v[2]`` (a subnormal result) is +0 under FTZ; either way the
    comparison with +0 is False (and DAZ reads a surviving subnormal as 0 in the comparison
    too, so the answer is False whichever of the two bits is set)."""
    a = v[0] + v[3]
    b = v[1] * v[2]
    return a > v[3] and b > v[3]


def flushes_subnormals() -> bool:
    """Whether the calling thread flushes subnormals (FTZ or DAZ), asked of the hardware."""
    return not keeps_subnormals(_OPERANDS)


def require_subnormals(kernel: str) -> None:
    """Raise :class:`SubnormalsFlushed`, naming ``kernel`` (a family, or "FedAvg"), if the
    calling thread flushes subnormals (FTZ or DAZ)."""
    if flushes_subnormals():
        raise SubnormalsFlushed(
            f"the {kernel} kernel: this thread flushes subnormal float32 values to zero (the CPU's FTZ or "
            "DAZ mode is on, e.g. set by a shared library built with -ffast-math), so the "
            "kernels would compute other bits than the network's; refusing to run them. Find "
            "the library that sets MXCSR (a thread inherits it from the thread that started it)"
        )
