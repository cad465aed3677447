"""The floating-point environment the kernels need: IEEE 754's default, subnormals kept and
results rounded to nearest, ties to even.

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

:func:`require_default_environment` asks the hardware directly, with :func:`keeps_subnormals`, a
compiled function on operands it cannot fold (a read-only array): about half a
microsecond, so every consensus kernel entry (:func:`ml_runtime.job.run_kernel`, under
training, segment re-runs and ``compute_loss``; :func:`ml_runtime.fedavg.federated_average`)
checks the thread it runs on, per call, and a change of MXCSR after a thread's first call
is caught too. A flushing thread raises :class:`SubnormalsFlushed` before any kernel runs.
The probe measures the thread it runs on, so it must be a call on that thread (numba's
code and NumPy's both run under the thread's MXCSR; with ``NUMBA_DISABLE_JIT=1`` the
probe runs as NumPy scalar code, which the bits affect just the same).

MXCSR's rounding control (RC, bits 13-14) changes every inexact float32 result just as much,
per thread and inherited the same way: C's ``fesetround`` (glibc sets the x87 control word
and MXCSR both), or any library that loads MXCSR, switches a thread to rounding down, up or
toward zero. A thread that rounds otherwise re-ran honest segments to other bits and refused
them as forged (retest53's F1: the per-call check looked at FTZ and DAZ only). So the check
of every kernel call, :func:`require_default_environment`, asks :func:`rounds_to_nearest`
too (another half microsecond), and raises :class:`RoundingChanged`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

from ml_runtime.errors import RoundingChanged, SubnormalsFlushed

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


# The rounding probe's operands: 1, half an ulp of 1 (2**-24), three quarters of one
# (1.5 * 2**-24), and the float32 after 1 (1 + 2**-23). Read-only arguments, as above.
_ROUNDING: Final = np.array([1.0, 2.0**-24, 1.5 * 2.0**-24, 1.0 + 2.0**-23], dtype=np.float32)
_ROUNDING.flags.writeable = False


@njit(cache=True, nogil=True)
def rounds_to_nearest(v):
    """True if this thread rounds to nearest, ties to even (IEEE 754's default, MXCSR's RC 00):
    ``v[0] + v[1]``, 1 and half an ulp, is a tie, which goes to the even 1 (rounding up:
    1 + ulp); ``v[0] + v[2]``, 1 and three quarters of an ulp, goes to 1 + ulp (rounding down
    or toward zero: 1). Either comparison is False under each of the three other modes."""
    tie = v[0] + v[1]
    above = v[0] + v[2]
    return tie == v[0] and above == v[3]


def rounds_otherwise() -> bool:
    """Whether the calling thread rounds otherwise than to nearest, asked of the hardware."""
    return not rounds_to_nearest(_ROUNDING)


def flushes_subnormals() -> bool:
    """Whether the calling thread flushes subnormals (FTZ or DAZ), asked of the hardware."""
    return not keeps_subnormals(_OPERANDS)


def require_default_environment(kernel: str) -> None:
    """Raise :class:`SubnormalsFlushed`, naming ``kernel`` (a family, or "FedAvg"), if the
    calling thread flushes subnormals (FTZ or DAZ), or :class:`RoundingChanged` if it rounds
    otherwise than to nearest."""
    if flushes_subnormals():
        raise SubnormalsFlushed(
            f"the {kernel} kernel: this thread flushes subnormal float32 values to zero (the CPU's FTZ or "
            "DAZ mode is on, e.g. set by a shared library built with -ffast-math), so the "
            "kernels would compute other bits than the network's; refusing to run them. Find "
            "the library that sets MXCSR (a thread inherits it from the thread that started it)"
        )
    if rounds_otherwise():
        raise RoundingChanged(
            f"the {kernel} kernel: this thread rounds float32 results otherwise than to nearest, ties "
            "to even (the CPU's rounding control was changed, e.g. by fesetround in a library), so the "
            "kernels would compute other bits than the network's; refusing to run them. Find the code "
            "that sets the rounding mode (a thread inherits it from the thread that started it)"
        )
