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
    d.fails(FERDIE, calls.ClaimBounty(bounty, copy), f"models.AncestorMeetsTarget: version {copy}'s ancestor, version {first}, is below")
    charlie = balances.get_account(chain.state.overlay(), CHARLIE.public).free
    assert d.apply(BOB, calls.ClaimBounty(bounty, first)).success
    assert balances.get_account(chain.state.overlay(), CHARLIE.public).free == charlie + 5 * POL


def _negate(d: Driver, key) -> int:
    """One TRAIN step at lr 2^-100 and l2 2^101 from the latest version: the kernel's
    w - lr * (g / B + l2 * w) is -w bit for bit (g / B vanishes beside 2^101 * w, and
    lr * 2^101 * w = 2w exactly). Returns the new version."""
    call = calls.Train(0, 0, 1, 1, calls.compute_f32_bits(2.0**-100), calls.compute_f32_bits(2.0**101), 1)
    receipt = d.apply(key, call)
    assert receipt.success, receipt.error
    return models.get_model(d.chain.state.overlay(), 0).latest_version


def test_a_detour_back_to_the_qualifying_weights_cannot_take_its_bounty(chain) -> None:
    """Ferdie negates Charlie's qualifying weights twice: his version has them bit for bit and
    its parent is far above the target, so the parent check passed it and he took the bounty
    (an outside tester's finding, round 4). Every ancestor trained since the posting is
    evaluated now: refused, naming Charlie's version, whose claim is then paid."""
    d = Driver(chain)
    target = _loss(chain, 0, models.get_model(chain.state.overlay(), 0).latest_version) * 0.8
    bounty = _bounty(d, DAVE, target)
    assert d.apply(CHARLIE, train_call(steps=300, batch=32, lr=0.5)).success
    first = models.get_model(chain.state.overlay(), 0).latest_version
    negated = _negate(d, FERDIE)
    copy = _negate(d, FERDIE)
    state = chain.state.overlay()
    assert np.array_equal(models.get_weights(state, 0, negated), -models.get_weights(state, 0, first))
    assert models.get_weights(state, 0, copy).tobytes() == models.get_weights(state, 0, first).tobytes()
    assert _loss(chain, 0, negated) > target > _loss(chain, 0, copy)
    versions = 1 + len(bounties.compute_lineage(state, bounties.get_bounty(state, bounty), models.VERSIONS.get(state, 0, copy))[0])
    assert versions == 4  # the copy, its two ancestors since the posting, and the nearest before it
    receipt = d.apply(FERDIE, calls.ClaimBounty(bounty, copy))
    assert not receipt.success and receipt.error.startswith(
        f"models.AncestorMeetsTarget: version {copy}'s ancestor, version {first}, is below"
    ), receipt.error
    info = models.decode_spec(models.get_model(state, 0).spec)
    rows = datasets.get_dataset(state, 0).row_count
    per_version = bounties.LINEAGE_READ_WEIGHT + models.compute_weights_read_weight(info) + ml_runtime.step_cost(info, rows)
    assert receipt.weight == bounties.BOUNTY_BASE_WEIGHT + datasets.compute_read_weight(datasets.get_dataset(state, 0)) + 4 * per_version
    charlie = balances.get_account(chain.state.overlay(), CHARLIE.public).free
    assert d.apply(BOB, calls.ClaimBounty(bounty, first)).success
    assert balances.get_account(chain.state.overlay(), CHARLIE.public).free == charlie + 5 * POL


def test_a_model_that_met_the_target_before_the_posting_pays_no_copy(chain) -> None:
    """The nearest ancestor from before the posting is evaluated too: a copy of weights that
    met the target when the bounty was posted is not the first to meet it."""
    d = Driver(chain)
    assert d.apply(CHARLIE, train_call(steps=300, batch=32, lr=0.5)).success
    good = models.get_model(chain.state.overlay(), 0).latest_version
    bounty = _bounty(d, DAVE, _loss(chain, 0, good) * 1.01)
    negated = _negate(d, FERDIE)
    copy = _negate(d, FERDIE)
    state = chain.state.overlay()
    lineage = bounties.compute_lineage(state, bounties.get_bounty(state, bounty), models.VERSIONS.get(state, 0, copy))
    assert lineage == ([negated, good], False)  # not version 0: the walk stops at the first version from before the posting
    d.fails(FERDIE, calls.ClaimBounty(bounty, copy), f"models.AncestorMeetsTarget: version {copy}'s ancestor, version {good}")


def test_a_lineage_longer_than_the_check_walks_is_refused_before_any_evaluation(chain, monkeypatch) -> None:
    """A copier must not outrun the lineage check with a long detour: past MAX_CLAIM_LINEAGE
    versions trained since the posting, the claim is refused (LineageTooLong), its weight
    counting only the versions it would have evaluated."""
    monkeypatch.setattr(bounties, "MAX_CLAIM_LINEAGE", 2)
    d = Driver(chain)
    target = _loss(chain, 0, models.get_model(chain.state.overlay(), 0).latest_version) * 0.8
    bounty = _bounty(d, DAVE, target)
    assert d.apply(CHARLIE, train_call(steps=300, batch=32, lr=0.5)).success
    first = models.get_model(chain.state.overlay(), 0).latest_version
    _negate(d, FERDIE)
    copy = _negate(d, FERDIE)  # three since the posting: first, negated, copy; two ancestors of the copy
    d.fails(FERDIE, calls.ClaimBounty(bounty, copy), "models.AncestorMeetsTarget")
    _negate(d, FERDIE)
    longer = _negate(d, FERDIE)  # four ancestors since the posting
    state = chain.state.overlay()
    ancestors, too_long = bounties.compute_lineage(state, bounties.get_bounty(state, bounty), models.VERSIONS.get(state, 0, longer))
    assert too_long and len(ancestors) == 2
    d.fails(FERDIE, calls.ClaimBounty(bounty, longer), "models.LineageTooLong: version")
    assert d.apply(BOB, calls.ClaimBounty(bounty, first)).success


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
