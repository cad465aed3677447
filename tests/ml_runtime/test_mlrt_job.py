"""Training jobs: validation, run_job, segment re-execution, forgery and divergence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ml_runtime as mr
from ml_runtime.selfcheck import golden_job

SPEC = mr.ModelSpec("softmax", 3, 2)


def _kwargs(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "spec": SPEC,
        "weights": np.zeros(SPEC.param_count, dtype=np.float32),
        "x": np.ones((5, 3), dtype=np.float32),
        "y": np.array([0, 1, 0, 1, 1], dtype=np.int32),
        "steps": 4,
        "batch_size": 2,
        "lr": 0.1,
        "l2": 0.0,
        "seed": b"\x05" * 32,
        "segment_len": 2,
    }
    base.update(over)
    return base


def test_valid_job_is_frozen_and_copied() -> None:
    x = np.ones((5, 3), dtype=np.float32)
    job = mr.TrainingJob(**_kwargs(x=x))
    x[0, 0] = 7.0
    assert job.x[0, 0] == 1.0
    assert not job.x.flags.writeable and not job.weights.flags.writeable
    assert isinstance(job.lr, np.float32) and isinstance(job.l2, np.float32)
    assert job.num_segments == 2
    with pytest.raises(AttributeError):
        job.steps = 5  # type: ignore[misc]


def test_immutable_arrays_are_shared_and_read_only_ones_copied() -> None:
    """A data set's rows (read-only over bytes: nobody can write them again) are shared by every
    job, not copied per job; an array that is only flagged read-only is copied, since its
    owner may flag it writeable again and change the job's data under it."""
    x = np.frombuffer(np.ones((5, 3), dtype=np.float32).tobytes(), dtype=np.float32).reshape(5, 3)
    y = np.frombuffer(np.zeros(5, dtype=np.float32).tobytes(), dtype=np.float32)
    job = mr.TrainingJob(**_kwargs(x=x))
    assert job.x is x
    with pytest.raises(ValueError, match="WRITEABLE"):
        job.x.flags.writeable = True
    owned = np.ones((5, 3), dtype=np.float32)
    owned.flags.writeable = False
    job = mr.TrainingJob(**_kwargs(x=owned))
    assert job.x is not owned
    owned.flags.writeable = True
    owned[0, 0] = 7.0
    assert job.x[0, 0] == 1.0
    strided = np.frombuffer(np.ones((5, 6), dtype=np.float32).tobytes(), dtype=np.float32).reshape(5, 6)[:, ::2]
    assert mr.TrainingJob(**_kwargs(x=strided)).x.flags.c_contiguous
    assert y.dtype == np.float32  # a float32 y is for linear models; a wrong dtype is still refused
    with pytest.raises(mr.InvalidJob, match="dtype"):
        mr.TrainingJob(**_kwargs(y=y))


def _immutable(a: np.ndarray) -> np.ndarray:
    return np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)


def test_an_immutable_arrays_checks_run_once_per_check_and_never_remember_a_failure() -> None:
    """A data set's rows are checked by the first job that uses them, not by every job; what is
    remembered is a passed check of one array (by identity, for as long as it lives) and of one
    label bound, never a failure."""
    from ml_runtime import job as job_module

    x = _immutable(np.ones((5, 3), dtype=np.float32))
    mr.TrainingJob(**_kwargs(x=x))
    assert (id(x), "finite") in job_module._CHECKED
    mr.TrainingJob(**_kwargs(x=x))  # the remembered check
    bad = np.ones((5, 3), dtype=np.float32)
    bad[2, 1] = np.nan
    bad = _immutable(bad)
    for _ in range(2):
        with pytest.raises(mr.InvalidJob, match="x contains NaN"):
            mr.TrainingJob(**_kwargs(x=bad))
    y = _immutable(np.array([0, 1, 2, 1, 0], dtype=np.int32))
    mr.TrainingJob(**_kwargs(spec=mr.ModelSpec("softmax", 3, 3), weights=np.zeros(12, dtype=np.float32), y=y))
    with pytest.raises(mr.InvalidJob, match=r"label 2 is outside 0\.\.1"):
        mr.TrainingJob(**_kwargs(y=y))  # passed for k = 3, not for k = 2
    key = (id(x), "finite")
    del x
    assert key not in job_module._CHECKED


