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
from ml_runtime import fedavg, kernels, selfcheck, twins

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "ml_runtime"
FAMILIES = ("linear", "softmax", "mlp")
# The start-up check's finite jobs beyond the small golden ones (ml_runtime.selfcheck).
SELFCHECK_JOB_VECTORS = [f"selfcheck_{kind}_{family}.json" for kind in ("wide", "subnormal") for family in FAMILIES]
JOB_VECTORS = ["linear.json", "softmax.json", "mlp.json", "digits_softmax.json", *SELFCHECK_JOB_VECTORS]


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


@pytest.mark.parametrize("name", ["linear.json", "softmax.json", "mlp.json", *SELFCHECK_JOB_VECTORS])
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


def _subnormal_count(a: np.ndarray) -> int:
    mag = a.astype("<f4").view("<u4") & np.uint32(0x7FFFFFFF)
    return int(((mag > 0) & (mag < 0x00800000)).sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_diverging_vector_reproduced_by_author_verifier_and_twins(family: str) -> None:
    """The diverging job stops at the stored step, with the stored transcript; re-running that
    segment from the last finite checkpoint raises NonFiniteWeights at the same step; the
    twins diverge there too. Not in segment 0, so the transcript and a checkpoint precede it."""
    v = _load(f"selfcheck_diverging_{family}.json")
    job = _job(v)
    res = mr.run_job(job)
    assert not res.finite and v["diverged_segment"] > 0
    assert (res.diverged_segment, res.diverged_step) == (v["diverged_segment"], v["diverged_step"])
    assert [e.weights_hash.hex() for e in res.transcript.entries] == v["checkpoint_hashes"]
    assert res.transcript.root.hex() == v["transcript_root"]
    assert res.weights.astype("<f4").tobytes().hex() == v["final_weights_f32le"]
    with pytest.raises(mr.NonFiniteWeights) as err:
        mr.recompute_segment(job, v["diverged_segment"], res.weights)
    assert (err.value.segment, err.value.step) == (v["diverged_segment"], v["diverged_step"])
    got = twin_run(job)
    assert got["diverged_step"] == v["diverged_step"] and got["hashes"] == v["checkpoint_hashes"]


@pytest.mark.parametrize("family", FAMILIES)
def test_subnormal_vectors_hold_subnormal_data_and_weights(family: str) -> None:
    """What the subnormal job is for: its data and its final weights hold subnormals, which a
    thread with FTZ/DAZ reads or writes as 0."""
    v = _load(f"selfcheck_subnormal_{family}.json")
    job = _job(v)
    assert _subnormal_count(job.x) > 0 and _subnormal_count(job.weights) > 0
    assert _subnormal_count(_f32(v["final_weights_f32le"])) > 0


def _loss_inputs(v: dict[str, Any], family: str) -> tuple[mr.ModelSpec, np.ndarray, np.ndarray, np.ndarray]:
    c = v[family]
    spec = mr.ModelSpec(**c["spec"])
    x = _f32(c["x_f32le"]).reshape(v["rows"], spec.d)
    if family == "linear":
        y = _f32(c["y_le"]).reshape(v["rows"], spec.k)
    else:
        y = np.frombuffer(bytes.fromhex(c["y_le"]), dtype="<i4").astype(np.int32)
    return spec, _f32(c["weights_f32le"]), x, y


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_vector_reproduced_by_compute_loss_and_twins(family: str) -> None:
    """compute_loss over the stored rows (one batch of all of them, lr 0) gives the stored bits,
    and so does the family's twin segment run the same way."""
    v = _load("selfcheck_loss.json")
    spec, w, x, y = _loss_inputs(v, family)
    assert v["rows"] >= 64
    loss = mr.compute_loss(spec, w, x, y)
    assert np.float32(loss).astype("<f4").tobytes().hex() == v[family]["loss_f32le"]
    fn = {"linear": twins.linear_segment, "softmax": twins.softmax_segment, "mlp": twins.mlp_segment}[family]
    extra = (spec.h,) if family == "mlp" else ()
    zero = np.float32(0.0)
    twin_loss, status = fn(w.copy(), x, y, np.arange(v["rows"], dtype=np.int64), 1, v["rows"], zero, zero,
                           spec.d, spec.k, *extra)
    assert status == -1
    assert np.float32(twin_loss).astype("<f4").tobytes().hex() == v[family]["loss_f32le"]


def test_fedavg_vector_reproduced_by_kernel_and_twin() -> None:
    v = _load("selfcheck_fedavg.json")
    updates = [_f32(u) for u in v["updates_f32le"]]
    out = fedavg.federated_average(updates, v["counts"])
    assert out.astype("<f4").tobytes().hex() == v["aggregate_f32le"]
    assert mr.hash_weights(out).hex() == v["aggregate_hash"]
    assert _subnormal_count(out) > 0  # subnormal averages: a thread with FTZ computes others
    stacked, counts, total = fedavg.verify_inputs(updates, v["counts"])
    twin, status = twins.fedavg(stacked, counts, total)
    assert status == -1 and twin.tobytes() == out.tobytes()


def test_selfcheck_pins_the_selfcheck_vectors() -> None:
    """Every value verify_build pins beyond the small golden jobs is the stored vector's."""
    for family in FAMILIES:
        for kind, pinned in (("wide", selfcheck.PINNED_WIDE), ("subnormal", selfcheck.PINNED_SUBNORMAL)):
            v = _load(f"selfcheck_{kind}_{family}.json")
            assert pinned[family] == (v["transcript_root"], v["checkpoint_hashes"][-1]), (kind, family)
        v = _load(f"selfcheck_diverging_{family}.json")
        assert selfcheck.PINNED_DIVERGING[family] == (v["diverged_segment"], v["diverged_step"], v["transcript_root"])
        assert selfcheck.PINNED_LOSS[family] == _load("selfcheck_loss.json")[family]["loss_f32le"]
    assert _load("selfcheck_fedavg.json")["aggregate_hash"] == selfcheck.PINNED_FEDAVG


@pytest.mark.parametrize("family", FAMILIES)
def test_selfcheck_cases_match_vector_inputs(family: str) -> None:
    """selfcheck regenerates exactly the inputs stored in the vectors (as golden_job does)."""
    for kind, make in (("wide", selfcheck.wide_job), ("subnormal", selfcheck.subnormal_job),
                       ("diverging", selfcheck.diverging_job)):
        job, stored = make(family), _job(_load(f"selfcheck_{kind}_{family}.json"))
        for field in ("weights", "x", "y"):
            assert getattr(job, field).tobytes() == getattr(stored, field).tobytes(), (kind, field)
        assert (job.seed, job.steps, job.batch_size, job.segment_len) == (
            stored.seed, stored.steps, stored.batch_size, stored.segment_len)
        assert job.lr.tobytes() == stored.lr.tobytes() and job.l2.tobytes() == stored.l2.tobytes()  # type: ignore[attr-defined]
    spec, w, x, y = selfcheck.loss_case(family)
    stored_loss = _loss_inputs(_load("selfcheck_loss.json"), family)
    assert spec == stored_loss[0]
    for a, b in zip((w, x, y), stored_loss[1:], strict=True):
        assert a.tobytes() == b.tobytes()
    if family == "linear":
        updates, counts = selfcheck.fedavg_case()
        v = _load("selfcheck_fedavg.json")
        assert [u.astype("<f4").tobytes().hex() for u in updates] == v["updates_f32le"]
        assert counts == v["counts"]


def test_wide_jobs_run_at_batch_64_and_the_loss_over_256_rows() -> None:
    """The shapes that reach the vectorised batch loops (outside tester, round 6c, finding 1)."""
    for family in FAMILIES:
        assert selfcheck.wide_job(family).batch_size >= 64
    assert selfcheck.LOSS_ROWS >= 64


def test_missing_vector_fails() -> None:
    with pytest.raises(pytest.fail.Exception, match="missing"):
        _load("no-such-vector.json")
