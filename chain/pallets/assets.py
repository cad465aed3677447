"""Fungible assets beside the native token, in the spirit of Substrate's ``pallet-assets``.

An asset has an id (u32), an owner (sets metadata), an issuer (mints and burns), a supply,
a per-asset existential deposit ``min_balance`` and metadata (name, symbol, decimals).
Creating one moves :data:`ASSET_DEPOSIT` of the creator's POL to the assets pallet account
(:data:`DEPOSIT_ACCOUNT`), as Substrate reserves ``AssetDeposit``; it is held for the life
of the asset (destroying an asset and returning its deposit is not built yet).

Rules, checked before anything moves:

* Amounts are >= 1 (ZeroAmount). The supply never exceeds 2^63-1 (Overflow), and every
  balance is at most the supply, so no balance can overflow either.
* A balance is 0 or at least ``min_balance``: a transfer or mint that would create a holder
  with less is BelowMinimum; a transfer or burn that would leave a holder with less (but
  not 0) is WouldLeaveDust. A balance that reaches 0 is deleted from state (the holder count
  ``accounts`` goes down), so empty holders cost no storage.
* Ids from :data:`SHARES_BASE` up are model shares: asset ``SHARES_BASE + m`` is created by
  ``models.share_model`` for model ``m``, owned and issued by the models pallet account, so
  nobody can mint, burn or rename shares. Moving shares settles both holders' revenue first
  (chain.pallets.revenue), which is what keeps revenue pro rata without a loop over holders.
"""

from __future__ import annotations

import msgspec

from chain.calls import BurnAsset, CreateAsset, MintAsset, SetAssetMetadata, TransferAsset
from chain.codec import MAX_BALANCE, U8, U32, AccountId, Balance, Wire
from chain.errors import DispatchError
from chain.pallets import revenue
from chain.pallets.balances import apply_move
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap

PALLET = "assets"
SHARES_BASE = 2**31  # asset ids from here up are model shares: SHARES_BASE + model id
ASSET_DEPOSIT = 10 * 10**9  # 10 POL held while the asset exists (Substrate's AssetDeposit)
DEPOSIT_ACCOUNT = revenue.compute_pallet_account(b"py/asset")
MODELS_ACCOUNT = revenue.compute_pallet_account(b"py/model")  # owner and issuer of every share asset


class AssetDetails(Wire, frozen=True):
    owner: AccountId
    issuer: AccountId
    supply: Balance
    min_balance: Balance
    deposit: Balance
    accounts: U32 = 0


class AssetMetadata(Wire, frozen=True):
    name: str
    symbol: str
    decimals: U8


ASSETS = StorageMap("Assets", "Asset", AssetDetails)
METADATA = StorageMap("Assets", "Metadata", AssetMetadata)
BALANCES = StorageMap("Assets", "Account", int)  # (asset, account) -> balance >= min_balance


class AssetLock(Wire, frozen=True):
    """``amount`` of an account's balance may not be transferred before block ``until``
    (model shares that voted, chain.pallets.governance; like pallet-assets' freezes)."""

    amount: Balance
    until: U32


LOCKS = StorageMap("Assets", "Lock", AssetLock)  # (asset, account) -> lock


def apply_lock(state: StateAccess, asset: int, who: bytes, amount: int, until: int, now: int) -> None:
    """Lock ``amount`` until ``until`` (in block ``now``); a lock still in force keeps the
    larger of each. An expired one (:func:`get_locked` reads it as 0) is replaced: its amount,
    what an earlier vote held, may exceed what ``who`` holds now."""
    old = LOCKS.get(state, asset, who)
    if old is not None and now < old.until:
        amount, until = max(amount, old.amount), max(until, old.until)
    LOCKS.apply_set(state, AssetLock(amount, until), asset, who)


def get_locked(state: StateAccess, asset: int, who: bytes, now: int) -> int:
    lock = LOCKS.get(state, asset, who)
    return 0 if lock is None or now >= lock.until else lock.amount


