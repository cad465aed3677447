"""Assets, model permissions, shares and revenue through real blocks; conservation by hypothesis.

Every failing call goes through test_pallets.Driver, which asserts that the block's state
equals the parent state plus the fee and nonce only.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import msgspec
import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, dev_spec, train_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pallets import DAVE, Driver

import ml_runtime
from chain import calls
from chain.codec import MAX_BALANCE
from chain.config import RuntimeConfig
from chain.errors import CodecError, DispatchError, GenesisError
from chain.pallets import assets, balances, models, revenue
from chain.pallets.context import BlockInfo, CallContext
from chain.pallets.training import TRAIN_BASE_WEIGHT
from genesis.spec import _DictState, compute_genesis_storage, parse_chain_spec

USDP = 1



def _state(chain):
    return chain.state.overlay()


def test_dev_genesis_issues_usdp_to_the_dev_accounts(chain) -> None:
    state = _state(chain)
    details = assets.get_asset(state, USDP)
    meta = assets.METADATA.get(state, USDP)
    assert meta == assets.AssetMetadata("Polchain USD", "USDP", 6)
    assert details.supply == 6 * 10**12 and details.accounts == 6 and details.min_balance == 10_000
    for key in (ALICE, BOB, CHARLIE, DAVE, FERDIE):
        assert assets.get_balance(state, USDP, key.public) == 10**12
    assert models.get_model(state, 0).permission == "anyone"


def test_asset_lifecycle_and_every_refusal(chain) -> None:
    d = Driver(chain)
    before = balances.get_account(_state(chain), DAVE.public).free
    receipt = d.apply(DAVE, calls.CreateAsset(7, 100))
    assert receipt.success
    state = _state(chain)
    assert balances.get_account(state, DAVE.public).free == before - receipt.fee - assets.ASSET_DEPOSIT
    assert balances.get_account(state, assets.DEPOSIT_ACCOUNT).free == assets.ASSET_DEPOSIT
    d.fails(BOB, calls.CreateAsset(7, 1), "assets.InUse")
    d.fails(BOB, calls.CreateAsset(8, 0), "assets.MinBalanceZero")
    d.fails(BOB, calls.CreateAsset(assets.SHARES_BASE, 1), "assets.ReservedAssetId")
    d.fails(BOB, calls.SetAssetMetadata(7, "x", "X", 2), "assets.NoPermission")
    assert d.apply(DAVE, calls.SetAssetMetadata(7, "Dave coin", "DAVE", 2)).success
    d.fails(BOB, calls.MintAsset(7, BOB.public, 1000), "assets.NoPermission")
    d.fails(DAVE, calls.MintAsset(7, BOB.public, 99), "assets.BelowMinimum")
    d.fails(DAVE, calls.MintAsset(7, BOB.public, 0), "assets.ZeroAmount")
    d.fails(DAVE, calls.MintAsset(9, BOB.public, 1000), "assets.UnknownAsset")
    assert d.apply(DAVE, calls.MintAsset(7, BOB.public, 1000)).success
    d.fails(DAVE, calls.MintAsset(7, DAVE.public, MAX_BALANCE - 999), "assets.Overflow")
    d.fails(BOB, calls.TransferAsset(7, CHARLIE.public, 1001), "assets.BalanceLow")
    d.fails(BOB, calls.TransferAsset(7, CHARLIE.public, 50), "assets.BelowMinimum")
    d.fails(BOB, calls.TransferAsset(7, CHARLIE.public, 950), "assets.WouldLeaveDust")
    assert d.apply(BOB, calls.TransferAsset(7, CHARLIE.public, 400)).success
    assert d.apply(BOB, calls.TransferAsset(7, CHARLIE.public, 600)).success  # all of it: Bob's entry is deleted
    d.fails(DAVE, calls.BurnAsset(7, CHARLIE.public, 950), "assets.WouldLeaveDust")
    d.fails(BOB, calls.BurnAsset(7, CHARLIE.public, 100), "assets.NoPermission")
    assert d.apply(DAVE, calls.BurnAsset(7, CHARLIE.public, 900)).success
    state = _state(chain)
    assert assets.BALANCES.get(state, 7, BOB.public) is None
    assert assets.get_balance(state, 7, CHARLIE.public) == 100
    assert assets.get_asset(state, 7).supply == 100 and assets.get_asset(state, 7).accounts == 1


def test_a_disallowed_trainer_pays_only_the_base_fee(chain) -> None:
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    assert d.apply(DAVE, calls.RegisterModel("daves", spec.encode(), bytes(32))).success
    call = train_call(steps=20, segment=5, model=1)
    receipt = d.apply(BOB, call)  # Driver asserts the state root moved by the fee and nonce only
    assert not receipt.success and receipt.error.startswith("models.NotAllowedToTrain: model 1's training permission is 'owner'")
    assert receipt.weight == TRAIN_BASE_WEIGHT
    assert d.apply(DAVE, call).success  # the owner may
    assert d.apply(DAVE, calls.SetTrainingPolicy(1, "allowlist", 0)).success
    d.fails(BOB, call, "models.NotAllowedToTrain")
    d.fails(BOB, calls.SetTrainer(1, BOB.public, True), "models.NotOwner")
    assert d.apply(DAVE, calls.SetTrainer(1, BOB.public, True)).success
    assert d.apply(BOB, call).success
    d.fails(CHARLIE, call, "models.NotAllowedToTrain")
    assert d.apply(DAVE, calls.SetTrainer(1, BOB.public, False)).success
    d.fails(BOB, call, "models.NotAllowedToTrain")
    d.fails(DAVE, calls.SetTrainingPolicy(1, "proposal", 0), "models.PermissionNotSupported")
    d.fails(BOB, calls.SetTrainingPolicy(1, "anyone", 0), "models.NotOwner")
    assert d.apply(DAVE, calls.SetTrainingPolicy(1, "anyone", 0)).success
    assert d.apply(CHARLIE, call).success


def test_a_bad_permission_name_does_not_decode() -> None:
    with pytest.raises(CodecError, match=r"set_training_policy: Expected `str` matching regex"):
        calls.call_from_json({"pallet": "models", "call": "set_training_policy", "args": {"model": 0, "permission": "everyone", "license_per_step": 0}})


def test_shared_model_licence_is_split_pro_rata_and_claimed(chain) -> None:
    """Alice shares model 0 100 ways, sells 40 to Bob; Charlie's training pays 60/40."""
    d = Driver(chain)
    assert d.apply(ALICE, calls.SetTrainingPolicy(0, "anyone", 1000)).success
    d.fails(ALICE, calls.ShareModel(0, 0), "models.InvalidShares")
    d.fails(BOB, calls.ShareModel(0, 100), "models.NotOwner")
    d.fails(ALICE, calls.ClaimRevenue(0), "models.NotShared")
    assert d.apply(ALICE, calls.ShareModel(0, 100)).success
    d.fails(ALICE, calls.ShareModel(0, 100), "models.OwnedByShareholders")
    d.fails(ALICE, calls.SetTrainingPolicy(0, "owner", 0), "models.OwnedByShareholders")
    shares = assets.compute_shares_asset(0)
    d.fails(ALICE, calls.MintAsset(shares, ALICE.public, 1), "assets.NoPermission")
    assert d.apply(ALICE, calls.TransferAsset(shares, BOB.public, 40)).success
    bob0 = balances.get_account(_state(chain), BOB.public).free
    receipt = d.apply(CHARLIE, train_call(steps=30, batch=8, segment=10))
    assert receipt.success
    paid = [e for e in receipt.events if e.name == "ModelLicensePaid"]
    assert dict(paid[0].args)["amount"] == 30_000
    state = _state(chain)
    assert revenue.compute_owed(state, 0, ALICE.public, 60) == (18_000, 0)
    assert revenue.compute_owed(state, 0, BOB.public, 40) == (12_000, 0)
    d.fails(CHARLIE, calls.ClaimRevenue(0), "models.NothingToClaim")
    claim = d.apply(BOB, calls.ClaimRevenue(0))
    assert balances.get_account(_state(chain), BOB.public).free == bob0 + 12_000 - claim.fee
    alice1 = balances.get_account(_state(chain), ALICE.public).free
    assert d.apply(ALICE, calls.ClaimRevenue(0)).success  # Alice authors: her fee comes back to her
    assert balances.get_account(_state(chain), ALICE.public).free == alice1 + 18_000
    assert balances.get_account(_state(chain), revenue.POT_ACCOUNT).free == 0


