"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): every call that reads a data set's rows declares reading
them (datasets.compute_read_weight), and posting a bounty reads none.

Mutation testing of 4de8454 (runtime version 6: a TRAIN checks its data set and pays both
licences before it reads the rows and is charged for them; 2026-11-30, 13:02-13:38 UTC, mutmut
3.8.1): in a scratch copy (``git archive`` of 4de8454) whose ``[tool.mutmut]`` had only_mutate
narrowed to chain/pallets/training.py and chain/pallets/datasets.py (the test selection to this
file), ``mutmut run --max-children 1 "chain.pallets.training.x_nothing_matches*"`` made the
mutants (none ran). In scope, 218: every mutant of the functions the commit added
(training.compute_job_at, verify_job_inputs, _compute_job; datasets.get_complete_dataset) and
those of apply_train whose changed lines all lie in its reordered part (``verify_job_inputs``
through ``_compute_job``: 70 of 259) and of get_rows on its ``get_complete_dataset`` line (5 of
111). Each was applied with ``mutmut apply NAME`` and ``python -m pytest -x -p no:cacheprovider
tests/chain/test_weights_reads.py`` run in a fresh process (one at a time), the two files restored
after each; survivors were then run with tests/chain/test_licenses.py, test_pallets.py and
test_weights_datasets.py too. Killed/total, before -> after the tests added then (each watched
failing on its mutants, this file alone): get_complete_dataset 14/15 -> 15/15; get_rows 5/5;
compute_job_at 20/21 -> 21/21; verify_job_inputs 45/54 -> 54/54; _compute_job 42/53 -> 53/53;
apply_train 53/70 -> 69/70. Killed by the new tests and assertions:

- the Incomplete, DatasetMismatch, InvalidBatchSize and LicenseAboveLimit messages set to None or
  another text (the refusals now compare the receipt's whole error);
- the model family's kind (``"regression" if spec.family == "linear"`` with its operands or
  strings changed), ``info.kind != wanted and ...`` and ``batch_size >= info.row_count``: no test
  trained a linear model, or refused a data set that differed in kind alone, or took every row
  in one batch (test_a_train_call_matches_its_models_family_to_its_data_sets_kind_before_reading_it,
  which also pays a model licence, killing ``dust = None`` (the payment skipped: test_licenses.py
  checks the event's amount alone), and rebuilds a job from a version the call names, killing
  ``from_version is None or True``);
- compute_job_at passing None for the data set's record it returns
  (test_the_job_a_train_call_describes_comes_with_its_parent_version_and_data_set);
- _compute_job's InvalidJob error (10) and the read's post-dispatch info (10): no test reached a
  failure after the read (test_a_train_call_whose_job_the_runtime_refuses_pays_for_the_rows_it_read:
  a chain whose max_train_batch exceeds ml_runtime's 4,096; its receipt's weight and fee pin the
  weight, result and transcript bytes).

A last run of all 218 against this file as committed killed 217. The survivor was equivalent:
apply_train's ``_compute_job(..., None, ...)`` for the data set's record, which _compute_job only
returned and apply_train discarded; since 8c80088 _compute_job returns the job alone, and the
mutant no longer exists.

A bug the run found had been fixed meanwhile (8c80088, in version 6 before any node ran it): a
TRAIN whose from_version its model does not have was refused (models.UnknownVersion) by
_compute_job's read of the parent's weights, after apply_train had set the read's weight, so it
paid for every row of the data set (1,868,880 units for digits, beyond its base of 1,000,000) and
read none. verify_job_inputs now reads the version first; the refusals test pins its weight."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, dev_spec, event_args, open_chain, sign
from test_pallets import Driver
from test_weights_datasets import ReadLog, compute_rows, compute_weight

import ml_runtime
from chain import calls
from chain.errors import DispatchError
from chain.pallets import balances, bounties, datasets, licenses, models, pol, training
from chain.pallets.context import BlockInfo, CallContext
from chain.pallets.training import TRAIN_BASE_WEIGHT
from chain.runtime import DispatchInfo
from genesis.spec import parse_chain_spec


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

    refused(  # 2 classes, the model 10
        calls.Train(0, 1, 1, 1, calls.compute_f32_bits(0.5), 0, 1),
        "training.DatasetMismatch: model 0 (softmax, d=64, k=10) cannot train on data set 1 (classification, 64 features, 2 outputs)",
    )
    refused(calls.Train(0, 0, 1, 1, calls.compute_f32_bits(0.5), 0, 1, from_version=99), "models.UnknownVersion: model 0 has no version 99")
    refused(calls.Train(0, 2, 1, 1, calls.compute_f32_bits(0.5), 0, 1), "datasets.Incomplete: data set 2 has 50 of 100 rows uploaded")
    refused(
        calls.Train(0, 0, 1, digits.row_count + 1, calls.compute_f32_bits(0.5), 0, 1),
        f"training.InvalidBatchSize: batch_size {digits.row_count + 1} exceeds the data set's {digits.row_count} rows",
    )
    price = 8 * digits.price_per_row
    refused(
        calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1, max_data_license=price - 1),
        f"training.LicenseAboveLimit: the data set's licence is {price}; the call pays at most {price - 1}",
    )
    terms = calls.LicenseTerms(0, allowed="accounts", accounts=(BOB.public,))
    assert d.apply(FERDIE, calls.SetDatasetLicense(0, terms)).success
    for _ in range(licenses.LICENSE_NOTICE_BLOCKS):
        assert d.apply(BOB, calls.Remark(b"tick")).success
    refused(calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1), "datasets.NotLicensed")
    trained = d.apply(BOB, calls.Train(0, 0, 1, 8, calls.compute_f32_bits(0.5), 0, 1))
    assert trained.success, trained.error  # the licensee trains, and pays the read with the rest
    assert trained.weight > TRAIN_BASE_WEIGHT + datasets.compute_read_weight(digits)


