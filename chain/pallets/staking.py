"""Staking, as much as consensus needs: bonds, the validator set, slashing.

The validator set comes from genesis; an account bonds free funds to back its validator and
loses them when slashed (consensus calls :func:`apply_slash` with a fraud proof's verdict).
Unbonding is immediate for now: there is no unbonding period yet, which a chain with real
stake needs so a validator cannot withdraw before its misbehaviour is proven.
"""

from __future__ import annotations

from chain.calls import Bond, Unbond
from chain.codec import AccountId
from chain.errors import DispatchError
from chain.pallets.balances import AccountInfo, apply_account, apply_burn_staked, get_account
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageValue

PALLET = "staking"

VALIDATORS = StorageValue("Staking", "Validators", tuple[AccountId, ...], ())


def get_validators(state: StateAccess) -> tuple[bytes, ...]:
    """The validator set in this state (which validator owns which slot is consensus's
    business: consensus.aura)."""
    return VALIDATORS.get(state)


def apply_bond(ctx: CallContext, call: Bond) -> None:
    info = get_account(ctx.state, ctx.sender)
    if info.free < call.value:
        raise DispatchError(PALLET, "InsufficientBalance", f"free balance {info.free} is less than the bond {call.value}")
    apply_account(ctx.state, ctx.sender, AccountInfo(info.nonce, info.free - call.value, info.staked + call.value))
    ctx.emit(PALLET, "Bonded", who=ctx.sender, value=call.value)


def apply_unbond(ctx: CallContext, call: Unbond) -> None:
    info = get_account(ctx.state, ctx.sender)
    if info.staked < call.value:
        raise DispatchError(PALLET, "NotEnoughStake", f"stake {info.staked} is less than {call.value}")
    left = info.staked - call.value
    if ctx.sender in get_validators(ctx.state) and left < ctx.config.min_validator_bond:
        raise DispatchError(PALLET, "BelowMinimumBond", f"a validator keeps at least {ctx.config.min_validator_bond} staked")
    apply_account(ctx.state, ctx.sender, AccountInfo(info.nonce, info.free + call.value, left))
    ctx.emit(PALLET, "Unbonded", who=ctx.sender, value=call.value)


def apply_slash(state: StateAccess, who: bytes, amount: int) -> int:
    """Burn up to ``amount`` of ``who``'s stake; returns the amount burned."""
    return apply_burn_staked(state, who, amount)
