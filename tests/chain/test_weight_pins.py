"""The declared weights, pinned to numbers: a weight is consensus (it sets the fee each node
withdraws and the calls a block may hold), so a changed constant or operator in a weight
formula must fail a test, as a changed state root fails the golden vectors.

tests/chain/test_weights_*.py show that each weight bounds its call's cost; here each formula
is evaluated by hand, at shapes where its every term is non-zero, and at the edges where a
term switches (an upload's restart, the outputs limit, a one-row data set, an unknown id).
Mutation testing of the weight functions (``mutmut run "chain.pallets.*weight*"``, as
configured in pyproject.toml) left 23 of 241 mutants alive before this module: constants and
operators inside the formulas (20 or 21 units a byte, + or - a term), the restart and limit
edges. 239 are killed now; the two left are equivalent, explained where they are met below.
"""

from __future__ import annotations

import numpy as np
from chainkit import ALICE, BOB, CHARLIE, event_args, train_call
from test_pallets import Driver
from test_weights_datasets import compute_rows, compute_weight

import ml_runtime
from chain import calls, runtime
from chain.pallets import bounties, datasets, federated, inference, models, pol, rewards, training


def _registered(receipt, event: str, field: str) -> int:
    assert receipt.success, receipt.error
    return int(event_args(receipt, event)[field])


# --- datasets.append_rows: base + 20 a byte + 2,000 a row and a bit of the row count + 50,000 a
# chunk and 20 a byte a restart deletes ---------------------------------------------------------


def test_an_upload_restart_declares_the_chunks_it_deletes_and_a_continuation_none(chain) -> None:
    d = Driver(chain)
    dataset = _registered(d.apply(BOB, calls.RegisterDataset("d", 64, "classification", 10, 30, bytes(32), 0, "")),
                          "DatasetRegistered", "dataset")
    first = compute_rows(10, 64, 10)  # 10 rows of 64 float32 and a u32 label: 260 bytes each
    assert d.apply(BOB, calls.AppendRows(dataset, 0, first)).success
    assert d.apply(BOB, calls.AppendRows(dataset, 10, first)).success  # two chunks stored
    assert len(datasets.get_dataset(chain.state.overlay(), dataset).chunks) == 2
    # 250,000 + 20 x 2,600 + 2,000 x (10 rows + 5 bits of 30): 332,000; a restart (first_row 0)
    # adds 2 chunks x 50,000 and 20 x the 5,200 bytes of their 20 rows.
    assert compute_weight(chain, calls.AppendRows(dataset, 20, first)) == 332_000
    assert compute_weight(chain, calls.AppendRows(dataset, 0, first)) == 536_000
    assert compute_weight(chain, calls.AppendRows(dataset, 1, first)) == 332_000  # not a restart (fails: wrong row)


def test_a_read_of_a_data_set_declares_four_units_a_byte(chain) -> None:
    info = datasets.get_dataset(chain.state.overlay(), 0)  # the digits: 1,797 rows of 260 bytes
    assert (info.row_count, info.row_size) == (1797, 260)
    assert datasets.compute_read_weight(info) == 4 * 467_220


# --- training.train: its data set's read, none for an unknown data set -------------------------


def test_a_train_call_on_an_unknown_data_set_declares_no_read(chain) -> None:
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    known = calls.Train(0, 0, 1, 1, calls.compute_f32_bits(0.5), 0, 1)
    unknown = calls.Train(0, 99, 1, 1, calls.compute_f32_bits(0.5), 0, 1)
    assert training.compute_read_weight(chain.state.overlay(), 99) == 0
    assert compute_weight(chain, known) - compute_weight(chain, unknown) == 4 * 467_220
    # a step's arithmetic, the drawing of its one sample (ml_runtime.DRAW_UNITS), the step's
    # fixed part (STEP_UNITS) and its memory traffic (STEP_PARAM_UNITS a parameter, 650 of
    # them), and its one segment's fixed part (SEGMENT_UNITS) and checkpoint (SEGMENT_PARAM_UNITS)
    assert compute_weight(chain, unknown) == (
        training.TRAIN_BASE_WEIGHT + ml_runtime.step_cost(spec, 1) + 160 + 2_600 + 22 * 650 + 110_000 + 160 * 650
    ) == 1_235_092


