"""Training bounties through real blocks: paid to the trainer of the first claimed version
whose loss the chain computes below the target; every refusal changes only the fee and nonce
(Driver); and the loss is the training kernel's own, leaving the weights untouched."""

from __future__ import annotations

import numpy as np
from chainkit import ALICE, BOB, CHARLIE, FERDIE, event_args, sign, train_call
from test_pallets import DAVE, Driver

import ml_runtime
from chain import calls
from chain.pallets import balances, bounties, datasets, models

POL = 10**9



def _loss(chain, model: int, version: int) -> float:
    state = chain.state.overlay()
    spec = models.decode_spec(models.get_model(state, model).spec)
    _, x, y = datasets.get_rows(state, 0)
    loss = ml_runtime.compute_loss(spec, models.get_weights(state, model, version), x, y)
    assert loss is not None
    return float(loss)


def _bounty(d: Driver, key, target: float, expires_in: int = 50) -> int:
    call = calls.PostBounty(0, 0, calls.compute_f32_bits(target), 5 * POL, d.chain.best_number + 1 + expires_in)
    receipt = d.apply(key, call)
    assert receipt.success, receipt.error
    return event_args(receipt, "BountyPosted")["bounty"]


def test_compute_loss_is_the_kernels_mean_loss_and_changes_no_weight(chain) -> None:
    state = chain.state.overlay()
    spec = models.decode_spec(models.get_model(state, 0).spec)
    _, x, y = datasets.get_rows(state, 0)
    w = models.get_weights(state, 0, 0)
    before = w.copy()
    loss = ml_runtime.compute_loss(spec, w, x, y)
    assert np.array_equal(w, before)
    logits = x.astype(np.float64) @ w[: spec.d * spec.k].reshape(spec.d, spec.k).astype(np.float64) + w[spec.d * spec.k :]
    logits -= logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y])
    assert loss is not None and abs(float(loss) - expected) < 1e-4 * max(1.0, expected)


def test_the_first_version_below_target_is_paid_to_its_trainer(chain) -> None:
    d = Driver(chain)
    target = _loss(chain, 0, models.get_model(chain.state.overlay(), 0).latest_version) * 0.8
    bounty = _bounty(d, DAVE, target)
    pot = balances.get_account(chain.state.overlay(), bounties.BOUNTY_ACCOUNT).free
    assert pot == 5 * POL
    d.fails(BOB, calls.ClaimBounty(bounty, 0), "models.NotEligible")  # not trained after the post
    d.fails(BOB, calls.ClaimBounty(bounty, 9), "models.UnknownVersion")
    d.fails(BOB, calls.ClaimBounty(77, 0), "models.UnknownBounty")
    assert d.apply(CHARLIE, train_call(steps=300, batch=32, lr=0.5)).success
    version = models.get_model(chain.state.overlay(), 0).latest_version
    assert _loss(chain, 0, version) < target
    charlie = balances.get_account(chain.state.overlay(), CHARLIE.public).free
    claimed = d.apply(BOB, calls.ClaimBounty(bounty, version))  # anyone claims; the trainer is paid
    assert claimed.success, claimed.error
    assert balances.get_account(chain.state.overlay(), CHARLIE.public).free == charlie + 5 * POL
    assert balances.get_account(chain.state.overlay(), bounties.BOUNTY_ACCOUNT).free == 0
    d.fails(BOB, calls.ClaimBounty(bounty, version), "models.BountyClosed")


def test_a_copy_of_the_qualifying_version_cannot_take_its_bounty(chain) -> None:
    """Ferdie trains one step at lr 1e-30 from Charlie's version below the target (the same
    weights) and claims first: refused, its parent meets the target already; Charlie's own
    version is paid (an outside tester's finding: the copy took the bounty)."""
    d = Driver(chain)
    target = _loss(chain, 0, models.get_model(chain.state.overlay(), 0).latest_version) * 0.8
    bounty = _bounty(d, DAVE, target)
    assert d.apply(CHARLIE, train_call(steps=300, batch=32, lr=0.5)).success
    first = models.get_model(chain.state.overlay(), 0).latest_version
    assert d.apply(FERDIE, train_call(steps=1, batch=1, lr=1e-30, segment=1)).success
    copy = models.get_model(chain.state.overlay(), 0).latest_version
    assert _loss(chain, 0, copy) < target and models.VERSIONS.get(chain.state.overlay(), 0, copy).parent == first
    d.fails(FERDIE, calls.ClaimBounty(bounty, copy), f"models.ParentMeetsTarget: version {copy}'s parent, version {first}, is below")
    charlie = balances.get_account(chain.state.overlay(), CHARLIE.public).free
    assert d.apply(BOB, calls.ClaimBounty(bounty, first)).success
    assert balances.get_account(chain.state.overlay(), CHARLIE.public).free == charlie + 5 * POL