def test_model_licence_overflow_is_an_error(chain) -> None:
    d = Driver(chain)
    assert d.apply(ALICE, calls.SetTrainingPolicy(0, "anyone", 2**62)).success
    d.fails(BOB, train_call(steps=20, segment=5), "training.Overflow")


def test_fractions_stay_with_holders_and_dust_goes_to_the_dust_account(chain) -> None:
    d = Driver(chain)
    assert d.apply(ALICE, calls.ShareModel(0, 3)).success
    shares = assets.compute_shares_asset(0)
    assert d.apply(ALICE, calls.TransferAsset(shares, BOB.public, 1)).success
    assert d.apply(ALICE, calls.TransferAsset(shares, CHARLIE.public, 1)).success
    for _ in range(3):  # 10 / 3 each time: 9.999999999999999999 each, the 10^-18 units left over are dust
        assert d.apply(DAVE, calls.PayModel(0, 10)).success
    state = _state(chain)
    third = revenue.SCALE * 10 // 3
    assert [revenue.compute_owed(state, 0, k.public, 1) for k in (ALICE, BOB, CHARLIE)] == [divmod(3 * third, revenue.SCALE)] * 3
    assert revenue.POOLS.get(state, 0).dust_frac == 3 * (revenue.SCALE * 10 - 3 * third)
    assert balances.get_account(state, revenue.POT_ACCOUNT).free == 30
    assert balances.get_account(state, revenue.DUST_ACCOUNT).free == 0
    d.fails(DAVE, calls.PayModel(0, 0), "models.ZeroAmount")
    d.fails(DAVE, calls.PayModel(5, 10), "models.UnknownModel")


