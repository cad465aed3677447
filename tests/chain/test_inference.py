"""Paid inference (models.infer) through real blocks: the receipt's outputs are the free
ml_predict's bits, the price is paid to the owner or pro rata to shareholders, and every bad
input fails with its specific error, changing nothing but the fee and nonce (Driver checks
the state root)."""

from __future__ import annotations

import numpy as np
import pytest
from chainkit import BOB, CHARLIE, event_args
from test_pallets import DAVE, Driver

import ml_runtime
from chain import calls
from chain.codec import MAX_BALANCE
from chain.errors import CodecError
from chain.extrinsic import decode_extrinsic
from chain.pallets import balances, inference, models, revenue


def _register(d: Driver, owner) -> tuple[int, ml_runtime.ModelSpec]:
    spec = ml_runtime.ModelSpec("softmax", 4, 3)
    receipt = d.apply(owner, calls.RegisterModel("iris", spec.encode(), bytes(32)))
    assert receipt.success, receipt.error
    model = event_args(receipt, "ModelRegistered")["model"]
    return model, spec


def _rows(n: int, d: int) -> np.ndarray:
    return (np.arange(n * d, dtype=np.float32).reshape(n, d) / np.float32(7)).astype(np.float32)


def test_infer_outputs_are_predicts_bits_and_the_owner_is_paid(chain) -> None:
    d = Driver(chain)
    model, spec = _register(d, DAVE)
    assert d.apply(DAVE, calls.SetInferencePrice(model, 5_000)).success
    x = _rows(3, spec.d)
    owner_before = balances.get_account(chain.state.overlay(), DAVE.public).free
    bob_before = balances.get_account(chain.state.overlay(), BOB.public).free
    receipt = d.apply(BOB, calls.Infer(model, None, x.astype("<f4").tobytes()))
    assert receipt.success, receipt.error
    made = event_args(receipt, "InferenceMade")
    weights = models.get_weights(chain.state.overlay(), model, 0)
    expected = ml_runtime.predict(spec, weights, x).astype("<f4").tobytes()
    assert bytes.fromhex(made["outputs"][2:]) == expected
    assert (made["version"], made["rows"], made["paid"]) == (0, 3, 15_000)
    state = chain.state.overlay()
    assert balances.get_account(state, DAVE.public).free == owner_before + 15_000
    assert balances.get_account(state, BOB.public).free == bob_before - 15_000 - receipt.fee


def test_the_fee_covers_the_forward_pass(chain) -> None:
    d = Driver(chain)
    model, spec = _register(d, DAVE)
    one = d.apply(BOB, calls.Infer(model, 0, _rows(1, spec.d).tobytes()))
    many = d.apply(BOB, calls.Infer(model, 0, _rows(100, spec.d).tobytes()))
    assert one.success and many.success
    outputs = inference.OUTPUT_WEIGHT * spec.k  # per row: its outputs go into the receipt
    read = models.compute_weights_read_weight(spec)  # the version's weights, read whole (tester16's W4)
    assert one.weight == inference.INFER_BASE_WEIGHT + read + ml_runtime.step_cost(spec, 1) + outputs
    assert many.weight == inference.INFER_BASE_WEIGHT + read + ml_runtime.step_cost(spec, 100) + 100 * outputs
    assert many.fee > one.fee


def test_a_shared_models_inference_revenue_goes_to_its_holders(chain) -> None:
    d = Driver(chain)
    model, spec = _register(d, DAVE)
    assert d.apply(DAVE, calls.SetInferencePrice(model, 1_000_000)).success
    assert d.apply(DAVE, calls.ShareModel(model, 100)).success
    assert d.apply(DAVE, calls.TransferAsset(models.assets.compute_shares_asset(model), CHARLIE.public, 40)).success
    assert d.apply(BOB, calls.Infer(model, None, _rows(2, spec.d).tobytes())).success
    state = chain.state.overlay()
    assert revenue.compute_owed(state, model, DAVE.public, 60)[0] == 1_200_000
    assert revenue.compute_owed(state, model, CHARLIE.public, 40)[0] == 800_000
    d.fails(DAVE, calls.SetInferencePrice(model, 1), "models.OwnedByShareholders")


def test_every_bad_inference_fails_with_its_reason_and_changes_only_the_fee(chain) -> None:
    d = Driver(chain)
    model, spec = _register(d, DAVE)
    row = 4 * spec.d
    d.fails(BOB, calls.Infer(99, None, _rows(1, spec.d).tobytes()), "models.UnknownModel")
    d.fails(BOB, calls.Infer(model, 7, _rows(1, spec.d).tobytes()), "models.UnknownVersion")
    d.fails(BOB, calls.Infer(model, None, b""), "models.InvalidInputs")
    d.fails(BOB, calls.Infer(model, None, bytes(row + 1)), "models.InvalidInputs")
    d.fails(BOB, calls.Infer(model, None, bytes(row * (calls.MAX_INFER_ROWS + 1))), "models.InvalidInputs")
    nan = _rows(2, spec.d)
    nan[1, 2] = np.nan
    d.fails(BOB, calls.Infer(model, None, nan.tobytes()), "models.InvalidInputs")
    inf = _rows(1, spec.d)
    inf[0, 0] = np.inf
    d.fails(BOB, calls.Infer(model, None, inf.tobytes()), "models.InvalidInputs")
    d.fails(BOB, calls.SetInferencePrice(model, 10), "models.NotOwner")
    assert d.apply(DAVE, calls.SetInferencePrice(model, MAX_BALANCE // 2)).success
    d.fails(BOB, calls.Infer(model, None, _rows(3, spec.d).tobytes()), "models.Overflow")
    assert d.apply(DAVE, calls.SetInferencePrice(model, 10**17)).success
    d.fails(BOB, calls.Infer(model, None, _rows(1, spec.d).tobytes()), "balances")  # cannot pay the price


def test_oversize_inputs_do_not_decode(chain) -> None:
    from chainkit import sign

    raw = sign(chain, BOB, calls.Infer(0, None, b"\0" * (calls.MAX_INFER_BYTES + 4)), 0, 0).encode()
    with pytest.raises(CodecError, match="length"):
        decode_extrinsic(raw)


def test_an_infer_call_never_pays_more_than_its_max_price(chain) -> None:
    """The owner may raise the price in the block of a pending call (an outside tester's
    finding: an INFER signed at a price of 0 paid 900,000 POL): past ``max_price`` it fails
    unpaid, at it it pays; None accepts any price."""
    d = Driver(chain)
    model, spec = _register(d, DAVE)
    assert d.apply(DAVE, calls.SetInferencePrice(model, 5_000)).success
    rows = _rows(3, spec.d).astype("<f4").tobytes()
    owner = balances.get_account(chain.state.overlay(), DAVE.public).free
    d.fails(BOB, calls.Infer(model, None, rows, max_price=14_999),
            "models.PriceAboveLimit: 3 rows at 5000 a row cost 15000; the call pays at most 14999")
    assert balances.get_account(chain.state.overlay(), DAVE.public).free == owner  # nothing paid
    paid = d.apply(BOB, calls.Infer(model, None, rows, max_price=15_000))
    assert paid.success and event_args(paid, "InferenceMade")["paid"] == 15_000
