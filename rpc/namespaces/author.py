"""``author_*``: submitting extrinsics to the pool and watching them (Substrate's author API).

Refusals use Substrate's author error codes (``sc-rpc-api`` ``author/error.rs``, base
1000) with the reason in ``data``: 1001 the bytes are not an extrinsic, 1010 invalid
transaction, 1012 banned, 1013 already imported, 1014 priority too low, 1016 dropped (a
limit, or ``overdraft``: the sender's balance cannot pay it after its pooled lower nonces).
``author_pendingExtrinsics`` lists the ready extrinsics only, as Substrate's does: future
(nonce-gapped) ones are never included, so they never pay, and one account's ~1 MiB ones
filled the future queue (8 MiB) and pushed every caller's answer past the size limit (an
outside tester's F4, round 12). A client finds a gap with ``system_accountNextIndex``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ml_runtime
from chain.errors import ChainError, CodecError, InvalidTransaction, PoolError
from chain.extrinsic import decode_extrinsic
from rpc import errors
from rpc.methods import MethodTable, Params, Subscription, bind_params, parse_params
from rpc.params import EXTRINSIC, ExtrinsicBytes
from rpc.shapes import hexb

if TYPE_CHECKING:
    from rpc.api import NodeApi


def pool_error(exc: Exception) -> errors.RpcError:
    """Map a refusal to Substrate's author error codes, with the reason in ``data``."""
    if isinstance(exc, CodecError):
        return errors.BadFormat(str(exc))
    if isinstance(exc, PoolError):
        by_reason: dict[str, type[errors.AuthorError]] = {
            "already_imported": errors.AlreadyImported,
            "temporarily_banned": errors.TemporarilyBanned,
            "too_low_priority": errors.TooLowPriority,
        }
        if exc.reason == "overdraft":  # the one pool refusal whose message does not name it
            return errors.ImmediatelyDropped(f"overdraft: {exc}")
        return by_reason.get(exc.reason, errors.ImmediatelyDropped)(str(exc))
    if isinstance(exc, InvalidTransaction):
        return errors.InvalidTransaction(f"{exc.reason}: {exc}")
    return errors.VerificationError(str(exc))


def extrinsic_param(params: Params) -> bytes:
    """The one ``extrinsic`` param of ``author_submitAndWatchExtrinsic``, parsed."""
    (value,) = parse_params(params, ["extrinsic"])
    try:
        raw: bytes = EXTRINSIC.parse(value)
    except errors.InvalidParams as exc:
        raise errors.InvalidParams(f"Invalid params: param 0 'extrinsic' {exc.message}") from None
    return raw


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()

    @bind_params
    async def author_submitExtrinsic(extrinsic: ExtrinsicBytes) -> str:
        try:
            return hexb(node.submit(extrinsic))
        except (ChainError, ml_runtime.MLRuntimeError) as exc:
            raise pool_error(exc) from None

    def check_submit(params: Params) -> None:
        try:
            decode_extrinsic(extrinsic_param(params))
        except ChainError as exc:
            raise pool_error(exc) from None

    async def author_submitAndWatchExtrinsic(params: Params, sink: Subscription) -> None:
        raw = extrinsic_param(params)
        try:
            async for status in node.watch(raw):
                if not await sink.send(status):
                    return
        except (ChainError, ml_runtime.MLRuntimeError) as exc:
            sink.send_error(pool_error(exc))
        sink.close()

    @bind_params
    async def author_pendingExtrinsics() -> list[str]:
        return [hexb(xt.encode()) for xt in node.pool.ready()]

    table.register("author_submitExtrinsic", author_submitExtrinsic)
    table.register("author_pendingExtrinsics", author_pendingExtrinsics)
    table.register_subscription(
        "author_submitAndWatchExtrinsic", "author_extrinsicUpdate", "author_unwatchExtrinsic",
        author_submitAndWatchExtrinsic, check_params=check_submit,
    )
    return table