def test_whole_units_of_dust_reach_the_dust_account(chain) -> None:
    d = Driver(chain)
    assert d.apply(ALICE, calls.ShareModel(0, 2 * revenue.SCALE)).success
    assert d.apply(DAVE, calls.PayModel(0, 1)).success  # under 1/SCALE per share: all of it is dust
    assert d.apply(DAVE, calls.PayModel(0, 3)).success  # 3·10^18 // 2·10^18 = 1 per share, 10^18 left: 1 unit
    state = _state(chain)
    assert balances.get_account(state, revenue.DUST_ACCOUNT).free == 2
    assert revenue.compute_owed(state, 0, ALICE.public, 2 * revenue.SCALE) == (2, 0)
    assert balances.get_account(state, revenue.POT_ACCOUNT).free == 2


# --- conservation, by hypothesis, on the pallet functions over a plain dict state ------------------
ACCOUNTS = (ALICE, BOB, CHARLIE, DAVE, FERDIE)
_GENESIS: dict[bytes, bytes] = {}


def _fresh_state() -> _DictState:
    if not _GENESIS:
        _GENESIS.update(compute_genesis_storage(dev_spec()))
    state = _DictState()
    state.items = dict(_GENESIS)
    return state


def _dispatch(state: _DictState, who, fn, call) -> bool:
    """Apply one handler as the executive would, without fees: all or nothing."""
    snapshot = dict(state.items)
    ctx = CallContext(state, who.public, 0, bytes(32), 0, BlockInfo(1, bytes(32), ALICE.public, True, None), RuntimeConfig())  # type: ignore[arg-type]
    try:
        fn(ctx, call)
    except DispatchError:
        state.items = snapshot
        return False
    return True


def _total_free(state: _DictState) -> int:
    prefix = balances.ACCOUNT.prefix
    return sum(
        msgspec.msgpack.decode(v, type=balances.AccountInfo).free + msgspec.msgpack.decode(v, type=balances.AccountInfo).staked
        for k, v in state.items.items() if k.startswith(prefix)
    )