def compute_shares_asset(model: int) -> int:
    return SHARES_BASE + model


def compute_shares_model(asset: int) -> int | None:
    """The model whose shares ``asset`` is, or None for an ordinary asset."""
    return asset - SHARES_BASE if asset >= SHARES_BASE else None


def get_asset(state: StateAccess, asset: int) -> AssetDetails:
    details = ASSETS.get(state, asset)
    if details is None:
        raise DispatchError(PALLET, "UnknownAsset", f"no asset {asset}")
    return details


def get_balance(state: StateAccess, asset: int, who: bytes) -> int:
    return BALANCES.get(state, asset, who) or 0


def apply_new_asset(
    state: StateAccess, asset: int, owner: bytes, issuer: bytes, min_balance: int, deposit: int
) -> None:
    """Create an asset record (the caller checked the id and moved the deposit)."""
    if ASSETS.get(state, asset) is not None:
        raise DispatchError(PALLET, "InUse", f"asset {asset} exists already")
    if min_balance < 1:
        raise DispatchError(PALLET, "MinBalanceZero", "min_balance must be at least 1")
    ASSETS.apply_set(state, AssetDetails(owner, issuer, 0, min_balance, deposit), asset)


def apply_metadata(state: StateAccess, asset: int, name: str, symbol: str, decimals: int) -> None:
    METADATA.apply_set(state, AssetMetadata(name, symbol, decimals), asset)


def _apply_balance(state: StateAccess, asset: int, who: bytes, old: int, new: int, details: AssetDetails) -> AssetDetails:
    """Write one holder's balance (deleting it at 0); returns details with the holder count updated."""
    if new == 0:
        BALANCES.apply_delete(state, asset, who)
    else:
        BALANCES.apply_set(state, new, asset, who)
    change = (old == 0 and new > 0) - (old > 0 and new == 0)
    return details if change == 0 else msgspec.structs.replace(details, accounts=details.accounts + change)


def _check_new_balance(details: AssetDetails, old: int, new: int, who: str) -> None:
    if 0 < new < details.min_balance:
        error = "BelowMinimum" if old == 0 else "WouldLeaveDust"
        raise DispatchError(PALLET, error, f"{who} would hold {new}, below the asset's min_balance {details.min_balance}")


def apply_mint(state: StateAccess, asset: int, beneficiary: bytes, amount: int) -> None:
    """Create ``amount`` units in ``beneficiary`` (rights are the caller's business)."""
    details = get_asset(state, asset)
    if amount < 1:
        raise DispatchError(PALLET, "ZeroAmount", "the amount must be at least 1")
    if details.supply + amount > MAX_BALANCE:
        raise DispatchError(PALLET, "Overflow", f"supply {details.supply} + {amount} would exceed 2^63-1")
    old = get_balance(state, asset, beneficiary)
    _check_new_balance(details, old, old + amount, "the beneficiary")
    details = _apply_balance(state, asset, beneficiary, old, old + amount, details)
    ASSETS.apply_set(state, msgspec.structs.replace(details, supply=details.supply + amount), asset)


def apply_transfer_asset(state: StateAccess, asset: int, src: bytes, dest: bytes, amount: int) -> None:
    """Move ``amount`` units; for model shares, settle both holders' revenue first."""
    details = get_asset(state, asset)
    if amount < 1:
        raise DispatchError(PALLET, "ZeroAmount", "the amount must be at least 1")
    have = get_balance(state, asset, src)
    if have < amount:
        raise DispatchError(PALLET, "BalanceLow", f"balance {have} of asset {asset} is less than {amount}")
    if src == dest:
        return
    got = get_balance(state, asset, dest)
    _check_new_balance(details, have, have - amount, "the sender")
    _check_new_balance(details, got, got + amount, "the destination")
    model = compute_shares_model(asset)
    if model is not None:
        revenue.apply_settle(state, model, src, have)
        revenue.apply_settle(state, model, dest, got)
    details = _apply_balance(state, asset, src, have, have - amount, details)
    details = _apply_balance(state, asset, dest, got, got + amount, details)
    ASSETS.apply_set(state, details, asset)


