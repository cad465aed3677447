"""Hashing, ed25519 keys and signatures, and SS58 addresses.

- Hash: blake2b with a 32-byte digest (Substrate's ``blake2_256``).
- Signatures: ed25519 through PyNaCl (libsodium).
- Addresses: SS58 as Substrate defines it: base58(prefix || public key || checksum), the
  checksum being the first two bytes of blake2b-512(b"SS58PRE" || prefix || public key).
  polchain uses the generic prefix 42.
- Secret URIs: ``0x<64 hex>`` is a raw seed; ``//Alice`` style hard junctions are derived
  with Substrate's ed25519 HDKD rule, seed' = blake2_256(SCALE(("Ed25519HDKD", seed,
  chain_code))). Substrate's root for the dev accounts is the BIP-39 seed of its dev phrase;
  polchain ships no BIP-39 word list, so its dev root is blake2_256 of that phrase. The dev
  keys are therefore deterministic but are not the same keys as Substrate's //Alice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from chain.errors import InvalidAddress, InvalidKey, InvalidSignature

SS58_PREFIX = 42
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
DEV_ACCOUNTS = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def blake2_256(data: bytes) -> bytes:
    """blake2b with a 32-byte digest."""
    return hashlib.blake2b(data, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class Keypair:
    """An ed25519 key pair; ``public`` is the 32-byte account id."""

    seed: bytes
    public: bytes
    _signing: nacl.signing.SigningKey

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise InvalidKey(f"an ed25519 seed is 32 bytes, got {len(seed)}")
        signing = nacl.signing.SigningKey(seed)
        return cls(seed, bytes(signing.verify_key), signing)

    @classmethod
    def from_uri(cls, uri: str) -> Keypair:
        """A key from a secret URI: ``0x<seed hex>``, ``//Alice``, or ``phrase//junction...``."""
        return cls.from_seed(compute_seed_from_uri(uri))

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    @property
    def address(self) -> str:
        return ss58_encode(self.public)


def compute_seed_from_uri(uri: str) -> bytes:
    """The 32-byte seed a secret URI names (see the module docstring)."""
    if uri.startswith("0x") and "//" not in uri:
        return _parse_hex32(uri, InvalidKey, "a secret seed")
    phrase, sep, path = uri.partition("//")
    if "/" in phrase.replace("//", ""):
        raise InvalidKey("soft junctions (/name) do not exist for ed25519; use //name")
    seed = blake2_256((phrase.strip() or DEV_PHRASE).encode())
    if not sep:
        return seed
    for junction in path.split("//"):
        if not junction:
            raise InvalidKey(f"empty junction in secret URI {uri!r}")
        seed = blake2_256(_scale_str(b"Ed25519HDKD") + seed + _chain_code(junction))
    return seed


def _scale_str(b: bytes) -> bytes:
    # SCALE compact length prefix for lengths < 64 is (len << 2); junctions longer are hashed.
    return bytes((len(b) << 2,)) + b


def _chain_code(junction: str) -> bytes:
    # Substrate: a numeric junction is its u64 LE; otherwise the SCALE-encoded string; either
    # zero-padded to 32 bytes, or hashed when longer.
    raw = int(junction).to_bytes(8, "little") if junction.isdigit() else _scale_str(junction.encode())
    return raw.ljust(32, b"\0") if len(raw) <= 32 else blake2_256(raw)


def dev_keypair(name: str) -> Keypair:
    """The dev account ``//Name`` (Alice, Bob, ... Ferdie)."""
    return Keypair.from_uri("//" + name)


def verify_signature(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is ``public``'s ed25519 signature of ``message``."""
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise InvalidSignature(f"bad ed25519 signature for {ss58_encode(public)}: {exc}") from None


def ss58_encode(public: bytes, prefix: int = SS58_PREFIX) -> str:
    """The SS58 address of a 32-byte public key (simple one-byte prefix, < 64)."""
    if len(public) != 32:
        raise InvalidAddress(f"an account id is 32 bytes, got {len(public)}")
    body = bytes((prefix,)) + public
    return _b58encode(body + hashlib.blake2b(b"SS58PRE" + body, digest_size=64).digest()[:2])


def ss58_decode(address: str, prefix: int = SS58_PREFIX) -> bytes:
    """The public key of an SS58 address; raises InvalidAddress on a bad checksum or prefix."""
    raw = _b58decode(address)
    if len(raw) != 35:
        raise InvalidAddress(f"{address!r} is not a 32-byte SS58 address (decoded {len(raw)} bytes)")
    body, checksum = raw[:33], raw[33:]
    if hashlib.blake2b(b"SS58PRE" + body, digest_size=64).digest()[:2] != checksum:
        raise InvalidAddress(f"{address!r} has a bad SS58 checksum")
    if body[0] != prefix:
        raise InvalidAddress(f"{address!r} has network prefix {body[0]}, expected {prefix}")
    return body[1:]


def parse_account(text: str) -> bytes:
    """An account id from an SS58 address, 0x-hex public key, or a dev URI like //Alice."""
    if text.startswith("//"):
        return Keypair.from_uri(text).public
    if text.startswith("0x"):
        return _parse_hex32(text, InvalidAddress, "an account id")
    return ss58_decode(text)


def _parse_hex32(text: str, error: type[InvalidKey] | type[InvalidAddress], what: str) -> bytes:
    # Secrets are never echoed back in an error message, so neither is the text.
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise error(f"{what} in 0x-hex is not hex") from None
    if len(raw) != 32:
        raise error(f"{what} is 32 bytes, got {len(raw)}")
    return raw


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise InvalidAddress(f"{text!r} has a character outside base58: {c!r}")
        n = n * 58 + digit
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body
