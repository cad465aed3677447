"""polchain's peer-to-peer network: Noise-secured WebSocket connections between nodes.

Modules, one concept each: :mod:`~node.network.identity` (ed25519 node key, libp2p PeerId),
:mod:`~node.network.multiaddr`, :mod:`~node.network.noise` (handshake bound to the identity,
chunked transport), :mod:`~node.network.messages` (the wire protocol),
:mod:`~node.network.reputation`, :mod:`~node.network.peer` (one connection),
:mod:`~node.network.service` (the NetworkService the node wires in),
:mod:`~node.network.sync` (the policy between node and network: sync, gossip, finality
messages), :mod:`~node.network.transcripts` (proof-of-learning checkpoints served and
fetched) and :mod:`~node.network.errors`.
"""
