"""Every forgery class of issue 9, told consistently, and caught by full re-execution.

Each forged block is built by an author whose trainer forged the job's outcome
(tests/forgery.py): the result, the openings it serves, the transcript root, the results
root in the header, the state root and the seal all agree with the forgery, so no header or
root check can catch it. The validator imports it with ``FullReexecution`` through the
author's openings and must name the fault; its state root, best block and transcript store
stay as they were. Each test fails if the check it names is removed from chain/proofs.py
(the other checks catch the forgery, if at all, with another reason). Every test runs with
the auditor's re-runs as a node makes them (the pool policy: these blocks are small, so on the
importing thread) and forced onto a pool of two threads, and must find the same fault.
"""

from __future__ import annotations

import os
import threading

import pytest
from chainkit import ALICE, BOB, open_chain, sign, train_call

import ml_runtime
from chain import proofs
from chain.errors import BlockError, CheckpointsUnavailable
from chain.header import seal_header
from chain.proofs import FullReexecution
from chain.storage import Column
from chain.transcripts import LocalSource
from tests.forgery import WithholdingSource, forge_outcome, forging_trainer

# train_call(): 40 steps in segments of 10, S = 4 segments, n = 5 entries.
CASES = [
    ("start", 0, r"checkpoint 0 is not the model's on-chain weights$"),
    ("segment", 2, r"segment 1 re-runs to other weights than entry 2's$"),
    ("end", 0, r"the result's weights are not checkpoint 4 of its transcript$"),
    ("divergence", 2, r"segment 2 does not diverge as claimed$"),
    ("loss", 3, r"segment 2 re-runs to loss bits 0x[0-9a-f]{8}, entry 3 claims 0x[0-9a-f]{8}$"),
]


@pytest.fixture(params=[None, 2], ids=["policy", "pool"])
def validator(tmp_path, request):
    chain = open_chain(tmp_path / "validator", verifier=FullReexecution(request.param))
    yield chain
    chain.db.close()


def _unchanged(chain) -> tuple:
    return chain.state.root(), chain.best_hash, sum(1 for _ in chain.db.iterate(Column.OPENING))


@pytest.mark.parametrize(("kind", "segment", "reason"), CASES, ids=[c[0] for c in CASES])
def test_full_reexecution_names_each_forgery(tmp_path, validator, kind: str, segment: int, reason: str) -> None:
    forger = open_chain(tmp_path / "forger", trainer=forging_trainer(kind, segment))
    built = forger.build_block([sign(forger, BOB, train_call(), 0)], ALICE, slot=1)
    # The forgery is consistent: the author's own store verifies every opening against the result.
    (result,) = built.block.body.results
    LocalSource(forger.transcripts).fetch(built.block.hash(), result, [(j, True) for j in range(len(result.losses))])
    before = _unchanged(validator)
    with pytest.raises(BlockError, match=rf"^training result #0: {reason}"):
        validator.import_block(built.block, LocalSource(forger.transcripts))
    assert _unchanged(validator) == before
    forger.db.close()


def test_a_withheld_checkpoint_makes_the_block_unavailable_not_imported(tmp_path, validator) -> None:
    author = open_chain(tmp_path / "author")
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    before = _unchanged(validator)
    with pytest.raises(CheckpointsUnavailable, match=r"^training result #0: entries \[2\] withheld$"):
        validator.import_block(built.block, WithholdingSource(LocalSource(author.transcripts), [2]))
    assert _unchanged(validator) == before
    # From the validator's own (empty) store: unavailable too, naming what it lacks.
    with pytest.raises(CheckpointsUnavailable, match=r"training result #0: entries 0, 1, 2, 3, 4 are not stored here$"):
        validator.import_block(built.block)
    assert _unchanged(validator) == before
    # Once the checkpoints can be had, the same block imports, and the validator keeps them.
    validator.import_block(built.block, LocalSource(author.transcripts))
    assert validator.best_hash == built.block.hash() and _unchanged(validator)[2] == 5
    author.db.close()


def test_a_source_that_serves_another_job_s_openings_is_caught(tmp_path, validator) -> None:
    """A source that returns unverified openings (here: a peer serving the openings of
    another block's job) does not get them past the auditor: each is checked against the
    result's transcript root."""
    author = open_chain(tmp_path / "author")
    first = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    second = author.build_block([sign(author, BOB, train_call(), 1)], ALICE, slot=2)
    validator.import_block(first.block, LocalSource(author.transcripts))

    class Liar:
        def fetch(self, block_hash, result, wanted):
            return {j: author.transcripts.get(first.block.hash(), 0, j) for j, _ in wanted}

    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^training result #0: opening 0: (loss bits|not under the transcript root)"):
        validator.import_block(second.block, Liar())
    assert _unchanged(validator) == before
    author.db.close()