op = st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 4), st.integers(1, 10**12)),
    st.tuples(st.just("move"), st.integers(0, 4), st.integers(0, 4), st.integers(1, 10**6)),
    st.tuples(st.just("claim"), st.integers(0, 4), st.just(0)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(total=st.integers(1, 10**6), ops=st.lists(op, max_size=30))
def test_revenue_is_conserved_to_the_last_unit(total: int, ops: list[tuple]) -> None:
    state = _fresh_state()
    asset = assets.compute_shares_asset(0)
    issuance = balances.TOTAL_ISSUANCE.get(state)
    assert _total_free(state) == issuance
    assert _dispatch(state, ALICE, models.apply_share_model, calls.ShareModel(0, total))
    held = {k.public: 0 for k in ACCOUNTS} | {ALICE.public: total}
    exact = {k.public: Fraction(0) for k in ACCOUNTS}  # what each holder earned, as a rational
    claimed = {k.public: 0 for k in ACCOUNTS}
    payments = 0
    for kind, a, *rest in ops:
        who = ACCOUNTS[a]
        if kind == "pay":
            if _dispatch(state, who, models.apply_pay_model_call, calls.PayModel(0, rest[0])):
                payments += 1
                for h, n in held.items():
                    exact[h] += Fraction(rest[0] * n, total)
        elif kind == "move":
            dest, amount = ACCOUNTS[rest[0]], rest[1]
            if _dispatch(state, who, assets.apply_transfer, calls.TransferAsset(asset, dest.public, amount)) and who != dest:
                held[who.public] -= amount
                held[dest.public] += amount
        else:
            before = balances.get_account(state, who.public).free
            if _dispatch(state, who, models.apply_claim_revenue, calls.ClaimRevenue(0)):
                claimed[who.public] += balances.get_account(state, who.public).free - before
        # Shares: as modelled, and summing to the total.
        assert {h: assets.get_balance(state, asset, h) for h in held} == held
        # POL: nothing created or destroyed (no fees here): issuance is every account's funds.
        assert balances.TOTAL_ISSUANCE.get(state) == issuance == _total_free(state)
        # The pot holds exactly what holders are owed plus the pool's dust fraction, in SCALE-ths.
        pool = revenue.POOLS.get(state, 0)
        owed = {h: revenue.compute_owed(state, 0, h, n) for h, n in held.items()}
        pot = balances.get_account(state, revenue.POT_ACCOUNT).free
        assert pot * revenue.SCALE == pool.dust_frac + sum(u * revenue.SCALE + f for u, f in owed.values())
        # Each holder's earnings are the exact pro-rata share, less under one SCALE-th per payment per share.
        for h in held:
            earned = claimed[h] + Fraction(owed[h][0] * revenue.SCALE + owed[h][1], revenue.SCALE)
            assert 0 <= exact[h] - earned <= Fraction(payments * total, revenue.SCALE)
        dust = balances.get_account(state, revenue.DUST_ACCOUNT).free
        assert revenue.u256(pool.paid) == pot + sum(claimed.values()) + dust


def test_owner_permission_of_a_shared_model_means_its_shareholders(chain) -> None:
    d = Driver(chain)
    spec = ml_runtime.ModelSpec("softmax", 64, 10)
    assert d.apply(DAVE, calls.RegisterModel("daves", spec.encode(), bytes(32))).success
    assert d.apply(DAVE, calls.ShareModel(1, 10)).success
    assert d.apply(DAVE, calls.TransferAsset(assets.compute_shares_asset(1), BOB.public, 1)).success
    call = train_call(steps=10, segment=5, model=1)
    assert d.apply(BOB, call).success
    d.fails(CHARLIE, call, "models.NotAllowedToTrain")
    d.fails(DAVE, calls.SetTrainer(1, CHARLIE.public, True), "models.OwnedByShareholders")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": assets.SHARES_BASE}, "id must be in 0..2147483647"),
        ({"symbol": "US DP"}, "set_metadata: Expected `str` matching regex"),
        ({"decimals": 19}, "set_metadata: Expected `int` <= 18"),
        ({"minBalance": 0}, "min_balance must be at least 1"),
        ({"balances": [["//Bob", 5]]}, "would hold 5, below the asset's min_balance 10000"),
        ({"balances": [["//Bob", 2**62], ["//Eve", 2**62]]}, "would exceed 2^63-1"),
    ],
)
def test_bad_genesis_assets_are_refused_with_the_reason(change, message) -> None:
    spec = copy.deepcopy(dev_spec().to_json())  # the cached spec's config must stay as it is
    spec["genesis"]["runtimeGenesisConfig"]["assets"][0].update(change)
    with pytest.raises(GenesisError, match="assets\\[0\\]") as info:
        parse_chain_spec(spec)
    assert message in str(info.value)
