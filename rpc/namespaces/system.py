"""``system_*``: who the node is and what it serves (Substrate's ``sc-rpc`` system API).

The peer-to-peer reads (``system_health``'s peers, ``system_peers``, ``system_localPeerId``,
``system_localListenAddresses``) come from the node's network service (node/network); a node
that runs none answers with no peers, no identity and no addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.pool import compute_next_nonce
from rpc.methods import MethodTable, bind_params
from rpc.params import AccountId
from rpc.shapes import hexb

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

    # The p2p service and its sync link, when the node runs them.
    network = getattr(node, "network", None)
    link = getattr(node, "link", None)

    @bind_params
    async def system_health() -> dict[str, Any]:
        if network is None:
            return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
        return {
            "peers": len(network.peers()),
            "isSyncing": bool(link is not None and link.is_major_syncing),
            "shouldHavePeers": spec.chain_type != "Development",
        }

    @bind_params
    async def system_peers() -> list[Any]:
        if network is None:
            return []
        return [
            {"peerId": str(p.peer_id), "roles": p.role_name, "bestHash": hexb(p.best_hash), "bestNumber": p.best_number}
            for p in network.peers()
        ]

    # Substrate's startingBlock: where this node's sync began, i.e. its best block at start.
    starting_block = node.chain.best_number

    @bind_params
    async def system_syncState() -> dict[str, int]:
        """Substrate's shape: the block sync started from, our best, and the highest best
        block any connected peer reports (never below our own)."""
        current = node.chain.best_number
        peers = network.peers() if network is not None else []
        highest = max([current, *(p.best_number for p in peers)])
        return {"startingBlock": starting_block, "currentBlock": current, "highestBlock": highest}

    @bind_params
    async def system_localPeerId() -> str | None:
        return None if network is None else str(network.local_peer_id)

    @bind_params
    async def system_localListenAddresses() -> list[str]:
        return [] if network is None else [str(a) for a in network.listen_addresses]

    @bind_params
    async def system_accountNextIndex(account: AccountId) -> int:
        """The account's nonce after the ones already waiting in the pool without a gap."""
        return compute_next_nonce(node.chain.state.overlay(), node.pool.pending(), account)

    for fn in (
        system_name, system_version, system_chain, system_chainType, system_properties,
        system_health, system_syncState, system_localPeerId, system_localListenAddresses, system_accountNextIndex,
    ):
        table.register(fn.__name__, fn)
    # Unsafe as in Substrate: it tells a caller whom this node talks to.
    table.register("system_peers", system_peers, unsafe=True)
    return table