# --- models: 200 a parameter registered, 4 bytes a parameter read -------------------------------


def test_registering_and_reading_a_model_declare_their_parameters() -> None:
    spec = ml_runtime.ModelSpec("softmax", 4, 3)  # 4 x 3 + 3 = 15 parameters
    assert models.compute_register_weight(calls.RegisterModel("m", spec.encode(), bytes(32))) == 1_000_000 + 200 * 15
    assert models.compute_weights_read_weight(spec) == 4 * 60  # datasets.READ_BYTE_WEIGHT a byte


# --- inference.infer: base + the forward pass + 100 an output, base only outside the limits -----


def test_an_inference_declares_its_outputs_up_to_the_limits_and_only_its_base_beyond(chain) -> None:
    d = Driver(chain)
    narrow = ml_runtime.ModelSpec("linear", 1, 1)
    wide = ml_runtime.ModelSpec("linear", 1, 4096)
    m_narrow = _registered(d.apply(BOB, calls.RegisterModel("n", narrow.encode(), bytes(32))), "ModelRegistered", "model")
    m_wide = _registered(d.apply(BOB, calls.RegisterModel("w", wide.encode(), bytes(32))), "ModelRegistered", "model")
    rows = calls.MAX_INFER_ROWS  # 1,024 rows of one output: at the row limit, inside the outputs limit
    at_limit = calls.Infer(m_narrow, None, np.ones((rows, 1), dtype="<f4").tobytes())
    # 200,000 + the forward pass's step cost (526,340: 1,024 rows of a 1 x 1 product counted at
    # 16 x 16, ml_runtime.LANES) + 100 x 1,024 outputs
    # (+ 32: the version's 2 weights read at 16 units a parameter, tester16's W4)
    assert compute_weight(chain, at_limit) == 200_000 + 32 + ml_runtime.step_cost(narrow, rows) + 102_400 == 828_772
    past = calls.Infer(m_narrow, None, np.ones((rows + 1, 1), dtype="<f4").tobytes())
    assert compute_weight(chain, past) == inference.INFER_BASE_WEIGHT == 200_000
    # 17 rows of 4,096 outputs: 69,632 > 2^16 (though 17 / 4,096 is not): refused, base only
    over = calls.Infer(m_wide, None, np.ones((17, 1), dtype="<f4").tobytes())
    assert compute_weight(chain, over) == 200_000
    d.fails(BOB, over, "TooManyOutputs")


# --- federated: commit, reveal, unknown rounds -----------------------------------------------


def test_a_commit_declares_its_weights_and_losses_bytes(chain) -> None:
    commit = calls.CommitUpdate(0, bytes(32), 1, 1, bytes(40), bytes(32), (0, 0, 0), (), ())
    # 200,000 + 20 x (40 bytes + 34 x 3 losses)
    assert federated.compute_weight(chain.state.overlay(), commit) == 200_000 + 20 * 142 == 202_840


def test_a_reveal_declares_its_re_run_rows_paths_and_data_array() -> None:
    spec = ml_runtime.ModelSpec("softmax", 4, 2)  # rows of 4 float32 and a u32 label: 20 bytes, 5 numbers
    info = calls.OpenRound(0, 0, (), 0, 3, calls.compute_f32_bits(0.5), 0, 2, 3, 1, 1, 0, 0, 10, 20)
    assert (info.batch_size, info.segment_len) == (3, 2)
    # drawing its 3 samples, the step's fixed part, its memory traffic (22 units for each of 10 parameters)
    step = ml_runtime.step_cost(spec, 3) + 3 * 160 + 2_600 + 22 * 10
    segment = 110_000 + 160 * 10  # the segment's fixed part and its checkpoint
    # 200,000 + 2 steps + the segment + 20 x 6 revealed rows x (20 + 34 x 20 path hashes) + 4 x 10 rows x 5 numbers
    assert federated.compute_reveal_weight(spec, info, 10) == 200_000 + 2 * step + segment + 20 * 6 * 700 + 4 * 50
    assert federated.compute_reveal_weight(spec, info, 10) == 200_000 + 2 * step + segment + 84_200


