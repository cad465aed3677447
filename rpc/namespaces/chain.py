"""``chain_*``: headers, blocks, block hashes and head subscriptions.

``chain_getHeader`` and ``chain_getBlock`` answer ``null`` for a block this node does not
have (Substrate's behaviour); ``chain_getBlockHash`` answers ``null`` for a number past
the best block. ``chain_getHead`` is Substrate's alias of ``chain_getBlockHash``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.storage import Column
from rpc.methods import Fanout, MethodTable, Params, Subscription, bind_params
from rpc.params import At, BlockNumberOrList, check_no_params
from rpc.reads import run_read
from rpc.shapes import header_json, hexb

if TYPE_CHECKING:
    from rpc.api import NodeApi


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    def known_block(at: bytes | None) -> bytes | None:
        """The block ``at`` names (None: the best), or None if this node does not have it."""
        block_hash = chain.best_hash if at is None else at
        return block_hash if chain.db.get(Column.HEADER, block_hash) is not None else None

    def hash_of(number: int) -> str | None:
        found = chain.get_hash(number)
        return None if found is None else hexb(found)

    @bind_params
    async def chain_getHeader(hash: At = None) -> dict[str, Any] | None:
        block_hash = known_block(hash)
        return None if block_hash is None else header_json(chain.get_header(block_hash))

    def block_json(block_hash: bytes) -> dict[str, Any]:
        block = chain.get_block(block_hash)
        return {
            "block": {
                "header": header_json(block.header),
                "extrinsics": [hexb(xt.encode()) for xt in block.body.extrinsics],
                "trainingResults": [
                    {"extrinsicIndex": r.extrinsic_index, "transcriptRoot": hexb(r.transcript_root), "entries": len(r.losses)}
                    for r in block.body.results
                ],
            },
            "justifications": None,
        }

    @bind_params
    async def chain_getBlock(hash: At = None) -> dict[str, Any] | None:
        """Read, decoded and shaped on the RPC read threads (rpc.reads.run_read): a block of
        20,000 transfers (3 MB) took about 40 ms of the event loop."""
        block_hash = known_block(hash)
        return None if block_hash is None else await run_read(block_json, block_hash)

    @bind_params
    async def chain_getBlockHash(number: BlockNumberOrList = None) -> str | list[str | None] | None:
        if number is None:
            return hexb(chain.best_hash)
        if isinstance(number, list):
            return [hash_of(n) for n in number]
        return hash_of(number)

    @bind_params
    async def chain_getFinalizedHead() -> str:
        return hexb(chain.finalized_hash)

    # One reader of the node's heads per kind, whatever the number of subscribers: each
    # header is shaped and encoded once and shared (rpc.methods.Fanout).
    new_heads = Fanout(lambda: node.heads(finalized=False), header_json)
    finalized_heads = Fanout(lambda: node.heads(finalized=True), header_json)

    async def chain_subscribeNewHeads(params: Params, sink: Subscription) -> None:
        await new_heads.follow(sink)

    async def chain_subscribeFinalizedHeads(params: Params, sink: Subscription) -> None:
        await finalized_heads.follow(sink)

    for fn in (chain_getHeader, chain_getBlock, chain_getBlockHash, chain_getFinalizedHead):
        table.register(fn.__name__, fn)
    table.register("chain_getHead", chain_getBlockHash)
    table.register_subscription(
        "chain_subscribeNewHeads", "chain_newHead", "chain_unsubscribeNewHeads", chain_subscribeNewHeads,
        check_params=check_no_params,
    )
    table.register_subscription(
        "chain_subscribeFinalizedHeads", "chain_finalizedHead", "chain_unsubscribeFinalizedHeads",
        chain_subscribeFinalizedHeads, check_params=check_no_params,
    )
    return table
