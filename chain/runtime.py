"""The runtime: the dispatch table and the executive that applies extrinsics and blocks.

Every call type maps to one row of :data:`DISPATCH`: its handler and its weight. The call's
stable index is its wire tag (``chain/calls.py``). Applying an extrinsic is always the same
sequence: check validity (signature, era, nonce, fee), charge the fee and bump the nonce,
then dispatch inside a storage transaction that is rolled back if the call fails, so a failed
extrinsic changes nothing but its fee and nonce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

import ml_runtime
from chain import calls
from chain.config import SPEC_VERSION, RuntimeConfig
from chain.crypto import blake2_256
from chain.errors import DispatchError, FutureTransaction, InvalidTransaction
from chain.extrinsic import Extrinsic
from chain.pallets import balances, datasets, models, staking, training
from chain.pallets.context import BlockInfo, CallContext, Event
from chain.pallets.items import StateAccess

Handler = Callable[[CallContext, Any], None]


def _remark(ctx: CallContext, call: calls.Remark) -> None:
    ctx.emit("system", "Remarked", sender=ctx.sender, hash=blake2_256(call.data))


def _train_weight(state: StateAccess, call: calls.Train) -> int:
    model = models.MODELS.get(state, call.model)
    if model is None:
        return 0  # the call fails at once in dispatch; only the base fee is due
    try:
        spec = ml_runtime.ModelSpec.decode(model.spec)
        return ml_runtime.step_cost(spec, call.batch_size) * call.steps
    except ml_runtime.MLRuntimeError:
        return 0


@dataclass(frozen=True, slots=True)
class CallRow:
    """One row of the dispatch table: the handler and the call's weight in work units."""

    handler: Handler
    weight: Callable[[StateAccess, Any], int]


def _fixed(units: int) -> Callable[[StateAccess, Any], int]:
    return lambda _state, _call: units


DISPATCH: dict[type, CallRow] = {
    calls.Remark: CallRow(_remark, lambda _s, c: 10_000 + 10 * len(c.data)),
    calls.Transfer: CallRow(balances.apply_transfer, _fixed(100_000)),
    calls.RegisterModel: CallRow(models.apply_register_model, _fixed(1_000_000)),
    calls.RegisterDataset: CallRow(datasets.apply_register_dataset, _fixed(200_000)),
    calls.AppendRows: CallRow(datasets.apply_append_rows, lambda _s, c: 100_000 + 20 * len(c.rows)),
    calls.Train: CallRow(training.apply_train, _train_weight),
    calls.Bond: CallRow(staking.apply_bond, _fixed(100_000)),
    calls.Unbond: CallRow(staking.apply_unbond, _fixed(100_000)),
}


@dataclass(frozen=True, slots=True)
class CheckedExtrinsic:
    """What checking an extrinsic found: its priority, the sender's nonce, its fee and weight.

    The pool takes priority and nonce from it (as chain.pool.Validity); the block takes the fee.
    """

    priority: int
    account_nonce: int
    fee: int
    weight: int


class Receipt(msgspec.Struct, frozen=True, array_like=True):
    """The outcome of one applied extrinsic, as stored with its block."""

    index: int
    hash: bytes
    success: bool
    fee: int
    weight: int
    error: str | None
    events: tuple[Event, ...]