def test_a_train_call_matches_its_models_family_to_its_data_sets_kind_before_reading_it(chain) -> None:
    """A linear model trains on a regression data set of its shape only, a softmax model on a
    classification one only (a kind that differs alone is refused), each refusal before the
    rows are read and charged; a batch may take every row of the data set. The trainer pays the
    model's licence to its owner, and a job starts from the version the call names (the model's
    latest if none)."""
    d = Driver(chain)
    state = chain.state.overlay()
    linear, first = models.NEXT_MODEL_ID.get(state), datasets.NEXT_DATASET_ID.get(state)
    assert d.apply(BOB, calls.RegisterModel("lin", ml_runtime.ModelSpec("linear", 4, 2).encode(), bytes(32))).success
    rng = np.random.default_rng(1)

    def register(name: str, features: int, kind: str, outputs: int) -> int:
        x = rng.standard_normal((16, features)).astype(np.float32)
        if kind == "regression":
            y = rng.standard_normal((16, outputs)).astype(np.float32)
        else:
            y = rng.integers(0, outputs, 16).astype(np.uint32)
        raw = datasets.compute_rows_bytes(x, y, kind)
        root = datasets.compute_rows_root(raw, datasets.compute_row_size(features, kind, outputs))
        dataset = datasets.NEXT_DATASET_ID.get(chain.state.overlay())
        assert d.apply(BOB, calls.RegisterDataset(name, features, kind, outputs, 16, root, 0, "")).success
        assert d.apply(BOB, calls.AppendRows(dataset, 0, raw)).success
        return dataset

    targets, labels, wide = register("targets", 4, "regression", 2), register("labels", 4, "classification", 2), register("wide", 64, "regression", 10)
    assert (targets, labels, wide) == (first, first + 1, first + 2)

    def refused(call: calls.Train, error: str) -> None:
        receipt = d.apply(BOB, call)
        assert not receipt.success and receipt.error == error, receipt.error
        assert receipt.weight == TRAIN_BASE_WEIGHT, receipt.weight - TRAIN_BASE_WEIGHT

    refused(
        calls.Train(linear, labels, 1, 16, calls.compute_f32_bits(0.5), 0, 1),
        f"training.DatasetMismatch: model {linear} (linear, d=4, k=2) cannot train on data set {labels} "
        "(classification, 4 features, 2 outputs)",
    )
    refused(  # the softmax model 0 is 64 x 10 too: only the kind differs
        calls.Train(0, wide, 1, 16, calls.compute_f32_bits(0.5), 0, 1),
        f"training.DatasetMismatch: model 0 (softmax, d=64, k=10) cannot train on data set {wide} (regression, 64 features, 10 outputs)",
    )
    assert d.apply(BOB, calls.SetTrainingPolicy(linear, "anyone", 7)).success
    before = chain.state.overlay()
    trained = d.apply(CHARLIE, calls.Train(linear, targets, 2, 16, calls.compute_f32_bits(0.5), 0, 1))  # all 16 rows a batch
    assert trained.success, trained.error
    state = chain.state.overlay()
    assert models.get_model(state, linear).latest_version == 1
    # The model's licence, 7 a step, is paid to its owner (the author is Alice; the data set's price is 0).
    assert balances.get_account(state, BOB.public).free - balances.get_account(before, BOB.public).free == 14
    assert event_args(trained, "ModelLicensePaid") == {"model": linear, "amount": 14, "dust": 0}
    # A job names its parent version: by default the latest made before its block (in the block
    # that made version 1, or any earlier one, that is version 0), else the one the call names.
    made = models.VERSIONS.get(state, linear, 1).block
    for from_version, number, parent in ((None, chain.best_number + 1, 1), (None, made, 0), (0, chain.best_number + 1, 0)):
        call = calls.Train(linear, targets, 1, 16, calls.compute_f32_bits(0.5), 0, 1, from_version=from_version)
        job, got, _ = training.compute_job_at(state, chain.config, call, bytes(32), bytes(32), number)
        assert got == parent and job.weights.tobytes() == models.get_weights(state, linear, parent).tobytes()


