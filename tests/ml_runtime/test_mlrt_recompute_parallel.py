"""recompute_segments: a validator's sampled segments on a thread pool, same bits as serial."""

from __future__ import annotations

import numpy as np
import pytest
from mlrtkit import FAMILIES

import ml_runtime as mr
from ml_runtime.job import MAX_THREADS


def _job(family: str, steps: int = 40, seg: int = 5) -> mr.TrainingJob:
    x, labels = mr.load_digits()
    spec = mr.ModelSpec(family, 64, 10, 16 if family == "mlp" else 0)
    y = np.eye(10, dtype=np.float32)[labels] if family == "linear" else labels
    return mr.TrainingJob(spec, mr.init_weights(spec, b"\x07" * 32), x, y, steps=steps,
                          batch_size=16, lr=0.05, l2=1e-4, seed=b"\x08" * 32, segment_len=seg)


@pytest.mark.parametrize("family", FAMILIES)
def test_parallel_equals_serial_bit_for_bit(family: str) -> None:
    job = _job(family)
    res = mr.run_job(job)
    picks = [6, 0, 3, 7, 3]  # any order, repeats allowed: results follow ``indices``
    cps = [res.checkpoints[j] for j in picks]
    serial = [mr.recompute_segment(job, j, cp) for j, cp in zip(picks, cps, strict=True)]
    for threads in (1, 2, 3, None):
        got = mr.recompute_segments(job, picks, cps, threads=threads)
        assert [e for e, _ in got] == [e for e, _ in serial]
        assert [w.tobytes() for _, w in got] == [w.tobytes() for _, w in serial]
    # And they are the author's transcript entries.
    assert [e for e, _ in serial] == [res.transcript.entries[j + 1] for j in picks]
    for cp, j in zip(cps, picks, strict=True):  # the checkpoints given are not modified
        assert cp.tobytes() == res.checkpoints[j].tobytes()


def test_empty_sample_is_empty() -> None:
    assert mr.recompute_segments(_job("softmax"), [], []) == []


def test_argument_errors_are_specific() -> None:
    job = _job("softmax")
    cp = job.weights
    with pytest.raises(mr.InvalidJob, match="2 segment indices but 1 checkpoints"):
        mr.recompute_segments(job, [0, 1], [cp])
    with pytest.raises(mr.InvalidJob, match=r"threads=0 is outside 1\.\.256"):
        mr.recompute_segments(job, [0, 1], [cp, cp], threads=0)
    with pytest.raises(mr.InvalidJob, match=f"threads={MAX_THREADS + 1} is outside"):
        mr.recompute_segments(job, [0, 1], [cp, cp], threads=MAX_THREADS + 1)
    with pytest.raises(mr.InvalidJob, match="threads must be an int"):
        mr.recompute_segments(job, [0, 1], [cp, cp], threads=2.0)  # type: ignore[arg-type]
    with pytest.raises(mr.InvalidJob, match="needs a TrainingJob"):
        mr.recompute_segments("job", [0], [cp])  # type: ignore[arg-type]
    with pytest.raises(mr.InvalidJob, match=r"segment index 99 is outside 0\.\.7"):
        mr.recompute_segments(job, [0, 99], [cp, cp], threads=2)
    with pytest.raises(mr.InvalidCheckpoint, match="dtype float64"):
        mr.recompute_segments(job, [0, 1], [cp, cp.astype(np.float64)], threads=2)


def test_first_failure_in_index_order_is_raised() -> None:
    """Two diverging segments: the error names the first in ``indices``, as a serial loop would."""
    job = _job("linear", steps=4, seg=1)
    huge = np.full(job.spec.param_count, 3e38, dtype=np.float32)
    good = mr.run_job(job).checkpoints[0]
    with pytest.raises(mr.NonFiniteWeights, match="segment 2 diverged") as exc:
        mr.recompute_segments(job, [1, 2, 3], [good, huge, huge], threads=3)
    assert exc.value.segment == 2


def test_the_rerun_pool_is_kept_for_the_process() -> None:
    # A pool a call paid its threads' start on every block; one is made per thread count and kept.
    job = _job("softmax")
    res = mr.run_job(job)
    mr.recompute_segments(job, [0, 1], res.checkpoints[:2], threads=2)
    pool = mr.get_rerun_pool(2)
    assert mr.get_rerun_pool(2) is pool and mr.get_rerun_pool(3) is not pool
    mr.recompute_segments(job, [0, 1], res.checkpoints[:2], threads=2)
    assert mr.get_rerun_pool(2) is pool
    for bad in (0, MAX_THREADS + 1, True, 2.0):
        with pytest.raises(mr.InvalidJob, match="threads"):
            mr.get_rerun_pool(bad)  # type: ignore[arg-type]
