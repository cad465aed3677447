"""Accounts and balances: nonces, free and staked funds, transfers, total issuance.

Accounts are never reaped: an account keeps its nonce even at zero balance, so an immortal
extrinsic can never be replayed after the account is emptied and refilled (the replay that
reaping allows in Substrate). The existential deposit still applies to new accounts: a
transfer may not create an account with less than it, nor leave a dust balance behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chain.calls import Call, Transfer
from chain.codec import U32, Balance, Wire
from chain.errors import DispatchError
from chain.extrinsic import Era, Extrinsic
from chain.pallets.context import CallContext, Event
from chain.pallets.items import StateAccess, StorageMap, StorageValue

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "balances"


class AccountInfo(Wire, frozen=True):
    nonce: U32 = 0
    free: Balance = 0
    staked: Balance = 0


ACCOUNT = StorageMap("System", "Account", AccountInfo)
TOTAL_ISSUANCE = StorageValue("Balances", "TotalIssuance", int, 0)
EMPTY = AccountInfo()


def get_account(state: StateAccess, who: bytes) -> AccountInfo:
    return ACCOUNT.get(state, who) or EMPTY


def apply_account(state: StateAccess, who: bytes, info: AccountInfo) -> None:
    ACCOUNT.apply_set(state, info, who)


def apply_mint(state: StateAccess, who: bytes, amount: int) -> None:
    """Create ``amount`` new funds in ``who``: genesis balances and block rewards
    (chain.pallets.rewards) are the only issuance."""
    issuance = TOTAL_ISSUANCE.get(state) + amount
    if issuance > 2**63 - 1:
        raise DispatchError(PALLET, "Overflow", f"total issuance would exceed 2^63-1 ({issuance})")
    info = get_account(state, who)
    apply_account(state, who, AccountInfo(info.nonce, info.free + amount, info.staked))
    TOTAL_ISSUANCE.apply_set(state, issuance)


def apply_burn_staked(state: StateAccess, who: bytes, amount: int) -> int:
    """Destroy up to ``amount`` of ``who``'s stake (a slash); returns what was destroyed."""
    info = get_account(state, who)
    taken = min(amount, info.staked)
    apply_account(state, who, AccountInfo(info.nonce, info.free, info.staked - taken))
    TOTAL_ISSUANCE.apply_set(state, TOTAL_ISSUANCE.get(state) - taken)
    return taken


def apply_move(state: StateAccess, src: bytes, dest: bytes, amount: int, existential_deposit: int) -> None:
    """Move free funds; DispatchError if ``src`` cannot afford it or the ED would be broken."""
    if src == dest or amount == 0:
        if get_account(state, src).free < amount:
            raise DispatchError(PALLET, "InsufficientBalance", "balance too low for the transfer")
        return
    sender = get_account(state, src)
    if sender.free < amount:
        raise DispatchError(
            PALLET, "InsufficientBalance", f"free balance {sender.free} is less than {amount}"
        )
    left = sender.free - amount
    if 0 < left < existential_deposit and sender.staked == 0:
        raise DispatchError(
            PALLET, "Expendability", f"the transfer would leave {left}, below the existential deposit {existential_deposit}"
        )
    receiver = get_account(state, dest)
    if receiver.free + receiver.staked == 0 and receiver.nonce == 0 and amount < existential_deposit:
        raise DispatchError(
            PALLET, "ExistentialDeposit", f"{amount} is below the existential deposit {existential_deposit} for a new account"
        )
    apply_account(state, src, AccountInfo(sender.nonce, left, sender.staked))
    apply_account(state, dest, AccountInfo(receiver.nonce, receiver.free + amount, receiver.staked))


def apply_transfer(ctx: CallContext, call: Transfer) -> None:
    apply_move(ctx.state, ctx.sender, call.dest, call.value, ctx.config.existential_deposit)
    ctx.events.append(compute_transferred_event(ctx.sender, call.dest, call.value))


def compute_transferred_event(src: bytes, dest: bytes, value: int) -> Event:
    """The event of a transfer: what ``ctx.emit(PALLET, "Transferred", src=..., dest=...,
    value=...)`` builds, built directly (the commonest extrinsic skips the keyword dict and
    the generic conversion); chain.runtime's batched transfers emit the same. Each account's
    ("src", 0x-hex) and ("dest", 0x-hex) arguments are memoized (a pure function of its bytes;
    the same accounts transfer block after block, and a shared tuple is one object fewer
    for the garbage collector to walk), in a table emptied when full as
    chain.pallets.items' memos are."""
    names = _ARG_PAIRS
    src_args = names.get(src)
    if src_args is None:
        src_args = _remember_arg_pairs(src)
    dest_args = names.get(dest)
    if dest_args is None:
        dest_args = _remember_arg_pairs(dest)
    return Event(PALLET, "Transferred", (src_args[0], dest_args[1], ("value", value)))


_ARG_PAIRS: dict[bytes, tuple[tuple[str, str], tuple[str, str]]] = {}
_ARG_PAIRS_LIMIT = 1 << 16