def test_a_source_that_silently_omits_a_checkpoint_is_unavailable(tmp_path, validator) -> None:
    """A source is to raise CheckpointsUnavailable itself; one that returns fewer openings
    than asked for (a buggy or hostile implementation) does not get a block past the auditor."""
    author = open_chain(tmp_path / "author")
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    local = LocalSource(author.transcripts)

    class Forgetful:
        def fetch(self, block_hash, result, wanted):
            return {j: o for j, o in local.fetch(block_hash, result, wanted).items() if j != 3}

    before = _unchanged(validator)
    with pytest.raises(CheckpointsUnavailable, match=r"^training result #0: checkpoints \[3\] could not be obtained$"):
        validator.import_block(built.block, Forgetful())
    assert _unchanged(validator) == before
    author.db.close()


def test_no_checkpoint_is_fetched_for_a_block_whose_roots_do_not_match(tmp_path, validator) -> None:
    """The verifier runs only once the state root, extrinsics root and POL_ commitment match
    the header: a block that is wrong in a cheap way costs no fetch and no re-execution."""
    import msgspec

    from chain.block import Block

    author = open_chain(tmp_path / "author")
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    asked: list[int] = []
    local = LocalSource(author.transcripts)

    class Counting:
        def fetch(self, block_hash, result, wanted):
            asked.extend(j for j, _ in wanted)
            return local.fetch(block_hash, result, wanted)

    header = msgspec.structs.replace(built.block.header, state_root=bytes(32))
    header = seal_header(ALICE, author.genesis_hash, header)
    with pytest.raises(BlockError, match=r"^state root mismatch"):
        validator.import_block(Block(header, built.block.body), Counting())
    assert asked == []
    validator.import_block(built.block, Counting())
    assert asked == [0, 1, 2, 3, 4]
    author.db.close()


def test_a_source_that_leaves_out_the_weights_is_refused(tmp_path, validator) -> None:
    """The auditor asks for every segment's input checkpoint with its weights (the last entry
    by its hash, as every validator: chain.proofs.compute_wanted); openings without them (a
    source that ignores the request's need_weights) are refused for that reason."""
    import msgspec

    author = open_chain(tmp_path / "author")
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    local = LocalSource(author.transcripts)
    asked: list[tuple[int, bool]] = []

    class Light:
        def fetch(self, block_hash, result, wanted):
            asked.extend(wanted)
            return {j: msgspec.structs.replace(o, weights=None) for j, o in local.fetch(block_hash, result, wanted).items()}

    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^training result #0: opening 0 carries no weights$"):
        validator.import_block(built.block, Light())
    assert asked == [(j, True) for j in range(4)] + [(4, False)]
    assert _unchanged(validator) == before
    author.db.close()


def test_a_job_that_diverged_but_claims_to_have_finished_is_refused(tmp_path, validator) -> None:
    """An author whose job diverged in segment d, claiming it finished (checkpoint d repeated
    after it, the transcript rebuilt): re-running segment d diverges, and the auditor says so."""
    import ml_runtime

    def undiverge(job):
        outcome = ml_runtime.run_job(job)
        assert not outcome.finite
        d = outcome.diverged_segment
        last = outcome.checkpoints[-1]
        checkpoints = (*outcome.checkpoints, *(last for _ in range(job.num_segments - d)))
        entries = [*outcome.transcript.entries]
        entries += [ml_runtime.TranscriptEntry(j, entries[-1].weights_hash, 1.0) for j in range(d + 1, job.num_segments + 1)]
        return ml_runtime.JobResult(last, checkpoints, ml_runtime.Transcript.build(entries), True)

    forger = open_chain(tmp_path / "forger", trainer=undiverge)
    built = forger.build_block([sign(forger, BOB, train_call(lr=3e38, l2=0.0), 0)], ALICE, slot=1)
    assert built.receipts[0].success  # the lie: a new model version
    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^training result #0: segment 0 diverges on re-execution; the transcript claims finite weights$"):
        validator.import_block(built.block, LocalSource(forger.transcripts))
    assert _unchanged(validator) == before
    forger.db.close()


