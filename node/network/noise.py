"""Noise XX sessions whose static keys are bound to the nodes' ed25519 identities (libp2p-noise).

Handshake (Noise Protocol Framework rev 34, noiseprotocol.org/noise.html, pattern XX)::

    -> e
    <- e, ee, s, es, payload(responder identity)
    -> s, se, payload(initiator identity)

polchain runs ``Noise_XX_25519_ChaChaPoly_BLAKE2b``; libp2p-noise mandates SHA256
(github.com/libp2p/specs/blob/master/noise/README.md, "Cryptographic Primitives"), so the
handshakes do not interoperate byte for byte, but the identity binding is libp2p's: each side's
payload is the protobuf ``NoiseHandshakePayload {bytes identity_key = 1; bytes identity_sig =
2}`` where ``identity_key`` is the protobuf ``PublicKey`` of the node's ed25519 key and
``identity_sig`` its signature over the UTF-8 string ``noise-libp2p-static-key:`` followed by the
sender's 32-byte X25519 static Noise key (spec, "The libp2p Signed Handshake Payload"). A
receiver checks the signature against the static key the handshake authenticated, so a peer can
only present an identity whose private key it holds, and a dialer that knows the /p2p/ id it
wants refuses any other. The early-data fields (3, 4) are refused: polchain sends none.

The Noise static key is ephemeral per process, as the spec allows ("they may generate new
static Noise keys when initializing").

Transport: every WebSocket binary frame after the handshake is one Noise transport message, at
most 65535 bytes (the spec's limit) including the 16-byte tag. Its plaintext is one flag byte
(``0`` last chunk, ``1`` more follow) then a chunk; a protocol message of any size is the
concatenation of the chunks up to a last one, and the receiver refuses the message as soon as
the total passes its bound, before it buffers more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from noise.connection import Keypair as NoiseKeypair
from noise.connection import NoiseConnection

from node.network.errors import (
    FrameError,
    HandshakeError,
    InvalidPeerId,
    OversizeMessage,
    WrongPeer,
)
from node.network.identity import (
    NodeKey,
    PeerId,
    decode_public_key,
    encode_public_key,
    verify_peer_signature,
)

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
STATIC_KEY_DOMAIN = b"noise-libp2p-static-key:"
MAX_NOISE_MESSAGE = 65535
TAG_LEN = 16
MAX_CHUNK = MAX_NOISE_MESSAGE - TAG_LEN - 1  # one flag byte per chunk
MAX_HANDSHAKE_MESSAGE = 1024  # XX messages here are 32, 200 and 168 bytes
FLAG_LAST = 0
FLAG_MORE = 1

Send = Callable[[bytes], Awaitable[None]]
Recv = Callable[[], Awaitable[bytes]]


def encode_handshake_payload(public: bytes, signature: bytes) -> bytes:
    """protobuf NoiseHandshakePayload {identity_key = 1, identity_sig = 2} (both length-delimited)."""
    key = encode_public_key(public)
    return bytes((0x0A, len(key))) + key + bytes((0x12, len(signature))) + signature


def decode_handshake_payload(data: bytes) -> tuple[PeerId, bytes]:
    """(peer id, signature) from a payload in the canonical form :func:`encode_handshake_payload` writes."""
    if len(data) != 2 + 36 + 2 + 64:
        raise HandshakeError(f"identity payload is {len(data)} bytes, expected 104 (key and signature only)")
    if data[0] != 0x0A or data[1] != 36:
        raise HandshakeError("identity payload does not start with a 36-byte identity_key (field 1)")
    try:
        public = decode_public_key(data[2:38])
    except InvalidPeerId as exc:
        raise HandshakeError(f"identity payload: {exc}") from None
    if data[38] != 0x12 or data[39] != 64:
        raise HandshakeError("identity payload has no 64-byte identity_sig (field 2) after the key")
    return PeerId.from_public_key(public), bytes(data[40:])


@dataclass(slots=True)
class StaticKey:
    """This process's X25519 Noise static key and the identity payload that vouches for it."""

    private: bytes
    public: bytes
    payload: bytes

    @classmethod
    def generate(cls, node_key: NodeKey) -> StaticKey:
        sk = x25519.X25519PrivateKey.generate()
        private = sk.private_bytes_raw()
        public = sk.public_key().public_bytes_raw()
        sig = node_key.sign(STATIC_KEY_DOMAIN + public)
        return cls(private, public, encode_handshake_payload(node_key.keypair.public, sig))


