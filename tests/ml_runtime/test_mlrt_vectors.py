"""Golden vectors under tests/vectors/ml_runtime/ are reproduced bit for bit.

They pin the bits across versions (docs/architecture.md §3). A missing vector file is a failure,
never a skip: regenerate only with tests/ml_runtime/make_vectors.py and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlrtkit import twin_run

import ml_runtime as mr
from ml_runtime import kernels, selfcheck

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "ml_runtime"
JOB_VECTORS = ["linear.json", "softmax.json", "mlp.json", "digits_softmax.json"]
FAMILIES = ("linear", "softmax", "mlp")


def _load(name: str) -> dict[str, Any]:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(f"golden vector {path} is missing")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _f32(hexstr: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hexstr), dtype="<f4").astype(np.float32)


def _job(v: dict[str, Any]) -> mr.TrainingJob:
    spec = mr.ModelSpec(**v["spec"])
    assert spec.encode().hex() == v["spec_encoding"] and spec.hash().hex() == v["spec_hash"]
    if v.get("dataset") == "digits":
        x, y = mr.load_digits()
    else:
        x = _f32(v["x_f32le"]).reshape(v["n"], spec.d)
        ydt = "<f4" if spec.family == "linear" else "<i4"
        y = np.frombuffer(bytes.fromhex(v["y_le"]), dtype=ydt)
        y = y.reshape(v["n"], spec.k) if spec.family == "linear" else y
        y = y.astype(np.float32 if spec.family == "linear" else np.int32)
    return mr.TrainingJob(
        spec=spec, weights=_f32(v["weights_f32le"]), x=x, y=y, steps=v["steps"],
        batch_size=v["batch_size"], lr=float(_f32(v["lr_f32le"])[0]),
        l2=float(_f32(v["l2_f32le"])[0]), seed=bytes.fromhex(v["seed"]),
        segment_len=v["segment_len"],
    )


@pytest.mark.parametrize("name", JOB_VECTORS)
def test_job_vector_reproduced(name: str) -> None:
    v = _load(name)
    job = _job(v)
    spec = job.spec
    if v["init_seed"] is not None:
        init = mr.init_weights(spec, bytes.fromhex(v["init_seed"]))
        assert init.tobytes() == job.weights.tobytes()
    first = mr.batch_indices(job.seed, 0, len(job.segment_steps(0)), job.x.shape[0], job.batch_size)
    assert first.tolist() == v["batch_indices_first_segment"]
    res = mr.run_job(job)
    assert res.finite
    assert [e.weights_hash.hex() for e in res.transcript.entries] == v["checkpoint_hashes"]
    losses = [np.float32(e.loss).astype("<f4").tobytes().hex() for e in res.transcript.entries]
    assert losses == v["losses_f32le"]
    assert res.transcript.root.hex() == v["transcript_root"]
    if "final_weights_f32le" in v:
        assert res.weights.astype("<f4").tobytes().hex() == v["final_weights_f32le"]
    proof = tuple(bytes.fromhex(p) for p in v["merkle_proof_entry_1"])
    assert mr.merkle_proof(res.transcript, 1) == proof
    mr.verify_merkle_proof(res.transcript.root, res.transcript.entries[1], proof, len(res.transcript.entries))


def _twin_segments(job: mr.TrainingJob, segments: int) -> dict[str, Any]:
    """The first ``segments`` segments of ``job`` run by the NumPy twins (mlrtkit.twin_run)."""
    steps = min(job.steps, segments * job.segment_len)
    return twin_run(mr.TrainingJob(
        spec=job.spec, weights=job.weights, x=job.x, y=job.y, steps=steps,
        batch_size=job.batch_size, lr=job.lr, l2=job.l2, seed=job.seed, segment_len=job.segment_len,
    ))


@pytest.mark.parametrize("name", ["linear.json", "softmax.json", "mlp.json"])
def test_twins_reproduce_the_stored_bits(name: str) -> None:
    """The twins, which share no code with the kernels, compute the stored bits too.

    A vector regenerated from a wrong kernel would still agree with that kernel; it cannot
    agree with the twins unless both are wrong in the same way.
    """
    v = _load(name)
    got = _twin_segments(_job(v), len(v["checkpoint_hashes"]))
    assert got["diverged_step"] is None
    assert got["hashes"] == v["checkpoint_hashes"]
    assert got["losses"] == v["losses_f32le"]


def test_twins_reproduce_the_digits_vector_first_segment() -> None:
    """The realistic-size vector (64 -> 10 on the digits): the twins' first segment (~1 s)."""
    v = _load("digits_softmax.json")
    got = _twin_segments(_job(v), 1)
    assert got["hashes"] == v["checkpoint_hashes"][:2]
    assert got["losses"] == v["losses_f32le"][:2]


@pytest.mark.slow
def test_twins_reproduce_the_whole_digits_vector() -> None:
    """All of it (~5 s); the first-segment test above covers the same path."""
    v = _load("digits_softmax.json")
    got = _twin_segments(_job(v), len(v["checkpoint_hashes"]))
    assert got["hashes"] == v["checkpoint_hashes"]
    assert got["losses"] == v["losses_f32le"]


@pytest.mark.parametrize("family", FAMILIES)
def test_golden_jobs_match_vector_inputs(family: str) -> None:
    """selfcheck.golden_job regenerates exactly the inputs stored in the vector."""
    v = _load(f"{family}.json")
    job, stored = selfcheck.golden_job(family), _job(v)
    for field in ("weights", "x", "y"):
        assert getattr(job, field).tobytes() == getattr(stored, field).tobytes()
    assert (job.seed, job.steps, job.batch_size, job.segment_len) == (
        stored.seed, stored.steps, stored.batch_size, stored.segment_len)
    assert job.lr.tobytes() == stored.lr.tobytes()  # type: ignore[attr-defined]


def test_prf_vector_reproduced() -> None:
    v = _load("prf.json")
    secret, block = bytes.fromhex(v["secret"]), bytes.fromhex(v["block_hash"])
    for case in v["sample_segments"]:
        assert list(mr.sample_segments(secret, block, case["S"], case["m"])) == case["expected"]
    for case in v["batch_indices"]:
        got = mr.batch_indices(bytes.fromhex(case["seed"]), case["first_step"],
                               case["num_steps"], case["n"], case["batch"])
        assert got.tolist() == case["expected"]


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_pins_every_family_vector(family: str) -> None:
    v = _load(f"{family}.json")
    assert selfcheck.PINNED[family] == (v["transcript_root"], v["checkpoint_hashes"][-1])
    mr.verify_build()


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_build_refuses_a_kernel_off_by_one_ulp(family: str, monkeypatch) -> None:
    """A build whose kernel of ANY family computes other bits is refused, naming the family.

    The stand-in kernel runs the real one with lr one float32 ulp higher: the smallest
    change a miscompiled or re-ordered kernel could make.
    """
    name = f"{family}_segment"
    real = getattr(kernels, name)

    def off_by_one_ulp(w, x, y, idx, nsteps, batch, lr, *rest):
        return real(w, x, y, idx, nsteps, batch, np.nextafter(lr, np.float32(np.inf)), *rest)

    monkeypatch.setattr(kernels, name, off_by_one_ulp)
    with pytest.raises(mr.BuildMismatch, match=f"golden {family} vector"):
        mr.verify_build()


def test_missing_vector_fails() -> None:
    with pytest.raises(pytest.fail.Exception, match="missing"):
        _load("no-such-vector.json")
