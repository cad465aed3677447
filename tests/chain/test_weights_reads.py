"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): every call that reads a data set's rows declares reading
them (datasets.compute_read_weight), and posting a bounty reads none."""

from __future__ import annotations

from typing import Any

import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE
from test_pallets import Driver
from test_weights_datasets import ReadLog, compute_rows, compute_weight

import ml_runtime
from chain import calls
from chain.errors import DispatchError
from chain.pallets import bounties, datasets, licenses, models, pol
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


def test_a_train_call_refused_by_a_check_that_needs_no_row_pays_no_read(chain) -> None:
    """Every check of a TRAIN call that reads no row comes before the rows are read and
    charged: the data set's schema and size, and its licence's terms and payment. Before
    (runtime version 5; an outside tester's S1, round 8), a TRAIN refused by its data set's
    licence or schema paid for reading every row first: up to a block's weight for a large set.
    Each refusal leaves the state as before but for the fee and nonce (Driver.fails)."""
    d = Driver(chain)
    raw = compute_rows(100, 64, 2)
    assert d.apply(BOB, calls.RegisterDataset("two", 64, "classification", 2, 100, datasets.compute_rows_root(raw, 260), 0, "")).success
    assert d.apply(BOB, calls.AppendRows(1, 0, raw)).success
    assert d.apply(BOB, calls.RegisterDataset("half", 64, "classification", 10, 100, datasets.compute_rows_root(raw, 260), 0, "")).success
    assert d.apply(BOB, calls.AppendRows(2, 0, raw[: 50 * 260])).success
    digits = datasets.get_dataset(chain.state.overlay(), 0)

    def refused(call: calls.Train, error: str) -> None:
        receipt = d.apply(CHARLIE, call)
        assert not receipt.success and error in (receipt.error or ""), receipt.error
        assert receipt.weight == TRAIN_BASE_WEIGHT, (error, receipt.weight - TRAIN_BASE_WEIGHT)

    refused(calls.Train(0, 1, 1, 1, calls.compute_f32_bits(0.5), 0, 1), "training.DatasetMismatch")  # 2 classes, the model 10
    refused(calls.Train(0, 0, 1, 1, calls.compute_f32_bits(0.5), 0, 1, from_version=99), "models.UnknownVersion")
    refused(calls.Train(0, 2, 1, 1, calls.compute_f32_bits(0.5), 0, 1), "datasets.Incomplete")
    refused(calls.Train(0, 0, 1, digits.row_count + 1, calls.compute_f32_bits(0.5), 0, 1), "training.InvalidBatchSize")
    refused(calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1, max_data_license=8 * digits.price_per_row - 1),
            "training.LicenseAboveLimit")
    terms = calls.LicenseTerms(0, allowed="accounts", accounts=(BOB.public,))
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, terms)).success
    for _ in range(licenses.LICENSE_NOTICE_BLOCKS):
        assert d.apply(BOB, calls.Remark(b"tick")).success
    refused(calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1), "datasets.NotLicensed")
    trained = d.apply(BOB, calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1))
    assert trained.success, trained.error  # the licensee trains, and pays the read with the rest
    assert trained.weight > TRAIN_BASE_WEIGHT + datasets.compute_read_weight(digits)


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
