"""Tests that pin chain/proofs.py rule by rule (the targets of mutation testing, see README
"Development"): the declared result length (a fee input, so consensus data), the results
root's dependence on every commitment field, each reason verify_opening gives, and the
cheap checks the TRAIN dispatch makes on a result (chain.pallets.training.verify_result_shape),
and the re-run pool both verifiers use (compute_rerun_threads, map_reruns).
The forgery classes FullReexecution must catch are in tests/chain/test_pol_forgery.py.

Mutation score (mutmut 3.8.1; last full run over chain/proofs.py and chain/transcripts.py: 289
of 297 killed; last run over chain/proofs.py alone, after the auditor moved onto the shared
re-run pool (FullReexecution(threads=...), compute_rerun_threads, map_reruns, _judge),
``rm -rf mutants && mutmut run --max-children 2 "chain.proofs*"``: 323 of 334 killed, then
325 of 334 after tests/chain/test_pol_forgery.py::
test_the_auditor_s_thread_count_overrides_the_pool_policy killed
``xǁFullReexecutionǁ__init____mutmut_9`` (``self.threads = None``) and
``xǁFullReexecutionǁverify_block__mutmut_21`` (``... if (self.threads is None) or True``): with
either, a forced thread count was ignored and a small block re-run inline). Survivors explained
(equivalent mutants; ids from ``mutmut results``):

- ``x_compute_result__mutmut_14``, ``_16``, ``x_compute_openings__mutmut_17``, ``_19`` and
  ``xǁFullReexecutionǁ_verify_links__mutmut_29``, ``_31``: ``np.asarray(w, dtype=None)``
  instead of ``dtype="<f4"``. The weights and checkpoints are float32 arrays already
  (TrainingJob stores float32 weights; run_job's checkpoints are copies), and on a
  little-endian host (x86-64, AArch64: every platform numba targets here) their native
  bytes are the "<f4" bytes.
- ``x_compute_result__mutmut_19``: ``diverged_segment`` written even for a finite run; a
  finite JobResult's ``diverged_segment`` is None (ml_runtime/job.py), so the result is the same.
- ``x_verify_opening__mutmut_15``, ``_16``: the test that sends a finite loss to the
  packed-bits leaf (``&`` made ``|``, ``!=`` made ``==``). Both paths compute the same leaf
  for every float32 whose bits survive a float round trip (tests/chain/test_opening_bits.py
  pins the verdicts for zero, -0, a subnormal, the largest float, inf and NaN), and the
  branch is reached only after ``opening.loss == result.losses[index]``, where every loss of
  a result the chain accepted is finite (verify_result_shape); the branch is a speed choice.
- ``chain.transcripts.xǁLocalSourceǁfetch__mutmut_18``: ``verify_opening(...,
  need_weights=None)``. LocalSource already reports an opening stored without weights as
  missing when weights are needed, so need_weights changes nothing in verify_opening there.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from consensuskit import train_on_dev

import ml_runtime
from chain import proofs
from chain.codec import encode
from chain.errors import BlockError
from chain.pallets.training import verify_result_shape
from chain.proofs import (
    FullReexecution,
    ResultCommitment,
    TrainingResult,
    compute_openings,
    compute_result,
    compute_result_length,
    compute_results_root,
    compute_transcript_bytes,
    map_reruns,
    verify_divergence,
    verify_opening,
    verify_segment,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    author, built, job = train_on_dev(tmp_path_factory.mktemp("trained") / "a")
    outcome = ml_runtime.run_job(job)
    yield built.block.body.results[0], job, outcome
    author.db.close()


def test_the_declared_result_length_is_pinned_and_bounds_a_real_result(trained) -> None:
    result, job, _ = trained
    # 1 + 5 + 34 + 5 + 5(S + 1) + 5 + 4P + 5 (the docstring's layout)
    assert compute_result_length(0, 0) == 60
    assert compute_result_length(1, 0) == 64
    assert compute_result_length(3, 5) == 1 + 5 + 34 + 5 + 30 + 5 + 12 + 5
    assert len(encode(result)) <= compute_result_length(job.spec.param_count, job.num_segments)
    assert compute_transcript_bytes(650, 6) == 7 * 4 * 650


def test_the_result_is_the_outcome(trained) -> None:
    result, _, outcome = trained
    assert result == compute_result(0, outcome)
    assert result.transcript_root == outcome.transcript.root and result.diverged_segment is None
    assert result.weights == np.asarray(outcome.weights, dtype="<f4").tobytes()
    assert np.array_equal(result.get_weights(), outcome.weights) and result.get_weights().dtype == np.float32
    assert [np.uint32(b).view(np.float32) for b in result.losses] == [np.float32(e.loss) for e in outcome.transcript.entries]
    commitment = result.commitment()
    assert commitment == ResultCommitment(0, result.transcript_root, outcome.transcript.entries[-1].weights_hash, None)


def test_the_results_root_covers_every_commitment_field() -> None:
    a = TrainingResult(0, bytes(32), (0,), b"\0" * 4)
    variants = [
        a,
        msgspec.structs.replace(a, extrinsic_index=1),
        msgspec.structs.replace(a, transcript_root=b"\1" * 32),
        msgspec.structs.replace(a, weights=b"\0\0\0\1"),
        msgspec.structs.replace(a, diverged_segment=0),
    ]
    roots = {compute_results_root([v]) for v in variants}
    assert len(roots) == len(variants)
    assert compute_results_root([variants[0], variants[1]]) != compute_results_root([variants[1], variants[0]])
    assert compute_results_root([a]) == ml_runtime.compute_merkle_root([encode(a.commitment())])
    assert compute_results_root([]) == ml_runtime.compute_merkle_root([])
    # The losses are not in the commitment: the state (lineage record) and the transcript hold them.
    assert compute_results_root([msgspec.structs.replace(a, losses=(1,))]) == compute_results_root([a])


def test_every_opening_verifies_with_its_weights(trained) -> None:
    result, job, outcome = trained
    openings = compute_openings(outcome)
    assert [o.index for o in openings] == list(range(job.num_segments + 1))
    for o, e in zip(openings, outcome.transcript.entries, strict=True):
        verify_opening(result, o, need_weights=True)  # BlockError if not
        assert o.entry() == e and np.array_equal(o.get_weights(), outcome.checkpoints[e.index])
        light = msgspec.structs.replace(o, weights=None)
        verify_opening(result, light, need_weights=False)


def test_a_bad_opening_is_refused_for_its_own_reason(trained) -> None:
    result, _, outcome = trained
    o = compute_openings(outcome)[2]
    other = compute_openings(outcome)[3]
    cases = [
        (msgspec.structs.replace(o, index=7), r"opening 7 is outside entries 0\.\.6$"),
        (msgspec.structs.replace(o, loss=o.loss ^ 1), r"opening 2: loss bits 0x[0-9a-f]{8}, the result has 0x[0-9a-f]{8}$"),
        (msgspec.structs.replace(o, path=other.path), r"opening 2: not under the transcript root: "),
        (msgspec.structs.replace(o, weights_hash=other.weights_hash), r"opening 2: not under the transcript root: "),
        (msgspec.structs.replace(o, weights=None), r"opening 2 carries no weights$"),
        (msgspec.structs.replace(o, weights=(o.weights or b"")[:-4]), r"opening 2: weights are 2596 bytes, expected 2600$"),
        (msgspec.structs.replace(o, weights=other.weights), r"opening 2: weights do not hash to the entry's weights hash$"),
    ]
    for bad, reason in cases:
        with pytest.raises(BlockError, match=rf"^training result #0: {reason}"):
            verify_opening(result, bad, need_weights=True)
    # Weights that are present are checked even when not needed: nothing unverified is stored.
    with pytest.raises(BlockError, match="do not hash"):
        verify_opening(result, msgspec.structs.replace(o, weights=other.weights), need_weights=False)
    with pytest.raises(BlockError, match="carries no weights"):
        msgspec.structs.replace(o, weights=None).get_weights()


def test_the_dispatch_checks_a_result_s_shape(trained) -> None:
    result, job, _ = trained
    verify_result_shape(job, result)
    nan = int(np.float32("nan").view(np.uint32))
    inf_weights = np.asarray(result.get_weights(), dtype="<f4").copy()
    inf_weights[5] = np.inf
    cases = [
        (msgspec.structs.replace(result, diverged_segment=6), r"diverged segment 6 of 6$"),
        (msgspec.structs.replace(result, losses=result.losses[:-1]), r"6 losses, expected 7$"),
        (msgspec.structs.replace(result, diverged_segment=2), r"7 losses, expected 3$"),
        (msgspec.structs.replace(result, losses=(1, *result.losses[1:])), r"entry 0's loss bits are 0x00000001, expected 0"),
        (msgspec.structs.replace(result, losses=(*result.losses[:-1], nan)), r"a loss is not finite$"),
        (msgspec.structs.replace(result, weights=result.weights[:-4]), r"weights are 2596 bytes, expected 2600$"),
        (msgspec.structs.replace(result, weights=inf_weights.tobytes()), r"the weights are not all finite$"),
    ]
    for bad, reason in cases:
        with pytest.raises(BlockError, match=rf"^training result #0: {reason}"):
            verify_result_shape(job, bad)
    verify_result_shape(job, msgspec.structs.replace(result, losses=result.losses[:3], diverged_segment=2))


def test_segment_and_divergence_checks_name_a_bad_starting_checkpoint(trained) -> None:
    """verify_segment and verify_divergence trust only that the start opening's weights hash
    to its entry (a sampled verifier has not re-run the segment before it): a committed
    checkpoint that is not finite is refused for that reason, not passed to the kernels."""
    result, job, outcome = trained
    openings = compute_openings(outcome)
    bad = np.asarray(outcome.checkpoints[2], dtype="<f4").copy()
    bad[0] = np.inf
    start = msgspec.structs.replace(openings[2], weights=bad.tobytes())
    with pytest.raises(BlockError, match=r"^training result #0: segment 2: checkpoint contains NaN or infinity$"):
        verify_segment(job, result, 2, start, openings[3])
    diverged = msgspec.structs.replace(result, losses=result.losses[:3], diverged_segment=2)
    with pytest.raises(BlockError, match=r"^training result #0: diverged segment 2: checkpoint contains NaN or infinity$"):
        verify_divergence(job, diverged, start)
    verify_segment(job, result, 2, openings[2], openings[3])  # the honest segment


def test_a_loss_mismatch_names_both_losses(trained) -> None:
    result, job, outcome = trained
    openings = compute_openings(outcome)
    honest = openings[4].loss
    lie = msgspec.structs.replace(openings[4], loss=honest ^ 1)
    with pytest.raises(BlockError, match=rf"^training result #0: segment 3 re-runs to loss bits {honest:#010x}, entry 4 claims {honest ^ 1:#010x}$"):
        verify_segment(job, result, 3, openings[3], lie)


def test_the_rerun_thread_policy(trained, monkeypatch) -> None:
    """compute_rerun_threads, for both verifiers: one segment, or less work than POOL_MIN_UNITS,
    runs inline (1); work of POOL_MIN_UNITS or more over two or more segments gets one thread a
    core (1 if the core count is unknown)."""
    _, job, _ = trained
    segments = [(job, j) for j in range(3)]
    units = [ml_runtime.step_cost(job.spec, job.batch_size) * len(job.segment_steps(j)) for j in range(3)]
    monkeypatch.setattr(proofs.os, "cpu_count", lambda: 7)
    assert proofs.compute_rerun_threads(segments) == 1  # far below the default minimum
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", sum(units))
    assert proofs.compute_rerun_threads(segments) == 7  # exactly the minimum: a pool
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", units[0] + units[1])
    assert proofs.compute_rerun_threads(segments[:2]) == 7  # two segments: a pool
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", 0)
    assert proofs.compute_rerun_threads(segments[:1]) == 1  # one segment: nothing to share
    assert proofs.compute_rerun_threads([]) == 1
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", sum(units) + 1)
    assert proofs.compute_rerun_threads(segments) == 1
    monkeypatch.setattr(proofs, "POOL_MIN_UNITS", 0)
    monkeypatch.setattr(proofs.os, "cpu_count", lambda: None)
    assert proofs.compute_rerun_threads(segments) == 1


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_map_reruns_gives_task_order_and_a_task_s_exception_at_its_place(threads: int) -> None:
    """Results come in task order however the pool finishes them (earlier tasks here take
    longer), and an exception raised in a task surfaces after the results before it, as
    inline: the earliest one, though a later task failed first."""
    import time

    def rerun(i: int) -> int:
        time.sleep(0.002 * (6 - i))
        if i in (3, 5):
            raise ValueError(f"task {i}")
        return i * i

    assert list(map_reruns(rerun, range(3), threads)) == [0, 1, 4]
    assert list(map_reruns(rerun, [], threads)) == []
    got: list[int] = []
    with pytest.raises(ValueError, match=r"^task 3$"):
        got.extend(map_reruns(rerun, range(6), threads))
    assert got == [0, 1, 4]


def test_closing_map_reruns_early_cancels_the_tasks_not_started() -> None:
    """The first fault ends a check: closing the iterator then cancels what no thread has
    started (with two threads busy for 0.5 s, tasks 3.. are still queued) and lets the
    running ones finish; inline, nothing after the last result asked for runs."""
    import time

    started: list[int] = []

    def rerun(i: int) -> int:
        started.append(i)
        if i:
            time.sleep(0.5)
        return i

    for threads in (1, 2):
        started.clear()
        results = map_reruns(rerun, range(10), threads)
        assert next(results) == 0
        results.close()
        assert max(started) <= (0 if threads == 1 else 3)


@pytest.mark.parametrize("threads", [0, -1, True, 2.0, "2"])
def test_the_auditor_refuses_a_thread_count_that_is_not_a_positive_int(threads) -> None:
    with pytest.raises(ValueError, match=r"^re-run threads must be a positive int or None, got "):
        FullReexecution(threads)