class Runtime:
    """Validates and applies extrinsics with one chain's genesis hash and configuration."""

    def __init__(self, genesis_hash: bytes, config: RuntimeConfig) -> None:
        self.genesis_hash = genesis_hash
        self.config = config
        self.spec_version = SPEC_VERSION

    def compute_weight(self, state: StateAccess, xt: Extrinsic) -> int:
        return DISPATCH[type(xt.call)].weight(state, xt.call)

    def verify_extrinsic(
        self, state: StateAccess, xt: Extrinsic, length: int, number: int,
        *, check_signature: bool = True, allow_future: bool = False,
    ) -> CheckedExtrinsic:
        """Raise InvalidTransaction unless ``xt`` could be included in block ``number`` now.

        With ``allow_future`` (the pool's view) a nonce ahead of the account's is accepted:
        the pool holds such an extrinsic until the nonces before it arrive.
        """
        return self._verify_extrinsic(state, xt, length, number, check_signature, allow_future)[0]

    def _verify_extrinsic(
        self, state: StateAccess, xt: Extrinsic, length: int, number: int, check_signature: bool, allow_future: bool,
    ) -> tuple[CheckedExtrinsic, balances.AccountInfo]:
        """:meth:`verify_extrinsic`, also returning the signer's account as it was read."""
        if not xt.era.is_alive(number):
            raise InvalidTransaction("stale", f"era {xt.era.birth}+{xt.era.period} does not cover block {number}")
        if check_signature:
            xt.verify_signature(self.genesis_hash, self.spec_version)
        account = balances.get_account(state, xt.signer)
        if xt.nonce < account.nonce:
            raise InvalidTransaction("stale", f"nonce {xt.nonce} is already used (account nonce is {account.nonce})")
        weight = self.compute_weight(state, xt)
        if weight > self.config.max_block_weight or length > self.config.max_block_length:
            raise InvalidTransaction(
                "exhausts_resources",
                f"weight {weight} / length {length} exceed a block's limits "
                f"({self.config.max_block_weight} / {self.config.max_block_length})",
            )
        fee = self.config.compute_fee(length, weight, xt.tip)
        if xt.nonce > account.nonce and not allow_future:
            raise FutureTransaction(f"nonce {xt.nonce} is ahead of the account nonce {account.nonce}")
        if account.free < fee:
            raise InvalidTransaction("payment", f"free balance {account.free} cannot pay the fee {fee}")
        return CheckedExtrinsic(priority=xt.tip, account_nonce=account.nonce, fee=fee, weight=weight), account

    def apply_extrinsic(
        self, state: Any, block: BlockInfo, index: int, xt: Extrinsic, xt_hash: bytes, length: int,
        *, check_signature: bool = True,
    ) -> Receipt:
        """Apply one extrinsic to the overlay; InvalidTransaction means the block is invalid."""
        checked, account = self._verify_extrinsic(state, xt, length, block.number, check_signature, False)
        self.apply_fee(state, xt.signer, checked.fee, block.author, account)
        ctx = CallContext(state, xt.signer, index, xt_hash, checked.fee, block, self.config)
        state.start_transaction()
        try:
            DISPATCH[type(xt.call)].handler(ctx, xt.call)
        except DispatchError as exc:
            state.rollback_transaction()
            failed = Event("system", "ExtrinsicFailed", (("module", exc.module), ("error", exc.error), ("message", str(exc))))
            return Receipt(index, xt_hash, False, checked.fee, checked.weight, f"{exc.module}.{exc.error}: {exc}", (failed,))
        except BaseException:
            state.rollback_transaction()
            raise
        state.commit_transaction()
        done = Event("system", "ExtrinsicSucceeded", (("weight", checked.weight),))
        return Receipt(index, xt_hash, True, checked.fee, checked.weight, None, (*ctx.events, done))

    def apply_fee(
        self, state: StateAccess, who: bytes, fee: int, author: bytes, account: balances.AccountInfo | None = None
    ) -> None:
        """Withdraw the fee, bump the nonce, credit the block author.

        ``account`` is ``who``'s account if the caller has just read it (saves a read).
        """
        if account is None:
            account = balances.get_account(state, who)
        balances.apply_account(state, who, msgspec.structs.replace(account, nonce=account.nonce + 1, free=account.free - fee))
        if author != who:
            receiver = balances.get_account(state, author)
            balances.apply_account(state, author, msgspec.structs.replace(receiver, free=receiver.free + fee))
        else:
            account = balances.get_account(state, who)
            balances.apply_account(state, who, msgspec.structs.replace(account, free=account.free + fee))