def test_the_job_a_train_call_describes_comes_with_its_parent_version_and_data_set(chain) -> None:
    """training.compute_job_at (what a fraud-proof check rebuilds a job with) returns the job,
    the version it trains from and the data set's record, all read from the state given."""
    state = chain.state.overlay()
    call = calls.Train(0, 0, 3, 8, calls.compute_f32_bits(0.5), 0, 1)
    job, parent, info = training.compute_job_at(state, chain.config, call, bytes(32), bytes(range(32)), chain.best_number + 1)
    assert (parent, info) == (0, datasets.get_dataset(state, 0))
    assert (job.steps, job.batch_size, job.x.shape) == (3, 8, (info.row_count, info.features))


def test_a_train_call_whose_job_the_runtime_refuses_pays_for_the_rows_it_read(tmp_path) -> None:
    """A chain's max_train_batch has no upper bound, ml_runtime's batch one of 4,096: a TRAIN
    with a larger batch passes every check before the read, reads the rows and is refused by
    ml_runtime.TrainingJob (training.InvalidJob). It pays for what it used: the base and the
    read, no result or transcript bytes."""
    obj = msgspec.json.decode(msgspec.json.encode(dev_spec().to_json()))
    obj["runtimeConfig"]["max_train_batch"] = ml_runtime.MAX_BATCH + 1
    chain = open_chain(tmp_path / "wide", parse_chain_spec(obj, "wide batches"))
    try:
        d = Driver(chain)
        state = chain.state.overlay()
        model, dataset = models.NEXT_MODEL_ID.get(state), datasets.NEXT_DATASET_ID.get(state)
        count = ml_runtime.MAX_BATCH + 1
        raw = compute_rows(count, 1, 2)
        assert d.apply(BOB, calls.RegisterModel("small", ml_runtime.ModelSpec("softmax", 1, 2).encode(), bytes(32))).success
        assert d.apply(BOB, calls.RegisterDataset("tall", 1, "classification", 2, count, datasets.compute_rows_root(raw, 8), 0, "")).success
        assert d.apply(BOB, calls.AppendRows(dataset, 0, raw)).success
        call = calls.Train(model, dataset, 1, count, calls.compute_f32_bits(0.5), 0, 1)
        length = len(sign(chain, BOB, call, balances.get_account(chain.state.overlay(), BOB.public).nonce).encode())
        receipt = d.apply(BOB, call)
        assert not receipt.success and receipt.error == "training.InvalidJob: batch_size=4097 is outside 1..4096", receipt.error
        weight = TRAIN_BASE_WEIGHT + datasets.compute_read_weight(datasets.get_dataset(chain.state.overlay(), dataset))
        assert receipt.weight == weight
        assert receipt.fee == chain.runtime.compute_fee(DispatchInfo(weight, 0, 0), length, 0)
    finally:
        chain.db.close()


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
