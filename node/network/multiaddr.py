"""Multiaddrs in their text form, as libp2p writes them: ``/ip4/127.0.0.1/tcp/30333/p2p/12D3KooW…``.

The multiformats spec (github.com/multiformats/multiaddr) defines a multiaddr as a path of
``/protocol/value`` pairs. polchain dials one shape: a host (``ip4``, ``ip6``, ``dns``,
``dns4``, ``dns6``), then ``tcp/<port>``, then optionally ``ws`` and ``p2p/<peer id>``. The
transport is always a WebSocket on that TCP port, so ``/ws`` is implied and accepted but not
printed (Substrate prints its TCP listen addresses the same way). Anything else (udp, quic,
a second /p2p, a value missing) is refused with an error naming the component.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from node.network.errors import InvalidMultiaddr, InvalidPeerId
from node.network.identity import PeerId

HOST_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")
KNOWN_UNSUPPORTED = ("udp", "quic", "quic-v1", "webrtc", "wss", "tls", "p2p-circuit", "unix", "sctp")
MAX_MULTIADDR_TEXT = 512
MAX_DNS_NAME = 253


@dataclass(frozen=True, slots=True)
class Multiaddr:
    protocol: str  # one of HOST_PROTOCOLS
    host: str
    port: int
    peer_id: PeerId | None = None

    @classmethod
    def parse(cls, text: str, *, listen: bool = False) -> Multiaddr:
        """Parse ``text``; ``listen`` also allows port 0 (any free port) and no /p2p/."""
        if not text:
            raise InvalidMultiaddr("empty multiaddr")
        if len(text) > MAX_MULTIADDR_TEXT:
            raise InvalidMultiaddr(f"multiaddr of {len(text)} characters is too long (max {MAX_MULTIADDR_TEXT})")
        if not text.startswith("/"):
            raise InvalidMultiaddr(f"multiaddr {text!r} must start with '/'")
        parts = text[1:].split("/")
        if parts and parts[-1] == "":
            parts.pop()  # a trailing slash is harmless
        it = iter(parts)

        def value(proto: str) -> str:
            v = next(it, None)
            if v is None or v == "":
                raise InvalidMultiaddr(f"multiaddr {text!r}: /{proto} needs a value")
            return v

        proto = next(it, None)
        if proto is None or proto == "":
            raise InvalidMultiaddr(f"multiaddr {text!r} has no host component")
        if proto not in HOST_PROTOCOLS:
            raise InvalidMultiaddr(f"multiaddr {text!r}: first component /{proto} is not one of {', '.join(HOST_PROTOCOLS)}")
        host = _check_host(proto, value(proto), text)
        tcp = next(it, None)
        if tcp != "tcp":
            what = "nothing" if tcp is None else f"/{tcp}"
            hint = " (polchain dials tcp only)" if tcp in KNOWN_UNSUPPORTED else ""
            raise InvalidMultiaddr(f"multiaddr {text!r}: expected /tcp/<port> after the host, got {what}{hint}")
        port = _check_port(value("tcp"), text, listen)
        peer: PeerId | None = None
        seen_ws = False
        for comp in it:
            if comp == "ws" and not seen_ws and peer is None:
                seen_ws = True
            elif comp == "p2p" and peer is None and not listen:
                try:
                    peer = PeerId.parse(value("p2p"))
                except InvalidPeerId as exc:
                    raise InvalidMultiaddr(f"multiaddr {text!r}: /p2p: {exc}") from None
            else:
                hint = " (polchain dials tcp only)" if comp in KNOWN_UNSUPPORTED else ""
                raise InvalidMultiaddr(f"multiaddr {text!r}: unexpected component /{comp}{hint}")
        return cls(proto, host, port, peer)

    def __str__(self) -> str:
        tail = f"/p2p/{self.peer_id}" if self.peer_id is not None else ""
        return f"/{self.protocol}/{self.host}/tcp/{self.port}{tail}"

    def with_peer_id(self, peer_id: PeerId | None) -> Multiaddr:
        return replace(self, peer_id=peer_id)

    def websocket_url(self, path: str) -> str:
        host = f"[{self.host}]" if self.protocol == "ip6" else self.host
        return f"http://{host}:{self.port}{path}"


def _check_host(proto: str, host: str, text: str) -> str:
    if proto == "ip4":
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise InvalidMultiaddr(f"multiaddr {text!r}: {host!r} is not an IPv4 address") from None
    if proto == "ip6":
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise InvalidMultiaddr(f"multiaddr {text!r}: {host!r} is not an IPv6 address") from None
    labels = host.split(".")
    if len(host) > MAX_DNS_NAME or not all(
        0 < len(lb) <= 63 and lb.replace("-", "").isalnum() and lb.isascii() for lb in labels
    ):
        raise InvalidMultiaddr(f"multiaddr {text!r}: {host!r} is not a DNS name")
    return host.lower()


def _check_port(port: str, text: str, listen: bool) -> int:
    if not port.isdigit() or not port.isascii() or len(port) > 5:
        raise InvalidMultiaddr(f"multiaddr {text!r}: tcp port {port!r} is not a number")
    n = int(port)
    if not (0 if listen else 1) <= n < 65536:
        raise InvalidMultiaddr(f"multiaddr {text!r}: tcp port {n} is out of range 1..65535")
    return n
