"""The batch-at-once kernels keep the per-sample bits on every shape (issue 12).

``ml_runtime.kernels`` works on a whole batch at once: feature-major batch, class-major
activations, gradients and weights, four terms per pass, inactive ReLU units skipped, a
branch-free exp. Each choice is claimed to change no bit; these tests check the claim
against the NumPy twins on shapes that hit every remainder of the blocking, with the JIT
on and off, and check the exp lane against f32math.exp32 on a wide sample of float32 bits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlrtkit import FAMILIES, make_shaped_job, summary, twin_run

import ml_runtime as mr
from ml_runtime import f32math, kernels

REPO = Path(__file__).resolve().parents[2]
SHAPED_JOBS = 25


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=SHAPED_JOBS, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_shaped_job_equals_twin(family: str, seed: int) -> None:
    job = make_shaped_job(family, seed)
    assert summary(mr.run_job(job)) == twin_run(job)


@pytest.mark.parametrize("family", FAMILIES)
def test_shaped_jobs_cover_every_remainder(family: str) -> None:
    """The generator reaches sizes ≡ 0..7 (mod 8): _affine_t takes eight inputs per pass and
    the MLP's output-layer gradient eight samples per pass; and both finite and diverged runs."""
    jobs = [make_shaped_job(family, s) for s in range(40)]
    assert {j.spec.d % 8 for j in jobs} == set(range(8))
    assert {j.batch_size % 8 for j in jobs} == set(range(8))
    assert max(j.batch_size for j in jobs) >= 8 and max(j.spec.k for j in jobs) >= 8
    if family == "mlp":
        assert {j.spec.h % 4 for j in jobs} == {0, 1, 2, 3}
    outcomes = {summary(mr.run_job(j))["diverged_step"] is None for j in jobs}
    assert outcomes == {True, False}


def test_shaped_jobs_with_jit_disabled_equal_twin() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    for family in FAMILIES:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("mlrtkit.py")), family, "6", "shaped"],
            env=env, capture_output=True, text=True, check=True, timeout=240,
        )
        lines = out.stdout.splitlines()
        assert len(lines) == 6
        for seed, line in enumerate(lines):
            assert json.loads(line) == twin_run(make_shaped_job(family, seed)), (family, seed)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="needs the compiled lane")
def test_exp_lane_equals_exp32_on_a_wide_sample_of_bits() -> None:
    """Every 9973rd float32 bit pattern plus the edges: the same bits (any NaN for NaN)."""

    @numba.njit
    def lanes(src: np.ndarray, dst: np.ndarray) -> None:
        for j in range(src.shape[0]):
            dst[j] = kernels._exp32_lane(src[j])

    @numba.njit
    def refs(src: np.ndarray, dst: np.ndarray) -> None:
        for j in range(src.shape[0]):
            dst[j] = f32math.exp32_jit(src[j])

    edges = np.array([88.0, np.nextafter(np.float32(88.0), np.float32(99)), -87.0,
                      np.nextafter(np.float32(-87.0), np.float32(-99)), 0.0, -0.0,
                      np.inf, -np.inf, np.nan, 1e-45, -1e-45, 0.5, -0.5], dtype=np.float32)
    bits = np.arange(0, 2**32, 9973, dtype=np.uint64).astype(np.uint32).view(np.float32)
    src = np.concatenate([bits, edges])
    a, b = np.empty_like(src), np.empty_like(src)
    with np.errstate(all="ignore"):
        lanes(src, a)
        refs(src, b)
    same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
    assert same.all(), src[~same][:5]


def test_exp_lane_as_python_equals_exp32() -> None:
    """With the JIT off the lane runs as Python: still exp32's values."""
    xs = np.array([-87.5, -87.0, -20.25, -1.0, -0.0, 0.0, 1e-3, 3.0, 88.0, 88.5,
                   np.inf, -np.inf], dtype=np.float32)
    lane = getattr(kernels._exp32_lane, "py_func", kernels._exp32_lane)  # plain when JIT is off
    with np.errstate(all="ignore"):
        for x in xs:
            got = np.float32(lane(x))
            want = np.float32(f32math.exp32(x))
            assert got.tobytes() == want.tobytes(), x
        assert np.isnan(lane(np.float32(np.nan)))


def test_mlp_skip_needs_no_negative_zero_sum() -> None:
    """The skip argument: +0 plus ±0 products never yields -0, so dropping ±0 terms is exact."""
    z = np.float32(0.0)
    for prod in (np.float32(-0.0), np.float32(0.0)):
        assert (z + prod).tobytes() == z.tobytes()
    assert (np.float32(-0.0) + np.float32(-0.0)).tobytes() == np.float32(-0.0).tobytes()
