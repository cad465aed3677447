"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): every call that reads a data set's rows declares reading
them (datasets.compute_read_weight), and posting a bounty reads none."""

from __future__ import annotations

from typing import Any

import pytest
from chainkit import ALICE, BOB
from test_pallets import Driver
from test_weights_datasets import ReadLog, compute_rows, compute_weight

import ml_runtime
from chain import calls
from chain.errors import DispatchError
from chain.pallets import bounties, datasets, models, pol
from chain.pallets.context import BlockInfo, CallContext
from chain.pallets.training import TRAIN_BASE_WEIGHT


def _ctx(chain, state: Any) -> CallContext:
    block = BlockInfo(chain.best_number + 1, chain.best_hash, ALICE.public, True, ml_runtime.run_job)
    return CallContext(state, BOB.public, 0, bytes(32), 0, block, chain.config)


# --- models.post_bounty read the whole data set before refusing it ------------------------------


def test_a_bounty_on_a_data_set_too_large_to_validate_is_refused_before_any_row_is_read(chain) -> None:
    """Before: the post read every row of the data set it named (32 MiB: about 19 ms, at the
    fixed 300,000 units of a post), and only then refused it as too large to validate."""
    d = Driver(chain)
    rows = ml_runtime.MAX_BATCH + 1
    raw = compute_rows(rows, 64, 10)  # fits model 0 (softmax, 64 features, 10 classes)
    root = datasets.compute_rows_root(raw, 260)
    assert d.apply(BOB, calls.RegisterDataset("big", 64, "classification", 10, rows, root, 0, "")).success
    half = rows // 2 * 260
    assert d.apply(BOB, calls.AppendRows(1, 0, raw[:half])).success
    assert d.apply(BOB, calls.AppendRows(1, rows // 2, raw[half:])).success
    post = calls.PostBounty(0, 1, calls.compute_f32_bits(0.5), 1, 100)
    d.fails(BOB, post, "ValidationTooLarge")  # Driver: the state moved by the fee and nonce only
    datasets._ROWS_CACHE.clear()
    log = ReadLog(chain.state.overlay())
    with pytest.raises(DispatchError, match="has 4097 rows") as raised:
        bounties.apply_post_bounty(_ctx(chain, log), post)
    assert raised.value.error == "ValidationTooLarge"
    assert log.chunk_reads() == 0, "the post read the data set's rows"


def test_posting_a_bounty_reads_no_row_and_claiming_declares_the_rows_it_reads(chain) -> None:
    """The post checks the data set's record only (the rows are immutable once complete: the
    claim reads them); the claim's weight counts the bytes it reads besides the evaluation."""
    state = chain.state.overlay()
    log = ReadLog(state)
    bounties.apply_post_bounty(_ctx(chain, log), calls.PostBounty(0, 0, calls.compute_f32_bits(0.5), 1, 100))
    assert log.chunk_reads() == 0
    info = datasets.get_dataset(state, 0)
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    weight = bounties.compute_claim_weight(state, calls.ClaimBounty(0, 0))  # version 0: no ancestor to evaluate
    assert weight == (
        bounties.BOUNTY_BASE_WEIGHT + datasets.compute_read_weight(info)
        + bounties.LINEAGE_READ_WEIGHT + models.compute_weights_read_weight(spec) + ml_runtime.step_cost(spec, info.row_count)
    )


# --- training.train and pol.report_fraud read the whole data set --------------------------------


def test_a_train_call_declares_reading_its_data_set(chain) -> None:
    """A TRAIN call of one step reads every row of its data set (an attacker rotates more data
    sets than a node caches): before, its weight did not grow with the data set at all."""
    info = datasets.get_dataset(chain.state.overlay(), 0)  # digits: 1,797 rows of 260 bytes
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    call = calls.Train(0, 0, 1, 1, calls.compute_f32_bits(0.5), 0, 1)
    extra = compute_weight(chain, call) - TRAIN_BASE_WEIGHT - ml_runtime.train_step_cost(spec, 1) - ml_runtime.segment_cost(spec)
    assert extra >= info.row_count * info.row_size
    assert extra == datasets.compute_read_weight(info)


def test_a_train_call_that_fails_after_reading_its_rows_pays_for_them(chain) -> None:
    d = Driver(chain)
    state = chain.state.overlay()
    raw = compute_rows(100, 64, 2)
    info = datasets.DatasetInfo(BOB.public, "two", 64, "classification", 2, 100, datasets.compute_rows_root(raw, 260), 0, "")
    assert d.apply(BOB, calls.RegisterDataset(info.name, 64, "classification", 2, 100, info.rows_root, 0, "")).success
    assert d.apply(BOB, calls.AppendRows(1, 0, raw)).success
    state = chain.state.overlay()
    receipt = d.apply(BOB, calls.Train(0, 1, 1, 1, calls.compute_f32_bits(0.5), 0, 1))  # 2 classes, the model 10
    assert not receipt.success and "DatasetMismatch" in (receipt.error or "")
    assert receipt.weight >= TRAIN_BASE_WEIGHT + 100 * 260
    assert receipt.weight == TRAIN_BASE_WEIGHT + datasets.compute_read_weight(datasets.get_dataset(state, 1))


def test_a_fraud_report_declares_reading_the_data_set_it_rebuilds_the_job_from(chain, tmp_path) -> None:
    from test_pallet_pol import _fraud_world

    _, job, proof = _fraud_world(tmp_path, forge=True)
    call = calls.ReportFraud(proof.encode())
    state = chain.state.overlay()
    train = proof.extrinsic.call
    info = datasets.get_dataset(state, train.dataset)
    segment = ml_runtime.train_step_cost(job.spec, job.batch_size) * min(train.segment_len, train.steps) + ml_runtime.segment_cost(job.spec)
    assert pol.compute_report_fraud_weight(state, call) - pol.REPORT_BASE_WEIGHT - segment >= info.row_count * info.row_size
    expected = pol.REPORT_BASE_WEIGHT + segment
    assert pol.compute_report_fraud_weight(state, call) == expected + datasets.compute_read_weight(info)
