"""polchain rpc: the JSON-RPC 2.0 transport (HTTP + WebSocket on one port), method tables,
the error tree and the client. No chain logic lives here: the node fills a `MethodTable`.
"""

from rpc.client import ClientSubscription, RpcClient, SyncClientSubscription, SyncRpcClient
from rpc.errors import RpcCallError, RpcError, RpcTransportError
from rpc.methods import MethodTable, Params, Subscription, bind_params, parse_params
from rpc.server import MIB, RpcServer

__all__ = [
    "MIB",
    "ClientSubscription",
    "MethodTable",
    "Params",
    "RpcCallError",
    "RpcClient",
    "RpcError",
    "RpcServer",
    "RpcTransportError",
    "Subscription",
    "SyncClientSubscription",
    "SyncRpcClient",
    "bind_params",
    "parse_params",
]