def _remember_arg_pairs(who: bytes) -> tuple[tuple[str, str], tuple[str, str]]:
    name = "0x" + who.hex()
    pairs = (("src", name), ("dest", name))
    if type(who) is bytes:  # (a memo keyed by bytes only: bytes-like keys would hash alike)
        if len(_ARG_PAIRS) >= _ARG_PAIRS_LIMIT:
            _ARG_PAIRS.clear()
        _ARG_PAIRS[who] = pairs
    return pairs


def compute_longest_length(call: Call) -> int:
    """The bytes of the longest signed extrinsic that carries ``call`` with no tip: its nonce
    and era at their largest (an integer's wire encoding grows with it)."""
    return len(Extrinsic(bytes(32), bytes(64), 2**32 - 1, 0, Era(2**32 - 1, 2**32 - 1), call).encode())


def compute_reclaim_reserve(config: RuntimeConfig, reclaims: tuple[tuple[Call, int], ...]) -> int:
    """What a move of free funds into a lock or a hold leaves free: the existential deposit,
    or, if more, the fees (no tip, at ``config``'s rates) of the ``reclaims``, the (call,
    declared weight) pairs its owner sends, in turn, to take the funds back: an account that
    locks all it has could otherwise never pay for them, and its funds stayed locked until
    someone else funded it (staking's bond, democracy's vote, a bounty). A later change of the fees by
    referendum may still raise them above what was left."""
    fees = sum(config.compute_fee(compute_longest_length(call), weight, 0) for call, weight in reclaims)
    return max(config.existential_deposit, fees)


def verify_reclaimable(pallet: str, error: str, free: int, amount: int, reserve: int, what: str, reclaims: str) -> None:
    """DispatchError(``pallet``, ``error``) if moving ``amount`` of a free balance of ``free``
    into a lock or a hold (``what``) would leave less than ``reserve`` free
    (:func:`compute_reclaim_reserve` of the calls named in ``reclaims``). An amount above
    ``free`` passes: the caller refuses it as InsufficientBalance."""
    left = free - amount
    if 0 <= left < reserve:
        raise DispatchError(
            pallet, error,
            f"{what} of {amount} would leave {left} free; it must leave at least {reserve}: the existential deposit, "
            f"or, if more, the fees of {reclaims} that take it back",
        )


def apply_hold(state: StateAccess, pallet: str, holder: bytes, who: bytes, amount: int, existential_deposit: int, what: str) -> None:
    """Move ``amount`` of ``who``'s free balance into ``holder``, a pallet's account that holds
    it until :func:`apply_release` (a federated round's reward pool and bonds, a referendum's
    deposit and locked votes). DispatchError(``pallet``, InsufficientBalance or
    Expendability) if ``who`` cannot spare it; ``what`` names it in the message."""
    if amount == 0:
        return
    account = get_account(state, who)
    if account.free < amount:
        raise DispatchError(pallet, "InsufficientBalance", f"free balance {account.free} cannot hold {what} of {amount}")
    left = account.free - amount
    if 0 < left < existential_deposit and account.staked == 0:
        raise DispatchError(pallet, "Expendability", f"holding {what} would leave {left}, below the existential deposit {existential_deposit}")
    apply_account(state, who, AccountInfo(account.nonce, left, account.staked))
    held = get_account(state, holder)
    apply_account(state, holder, AccountInfo(held.nonce, held.free + amount, held.staked))


def apply_release(state: StateAccess, pallet: str, holder: bytes, who: bytes, amount: int) -> None:
    """Pay ``amount`` that ``holder`` holds (:func:`apply_hold`) to ``who``."""
    if amount == 0:
        return
    _apply_take_held(state, pallet, holder, amount, "release")
    account = get_account(state, who)
    apply_account(state, who, AccountInfo(account.nonce, account.free + amount, account.staked))


def apply_burn_held(state: StateAccess, pallet: str, holder: bytes, amount: int) -> None:
    """Burn ``amount`` that ``holder`` holds (:func:`apply_hold`): a forfeited deposit
    (Substrate's ``slash_reserved`` with the imbalance dropped). The issuance falls by as much."""
    if amount == 0:
        return
    _apply_take_held(state, pallet, holder, amount, "burn")
    TOTAL_ISSUANCE.apply_set(state, TOTAL_ISSUANCE.get(state) - amount)


def _apply_take_held(state: StateAccess, pallet: str, holder: bytes, amount: int, verb: str) -> None:
    """Take ``amount`` out of ``holder``. The holder holding less is an invariant broken (every
    unit it gives up was held into it): DispatchError (``pallet``, HeldShortfall), never a
    negative balance."""
    held = get_account(state, holder)
    if held.free < amount:
        raise DispatchError(pallet, "HeldShortfall", f"the {pallet} account holds {held.free}, cannot {verb} {amount}")
    apply_account(state, holder, AccountInfo(held.nonce, held.free - amount, held.staked))
