"""The node's network identity: an ed25519 key and the libp2p PeerId that names it.

PeerId (libp2p peer-ids spec, github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md): the
public key is wrapped in the protobuf ``PublicKey {required KeyType Type = 1; required bytes
Data = 2}`` with ``Type = Ed25519 (1)`` and ``Data`` the raw 32-byte key, which serialises to
``08 01 12 20 || key`` (36 bytes). Serialisations of at most 42 bytes use the *identity*
multihash (code 0x00, varint length, then the bytes), so an ed25519 PeerId is the 38 bytes
``00 24 08 01 12 20 || key`` and its text form is their base58btc encoding, which always starts
``12D3KooW``. The spec's ed25519 test vector (public key protobuf
``080112201ed1e8fa…fce27e``) gives ``12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq``, the id
several libp2p implementations pin in their tests.

Only ed25519 ids are accepted: RSA and secp256k1 ids (``Qm…``, ``16Uiu2…``) are refused with a
specific error, since polchain nodes only ever hold ed25519 keys.

The key lives where Substrate keeps it, ``<base>/chains/<id>/network/secret_ed25519``: 32 raw
bytes, created once with mode 0600 (O_EXCL, so two processes never write different keys).
``--node-key`` takes 64 hex digits; ``--node-key-file`` takes a file with 32 raw bytes or 64 hex
digits (Substrate accepts both).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from chain.crypto import Keypair, _b58decode, _b58encode, verify_signature
from chain.errors import InvalidAddress, InvalidSignature
from node.durable_file import create_private_file
from node.network.errors import InvalidNodeKey, InvalidPeerId

ED25519_KEY_TYPE = 1
# protobuf: field 1 varint (tag 0x08) = 1; field 2 length-delimited (tag 0x12), length 32.
PUBLIC_KEY_PROTOBUF_PREFIX = bytes((0x08, ED25519_KEY_TYPE, 0x12, 32))
IDENTITY_MULTIHASH = 0x00
PEER_ID_PREFIX = bytes((IDENTITY_MULTIHASH, 36)) + PUBLIC_KEY_PROTOBUF_PREFIX
PEER_ID_LEN = len(PEER_ID_PREFIX) + 32
SHA256_MULTIHASH = 0x12
KEY_FILE_NAME = "secret_ed25519"
#: Longest node key file read: 64 hex digits with an 0x and whitespace fit with room to spare.
MAX_KEY_FILE_SIZE = 256
MAX_PEER_ID_TEXT = 128  # longer text is refused before any base58 arithmetic


def encode_public_key(public: bytes) -> bytes:
    """The protobuf ``PublicKey`` of a 32-byte ed25519 key (what the Noise payload carries)."""
    if len(public) != 32:
        raise InvalidPeerId(f"an ed25519 public key is 32 bytes, got {len(public)}")
    return PUBLIC_KEY_PROTOBUF_PREFIX + public


def decode_public_key(data: bytes) -> bytes:
    """The raw ed25519 key from a protobuf ``PublicKey``; InvalidPeerId for any other form."""
    if len(data) >= 2 and data[0] == 0x08 and data[1] != ED25519_KEY_TYPE:
        raise InvalidPeerId(f"key type {data[1]} is not Ed25519 (1); polchain peers use ed25519")
    if len(data) != 36 or data[:4] != PUBLIC_KEY_PROTOBUF_PREFIX:
        raise InvalidPeerId(
            f"not a protobuf Ed25519 PublicKey (expected 36 bytes starting 08011220, got {len(data)} bytes)"
        )
    return bytes(data[4:])


@dataclass(frozen=True, slots=True, order=True)
class PeerId:
    """A libp2p PeerId of an ed25519 key. Ordered by bytes (connection tie-breaks use it)."""

    raw: bytes  # the 38-byte identity multihash

    @classmethod
    def from_public_key(cls, public: bytes) -> PeerId:
        return cls(bytes((IDENTITY_MULTIHASH, 36)) + encode_public_key(public))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PeerId:
        if raw[:1] == bytes((SHA256_MULTIHASH,)):
            raise InvalidPeerId("a sha2-256 PeerId (RSA or other long key); polchain peers use ed25519")
        if len(raw) >= 2 and raw[0] == IDENTITY_MULTIHASH and raw[1] != 36:
            raise InvalidPeerId(f"identity multihash of {raw[1]} bytes is not an ed25519 PublicKey (36)")
        if len(raw) >= 2 and raw[0] not in (IDENTITY_MULTIHASH, SHA256_MULTIHASH):
            raise InvalidPeerId(f"multihash code 0x{raw[0]:02x} is not identity (0x00)")
        decode_public_key(raw[2:])
        if len(raw) != PEER_ID_LEN:
            raise InvalidPeerId(f"a PeerId is {PEER_ID_LEN} bytes, got {len(raw)}")
        return cls(bytes(raw))

    @classmethod
    def parse(cls, text: str) -> PeerId:
        """A PeerId from its base58btc text (``12D3KooW…``)."""
        if not text:
            raise InvalidPeerId("empty peer id")
        if len(text) > MAX_PEER_ID_TEXT:
            raise InvalidPeerId(f"peer id text of {len(text)} characters is too long")
        try:
            raw = _b58decode(text)
        except InvalidAddress:
            bad = next(c for c in text if c not in _B58_ALPHABET)
            raise InvalidPeerId(f"peer id {text!r} has a character outside base58btc: {bad!r}") from None
        try:
            return cls.from_bytes(raw)
        except InvalidPeerId as exc:
            raise InvalidPeerId(f"peer id {text!r}: {exc}") from None

    @property
    def public_key(self) -> bytes:
        return self.raw[len(PEER_ID_PREFIX):]

    def __str__(self) -> str:
        return _b58encode(self.raw)

    def __repr__(self) -> str:
        return f"PeerId({self})"

    def short(self) -> str:
        """The last 8 characters, for logs (the first 8 are always ``12D3KooW``)."""
        return str(self)[-8:]


_B58_ALPHABET = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class NodeKey:
    """The node's ed25519 network key; ``peer_id`` is derived from it."""

    keypair: Keypair = field(repr=False)
    peer_id: PeerId

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeKey:
        if len(seed) != 32:
            raise InvalidNodeKey(f"an ed25519 node key is 32 bytes, got {len(seed)}")
        kp = Keypair.from_seed(seed)
        return cls(kp, PeerId.from_public_key(kp.public))

    @classmethod
    def generate(cls) -> NodeKey:
        return cls.from_seed(secrets.token_bytes(32))

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        """``--node-key``: 64 hex digits, with or without 0x. The text is never echoed back."""
        body = text.strip()
        body = body[2:] if body.startswith(("0x", "0X")) else body
        if len(body) != 64:
            raise InvalidNodeKey(f"a node key is 64 hex digits (32 bytes), got {len(body)} characters")
        try:
            seed = bytes.fromhex(body)
        except ValueError:
            raise InvalidNodeKey("a node key must be hex digits") from None
        return cls.from_seed(seed)

    @classmethod
    def from_file(cls, path: Path) -> NodeKey:
        """``--node-key-file``: 32 raw bytes or 64 hex digits (whitespace around them allowed).

        Read no further than a key can go (:data:`MAX_KEY_FILE_SIZE`): a larger file, or one
        that never ends (``/dev/zero``), is refused, not read whole into memory."""
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_KEY_FILE_SIZE + 1)
        except OSError as exc:
            raise InvalidNodeKey(f"cannot read node key file {path}: {exc.strerror}") from None
        if len(data) > MAX_KEY_FILE_SIZE:
            raise InvalidNodeKey(f"node key file {path} is over {MAX_KEY_FILE_SIZE} bytes: not a node key")
        if len(data) == 32:
            return cls.from_seed(data)
        try:
            return cls.from_hex(data.decode("ascii"))
        except (UnicodeDecodeError, InvalidNodeKey):
            raise InvalidNodeKey(
                f"node key file {path} holds neither 32 raw bytes nor 64 hex digits ({len(data)} bytes)"
            ) from None

    @classmethod
    def load_or_generate(cls, network_dir: Path) -> NodeKey:
        """The key in ``network_dir/secret_ed25519``, generated (mode 0600) if absent."""
        path = Path(network_dir) / KEY_FILE_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            seed = secrets.token_bytes(32)
            # All or nothing (node.durable_file): a kill here must not leave an empty key file.
            if not create_private_file(path, seed):
                return cls.from_file(path)  # another process won the race: use its key
            return cls.from_seed(seed)
        return cls.from_file(path)

    def sign(self, message: bytes) -> bytes:
        return self.keypair.sign(message)


def verify_peer_signature(peer: PeerId, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``peer``'s ed25519 signature of ``message``."""
    try:
        verify_signature(peer.public_key, message, signature)
    except InvalidSignature:
        return False
    return True