@dataclass(slots=True)
class NoiseSession:
    """An established session: encrypt whole messages into frames, reassemble frames into messages."""

    conn: Any = field(repr=False)  # noise.connection.NoiseConnection (untyped package)
    remote: PeerId
    max_message: int
    _parts: list[bytes] = field(default_factory=list, repr=False)
    _size: int = 0

    def encrypt(self, message: bytes) -> list[bytes]:
        """The frames that carry ``message`` (one per 65519-byte chunk; an empty message is one frame)."""
        if len(message) > self.max_message:
            raise OversizeMessage(f"message of {len(message)} bytes is over the {self.max_message}-byte bound")
        frames = []
        for start in range(0, max(len(message), 1), MAX_CHUNK):
            chunk = message[start : start + MAX_CHUNK]
            flag = FLAG_MORE if start + MAX_CHUNK < len(message) else FLAG_LAST
            frames.append(self.conn.encrypt(bytes((flag,)) + chunk))
        return frames

    @property
    def held(self) -> int:
        """Bytes of the message not complete yet, held until its last chunk."""
        return self._size

    def decrypt(self, frame: bytes) -> bytes | None:
        """Feed one frame; the whole message once its last chunk arrives, else None."""
        if len(frame) > MAX_NOISE_MESSAGE:
            raise OversizeMessage(f"frame of {len(frame)} bytes is over the Noise limit {MAX_NOISE_MESSAGE}")
        if len(frame) < TAG_LEN + 1:
            raise FrameError(f"frame of {len(frame)} bytes is shorter than a tag and a flag")
        try:
            plain = self.conn.decrypt(bytes(frame))
        except Exception:  # noiseprotocol raises several types for a bad tag or length
            raise FrameError("frame does not decrypt (bad tag: garbage or tampered bytes)") from None
        flag = plain[0]
        if flag not in (FLAG_LAST, FLAG_MORE):
            raise FrameError(f"frame flag {flag} is neither 0 (last) nor 1 (more)")
        if flag == FLAG_MORE and len(plain) - 1 != MAX_CHUNK:
            # encrypt fills every chunk but the last, so a message is at most
            # max_message / MAX_CHUNK + 1 parts: empty "more" chunks, which the byte bound
            # never counts, grew the parts list for as long as the peer liked (an outside
            # tester's N3, round 15).
            raise FrameError(f"a chunk with more to come has {len(plain) - 1} bytes, not {MAX_CHUNK}")
        self._size += len(plain) - 1
        if self._size > self.max_message:
            raise OversizeMessage(f"message passes the {self.max_message}-byte bound ({self._size} bytes so far)")
        self._parts.append(plain[1:])
        if flag == FLAG_MORE:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message


def _new_connection(static: StaticKey, initiator: bool) -> Any:
    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(NoiseKeypair.STATIC, static.private)
    conn.start_handshake()
    return conn


def _read(conn: Any, data: bytes, step: str) -> tuple[bytes, bytes | None]:
    """Process one handshake message: (payload, remote static key if known by now)."""
    if len(data) > MAX_HANDSHAKE_MESSAGE:
        raise HandshakeError(f"handshake {step} is {len(data)} bytes, over {MAX_HANDSHAKE_MESSAGE}")
    state = conn.noise_protocol.handshake_state  # kept: the library drops it when the handshake ends
    try:
        payload = bytes(conn.read_message(bytes(data)))
    except Exception:  # garbage raises ValueError, InvalidTag, NoiseInvalidMessage... all one answer
        raise HandshakeError(f"handshake {step} does not decrypt or is malformed") from None
    rs = getattr(state.rs, "public_bytes", None)
    return payload, rs


def _verify(payload: bytes, remote_static: bytes | None, expected: PeerId | None) -> PeerId:
    if remote_static is None:
        raise HandshakeError("handshake ended without a remote static key")
    peer, sig = decode_handshake_payload(payload)
    if not verify_peer_signature(peer, STATIC_KEY_DOMAIN + remote_static, sig):
        raise HandshakeError(f"identity signature of {peer} does not cover the Noise static key it sent")
    if expected is not None and peer != expected:
        raise WrongPeer(f"dialed {expected} but the remote proved it is {peer}")
    return peer


def _write(conn: Any, payload: bytes, step: str) -> bytes:
    try:
        return bytes(conn.write_message(payload))
    except Exception:  # e.g. X25519 with a low-order remote key gives an all-zero secret
        raise HandshakeError(f"handshake {step} cannot be written: the remote's ephemeral key is invalid") from None


async def handshake(
    static: StaticKey,
    *,
    initiator: bool,
    send: Send,
    recv: Recv,
    expected: PeerId | None = None,
    max_message: int,
    timeout: float,
) -> NoiseSession:
    """Run XX over ``send``/``recv`` (whole handshake messages); the session or HandshakeError.

    Any failure of the transport under it (a reset, a close) is a HandshakeError too, so a
    caller has one exception to handle for everything a remote can do during the handshake.
    """
    try:
        async with asyncio.timeout(timeout):
            conn = _new_connection(static, initiator)
            if initiator:
                await send(_write(conn, b"", "message 1"))
                payload, rs = _read(conn, await recv(), "message 2")
                peer = _verify(payload, rs, expected)
                await send(_write(conn, static.payload, "message 3"))
            else:
                payload, _ = _read(conn, await recv(), "message 1")
                if payload:
                    raise HandshakeError(f"handshake message 1 carries a {len(payload)}-byte payload; XX sends none")
                await send(_write(conn, static.payload, "message 2"))
                payload, rs = _read(conn, await recv(), "message 3")
                peer = _verify(payload, rs, expected)
    except TimeoutError:
        raise HandshakeError(f"handshake did not finish within {timeout:g} s") from None
    except (ConnectionError, OSError, RuntimeError) as exc:
        # str(exc), not exc: an exception is always true, and a bare ConnectionResetError() said nothing.
        raise HandshakeError(f"connection lost during the handshake: {str(exc) or type(exc).__name__}") from None
    if not conn.handshake_finished:
        raise HandshakeError("handshake did not finish")
    return NoiseSession(conn, peer, max_message)
