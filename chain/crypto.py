"""Hashing, ed25519 keys and signatures, and SS58 addresses.

- Hash: blake2b with a 32-byte digest (Substrate's ``blake2_256``).
- Signatures: ed25519 through PyNaCl (libsodium).
- Addresses: SS58 as Substrate defines it: base58(prefix || public key || checksum), the
  checksum being the first two bytes of blake2b-512(b"SS58PRE" || prefix || public key).
  polchain uses the generic prefix 42.
- Secret URIs follow Substrate's ``SecretUri`` (sp-core ``crypto.rs`` and ``address_uri.rs``):
  ``[phrase][/soft|//hard]...[///password]``. The phrase is a BIP-39 English mnemonic or a
  ``0x`` 32-byte seed; when it is missing, Substrate's public dev phrase is used, so
  ``//Alice`` is ``DEV_PHRASE//Alice``. A mnemonic becomes a seed by substrate-bip39's
  ``mini_secret_from_entropy``: PBKDF2-HMAC-SHA512 over the mnemonic's *entropy* (not the
  BIP-39 seed of its words), salt ``"mnemonic" + password``, 2048 rounds, first 32 bytes.
  Each hard junction ``//j`` maps seed to blake2_256(SCALE(("Ed25519HDKD", seed, cc))),
  sp-core ``ed25519.rs`` ``derive_hard_junction``, where the chain code ``cc`` is the SCALE
  encoding of the junction (a u64 when it is all digits, else a string) zero-padded to 32
  bytes, or its blake2_256 when longer (sp-core ``DeriveJunction::soft``). Soft junctions
  do not exist for ed25519 (sp-core returns ``SoftKeyInPath``) and are refused.
  The dev accounts are therefore the same keys as ``subkey inspect --scheme ed25519 //Alice``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import mnemonic
import nacl.exceptions
import nacl.signing

from chain.errors import InvalidAddress, InvalidKey, InvalidSignature

SS58_PREFIX = 42
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
DEV_ACCOUNTS = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_PAIRS = [_B58[i // 58] + _B58[i % 58] for i in range(58 * 58)]
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
    """The 32-byte ed25519 seed a secret URI names (see the module docstring).

    Errors never repeat the URI: it is a secret.
    """
    phrase, junctions, password = _parse_secret_uri(uri)
    if phrase.startswith("0x"):
        if password is not None:
            raise InvalidKey("a password (///...) only applies to a mnemonic phrase, not to a 0x seed")
        seed = _parse_hex32(phrase, InvalidKey, "a secret seed")
    else:
        seed = compute_mini_secret(phrase, password or "")
    for hard, junction in junctions:
        if not hard:
            raise InvalidKey("soft derivation (/name) is not defined for ed25519 (Substrate: SoftKeyInPath); use a hard junction //name")
        seed = derive_hard_junction(seed, compute_chain_code(junction))
    return seed


def _parse_secret_uri(uri: str) -> tuple[str, list[tuple[bool, str]], str | None]:
    """(phrase, [(hard, junction)...], password), as sp-core ``AddressUri::parse``.

    The phrase is the leading run of ASCII letters, digits and spaces (the dev phrase when
    empty); then ``//j`` (hard) and ``/j`` (soft) junctions; then ``///`` starts the password,
    which runs to the end (a newline in it is refused, as in Substrate).
    """
    if not isinstance(uri, str):
        raise InvalidKey("a secret URI is a string")
    head = re.match(r"[A-Za-z0-9 ]*", uri)
    assert head is not None  # the pattern matches the empty string
    phrase, rest = head.group(), uri[head.end():]
    junctions: list[tuple[bool, str]] = []
    password: str | None = None
    while rest:
        if rest.startswith("///"):
            password, rest = rest[3:], ""
            if "\n" in password:
                raise InvalidKey("a newline in the password of a secret URI")
        elif rest.startswith("/"):
            hard = rest.startswith("//")
            body = rest[2:] if hard else rest[1:]
            name = body.split("/", 1)[0]
            if not name:
                raise InvalidKey("empty junction in secret URI")
            junctions.append((hard, name))
            rest = body[len(name):]
        else:
            raise InvalidKey("a secret URI is a phrase or 0x seed of ASCII letters, digits and spaces, then /junctions")
    return (phrase.strip() or DEV_PHRASE), junctions, password


@functools.lru_cache(maxsize=16)
def compute_mini_secret(phrase: str, password: str = "") -> bytes:
    """substrate-bip39 ``mini_secret_from_entropy`` of an English BIP-39 mnemonic.

    PBKDF2-HMAC-SHA512(password=entropy, salt="mnemonic"+password, 2048 rounds)[:32]
    (paritytech/substrate-bip39 src/lib.rs ``seed_from_entropy``; sp-core
    ``Pair::from_phrase``). Cached: every //Dev key starts from the same phrase.
    """
    words = phrase.split()
    if len(words) not in (12, 15, 18, 21, 24):
        raise InvalidKey(f"a BIP-39 phrase has 12, 15, 18, 21 or 24 words, got {len(words)}")
    try:
        entropy = bytes(_WORDLIST.to_entropy(words))
    except (ValueError, LookupError) as exc:
        reason = "bad checksum" if "checksum" in str(exc) else "a word not in the BIP-39 English list"
        raise InvalidKey(f"not a valid BIP-39 phrase: {reason}") from None
    return hashlib.pbkdf2_hmac("sha512", entropy, b"mnemonic" + password.encode(), 2048)[:32]


def compute_chain_code(junction: str) -> bytes:
    """sp-core ``DeriveJunction::from(&str)``: a u64 (LE) if the junction parses as one, else
    the SCALE string (compact length, UTF-8); zero-padded to 32 bytes, or blake2_256 if longer."""
    # Rust's u64 parse takes ASCII digits with an optional leading '+'.
    if re.fullmatch(r"\+?[0-9]+", junction) and int(junction) < 1 << 64:
        raw = int(junction).to_bytes(8, "little")
    else:
        raw = _scale_bytes(junction.encode())
    return raw.ljust(32, b"\0") if len(raw) <= 32 else blake2_256(raw)


def derive_hard_junction(seed: bytes, chain_code: bytes) -> bytes:
    """sp-core ed25519 ``derive_hard_junction``: blake2_256(SCALE(("Ed25519HDKD", seed, cc)))."""
    return blake2_256(_scale_bytes(b"Ed25519HDKD") + seed + chain_code)


def _scale_bytes(b: bytes) -> bytes:
    """SCALE ``Vec<u8>``/``str``: compact length, then the bytes (modes 0..2; 2^30 bytes is
    beyond any junction a command line can carry)."""
    n = len(b)
    if n < 1 << 6:
        prefix = bytes((n << 2,))
    elif n < 1 << 14:
        prefix = ((n << 2) | 1).to_bytes(2, "little")
    elif n < 1 << 30:
        prefix = ((n << 2) | 2).to_bytes(4, "little")
    else:
        raise InvalidKey("a junction longer than 2^30 bytes")
    return prefix + b


def generate_phrase() -> str:
    """A fresh 12-word English BIP-39 phrase (128 bits from the OS's CSPRNG), as ``subkey generate``."""
    return str(_WORDLIST.generate(128))


_WORDLIST = mnemonic.Mnemonic("english")


def dev_keypair(name: str) -> Keypair:
    """The dev account ``//Name`` (Alice, Bob, ... Ferdie)."""
    return Keypair.from_uri("//" + name)


def verify_signature(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is ``public``'s ed25519 signature of ``message``."""
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        who = ss58_encode(public) if len(public) == 32 else f"a {len(public)}-byte key (not an account id)"
        raise InvalidSignature(f"bad ed25519 signature for {who}: {exc}") from None


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
    # Two digits a division (_B58_PAIRS): half the big-integer divisions of one a digit, whose
    # 48 for an address were most of the cost of naming a voter in a refusal of its vote.
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58 * 58)
        out.append(_B58_PAIRS[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out)).lstrip("1")  # (a leading pair's first digit may be 0)


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
