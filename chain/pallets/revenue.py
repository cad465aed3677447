"""Revenue of shared models: pro-rata payouts in O(1) per payment, whatever the holder count.

The technique is the reward-per-share accumulator of Batog, Boca and Johnson, *Scalable
Reward Distribution on the Ethereum Blockchain* (2018): a model's pool keeps ``acc``, the
sum over all payments of ``payment × SCALE / total_shares``; a holder keeps ``debt``, the
value of ``acc`` when its share balance last changed. What a holder has earned since then
is ``shares × (acc − debt) / SCALE``, so a payment touches the pool only, and a holder is
settled (earnings moved into ``owed``, ``debt`` reset) just before its share balance changes
(a share transfer, see chain.pallets.assets) and when it claims. Nothing loops over holders.

Integer arithmetic, exact to the last unit (all amounts in POL's smallest unit, planck):

* A payment of ``P`` to a pool of ``S`` shares adds ``delta = ⌊P·SCALE / S⌋`` to ``acc``; the
  remainder ``P·SCALE − delta·S`` (< S, in SCALE-ths of a unit) is rounding dust. It adds up
  in the pool's ``dust_frac``, and each time that reaches a whole unit the unit moves from
  the revenue pot to the dust account (:data:`DUST_ACCOUNT`).
* Settling adds ``shares × (acc − debt)`` SCALE-ths to the holder: the whole units to
  ``owed``, the fraction below one unit to ``owed_frac``; that fraction stays the holder's
  and counts towards its next whole unit (it is never rounded away).
* A claim pays ``owed`` whole units from the pot (:data:`POT_ACCOUNT`) to the holder.

So at every block, for the pot's free balance ``B`` summed over every shared model:
``B × SCALE = Σ_models (dust_frac + Σ_holders (owed × SCALE + owed_frac + shares × (acc − debt)))``,
which tests/chain/test_economy.py checks after random sequences of payments, share moves
and claims. ``acc`` and ``debt`` grow without bound over a model's life, so they are stored
as 32-byte big-endian integers (U256); reaching 2^256 is an Overflow error, never a wrap.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chain.codec import MAX_BALANCE, Balance, Wire
from chain.errors import DispatchError
from chain.pallets.balances import AccountInfo, apply_account, get_account
from chain.pallets.items import StateAccess, StorageMap

PALLET = "models"
SCALE = 10**18  # SCALE-ths of a unit: the accumulator's fixed point
U256_MAX = 2**256 - 1
U256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Frac = Annotated[int, msgspec.Meta(ge=0, le=SCALE - 1)]


def compute_pallet_account(pallet_id: bytes) -> bytes:
    """Substrate's ``PalletId::into_account_truncating``: ``b"modl" || id (8 bytes)``, zero
    padded to 32 bytes. Nobody holds its key, so only the runtime moves its funds."""
    if len(pallet_id) != 8:
        raise ValueError("a pallet id is 8 bytes")
    return (b"modl" + pallet_id).ljust(32, b"\x00")


POT_ACCOUNT = compute_pallet_account(b"py/revnu")  # holds revenue paid in and not yet claimed
DUST_ACCOUNT = compute_pallet_account(b"py/rdust")  # receives the rounding dust, whole units


class RevenuePool(Wire, frozen=True):
    """One shared model's accumulator. ``paid`` and ``claimed`` are running totals (U256)."""

    total_shares: Balance
    acc: U256 = bytes(32)
    dust_frac: Frac = 0
    paid: U256 = bytes(32)
    claimed: U256 = bytes(32)
    dust_paid: U256 = bytes(32)


class HolderRevenue(Wire, frozen=True):
    """One holder's settled earnings in one model: ``owed`` whole units plus ``owed_frac``
    SCALE-ths, and the accumulator value ``debt`` they were settled at."""

    debt: U256
    owed: Balance = 0
    owed_frac: Frac = 0


POOLS = StorageMap("Revenue", "Pools", RevenuePool)
HOLDERS = StorageMap("Revenue", "Holders", HolderRevenue)  # (model, account)


def u256(value: bytes) -> int:
    return int.from_bytes(value, "big")


def to_u256(value: int, what: str) -> bytes:
    if value > U256_MAX:
        raise DispatchError(PALLET, "Overflow", f"{what} would exceed 2^256-1")
    return value.to_bytes(32, "big")


def apply_open_pool(state: StateAccess, model: int, total_shares: int) -> None:
    """Start a model's pool when it is shared (the shares are minted by the caller)."""
    POOLS.apply_set(state, RevenuePool(total_shares), model)


def compute_owed(state: StateAccess, model: int, who: bytes, shares: int) -> tuple[int, int]:
    """(whole units, SCALE-ths) ``who`` could claim now, holding ``shares`` (read-only).

    Every holder has a record from the moment it first holds shares (settled before the
    owner's mint and before every transfer), so no record means no shares and nothing owed."""
    pool = POOLS.get(state, model)
    if pool is None:
        return 0, 0
    holder = HOLDERS.get(state, model, who)
    debt, owed, frac = (pool.acc, 0, 0) if holder is None else (holder.debt, holder.owed, holder.owed_frac)
    earned = shares * (u256(pool.acc) - u256(debt)) + frac
    return owed + earned // SCALE, earned % SCALE