LINEAR = mr.ModelSpec("linear", 3, 2)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"spec": "softmax"}, "spec must be a ModelSpec"),
        ({"weights": np.zeros(7, dtype=np.float32)}, r"weights has shape \(7,\)"),
        ({"weights": np.zeros(8, dtype=np.float64)}, "weights has dtype float64"),
        ({"weights": np.full(8, np.nan, dtype=np.float32)}, "weights contain NaN"),
        ({"weights": [0.0] * 8}, "weights must be a numpy array"),
        ({"x": np.ones((5, 4), dtype=np.float32)}, r"x has shape \(5, 4\)"),
        ({"x": np.ones((5, 3), dtype=np.float64)}, "x has dtype float64"),
        ({"x": np.ones(15, dtype=np.float32)}, "x must be a 2-D"),
        ({"x": np.ones((0, 3), dtype=np.float32)}, "dataset is empty"),
        ({"x": np.full((5, 3), np.inf, dtype=np.float32)}, "x contains NaN or infinity"),
        ({"y": np.array([0, 1, 2, 1, 1], dtype=np.int32)}, "label 2 is outside 0..1"),
        ({"y": np.array([0, -1, 0, 1, 1], dtype=np.int32)}, "label -1 is outside"),
        ({"y": np.zeros(5, dtype=np.int64)}, "y has dtype int64"),
        ({"y": np.zeros(4, dtype=np.int32)}, r"y has shape \(4,\)"),
        ({"steps": 0}, "steps=0 is outside 1..1000000"),
        ({"steps": 1_000_001}, "steps=1000001"),
        ({"steps": 2.0}, "steps must be an int"),
        ({"batch_size": 0}, "batch_size=0 is outside 1..5"),
        ({"batch_size": 6}, "batch_size=6 is outside 1..5"),
        ({"segment_len": 0}, "segment_len=0"),
        ({"segment_len": 5}, "segment_len=5 is outside 1..4"),
        ({"lr": 0.0}, "lr=0.0 must be > 0"),
        ({"lr": -0.1}, "must be > 0"),
        ({"lr": 1e-50}, "must be > 0 as a float32"),
        ({"lr": float("nan")}, "lr=nan is not finite"),
        ({"lr": float("inf")}, "not finite"),
        ({"lr": 1e39}, "not finite as a float32"),
        ({"lr": "0.1"}, "lr must be a real number"),
        ({"l2": -1e-3}, "l2=-0.001 must be >= 0"),
        ({"l2": float("nan")}, "l2=nan is not finite"),
        ({"seed": b"\x00" * 31}, "32 bytes"),
    ],
)
def test_bad_jobs_rejected(over: dict[str, Any], message: str) -> None:
    with pytest.raises(mr.InvalidJob, match=message):
        mr.TrainingJob(**_kwargs(**over))


def test_linear_targets_validated() -> None:
    kw = _kwargs(spec=LINEAR, weights=np.zeros(8, dtype=np.float32))
    with pytest.raises(mr.InvalidJob, match="y has dtype int32"):
        mr.TrainingJob(**kw)
    with pytest.raises(mr.InvalidJob, match="y contains NaN"):
        mr.TrainingJob(**{**kw, "y": np.full((5, 2), np.nan, dtype=np.float32)})
    mr.TrainingJob(**{**kw, "y": np.zeros((5, 2), dtype=np.float32)})


def test_large_batch_bounded_by_4096() -> None:
    x = np.zeros((5000, 3), dtype=np.float32)
    y = np.zeros(5000, dtype=np.int32)
    with pytest.raises(mr.InvalidJob, match=r"batch_size=4097 is outside 1..4096"):
        mr.TrainingJob(**_kwargs(x=x, y=y, batch_size=4097))


