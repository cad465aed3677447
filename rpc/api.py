"""The node's JSON-RPC method table: Substrate's names and shapes, and the ``ml_`` namespace.

One module per namespace under `rpc.namespaces` (system, chain, state, author, payment,
ml, economy, gov, democracy, fl, pol); this module names what they need from a running node (`NodeApi`) and merges their
tables. Numbers and bytes are 0x-hex as in Substrate (``"number": "0x1a"``), accounts
SS58 (`rpc.shapes`). Every parameter is parsed by a kind from `rpc.params` before a
method runs: malformed or out-of-range input is -32602 with the parameter and the
reason, never an internal error. No method changes state except ``author_submit*``,
which only adds to the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from chain.blockchain import Blockchain
from chain.header import Header
from chain.pool import TransactionPool
from genesis.spec import ChainSpec
from rpc.methods import MethodTable
from rpc.namespaces import (
    author,
    chain,
    democracy,
    economy,
    fl,
    gov,
    ml,
    payment,
    pol,
    state,
    system,
)
from rpc.server import DEFAULT_MAX_RESPONSE_SIZE

__all__ = ["NodeApi", "build_method_table"]


class NodeApi(Protocol):
    """What the RPC methods need from a running node."""

    chain: Blockchain
    pool: TransactionPool
    spec: ChainSpec

    def submit(self, raw: bytes) -> bytes: ...
    def watch(self, raw: bytes) -> AsyncIterator[Any]: ...
    def heads(self, *, finalized: bool) -> AsyncIterator[Header]: ...


def build_method_table(
    node: NodeApi, *, node_name: str = "polchain-node", max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE
) -> MethodTable:
    """Every method the node serves, bound to ``node``; ``max_response_size`` is the
    server's, for the methods that refuse an answer over it before computing it."""
    table = system.build(node, node_name=node_name)
    for namespace in (chain, state, author, payment, economy, gov, democracy, fl, pol):
        table.merge(namespace.build(node))
    table.merge(ml.build(node, max_response_size=max_response_size))
    return table
