"""exp and log in float32 built only from + - * / (docs/architecture.md §3).

libm's ``expf``/``logf`` differ between C libraries and CPUs, so consensus code may not
call them. These versions use Cody–Waite range reduction and short polynomials, every
operation an IEEE 754 single-precision +, -, * or / (correctly rounded on every
conforming machine), plus exact conversions between float32 and small integers and
comparisons. Accuracy is a few ulp, which is plenty for training; what matters is that
the bits are the same everywhere.

The functions are written once as plain Python over ``np.float32`` scalars and compiled
by numba (``exp32_jit``/``log32_jit``) for the kernels; the reference twins call the
Python versions, so the same sequence of float32 operations runs under two engines.

Edge behaviour (defined, not left to libm):

* ``exp32(x)`` is ``+inf`` for ``x > 88``, ``+0`` for ``x < -87`` (no subnormal results),
  NaN for NaN.
* ``log32(x)`` is NaN for NaN or ``x < 0``, ``-inf`` for ``x == 0``, ``+inf`` for ``+inf``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

F32 = np.float32

ZERO: Final = F32(0.0)
HALF: Final = F32(0.5)
ONE: Final = F32(1.0)
TWO: Final = F32(2.0)
INF: Final = F32(np.inf)
NAN: Final = F32(np.nan)

# Cody–Waite split of ln 2: LN2_HI has its low 9 mantissa bits zero, so k * LN2_HI is
# exact for |k| <= 2**8 and x - k*LN2_HI loses nothing (Cody & Waite, "Software Manual
# for the Elementary Functions", 1980; the same split as FreeBSD's e_expf.c).
LN2_HI: Final = F32(6.9314575195e-01)  # 0x3f317200
LN2_LO: Final = F32(1.4286067653e-06)  # 0x35bfbe8e
LOG2E: Final = F32(1.4426950216e00)
EXP_MAX: Final = F32(88.0)
EXP_MIN: Final = F32(-87.0)
SQRT2: Final = F32(1.4142135382e00)

# Taylor coefficients 1/n! for n = 7..2, rounded to float32. On |r| <= ln2/2 the
# truncation error r**8/8! is below 6e-9, under float32's half-ulp.
C7: Final = F32(1.0 / 5040.0)
C6: Final = F32(1.0 / 720.0)
C5: Final = F32(1.0 / 120.0)
C4: Final = F32(1.0 / 24.0)
C3: Final = F32(1.0 / 6.0)
C2: Final = F32(0.5)

# atanh series coefficients 2/(2n+1): log(m) = 2*atanh(s), s = (m-1)/(m+1), |s| <= 0.172.
L1: Final = F32(2.0)
L3: Final = F32(2.0 / 3.0)
L5: Final = F32(2.0 / 5.0)
L7: Final = F32(2.0 / 7.0)
L9: Final = F32(2.0 / 9.0)

# 2**k for k = -126..127, exact in float32; indexing a table replaces ldexp.
POW2: Final = np.array([2.0**k for k in range(-126, 128)], dtype=np.float32)
POW2.flags.writeable = False


def exp32(x: np.float32) -> np.float32:
    """e**x in float32 from + - * / only (see module docstring for the edges)."""
    if x != x:
        return x
    if x > EXP_MAX:
        return INF
    if x < EXP_MIN:
        return ZERO
    t = x * LOG2E
    # Round half away from zero; float -> int truncation is exact.
    k = int(t + HALF) if t >= ZERO else int(t - HALF)
    kf = F32(k)
    r = (x - kf * LN2_HI) - kf * LN2_LO
    p = C7
    p = p * r + C6
    p = p * r + C5
    p = p * r + C4
    p = p * r + C3
    p = p * r + C2
    p = p * r + ONE
    p = p * r + ONE
    return p * POW2[k + 126]


def log32(x: np.float32) -> np.float32:
    """Natural log in float32 from + - * / only (see module docstring for the edges)."""
    if x != x:
        return x
    if x < ZERO:
        return NAN
    if x == ZERO:
        return -INF
    if x == INF:
        return INF
    # Scale into [1, 2) by exact multiplications by 2 (also normalises subnormals).
    m = x
    e = 0
    while m >= TWO:
        m = m * HALF
        e += 1
    while m < ONE:
        m = m * TWO
        e -= 1
    if m > SQRT2:
        m = m * HALF
        e += 1
    f = m - ONE
    s = f / (TWO + f)
    z = s * s
    q = L9
    q = q * z + L7
    q = q * z + L5
    q = q * z + L3
    q = q * z + L1
    ef = F32(e)
    return ef * LN2_HI + (ef * LN2_LO + s * q)


exp32_jit = njit(cache=True, nogil=True)(exp32)
log32_jit = njit(cache=True, nogil=True)(log32)