@pytest.mark.parametrize("family", ["linear", "softmax", "mlp"])
def test_run_job_structure_and_recompute(family: str) -> None:
    job = golden_job(family)
    res = mr.run_job(job)
    assert res.finite and res.diverged_segment is None
    assert job.num_segments == 4 and len(job.segment_steps(3)) == 1
    assert len(res.checkpoints) == len(res.transcript.entries) == 5
    assert res.checkpoints[0].tobytes() == job.weights.tobytes()
    assert res.transcript.entries[0].loss == 0.0
    assert res.weights.tobytes() == res.checkpoints[-1].tobytes()
    for j, (ck, e) in enumerate(zip(res.checkpoints, res.transcript.entries, strict=True)):
        assert e.index == j and e.weights_hash == mr.hash_weights(ck)
    for j in range(job.num_segments):
        entry, w = mr.recompute_segment(job, j, res.checkpoints[j])
        assert entry == res.transcript.entries[j + 1]
        assert w.tobytes() == res.checkpoints[j + 1].tobytes()
        mr.verify_segment(job, j, res.checkpoints[j], res.transcript.entries[j + 1])
    assert res.transcript.root == mr.merkle_root(res.transcript.entries)


def test_one_segment_equals_whole_job_run() -> None:
    """Segmenting changes nothing but where checkpoints are taken."""
    job = golden_job("mlp")
    one = mr.TrainingJob(job.spec, job.weights, job.x, job.y, job.steps, job.batch_size,
                         float(job.lr), float(job.l2), job.seed, job.steps)
    assert mr.run_job(one).weights.tobytes() == mr.run_job(job).weights.tobytes()


@pytest.mark.parametrize("family", ["linear", "softmax", "mlp"])
def test_forged_checkpoint_caught(family: str) -> None:
    """The author claims checkpoint j+1 with one flipped bit: re-running segment j exposes it."""
    job = golden_job(family)
    res = mr.run_job(job)
    rng = np.random.default_rng(0)
    for j in range(job.num_segments):
        for _ in range(20):
            forged = res.checkpoints[j + 1].copy()
            forged.view(np.uint32)[int(rng.integers(forged.size))] ^= np.uint32(1 << int(rng.integers(32)))
            claim = mr.TranscriptEntry(j + 1, mr.hash_weights(forged), res.transcript.entries[j + 1].loss)
            entry, weights = mr.recompute_segment(job, j, res.checkpoints[j])
            assert entry != claim and weights.tobytes() != forged.tobytes()
            with pytest.raises(mr.SegmentMismatch, match="weights hash"):
                mr.verify_segment(job, j, res.checkpoints[j], claim)


@pytest.mark.parametrize("family", ["linear", "softmax", "mlp"])
def test_forged_input_checkpoint_caught(family: str) -> None:
    """A flipped bit in the checkpoint handed to the validator fails the link to entry j."""
    job = golden_job(family)
    res = mr.run_job(job)
    entries = res.transcript.entries
    rng = np.random.default_rng(1)
    for j in range(job.num_segments):
        mr.verify_segment(job, j, res.checkpoints[j], entries[j + 1], entries[j])
        for _ in range(20):
            forged = res.checkpoints[j].copy()
            forged.view(np.uint32)[int(rng.integers(forged.size))] ^= np.uint32(1 << int(rng.integers(31)))
            with pytest.raises(mr.SegmentMismatch, match=f"checkpoint {j} does not match"):
                mr.verify_segment(job, j, forged, entries[j + 1], entries[j])


def test_flipped_high_bit_changes_the_segment_output() -> None:
    """Without the link, a forged input still changes the output unless rounding hides it."""
    job = golden_job("mlp")
    res = mr.run_job(job)
    forged = res.checkpoints[1].copy()
    forged.view(np.uint32)[0] ^= np.uint32(1 << 22)  # top mantissa bit of a non-zero weight
    with pytest.raises(mr.SegmentMismatch, match="weights hash"):
        mr.verify_segment(job, 1, forged, res.transcript.entries[2])


def test_claimed_entry_tampering_caught() -> None:
    job = golden_job("softmax")
    res = mr.run_job(job)
    e = res.transcript.entries[2]
    wrong_loss = mr.TranscriptEntry(e.index, e.weights_hash, float(np.nextafter(np.float32(e.loss), np.float32(9))))
    with pytest.raises(mr.SegmentMismatch, match="loss"):
        mr.verify_segment(job, 1, res.checkpoints[1], wrong_loss)
    with pytest.raises(mr.SegmentMismatch, match="produces entry 2, not 3"):
        mr.verify_segment(job, 1, res.checkpoints[1], res.transcript.entries[3])
    with pytest.raises(mr.SegmentMismatch, match="weights hash"):
        mr.verify_segment(job, 1, res.checkpoints[0], e)