def apply_settle(state: StateAccess, model: int, who: bytes, shares: int) -> HolderRevenue:
    """Move what ``shares`` earned since the last settlement into ``who``'s ``owed``; call it
    before ``who``'s share balance changes. Returns the holder's new record."""
    pool = POOLS.get(state, model)
    if pool is None:
        raise DispatchError(PALLET, "NotShared", f"model {model} has not been shared")
    owed, frac = compute_owed(state, model, who, shares)
    if owed > MAX_BALANCE:
        raise DispatchError(PALLET, "Overflow", f"revenue owed would exceed 2^63-1 ({owed})")
    holder = HolderRevenue(pool.acc, owed, frac)
    HOLDERS.apply_set(state, holder, model, who)
    return holder


def apply_pay(state: StateAccess, model: int, payer: bytes, amount: int, existential_deposit: int) -> int:
    """``payer`` pays ``amount`` into a shared model's pool: O(1). Returns the rounding dust
    (whole units) this payment moved to the dust account."""
    pool = POOLS.get(state, model)
    if pool is None:
        raise DispatchError(PALLET, "NotShared", f"model {model} has not been shared")
    apply_debit(state, payer, amount, existential_deposit)
    apply_credit(state, POT_ACCOUNT, amount)
    scaled = amount * SCALE
    delta = scaled // pool.total_shares
    dust_frac = pool.dust_frac + scaled - delta * pool.total_shares
    dust, dust_frac = divmod(dust_frac, SCALE)
    if dust:
        apply_debit(state, POT_ACCOUNT, dust, 0)
        apply_credit(state, DUST_ACCOUNT, dust)
    POOLS.apply_set(
        state,
        msgspec.structs.replace(
            pool, acc=to_u256(u256(pool.acc) + delta, "the revenue accumulator"), dust_frac=dust_frac,
            paid=to_u256(u256(pool.paid) + amount, "revenue paid"),
            dust_paid=to_u256(u256(pool.dust_paid) + dust, "dust paid"),
        ),
        model,
    )
    return dust


def apply_claim(state: StateAccess, model: int, who: bytes, shares: int) -> int:
    """Pay ``who`` its whole owed units from the pot; returns them. NothingToClaim if none."""
    holder = apply_settle(state, model, who, shares)
    if holder.owed == 0:
        raise DispatchError(PALLET, "NothingToClaim", f"no whole unit of revenue is owed in model {model}")
    apply_debit(state, POT_ACCOUNT, holder.owed, 0)
    apply_credit(state, who, holder.owed)
    HOLDERS.apply_set(state, msgspec.structs.replace(holder, owed=0), model, who)
    pool = POOLS.get(state, model)
    assert pool is not None  # apply_settle checked it
    POOLS.apply_set(state, msgspec.structs.replace(pool, claimed=to_u256(u256(pool.claimed) + holder.owed, "revenue claimed")), model)
    return holder.owed


def apply_debit(state: StateAccess, who: bytes, amount: int, existential_deposit: int) -> None:
    account = get_account(state, who)
    if account.free < amount:
        raise DispatchError(PALLET, "InsufficientBalance", f"free balance {account.free} is less than {amount}")
    left = account.free - amount
    if 0 < left < existential_deposit and account.staked == 0:
        raise DispatchError(
            PALLET, "Expendability", f"paying {amount} would leave {left}, below the existential deposit {existential_deposit}"
        )
    apply_account(state, who, AccountInfo(account.nonce, left, account.staked))


def apply_credit(state: StateAccess, who: bytes, amount: int) -> None:
    """Credit without the new-account deposit check: the pot, the dust account and claimants
    are paid whatever they are owed (the funds exist already, so no overflow past issuance)."""
    account = get_account(state, who)
    apply_account(state, who, AccountInfo(account.nonce, account.free + amount, account.staked))


def compute_treasury_account(model: int) -> bytes:
    """A shared model's treasury: Substrate's ``into_sub_account_truncating(model)`` of the
    pallet id ``py/trsy`` (``b"modl" || id || model as u32 LE``, zero padded)."""
    return (b"modl" + b"py/trsy" + model.to_bytes(4, "little")).ljust(32, b"\x00")


def apply_set_aside(state: StateAccess, model: int, payer: bytes, amount: int, existential_deposit: int) -> None:
    """Move ``amount`` of a payment to the model into its treasury (governance spends it)."""
    apply_debit(state, payer, amount, existential_deposit)
    apply_credit(state, compute_treasury_account(model), amount)


def apply_spend(state: StateAccess, model: int, dest: bytes, amount: int, existential_deposit: int) -> None:
    """Pay ``amount`` from the model's treasury to ``dest`` (an adopted spend proposal)."""
    receiver = get_account(state, dest)
    if receiver.free + receiver.staked == 0 and receiver.nonce == 0 and amount < existential_deposit:
        raise DispatchError(
            PALLET, "ExistentialDeposit", f"{amount} is below the existential deposit {existential_deposit} for a new account"
        )
    apply_debit(state, compute_treasury_account(model), amount, 0)
    apply_credit(state, dest, amount)
