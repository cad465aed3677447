"""``payment_queryInfo``: the weight and fee an extrinsic would pay (Substrate's
``TransactionPaymentApi``), computed by the runtime against the state at ``at``.

``partialFee`` is the fee without a tip (a decimal string, as Substrate sends u128):
base fee + byte fee x length + weight fee x weight, what the block charges on inclusion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ml_runtime
from chain.errors import ChainError
from chain.extrinsic import decode_extrinsic
from rpc import errors
from rpc.methods import MethodTable, bind_params
from rpc.params import At, ExtrinsicBytes
from rpc.reads import state_at

if TYPE_CHECKING:
    from rpc.api import NodeApi


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def payment_queryInfo(extrinsic: ExtrinsicBytes, at: At = None) -> dict[str, Any]:
        try:
            xt = decode_extrinsic(extrinsic)
        except ChainError as exc:
            raise errors.InvalidParams(f"Invalid params: param 0 'extrinsic' is not an extrinsic: {exc}") from None
        state = state_at(chain, at)
        runtime = chain.runtime_of(state)  # the fees of the block on ``at``: its state's config
        try:
            info = runtime.compute_dispatch_info(state, xt)
        except (ChainError, ml_runtime.MLRuntimeError) as exc:
            raise errors.InvalidParams(f"Invalid params: param 0 'extrinsic' has no weight: {exc}") from None
        fee = runtime.compute_fee(info, len(extrinsic), 0)
        return {"weight": {"refTime": info.weight, "proofSize": 0}, "class": "normal", "partialFee": str(fee)}

    table.register("payment_queryInfo", payment_queryInfo)
    return table