def _forging_each(forgeries):
    """A trainer that runs each job honestly, then forges the i-th job of the block as
    ``forgeries[i]`` says ((kind, segment), or None: left honest)."""
    left = iter(forgeries)

    def train(job):
        outcome = ml_runtime.run_job(job)
        forgery = next(left)
        return outcome if forgery is None else forge_outcome(outcome, *forgery)

    return train


# Two TRAIN calls in one block (train_call: n = 5 entries each). A nudged checkpoint k breaks
# segments k - 1 and k of its job; the earliest fault (claims in order, segments in order) is
# the one to report, whatever a pool finishes first.
TWO_CLAIMS = [
    (("segment", 3), ("segment", 1), r"#0: segment 2 re-runs to other weights than entry 3's$"),
    (("loss", 4), ("segment", 1), r"#0: segment 3 re-runs to loss bits 0x[0-9a-f]{8}, entry 4 claims 0x[0-9a-f]{8}$"),
    (("segment", 3), ("start", 0), r"#0: segment 2 re-runs to other weights than entry 3's$"),
    (("segment", 3), ("end", 0), r"#0: segment 2 re-runs to other weights than entry 3's$"),
    (None, ("segment", 1), r"#1: segment 0 re-runs to other weights than entry 1's$"),
    (None, ("divergence", 2), r"#1: segment 2 does not diverge as claimed$"),
]


@pytest.mark.parametrize(("first", "second", "reason"), TWO_CLAIMS, ids=["seg-seg", "loss-seg", "seg-start", "seg-end",
                                                                         "ok-seg", "ok-div"])
def test_the_earliest_fault_of_two_forged_claims_is_reported_on_one_thread_and_on_a_pool(
    tmp_path, first, second, reason
) -> None:
    """The earliest fault is reported with the re-runs on a pool as on one thread: a later
    claim's fault (or its broken link, checked before any segment) that a pool finds first
    does not pre-empt an earlier claim's segment."""
    forger = open_chain(tmp_path / "forger", trainer=_forging_each([first, second]))
    built = forger.build_block([sign(forger, BOB, train_call(), 0), sign(forger, BOB, train_call(), 1)], ALICE, slot=1)
    assert [r.extrinsic_index for r in built.block.body.results] == [0, 1]
    validator = open_chain(tmp_path / "validator")
    before = _unchanged(validator)
    for threads in (1, 2):
        validator.verifier = FullReexecution(threads)
        with pytest.raises(BlockError, match=rf"^training result {reason}"):
            validator.import_block(built.block, LocalSource(forger.transcripts))
        assert _unchanged(validator) == before
    validator.db.close()
    forger.db.close()


def _record_segment_threads(monkeypatch) -> list[int]:
    """The thread of every segment re-run (chain.proofs.verify_segment) from now on, in order."""
    ran_on: list[int] = []
    real = proofs.verify_segment

    def recording(*args):
        ran_on.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(proofs, "verify_segment", recording)
    return ran_on