def test_calls_on_an_unknown_round_declare_the_base_only(chain) -> None:
    """(Equivalent mutants met here: ``info is None and model is None`` in
    federated.compute_weight, and ``info is None and data is None`` in
    bounties.compute_claim_weight, differ only for a round or bounty whose model or data set
    does not exist, which no state reaches: opening a round and posting a bounty check both,
    and models and data sets are never removed.)"""
    state = chain.state.overlay()
    for call in (calls.ChallengeRound(7), calls.CloseRound(7)):
        assert federated.compute_weight(state, call) == federated.BASE_WEIGHT == 200_000
    assert bounties.compute_claim_weight(state, calls.ClaimBounty(7, 0)) == bounties.BOUNTY_BASE_WEIGHT


# --- bounties.claim_bounty: one step over the validation set, at least one row ------------------


def test_a_claim_on_a_one_row_validation_set_declares_one_row(chain) -> None:
    d = Driver(chain)
    row = compute_rows(1, 64, 10)
    root = datasets.compute_rows_root(row, 260)
    dataset = _registered(d.apply(BOB, calls.RegisterDataset("one", 64, "classification", 10, 1, root, 0, "")),
                          "DatasetRegistered", "dataset")
    assert d.apply(BOB, calls.AppendRows(dataset, 0, row)).success
    receipt = d.apply(ALICE, calls.PostBounty(0, dataset, calls.compute_f32_bits(0.5), 1, 100))
    bounty = _registered(receipt, "BountyPosted", "bounty")
    assert d.apply(CHARLIE, train_call(steps=1, batch=1, segment=1)).success  # version 1, trained after the posting
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    # 300,000 + 260 bytes of rows read (4 units a byte) + for version 1 and its parent (the nearest version from
    # before the posting): reading its record and its 650 weights, and a forward pass over 1 row
    per_version = 60_000 + 4 * 650 * datasets.READ_BYTE_WEIGHT + ml_runtime.step_cost(spec, 1)
    assert bounties.compute_claim_weight(chain.state.overlay(), calls.ClaimBounty(bounty, 1)) == (
        300_000 + 4 * 260 + 2 * per_version
    ) == 449_904


# --- every call: at least the extrinsic's base (the signature check and the executive) ----------


def test_an_empty_remark_declares_the_extrinsic_base_weight_and_ten_units_a_byte() -> None:
    """tester16's W3 (round 12): remark(b"") declared 10,000 units while importing one took 74-75
    us (its signature check alone about 65 us), 7.4 ns a unit against a transfer's 0.62-0.69: a
    block of 45,587 empty remarks, bound by length at 23% of the weight limit, took 3.5 s to
    import where a full block of transfers took 1.4 s."""
    assert runtime.EXTRINSIC_BASE_WEIGHT == 100_000
    info = runtime.DISPATCH[calls.Remark].info
    assert info(None, calls.Remark(b"")).weight == runtime.EXTRINSIC_BASE_WEIGHT
    assert info(None, calls.Remark(bytes(50))).weight == 100_000 + 10 * 50


def test_no_call_declares_less_than_the_extrinsic_base_weight() -> None:
    """Every call pays for the work of any extrinsic (Substrate's ``ExtrinsicBaseWeight``): the
    calls of a fixed weight at their weight, the others at the base of their formula, which
    none of their terms lowers (the refunds after dispatch go down to that base at most)."""
    fixed = {}
    for call_type, row in runtime.DISPATCH.items():
        try:
            fixed[call_type] = row.info(None, None).weight  # a weight that reads neither the state nor the call
        except (AttributeError, TypeError):
            continue
    assert calls.Transfer in fixed and calls.Vote in fixed and len(fixed) >= 30
    assert min(fixed.values()) >= runtime.EXTRINSIC_BASE_WEIGHT, fixed
    bases = [
        models.REGISTER_BASE_WEIGHT, datasets.APPEND_BASE_WEIGHT, training.TRAIN_BASE_WEIGHT, pol.REPORT_BASE_WEIGHT,
        bounties.BOUNTY_BASE_WEIGHT, inference.INFER_BASE_WEIGHT, federated.BASE_WEIGHT, rewards.NOTE_VOTES_BASE_WEIGHT,
    ]
    assert min(bases) >= runtime.EXTRINSIC_BASE_WEIGHT
