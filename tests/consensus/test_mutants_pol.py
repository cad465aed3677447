"""Mutation testing of consensus/pol.py (mutmut, see README "Development"): the sampled
verifier's tests are tests/consensus/test_pol_verify.py (forged blocks, the detection rate,
what the verifier asks its source for) and test_fraud_proofs.py; this module holds what is
left over.

Last run (``rm -rf mutants && mutmut run --max-children 2 "consensus.pol*"``, mutmut 3.8.1,
2026-11-29, after the pool and its policy moved to chain.proofs.map_reruns and
compute_rerun_threads, shared with the auditor; their tests are in test_mutants_proofs.py and
tests/chain/test_pol_forgery.py): 260 mutants of consensus/pol.py, 256 killed, 4 survived
(before the move: 277, 272 killed). Survivors explained (equivalent mutants; ids from
``mutmut results``):

- ``xǁSampledVerifierǁverify_block__mutmut_29``, ``_32``, ``_33``: ``zip(tasks, reruns,
  strict=True)`` with ``strict`` None, left out or False. ``reruns`` is ``_rerun_all`` over
  ``tasks``: the list of ``map_reruns``, which yields one result per task, in task order, or
  raises (tests/consensus/test_mutants_proofs.py pins it), so the lengths never differ.
- ``xǁ_Checkǁfraud__mutmut_3``: ``need_weights=None`` instead of ``False`` when the openings
  of an accusation are verified again: verify_opening only tests it for truth, and None is
  false.
"""

from __future__ import annotations

import numpy as np

import ml_runtime
from consensus.pol import _rerun_all


def _job() -> ml_runtime.TrainingJob:
    spec = ml_runtime.ModelSpec("softmax", 4, 3)
    rows = np.arange(48, dtype=np.float32).reshape(12, 4) / np.float32(48)
    labels = (np.arange(12) % 3).astype(np.int32)
    weights = ml_runtime.init_weights(spec, bytes(32))
    return ml_runtime.TrainingJob(spec, weights, rows, labels, 40, 4, 0.5, 0.0, bytes(range(32)), 5)


def test_reruns_on_the_pool_are_the_serial_ones_in_task_order() -> None:
    job = _job()
    result = ml_runtime.run_job(job)
    order = [7, 0, 3, 3, 5, 1, 6, 2, 4]
    tasks = [(job, j, result.checkpoints[j]) for j in order]
    bad = np.array(result.checkpoints[2], copy=True)
    bad[0] = np.float32(np.inf)
    tasks.append((job, 2, bad))
    reruns = _rerun_all(tasks)
    assert [r.index for r in reruns[:-1]] == [j + 1 for j in order]
    assert [r.weights_hash for r in reruns[:-1]] == [result.transcript.entries[j + 1].weights_hash for j in order]
    assert isinstance(reruns[-1], ml_runtime.InvalidCheckpoint)
    assert _rerun_all([]) == []


def test_small_reruns_stay_on_the_calling_thread_and_large_ones_use_the_pool(monkeypatch) -> None:
    """_rerun_all follows the policy: inline below it (no thread started for a cheap block),
    on pool threads at or above it (each result still the serial one, in order)."""
    import threading

    from chain import proofs
    from consensus import pol

    job = _job()
    result = ml_runtime.run_job(job)
    tasks = [(job, j, result.checkpoints[j]) for j in range(4)]
    ran_on: list[int] = []
    real = pol.compute_rerun

    def recording(*task):
        ran_on.append(threading.get_ident())
        return real(*task)

    monkeypatch.setattr(pol, "compute_rerun", recording)
    monkeypatch.setattr(proofs.os, "cpu_count", lambda: 2)
    serial = _rerun_all(tasks)
    assert set(ran_on) == {threading.get_ident()}
    ran_on.clear()
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", 0)
    assert [r.weights_hash for r in _rerun_all(tasks)] == [r.weights_hash for r in serial]
    assert threading.get_ident() not in ran_on and len(ran_on) == 4
