"""Kernels equal their NumPy twins bit for bit: JIT on, and JIT off in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlrtkit import FAMILIES, make_random_job, summary, twin_run

import ml_runtime as mr
from ml_runtime import f32math, twins

REPO = Path(__file__).resolve().parents[2]
JOBS_PER_FAMILY = 300


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=JOBS_PER_FAMILY, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_kernel_equals_twin(family: str, seed: int) -> None:
    job = make_random_job(family, seed)
    assert summary(mr.run_job(job)) == twin_run(job)


@pytest.mark.parametrize("family", FAMILIES)
def test_random_jobs_cover_divergence(family: str) -> None:
    """The generator reaches the non-finite path, so the twin comparison covers it too."""
    outcomes = [summary(mr.run_job(make_random_job(family, s)))["diverged_step"] for s in range(300)]
    assert any(o is not None for o in outcomes)
    assert any(o is None for o in outcomes)


@pytest.mark.parametrize("family", FAMILIES)
def test_jit_disabled_subprocess_equals_twin(family: str) -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("mlrtkit.py")), family, str(JOBS_PER_FAMILY)],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == JOBS_PER_FAMILY
    for seed, line in enumerate(lines):
        job = make_random_job(family, seed)
        assert json.loads(line) == twin_run(job), f"{family} job {seed} differs with JIT off"


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_equals_twin_forward(family: str) -> None:
    for seed in range(40):
        job = make_random_job(family, seed)
        spec = job.spec
        got = mr.predict(spec, job.weights, np.array(job.x))
        want = twins.forward(spec.family, job.weights, job.x, spec.d, spec.k, spec.h)
        want[np.isnan(want)] = np.float32("nan")  # predict gives every NaN as the canonical one
        assert got.dtype == np.float32 and got.shape == (job.x.shape[0], spec.k)
        assert got.tobytes() == want.tobytes()


F32_BITS = st.integers(0, 2**32 - 1).map(lambda b: np.uint32(b).view(np.float32))


@settings(max_examples=2000, deadline=None, database=None)
@given(x=F32_BITS)
def test_exp_log_jit_equal_python_on_any_bits(x: np.float32) -> None:
    with np.errstate(all="ignore"):
        for py, jit in ((f32math.exp32, f32math.exp32_jit), (f32math.log32, f32math.log32_jit)):
            a = np.float32(py(x))
            b = np.float32(jit(x))
            assert a.tobytes() == b.tobytes() or (np.isnan(a) and np.isnan(b))


def test_verify_build_with_jit_disabled() -> None:
    """The pinned golden vector also holds when the kernels run as plain Python."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    script = ("import ml_runtime, ml_runtime.kernels as k, types; "
              "assert isinstance(k.mlp_segment, types.FunctionType); ml_runtime.verify_build()")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
