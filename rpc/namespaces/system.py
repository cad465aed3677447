"""``system_*``: who the node is and what it serves (Substrate's ``sc-rpc`` system API).

The node has no peers yet (networking is not built), so ``system_health`` and
``system_peers`` say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.pallets import balances
from rpc.methods import MethodTable, bind_params
from rpc.params import AccountId

if TYPE_CHECKING:
    from rpc.api import NodeApi

NODE_VERSION = "0.1.0"


def build(node: NodeApi, *, node_name: str) -> MethodTable:
    table = MethodTable()
    spec = node.spec

    @bind_params
    async def system_name() -> str:
        return node_name

    @bind_params
    async def system_version() -> str:
        return NODE_VERSION

    @bind_params
    async def system_chain() -> str:
        return spec.name

    @bind_params
    async def system_chainType() -> str:
        return spec.chain_type

    @bind_params
    async def system_properties() -> dict[str, Any]:
        return spec.properties

    @bind_params
    async def system_health() -> dict[str, Any]:
        return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}

    @bind_params
    async def system_peers() -> list[Any]:
        return []

    @bind_params
    async def system_accountNextIndex(account: AccountId) -> int:
        """The account's nonce after the ones already waiting in the pool without a gap."""
        nonce = balances.get_account(node.chain.state.overlay(), account).nonce
        for n in sorted(xt.nonce for xt in node.pool.pending() if xt.signer == account):
            if n == nonce:
                nonce += 1
        return nonce

    for fn in (
        system_name, system_version, system_chain, system_chainType, system_properties,
        system_health, system_peers, system_accountNextIndex,
    ):
        table.register(fn.__name__, fn)
    return table