def test_a_claim_short_of_the_target_pays_its_fee_and_changes_nothing_else(chain) -> None:
    d = Driver(chain)
    bounty = _bounty(d, DAVE, 1e-6)
    assert d.apply(CHARLIE, train_call(steps=20, batch=8)).success
    version = models.get_model(chain.state.overlay(), 0).latest_version
    d.fails(BOB, calls.ClaimBounty(bounty, version), "models.NotBelowTarget")
    receipt = d.apply(BOB, calls.ClaimBounty(bounty, version))
    assert receipt.weight > bounties.BOUNTY_BASE_WEIGHT  # the evaluation was charged


def test_post_and_cancel_refusals(chain) -> None:
    d = Driver(chain)
    n = chain.best_number + 1
    d.fails(DAVE, calls.PostBounty(0, 0, calls.compute_f32_bits(1.0), 0, n + 5), "models.ZeroAmount")
    d.fails(DAVE, calls.PostBounty(0, 0, calls.compute_f32_bits(0.0), POL, n + 5), "models.InvalidTarget")
    d.fails(DAVE, calls.PostBounty(0, 0, calls.compute_f32_bits(float("nan")), POL, n + 5), "models.InvalidTarget")
    d.fails(DAVE, calls.PostBounty(0, 0, calls.compute_f32_bits(1.0), POL, 1), "models.InvalidExpiry")
    d.fails(DAVE, calls.PostBounty(9, 0, calls.compute_f32_bits(1.0), POL, n + 50), "models.UnknownModel")
    d.fails(DAVE, calls.PostBounty(0, 0, calls.compute_f32_bits(1.0), 10**30 % 2**63, n + 50), "InsufficientBalance")
    bounty = _bounty(d, DAVE, 0.5, expires_in=2)
    d.fails(ALICE, calls.CancelBounty(bounty), "models.NotPoster")
    d.fails(DAVE, calls.CancelBounty(bounty), "models.NotExpired")
    assert d.apply(BOB, calls.Remark(b"tick")).success
    dave = balances.get_account(chain.state.overlay(), DAVE.public).free
    receipt = d.apply(DAVE, calls.CancelBounty(bounty))
    assert receipt.success, receipt.error
    assert balances.get_account(chain.state.overlay(), DAVE.public).free == dave + 5 * POL - receipt.fee
    d.fails(DAVE, calls.CancelBounty(bounty), "models.BountyClosed")


def test_a_bounty_leaves_what_cancelling_it_costs(chain) -> None:
    """As a bond (staking.compute_bond_reserve): a bounty of all but its fee left the poster
    free 0, so it could not pay to cancel the bounty once expired and unclaimed, and the amount
    stayed in the pallet's account until someone else funded it. A bounty now leaves at least
    bounties.compute_post_reserve (the cancel's fee, above the existential deposit); one that
    leaves exactly that is cancelled with nothing else. A refused one changes only the fee."""
    d = Driver(chain)
    reserve = bounties.compute_post_reserve(chain.config)
    cancel = sign(chain, DAVE, calls.CancelBounty(2**32 - 1), 10**6)
    info = chain.runtime.compute_dispatch_info(chain.state.overlay(), cancel)
    assert reserve >= max(chain.config.existential_deposit, chain.runtime.compute_fee(info, len(cancel.encode()), 0))

    def free() -> int:
        return balances.get_account(chain.state.overlay(), DAVE.public).free

    def post(amount: int) -> calls.PostBounty:
        return calls.PostBounty(0, 0, calls.compute_f32_bits(0.5), amount, chain.best_number + 3)

    nonce = balances.get_account(chain.state.overlay(), DAVE.public).nonce
    probe = sign(chain, DAVE, post(free()), nonce)  # the posts below: the same length and fee
    fee = chain.runtime.compute_fee(chain.runtime.compute_dispatch_info(chain.state.overlay(), probe), len(probe.encode()), 0)
    for left in (0, chain.config.existential_deposit // 2, reserve - 1):
        d.fails(DAVE, post(free() - fee - left), "models.InsufficientFreeAfterBounty")
    amount = free() - fee - reserve
    receipt = d.apply(DAVE, post(amount))
    assert receipt.success, receipt.error
    assert free() == reserve
    bounty = event_args(receipt, "BountyPosted")["bounty"]
    for _ in range(3):
        assert d.apply(BOB, calls.Remark(b"tick")).success
    receipt = d.apply(DAVE, calls.CancelBounty(bounty))
    assert receipt.success, receipt.error
    assert free() == reserve - receipt.fee + amount
