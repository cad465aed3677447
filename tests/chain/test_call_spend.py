"""What a call may move out of its sender's free balance: the dispatch table's ``spend`` column.

The node's pool adds it up over a sender's pooled extrinsics (chain.pool, "overdraft";
tester16's P1, round 12): a call that moves the balance away and is not counted is a sweep that
lets the sender's later nonces tip money they will not have. Read from a real dev chain's state
(an overlay, never committed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from chainkit import ALICE, BOB, open_chain

from chain import calls
from chain.calls import compute_f32_bits
from chain.codec import MAX_BALANCE
from chain.extrinsic import Era, Extrinsic
from chain.pallets import assets, datasets, democracy, federated, governance, models
from chain.runtime import DISPATCH

#: Every call that moves its sender's free balance besides the fee (chain/pallets: apply_move,
#: apply_hold, apply_debit, a bond): each must have a spend.
SPENDING = {
    calls.Transfer, calls.Bond, calls.PayModel, calls.PostBounty, calls.VoteConfig, calls.OpenRound,
    calls.CreateAsset, calls.ProposeConfig, calls.ProposePolicy, calls.ProposeInferencePrice,
    calls.ProposeRelease, calls.ProposeSpend, calls.ProposeTrainer, calls.ProposeParams, calls.Train,
    calls.Infer, calls.CommitUpdate,
}


def test_the_calls_that_spend_have_a_spend() -> None:
    assert {kind for kind, row in DISPATCH.items() if row.spend is not None} == SPENDING


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    chain = open_chain(tmp_path / "db")
    try:
        yield chain
    finally:
        chain.db.close()


def _spend(chain: Any, state: Any, call: Any) -> int:
    xt = Extrinsic(ALICE.public, bytes(64), 0, 0, Era(0, 0), call)
    return int(chain.runtime.compute_spend(state, xt, chain.best_number + 1))


def test_spends_named_by_the_arguments_and_deposits(chain) -> None:
    state = chain.state.overlay()
    cases = [
        (calls.Transfer(BOB.public, 123), 123),
        (calls.Bond(5), 5),
        (calls.PayModel(0, 7), 7),
        (calls.PostBounty(0, 0, compute_f32_bits(0.1), 9, 100), 9),
        (calls.VoteConfig(0, True, 11), 11),
        (calls.CreateAsset(1, 1), assets.ASSET_DEPOSIT),
        (calls.ProposeConfig(()), democracy.PROPOSAL_DEPOSIT),
        (calls.ProposeSpend(0, BOB.public, 1), governance.PROPOSAL_DEPOSIT),
        (calls.Remark(b"x"), 0),
        (calls.Unbond(5), 0),  # staked to unlocking: not the free balance
        (calls.TransferAsset(1, BOB.public, 5), 0),  # an asset's units, not POL
    ]
    for call, expected in cases:
        assert _spend(chain, state, call) == expected, call
    f32 = compute_f32_bits
    round_call = calls.OpenRound(
        0, 0, (), 10, 8, f32(0.1), f32(0.0), 5, 1, 1, 4, 1_000, 13, 10, 40,
    )
    assert _spend(chain, state, round_call) == 13


def test_spends_the_state_prices(chain) -> None:
    """A TRAIN's licences, an INFER's price and a federated commit's bond: a model's licence
    and an INFER's price at the call's own cap, or anything without one (its owner may raise
    either at once); a data set's licence and a bond at the state's prices, at most the cap;
    0 for an unknown model or round."""
    state = chain.state.overlay()
    model = models.MODELS.get(state, 0)
    dataset = datasets.DATASETS.get(state, 0)
    assert model is not None and dataset is not None
    models.MODELS.apply_set(state, msgspec.structs.replace(model, license_per_step=7, inference_price=5), 0)
    datasets.DATASETS.apply_set(state, msgspec.structs.replace(dataset, price_per_row=3), 0)
    f32 = compute_f32_bits
    train = calls.Train(0, 0, 40, 16, f32(0.1), f32(0.0), 10)
    # No cap on the model's licence: anything, since its owner may raise it in the call's own
    # block (an outside retest's A2, round 12); a data set's licence waits for its notice.
    assert _spend(chain, state, train) == MAX_BALANCE + 3 * 40 * 16
    assert _spend(chain, state, msgspec.structs.replace(train, max_model_license=10**6)) == 10**6 + 3 * 40 * 16
    capped = msgspec.structs.replace(train, max_model_license=100, max_data_license=1_000)
    assert _spend(chain, state, capped) == 100 + 1_000
    assert _spend(chain, state, msgspec.structs.replace(train, model=99, dataset=99)) == 0
    spec = models.find_spec(state, 0)
    assert spec is not None
    infer = calls.Infer(0, None, bytes(4 * spec.d * 3))
    assert _spend(chain, state, infer) == MAX_BALANCE  # no max_price: the owner may raise the price in its block
    assert _spend(chain, state, msgspec.structs.replace(infer, max_price=10**6)) == 10**6  # the cap, not today's 15
    assert _spend(chain, state, msgspec.structs.replace(infer, max_price=10)) == 10
    assert _spend(chain, state, msgspec.structs.replace(infer, model=99)) == 0
    commit = calls.CommitUpdate(0, bytes(32), 1, 1, b"", bytes(32), (), (), ())
    assert _spend(chain, state, commit) == 0  # no such round
    federated.ROUNDS.apply_set(
        state,
        federated.RoundInfo(
            ALICE.public, 0, 0, (), 10, 8, f32(0.1), f32(0.0), 5, 1, 1, 4, 17, 100, 10, 40, 1,
        ),
        0,
    )
    assert _spend(chain, state, commit) == 17
    with_data = msgspec.structs.replace(commit, dataset=0)
    assert _spend(chain, state, with_data) == 17 + 3 * 10 * 8