def test_recompute_rejects_bad_checkpoints() -> None:
    job = golden_job("mlp")
    p = job.spec.param_count
    cases = [
        (np.zeros(p - 1, dtype=np.float32), mr.InvalidCheckpoint, "shape"),
        (np.zeros(p, dtype=np.float64), mr.InvalidCheckpoint, "dtype float64"),
        (np.zeros((p, 1), dtype=np.float32), mr.InvalidCheckpoint, "shape"),
        (np.full(p, np.inf, dtype=np.float32), mr.InvalidCheckpoint, "NaN or infinity"),
        (list(np.zeros(p)), mr.InvalidCheckpoint, "numpy array"),
    ]
    for ck, exc, message in cases:
        with pytest.raises(exc, match=message):
            mr.recompute_segment(job, 0, ck)  # type: ignore[arg-type]
    for j in (-1, 4, 1.0):
        with pytest.raises(mr.InvalidJob, match="segment index"):
            mr.recompute_segment(job, j, job.weights)  # type: ignore[arg-type]


def test_divergence_is_a_defined_outcome() -> None:
    spec = mr.ModelSpec("linear", 2, 1)
    x = np.array([[1e3, -2e3], [3e3, 1e3]], dtype=np.float32)
    y = np.array([[1.0], [2.0]], dtype=np.float32)
    job = mr.TrainingJob(spec, np.zeros(3, dtype=np.float32), x, y, 40, 2, 10.0, 0.0,
                         b"\x09" * 32, 4)
    res = mr.run_job(job)
    assert not res.finite
    assert res.diverged_segment is not None and res.diverged_step is not None
    j = res.diverged_segment
    assert len(res.checkpoints) == j + 1 == len(res.transcript.entries)
    assert all(np.isfinite(c).all() for c in res.checkpoints)
    assert res.weights.tobytes() == res.checkpoints[-1].tobytes()
    with pytest.raises(mr.NonFiniteWeights) as info:
        mr.recompute_segment(job, j, res.checkpoints[j])
    assert info.value.segment == j and info.value.step == res.diverged_step
    fake = mr.TranscriptEntry(j + 1, b"\x00" * 32, 1.0)
    with pytest.raises(mr.SegmentMismatch, match="diverged"):
        mr.verify_segment(job, j, res.checkpoints[j], fake)
    # Deterministic: a second run diverges at the same step with the same transcript.
    again = mr.run_job(job)
    assert again.diverged_step == res.diverged_step
    assert again.transcript.root == res.transcript.root


def test_predict_validates() -> None:
    spec = mr.ModelSpec("mlp", 3, 2, 4)
    w = np.zeros(spec.param_count, dtype=np.float32)
    out = mr.predict(spec, w, np.ones((2, 3), dtype=np.float32))
    assert out.shape == (2, 2) and np.all(out == np.float32(0.5))
    with pytest.raises(mr.InvalidJob, match=r"shape \(n, 3\)"):
        mr.predict(spec, w, np.ones((2, 4), dtype=np.float32))
    with pytest.raises(mr.InvalidJob, match="weights have shape"):
        mr.predict(spec, w[:-1], np.ones((2, 3), dtype=np.float32))
    with pytest.raises(mr.InvalidJob, match="float32"):
        mr.predict(spec, w.astype(np.float64), np.ones((2, 3), dtype=np.float32))


def test_predict_gives_one_nan_whatever_the_cpu() -> None:
    """Finite inputs can give NaN outputs (an MLP on 3e38: inf - inf in the softmax), and a
    NaN's bits are the CPU's default NaN: 0xffc00000 on x86, 0x7fc00000 on AArch64 and RISC-V,
    so INFER receipts and ml_predict answers differed by platform (an outside tester's finding,
    2026-11-30). Every NaN output is now the canonical quiet NaN 0x7fc00000."""
    spec = mr.ModelSpec("mlp", 4, 3, 5)
    w = mr.init_weights(spec, bytes(32))
    out = mr.predict(spec, w, np.full((2, spec.d), 3.0e38, dtype=np.float32))
    bits = np.ascontiguousarray(out, dtype="<f4").view("<u4")
    assert np.isnan(out).all() and set(bits.ravel().tolist()) == {0x7FC00000}
