"""Staking, as much as consensus needs: bonds, the validator set, slashing, eras.

The validator set comes from genesis; an account bonds free funds to back its validator and
loses part of them when an offence is proven (chain.pallets.pol calls :func:`apply_slash`).
A slash takes ``slash_fraction_ppm`` millionths of the offender's stake (rounded down), pays
``reporter_share_ppm`` millionths of that (rounded down) to the reporter's free balance and
burns the rest (total issuance falls by it). The reporter always has an account (it signed
and paid a fee, so its nonce is at least 1), so the credit never creates an account below
the existential deposit.

The validator set changes only at era starts, like Substrate's ``pallet-session``: an
offender is queued (:data:`PENDING_REMOVAL`; disabled from then on, :func:`is_disabled`: Aura
refuses its blocks) and leaves ``Staking.Validators`` in
:func:`on_initialize` of the first block of the next era (``number % era_length == 0``), so
every node switches Aura's slot owners at the same block. The last validator is never
queued (a chain without validators can never author again): it is slashed and kept. An
``era_length`` of 0 means no eras: queued validators are never removed.

Unbonding takes ``era_length`` blocks (Substrate's ``BondingDuration``, here in blocks): an
unbonded amount leaves ``staked`` for an unlocking chunk (:data:`UNLOCKING`, at most
:data:`MAX_UNLOCKING_CHUNKS` per account; one unbonded in a block whose chunk exists already
joins it) that stays slashable until block ``unlock_at``, after which ``withdraw_unbonded``
moves it to the free balance. A validator's unbonding, or one removed for an offence
(:func:`compute_unlock_at`), takes at least ``system.BLOCK_HASH_COUNT`` blocks (4,096): the
window in which its block and fraud offences can be reported (chain.pallets.pol), so no
offence committed before the unbond can be reported after the stake has left. Unlocking after
one era let an offender double-vote, unbond in the same block and withdraw 16 blocks later,
before a report (an outside reviewer's finding: 100 of 101 POL escaped the slash). Substrate
bounds slashing the same way, by a bonding duration longer than the slashing window. A slash takes its fraction of the stake and the
unlocking chunks together, from ``staked`` first, then from the chunks that unlock last.
A validator keeps at least ``min_validator_bond`` staked while in the set.

A bond leaves at least :func:`compute_bond_reserve` free (InsufficientFreeAfterBond): the
existential deposit, or, if more, the fees (no tip) of the unbond and the withdraw_unbonded
that take the stake back. Before, a bond of all but its fee left free 0: the unbond's fee could
not be paid, and the stake stayed locked until someone else funded the account. A bond of 0 is
refused (ZeroBond), as an unbond of 0 is.

An unbond of 0 is refused (ZeroUnbond): its chunk would be worth nothing yet take one of the
places, and 32 of them locked the stake for good (nothing ever matured to withdraw).
``withdraw_unbonded`` drops any zero chunk a chain stored before that rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chain.calls import PPM, Bond, Unbond, WithdrawUnbonded
from chain.codec import MAX_BALANCE, U64, AccountId, Balance, BlockNumber, Wire
from chain.errors import DispatchError
from chain.pallets.balances import (
    TOTAL_ISSUANCE,
    AccountInfo,
    apply_account,
    compute_reclaim_reserve,
    get_account,
    verify_reclaimable,
)
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue
from chain.pallets.system import BLOCK_HASH_COUNT

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "staking"
#: The weights bond, unbond and withdraw_unbonded declare (chain.runtime.DISPATCH).
BOND_WEIGHT = UNBOND_WEIGHT = WITHDRAW_WEIGHT = 100_000
#: What a bond's owner sends to take it back (compute_bond_reserve): the longest of each.
_RECLAIMS = ((Unbond(MAX_BALANCE), UNBOND_WEIGHT), (WithdrawUnbonded(), WITHDRAW_WEIGHT))

VALIDATORS = StorageValue("Staking", "Validators", tuple[AccountId, ...], ())
#: Validators to remove at the next era start, in the order their offences were proven.
PENDING_REMOVAL = StorageValue("Staking", "PendingRemoval", tuple[AccountId, ...], ())


class UnlockChunk(Wire, frozen=True):
    """Unbonded funds, slashable until block ``unlock_at``."""

    value: Balance
    unlock_at: BlockNumber


MAX_UNLOCKING_CHUNKS = 32  # Substrate's MaxUnlockingChunks
UNLOCKING = StorageMap("Staking", "Unlocking", tuple[UnlockChunk, ...])


def get_unlocking(state: StateAccess, who: bytes) -> tuple[UnlockChunk, ...]:
    return UNLOCKING.get(state, who) or ()


def _apply_unlocking(state: StateAccess, who: bytes, chunks: tuple[UnlockChunk, ...]) -> None:
    if chunks:
        UNLOCKING.apply_set(state, chunks, who)
    else:
        UNLOCKING.apply_delete(state, who)


class Removal(Wire, frozen=True):
    """When a validator left the set: the era whose first block removed it."""

    era: U64
    block: BlockNumber


#: Every validator removed for an offence (the ValidatorRemoved record: receipts belong to
#: extrinsics, and a removal happens before the block's first extrinsic).
REMOVED = StorageMap("Staking", "Removed", Removal)


class Slash(Wire, frozen=True):
    """What one slash did: taken from the stake, paid to the reporter, burned."""

    amount: Balance
    reporter_reward: Balance
    burned: Balance


def get_validators(state: StateAccess) -> tuple[bytes, ...]:
    """The validator set in this state (which validator owns which slot is consensus's
    business: consensus.aura)."""
    return VALIDATORS.get(state)


def compute_bond_reserve(config: RuntimeConfig) -> int:
    """The least a bond leaves free (module docstring): the existential deposit, or, if more,
    the fees of an unbond and a withdraw_unbonded (balances.compute_reclaim_reserve)."""
    return compute_reclaim_reserve(config, _RECLAIMS)


def apply_bond(ctx: CallContext, call: Bond) -> None:
    if not call.value:
        raise DispatchError(PALLET, "ZeroBond", "bond of 0: nothing would be staked (as an unbond of 0 is refused)")
    info = get_account(ctx.state, ctx.sender)
    if info.free < call.value:
        raise DispatchError(PALLET, "InsufficientBalance", f"free balance {info.free} is less than the bond {call.value}")
    verify_reclaimable(
        PALLET, "InsufficientFreeAfterBond", info.free, call.value, compute_bond_reserve(ctx.config), "the bond",
        "the unbond and the withdraw_unbonded",
    )
    apply_account(ctx.state, ctx.sender, AccountInfo(info.nonce, info.free - call.value, info.staked + call.value))
    ctx.emit(PALLET, "Bonded", who=ctx.sender, value=call.value)


def apply_unbond(ctx: CallContext, call: Unbond) -> None:
    if not call.value:
        raise DispatchError(
            PALLET, "ZeroUnbond",
            f"unbond of 0: nothing leaves the stake, and an empty chunk would take one of the {MAX_UNLOCKING_CHUNKS} unlocking places",
        )
    info = get_account(ctx.state, ctx.sender)
    if info.staked < call.value:
        raise DispatchError(PALLET, "NotEnoughStake", f"stake {info.staked} is less than {call.value}")
    left = info.staked - call.value
    if ctx.sender in get_validators(ctx.state) and left < ctx.config.min_validator_bond:
        raise DispatchError(PALLET, "BelowMinimumBond", f"a validator keeps at least {ctx.config.min_validator_bond} staked")
    unlock_at = compute_unlock_at(ctx.state, ctx.config, ctx.sender, ctx.block.number)
    chunks = get_unlocking(ctx.state, ctx.sender)
    if chunks and chunks[-1].unlock_at == unlock_at:
        chunks = (*chunks[:-1], UnlockChunk(chunks[-1].value + call.value, unlock_at))
    elif len(chunks) >= MAX_UNLOCKING_CHUNKS:
        raise DispatchError(
            PALLET, "NoMoreChunks", f"{MAX_UNLOCKING_CHUNKS} unbondings are unlocking already; withdraw_unbonded first"
        )
    else:
        chunks = (*chunks, UnlockChunk(call.value, unlock_at))
    apply_account(ctx.state, ctx.sender, AccountInfo(info.nonce, info.free, left))
    _apply_unlocking(ctx.state, ctx.sender, chunks)
    ctx.emit(PALLET, "Unbonded", who=ctx.sender, value=call.value, unlock_at=unlock_at)


def compute_unlock_at(state: StateAccess, config: RuntimeConfig, who: bytes, number: int) -> int:
    """The block from which stake ``who`` unbonds in block ``number`` may be withdrawn: an era
    on; for a validator, or one removed for an offence, at least the offence report window
    (module docstring)."""
    delay = config.era_length
    if who in get_validators(state) or REMOVED.get(state, who) is not None:
        delay = max(delay, BLOCK_HASH_COUNT)
    return number + delay


def apply_withdraw_unbonded(ctx: CallContext, call: WithdrawUnbonded) -> None:
    """Credit the chunks unlocked by this block and drop them, with any chunk worth 0 (a chain
    may hold some from before :func:`apply_unbond` refused 0: each took an unlocking place for
    good). NothingToWithdraw if that leaves the chunks as they are."""
    chunks = get_unlocking(ctx.state, ctx.sender)
    number = ctx.block.number
    kept = tuple(c for c in chunks if c.unlock_at > number and c.value)
    if len(kept) == len(chunks):
        # every chunk is worth something and unlocks after this block (min: a referendum may
        # have shortened era_length since the last ones were unbonded)
        when = f"the first unbonded funds unlock at block {min(c.unlock_at for c in kept)}" if kept else "nothing is unbonding"
        raise DispatchError(PALLET, "NothingToWithdraw", f"nothing to withdraw at block {number}: {when}")
    ready = sum(c.value for c in chunks if c.unlock_at <= number)
    if ready:
        info = get_account(ctx.state, ctx.sender)
        apply_account(ctx.state, ctx.sender, AccountInfo(info.nonce, info.free + ready, info.staked))
        ctx.emit(PALLET, "Withdrawn", who=ctx.sender, value=ready)
    _apply_unlocking(ctx.state, ctx.sender, kept)


def compute_slash(staked: int, config: RuntimeConfig) -> Slash:
    """The slash of an offender with ``staked`` (module docstring); fractions above one
    million ppm count as one million."""
    amount = staked * min(config.slash_fraction_ppm, PPM) // PPM
    reward = amount * min(config.reporter_share_ppm, PPM) // PPM
    return Slash(amount, reward, amount - reward)


def apply_slash(state: StateAccess, config: RuntimeConfig, offender: bytes, reporter: bytes) -> Slash:
    """Slash ``offender``'s stake and unlocking chunks (module docstring), pay ``reporter``
    its share, burn the rest."""
    info = get_account(state, offender)
    chunks = get_unlocking(state, offender)
    slash = compute_slash(info.staked + sum(c.value for c in chunks), config)
    from_stake = min(slash.amount, info.staked)
    apply_account(state, offender, AccountInfo(info.nonce, info.free, info.staked - from_stake))
    due = slash.amount - from_stake
    if due:
        kept: list[UnlockChunk] = []
        for chunk in reversed(chunks):  # the chunks that unlock last pay first
            taken = min(due, chunk.value)
            due -= taken
            if chunk.value > taken:
                kept.append(UnlockChunk(chunk.value - taken, chunk.unlock_at))
        _apply_unlocking(state, offender, tuple(reversed(kept)))
    paid = get_account(state, reporter)  # read after the write: the offender may report itself
    apply_account(state, reporter, AccountInfo(paid.nonce, paid.free + slash.reporter_reward, paid.staked))
    TOTAL_ISSUANCE.apply_set(state, TOTAL_ISSUANCE.get(state) - slash.burned)
    return slash


def is_disabled(state: StateAccess, who: bytes) -> bool:
    """Whether ``who`` is queued to leave the set for an offence: consensus.aura refuses the
    blocks it seals from then until it leaves (Substrate's ``DisabledValidators``)."""
    return who in PENDING_REMOVAL.get(state)


def apply_queue_removal(state: StateAccess, who: bytes) -> str:
    """Queue ``who`` to leave the validator set at the next era start. Returns what happened:
    "queued", "already_queued", "not_validator", or "last_validator" (kept: removing it
    with the ones queued already would leave no validator)."""
    validators, pending = get_validators(state), PENDING_REMOVAL.get(state)
    if who in pending:
        return "already_queued"
    if who not in validators:
        return "not_validator"
    if not set(validators) - set(pending) - {who}:
        return "last_validator"
    PENDING_REMOVAL.apply_set(state, (*pending, who))
    return "queued"


def on_initialize(state: StateAccess, number: int, config: RuntimeConfig) -> tuple[bytes, ...]:
    """At the first block of an era, remove the queued validators; returns the removed ones.
    Called by the executive before block ``number``'s extrinsics, when building and importing."""
    if config.era_length == 0 or number % config.era_length != 0:
        return ()
    pending = PENDING_REMOVAL.get(state)
    if not pending:
        return ()
    validators, leaving = get_validators(state), set(pending)  # a set: linear in the validators, not quadratic
    kept = tuple(v for v in validators if v not in leaving)
    if not kept:  # unreachable: apply_queue_removal never queues the last one; never empty the set
        return ()
    VALIDATORS.apply_set(state, kept)
    state.delete(PENDING_REMOVAL.key)
    removed = tuple(v for v in validators if v in leaving)
    for who in removed:
        REMOVED.apply_set(state, Removal(number // config.era_length, number), who)
    return removed
