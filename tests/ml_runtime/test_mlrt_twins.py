"""Kernels equal their NumPy twins bit for bit: JIT on, and JIT off in a subprocess.

Mutation testing of 05eecbd (a segment whose running loss sum overflows diverges there), the
same run as tests/chain/test_block_mutants.py's docstring gives (mut17, 2026-11-30, 18:16-18:19
UTC; in scope the mutants of the lines 05eecbd wrote; the numba kernels are not mutated: mutmut
cannot usefully). Tests: this file's ``-k overflows``, then tests/chain/test_blockchain.py's
``-k "overflows or leaves_out"``. Killed/in scope: twins._run (the ``_update``/``_finite(total)``
check) 14/14; chain.pallets.training._train_or_take (the author's own ``verify_result_shape``)
4/4. No survivors, no test added, no bug found.
"""

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


def _overflowing_sum_job(family: str, segment_len: int) -> mr.TrainingJob:
    """Four steps, each with a finite loss of about 1e38 (linear: half of (1.5e19)^2; softmax
    and MLP: a logit of 1.7e38 against the label's -1e38), so the sum of the losses passes
    float32's largest finite value (3.4e38) at the fourth step (linear) or the second. The
    inputs are 0 and lr tiny, so the weights and the losses stay the same step after step."""
    k = 1 if family == "linear" else 2
    spec = mr.ModelSpec(family, 1, k, 1 if family == "mlp" else 0)
    w = np.zeros(spec.param_count, dtype=np.float32)
    if family == "linear":
        y = np.array([[1.5e19]], dtype=np.float32)
    else:
        w[-2:] = (1.7e38, -1e38)  # the output biases come last in every family's layout
        y = np.array([1], dtype=np.int32)
    return mr.TrainingJob(spec=spec, weights=w, x=np.zeros((1, 1), dtype=np.float32), y=y, steps=4, batch_size=1,
                          lr=1e-30, l2=0.0, seed=bytes(32), segment_len=segment_len)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_segment_whose_loss_sum_overflows_diverges(family: str) -> None:
    """Every step's loss is finite, their sum is not: the segment diverges at the step whose
    loss takes the sum past float32's range, in the kernels and their twins alike. It used to
    commit an infinite mean loss as a finite entry, which every importer refuses
    (verify_result_shape), so one TRAIN split every honest node from its author (an outside
    tester's finding, round 12). One step a segment, the same losses are committed, finite."""
    job = _overflowing_sum_job(family, segment_len=4)
    result = mr.run_job(job)
    assert not result.finite and result.diverged_segment == 0
    assert result.diverged_step == (3 if family == "linear" else 1)
    assert summary(result) == twin_run(job)
    with pytest.raises(mr.NonFiniteWeights):
        mr.recompute_segment(job, 0, job.weights)
    stepwise = mr.run_job(_overflowing_sum_job(family, segment_len=1))
    assert stepwise.finite
    losses = np.array([e.loss for e in stepwise.transcript.entries[1:]], dtype=np.float32)
    assert np.isfinite(losses).all() and (losses > 1e38).all()
    assert summary(stepwise) == twin_run(_overflowing_sum_job(family, segment_len=1))
