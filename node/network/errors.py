"""The exception tree of the network layer: every failure raised by node.network is a NetworkError.

Errors about a remote peer carry a :class:`~node.network.reputation.Misbehaviour` tag where the
peer is to blame, so the service can charge the peer's reputation without parsing messages.
"""

from __future__ import annotations


class NetworkError(Exception):
    """Base of every error raised by the network package."""


class InvalidNodeKey(NetworkError):
    """A --node-key / --node-key-file value that is not a 32-byte ed25519 secret."""


class InvalidPeerId(NetworkError):
    """Text or bytes that are not the libp2p PeerId of an ed25519 key."""


class InvalidMultiaddr(NetworkError):
    """A multiaddr that does not parse, or names a protocol polchain cannot dial."""


class HandshakeError(NetworkError):
    """The Noise handshake failed: bad bytes, bad identity signature, or the wrong peer."""


class WrongPeer(HandshakeError):
    """The remote proved an identity other than the /p2p/ id we dialed."""


class FrameError(NetworkError):
    """An encrypted frame that does not decrypt, or a message larger than the bound."""


class MessageError(NetworkError):
    """Plaintext that is not the canonical encoding of a protocol message, or out of bounds."""


class PeerRefused(NetworkError):
    """A connection refused by policy: other chain, banned, no free slot, duplicate, self.

    ``told``: the remote refused us and said why (nothing to send back).
    """

    def __init__(self, message: str, *, told: bool = False) -> None:
        super().__init__(message)
        self.told = told


class RequestFailed(NetworkError):
    """A block request that timed out, was answered wrongly, or whose peer went away."""


class OversizeMessage(FrameError):
    """A frame over the Noise limit, or a message over the size bound."""


class Flood(NetworkError):
    """A peer sent frames or bytes faster than its rate limit, or overfilled its inbound queue."""


class HostFlood(NetworkError):
    """Inbound peers sharing frames and bytes (those of one address, or all of them:
    node.network.peer.FrameShare) sent more than their share, and this one, the busiest, is
    dropped: not charged, as it may be an honest neighbour of the identities that spent it."""


class PeerGone(NetworkError):
    """The connection closed (cleanly or not) while we were reading or writing."""
