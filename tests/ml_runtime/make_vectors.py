"""Regenerate the golden vectors in tests/vectors/ml_runtime/ (run by hand, then review).

    python tests/ml_runtime/make_vectors.py

Golden vectors pin the bits across versions (docs/architecture.md §3): changing any of them is a
consensus change and needs a new spec version, never a silent regeneration.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import ml_runtime as mr
from ml_runtime import fedavg, selfcheck
from ml_runtime.selfcheck import golden_init_seed, golden_job

OUT = Path(__file__).resolve().parents[1] / "vectors" / "ml_runtime"
FAMILIES = ("linear", "softmax", "mlp")


def _hex(a: np.ndarray, dtype: str) -> str:
    return np.ascontiguousarray(a, dtype=dtype).tobytes().hex()


def job_vector(job: mr.TrainingJob, init_seed: bytes | None, *, dataset: str | None) -> dict:
    """A job's inputs and every committed bit. A diverged job (the start-up check's diverging
    jobs) also stores where it diverged; its checkpoints end at the last finite one."""
    result = mr.run_job(job)
    entries = result.transcript.entries
    ydt = "<f4" if job.spec.family == "linear" else "<i4"
    vec: dict = {
        "format": 1,
        "spec": {"family": job.spec.family, "d": job.spec.d, "k": job.spec.k, "h": job.spec.h},
        "spec_encoding": job.spec.encode().hex(),
        "spec_hash": job.spec.hash().hex(),
        "init_seed": init_seed.hex() if init_seed else None,
        "weights_f32le": _hex(job.weights, "<f4"),
        "n": int(job.x.shape[0]),
        "steps": job.steps,
        "batch_size": job.batch_size,
        "lr_f32le": _hex(np.float32(job.lr), "<f4"),
        "l2_f32le": _hex(np.float32(job.l2), "<f4"),
        "seed": job.seed.hex(),
        "segment_len": job.segment_len,
        "batch_indices_first_segment": mr.batch_indices(
            job.seed, 0, len(job.segment_steps(0)), job.x.shape[0], job.batch_size
        ).tolist(),
        "checkpoint_hashes": [e.weights_hash.hex() for e in entries],
        "losses_f32le": [np.float32(e.loss).astype("<f4").tobytes().hex() for e in entries],
        "transcript_root": result.transcript.root.hex(),
        "merkle_proof_entry_1": [p.hex() for p in mr.merkle_proof(result.transcript, 1)],
    }
    if not result.finite:
        vec["diverged_segment"] = result.diverged_segment
        vec["diverged_step"] = result.diverged_step
    if dataset is None:
        vec["x_f32le"] = _hex(job.x, "<f4")
        vec["y_le"] = _hex(job.y, ydt)
        vec["final_weights_f32le"] = _hex(result.weights, "<f4")
    else:
        vec["dataset"] = dataset
    return vec


def digits_job() -> mr.TrainingJob:
    x, y = mr.load_digits()
    spec = mr.ModelSpec("softmax", 64, 10)
    seed = hashlib.blake2b(b"digits/seed", digest_size=32).digest()
    init = hashlib.blake2b(b"digits/init", digest_size=32).digest()
    return mr.TrainingJob(spec, mr.init_weights(spec, init), x, y, 200, 32, 0.2, 1e-4, seed, 64)


def _subnormal_count(a: np.ndarray) -> int:
    mag = np.abs(a.view("<u4") & np.uint32(0x7FFFFFFF))
    return int(((mag > 0) & (mag < 0x00800000)).sum())


def loss_vector() -> dict:
    """selfcheck.loss_case(family) for each family and the loss compute_loss pins."""
    out: dict = {"format": 1, "rows": selfcheck.LOSS_ROWS}
    for family in FAMILIES:
        spec, w, x, y = selfcheck.loss_case(family)
        loss = mr.compute_loss(spec, w, x, y)
        assert loss is not None
        out[family] = {
            "spec": {"family": spec.family, "d": spec.d, "k": spec.k, "h": spec.h},
            "weights_f32le": _hex(w, "<f4"),
            "x_f32le": _hex(x, "<f4"),
            "y_le": _hex(y, "<f4" if family == "linear" else "<i4"),
            "loss_f32le": np.float32(loss).astype("<f4").tobytes().hex(),
        }
    return out


def fedavg_vector() -> dict:
    """selfcheck.fedavg_case() and its aggregate."""
    updates, counts = selfcheck.fedavg_case()
    aggregate = fedavg.federated_average(updates, counts)
    assert _subnormal_count(aggregate) > 0
    return {
        "format": 1,
        "updates_f32le": [_hex(u, "<f4") for u in updates],
        "counts": counts,
        "aggregate_f32le": _hex(aggregate, "<f4"),
        "aggregate_hash": mr.hash_weights(aggregate).hex(),
    }


def selfcheck_vectors() -> dict[str, dict]:
    """The start-up check's vectors beyond the small golden jobs (ml_runtime.selfcheck)."""
    out: dict[str, dict] = {}
    for family in FAMILIES:
        out[f"selfcheck_wide_{family}.json"] = job_vector(selfcheck.wide_job(family), None, dataset=None)
        job = selfcheck.subnormal_job(family)
        vec = job_vector(job, None, dataset=None)
        final = np.frombuffer(bytes.fromhex(vec["final_weights_f32le"]), dtype="<f4")
        assert _subnormal_count(job.x) and _subnormal_count(final), family  # what the job is for
        out[f"selfcheck_subnormal_{family}.json"] = vec
        vec = job_vector(selfcheck.diverging_job(family), None, dataset=None)
        assert vec["diverged_segment"] is not None and vec["diverged_segment"] > 0, family
        out[f"selfcheck_diverging_{family}.json"] = vec
    out["selfcheck_loss.json"] = loss_vector()
    out["selfcheck_fedavg.json"] = fedavg_vector()
    return out


def prf_vector() -> dict:
    secret = hashlib.blake2b(b"validator-secret", digest_size=32).digest()
    block = hashlib.blake2b(b"block", digest_size=32).digest()
    cases = [(1, 1), (10, 3), (10, 10), (10, 25), (1000, 7), (1_000_000, 5), (7, 0)]
    return {
        "format": 1,
        "secret": secret.hex(),
        "block_hash": block.hex(),
        "sample_segments": [
            {"S": s, "m": m, "expected": list(mr.sample_segments(secret, block, s, m))}
            for s, m in cases
        ],
        "batch_indices": [
            {"seed": block.hex(), "first_step": t, "num_steps": ns, "n": n, "batch": b,
             "expected": mr.batch_indices(block, t, ns, n, b).tolist()}
            for t, ns, n, b in [(0, 2, 10, 3), (5, 1, 1797, 20), (123456, 1, 2**31 - 1, 17)]
        ],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        vec = job_vector(golden_job(family), golden_init_seed(family), dataset=None)
        (OUT / f"{family}.json").write_text(json.dumps(vec, indent=1) + "\n")
    vec = job_vector(digits_job(), hashlib.blake2b(b"digits/init", digest_size=32).digest(),
                     dataset="digits")
    (OUT / "digits_softmax.json").write_text(json.dumps(vec, indent=1) + "\n")
    (OUT / "prf.json").write_text(json.dumps(prf_vector(), indent=1) + "\n")
    for name, vec in selfcheck_vectors().items():
        (OUT / name).write_text(json.dumps(vec, indent=1) + "\n")
    print("wrote", sorted(p.name for p in OUT.glob("*.json")))


if __name__ == "__main__":
    main()