def apply_create(ctx: CallContext, call: CreateAsset) -> None:
    if compute_shares_model(call.asset) is not None:
        raise DispatchError(PALLET, "ReservedAssetId", f"asset ids from {SHARES_BASE} up are model shares")
    if ASSETS.get(ctx.state, call.asset) is not None:
        raise DispatchError(PALLET, "InUse", f"asset {call.asset} exists already")
    apply_new_asset(ctx.state, call.asset, ctx.sender, ctx.sender, call.min_balance, ASSET_DEPOSIT)
    apply_move(ctx.state, ctx.sender, DEPOSIT_ACCOUNT, ASSET_DEPOSIT, ctx.config.existential_deposit)
    ctx.emit(PALLET, "Created", asset=call.asset, owner=ctx.sender, min_balance=call.min_balance, deposit=ASSET_DEPOSIT)


def apply_set_metadata(ctx: CallContext, call: SetAssetMetadata) -> None:
    details = get_asset(ctx.state, call.asset)
    if details.owner != ctx.sender:
        raise DispatchError(PALLET, "NoPermission", f"only the owner of asset {call.asset} sets its metadata")
    apply_metadata(ctx.state, call.asset, call.name, call.symbol, call.decimals)
    ctx.emit(PALLET, "MetadataSet", asset=call.asset, asset_name=call.name, symbol=call.symbol, decimals=call.decimals)


def apply_mint_call(ctx: CallContext, call: MintAsset) -> None:
    if get_asset(ctx.state, call.asset).issuer != ctx.sender:
        raise DispatchError(PALLET, "NoPermission", f"only the issuer of asset {call.asset} mints")
    apply_mint(ctx.state, call.asset, call.beneficiary, call.amount)
    ctx.emit(PALLET, "Issued", asset=call.asset, who=call.beneficiary, amount=call.amount)


def apply_burn_call(ctx: CallContext, call: BurnAsset) -> None:
    details = get_asset(ctx.state, call.asset)
    if details.issuer != ctx.sender:
        raise DispatchError(PALLET, "NoPermission", f"only the issuer of asset {call.asset} burns")
    if call.amount < 1:
        raise DispatchError(PALLET, "ZeroAmount", "the amount must be at least 1")
    have = get_balance(ctx.state, call.asset, call.who)
    if have < call.amount:
        raise DispatchError(PALLET, "BalanceLow", f"balance {have} of asset {call.asset} is less than {call.amount}")
    _check_new_balance(details, have, have - call.amount, "the holder")
    details = _apply_balance(ctx.state, call.asset, call.who, have, have - call.amount, details)
    ASSETS.apply_set(ctx.state, msgspec.structs.replace(details, supply=details.supply - call.amount), call.asset)
    ctx.emit(PALLET, "Burned", asset=call.asset, who=call.who, amount=call.amount)


def apply_transfer(ctx: CallContext, call: TransferAsset) -> None:
    locked = get_locked(ctx.state, call.asset, ctx.sender, ctx.block.number)
    if locked and get_balance(ctx.state, call.asset, ctx.sender) - locked < call.amount:
        lock = LOCKS.get(ctx.state, call.asset, ctx.sender)
        until = lock.until if lock is not None else 0
        raise DispatchError(
            PALLET, "Locked", f"{locked} of asset {call.asset} are locked until block {until} (they voted); {call.amount} cannot move"
        )
    apply_transfer_asset(ctx.state, call.asset, ctx.sender, call.dest, call.amount)
    ctx.emit(PALLET, "Transferred", asset=call.asset, src=ctx.sender, dest=call.dest, amount=call.amount)