def test_the_auditor_reruns_a_large_block_on_every_core_and_a_small_one_inline(tmp_path, monkeypatch) -> None:
    """Full re-execution follows the sampled verifier's pool policy (chain.proofs.
    compute_rerun_threads): a block whose segments weigh POOL_MIN_UNITS or more is re-run on
    one thread a core, off the importing thread; a small one on the importing thread."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ran_on = _record_segment_threads(monkeypatch)
    author = open_chain(tmp_path / "author")
    small = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    # The dev genesis's model 0 (softmax 64 -> 10), 32 segments of 40 steps at batch 32: 1,280
    # steps of 48,788 units, over POOL_MIN_UNITS (50 million).
    large = author.build_block([sign(author, BOB, train_call(1280, 32, 0.5, 40), 1)], ALICE, slot=2)
    assert 1280 * ml_runtime.step_cost(ml_runtime.ModelSpec("softmax", 64, 10, 0), 32) >= 50_000_000
    validator = open_chain(tmp_path / "validator")
    validator.import_block(small.block, LocalSource(author.transcripts))
    assert len(ran_on) == 4 and set(ran_on) == {threading.get_ident()}
    ran_on.clear()
    validator.import_block(large.block, LocalSource(author.transcripts))
    assert len(ran_on) == 32 and threading.get_ident() not in ran_on
    assert validator.best_hash == large.block.hash()
    validator.db.close()
    author.db.close()


def test_the_auditor_s_thread_count_overrides_the_pool_policy(tmp_path, monkeypatch) -> None:
    """FullReexecution(threads=n) re-runs every block on n threads whatever its size: a small
    block (the policy: inline) goes to a pool of two with threads=2, off the importing thread,
    and is judged the same (a forged segment named as inline; the honest block imports)."""
    ran_on = _record_segment_threads(monkeypatch)
    forger = open_chain(tmp_path / "forger", trainer=forging_trainer("segment", 2))
    forged = forger.build_block([sign(forger, BOB, train_call(), 0)], ALICE, slot=1)
    author = open_chain(tmp_path / "author")
    honest = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    validator = open_chain(tmp_path / "validator", verifier=FullReexecution(2))
    # 40 steps at batch 16 of the dev model (softmax 64 -> 10): far under POOL_MIN_UNITS.
    assert 40 * ml_runtime.step_cost(ml_runtime.ModelSpec("softmax", 64, 10, 0), 16) < proofs.POOL_MIN_UNITS
    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^training result #0: segment 1 re-runs to other weights than entry 2's$"):
        validator.import_block(forged.block, LocalSource(forger.transcripts))
    assert _unchanged(validator) == before
    assert ran_on and threading.get_ident() not in ran_on
    ran_on.clear()
    validator.import_block(honest.block, LocalSource(author.transcripts))
    assert len(ran_on) == 4 and threading.get_ident() not in ran_on
    assert validator.best_hash == honest.block.hash()
    for chain in (forger, author, validator):
        chain.db.close()


def _resealed(genesis: bytes, header, **changes):
    import msgspec

    from chain.header import seal_header

    return seal_header(ALICE, genesis, msgspec.structs.replace(header, **changes))


def test_a_re_sealed_header_claiming_other_work_is_refused_for_its_pol_commitment(tmp_path, validator) -> None:
    """The author claims one more SGD step than it ran (the step count is what verifiers and
    rewards read), the commitment digest recomputed and the header re-sealed: the re-executed
    commitment differs, before any checkpoint is asked for."""
    from chain.block import Block
    from chain.header import PolCommitment, compute_pol_digest

    author = open_chain(tmp_path / "author")
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    header = built.block.header
    claimed = header.get_pol_commitment()
    inflated = compute_pol_digest(PolCommitment(claimed.transcripts_root, claimed.training_steps + 1, claimed.work_units))
    digest = tuple(inflated if d.engine == inflated.engine and d.kind == inflated.kind else d for d in header.digest)
    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^POL commitment mismatch: re-execution gives PolCommitment\("):
        validator.import_block(Block(_resealed(author.genesis_hash, header, digest=digest), built.block.body))
    assert _unchanged(validator) == before
    imported = validator.import_block(built.block, LocalSource(author.transcripts))
    assert imported.training_steps == claimed.training_steps == 40
    author.db.close()


def test_a_training_result_no_train_call_uses_is_refused(tmp_path, validator) -> None:
    """A body carrying a second training result, for an extrinsic that is no TRAIN call (the
    results root and so the POL commitment recomputed over both, the header re-sealed): every
    result must be one a TRAIN call of the block used."""
    import msgspec

    from chain import calls
    from chain.block import Block, Body
    from chain.header import PolCommitment, compute_pol_digest
    from chain.proofs import compute_results_root

    author = open_chain(tmp_path / "author")
    xts = [sign(author, BOB, train_call(), 0), sign(author, ALICE, calls.Remark(b"no training"), 0)]
    built = author.build_block(xts, ALICE, slot=1)
    (result,) = built.block.body.results
    results = (result, msgspec.structs.replace(result, extrinsic_index=1))
    header = built.block.header
    claimed = header.get_pol_commitment()
    pol = compute_pol_digest(PolCommitment(compute_results_root(list(results)), claimed.training_steps, claimed.work_units))
    digest = tuple(pol if d.engine == pol.engine and d.kind == pol.kind else d for d in header.digest)
    before = _unchanged(validator)
    with pytest.raises(BlockError, match=r"^training results used mismatch: re-execution gives \{0\}, the block claims \{0, 1\}$"):
        validator.import_block(Block(_resealed(author.genesis_hash, header, digest=digest), Body(built.block.body.extrinsics, results)))
    assert _unchanged(validator) == before
    author.db.close()
