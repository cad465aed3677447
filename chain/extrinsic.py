"""Signed extrinsics: the transactions users submit.

An extrinsic carries its call, the signer's account id, nonce, tip and era, and an ed25519
signature over the signing payload (call, nonce, tip, era, genesis hash, spec version). The
genesis hash stops a replay on another chain, the spec version a replay across a runtime
upgrade, the era a replay after the transaction expires. As in Substrate, a payload longer
than 256 bytes is signed through its blake2_256 hash.

An extrinsic's hash is blake2_256 of its versioned canonical bytes, as the pool and RPC know it.
"""

from __future__ import annotations

from chain.calls import Call
from chain.codec import (
    U32,
    U64,
    AccountId,
    BlockNumber,
    Hash32,
    Signature,
    Wire,
    decode_versioned,
    encode,
    encode_versioned,
)
from chain.crypto import Keypair, blake2_256, verify_signature
from chain.errors import InvalidSignature, InvalidTransaction

MAX_EXTRINSIC_SIZE = 2 * 1024 * 1024  # bytes: a chunk of rows (1 MiB) and headroom


class Era(Wire, frozen=True):
    """Mortality: valid in blocks [birth, birth + period); period 0 means immortal."""

    birth: BlockNumber = 0
    period: U32 = 0

    def is_alive(self, number: int) -> bool:
        return self.period == 0 or self.birth <= number < self.birth + self.period


IMMORTAL = Era(0, 0)


class SigningPayload(Wire, frozen=True):
    """What the signer signs; never sent, rebuilt by every verifier from chain data."""

    call: Call
    nonce: U32
    tip: U64
    era: Era
    genesis_hash: Hash32
    spec_version: U32


class Extrinsic(Wire, frozen=True, gc=False):
    """A signed extrinsic.

    Not tracked by the cyclic garbage collector (``gc=False``): a block of transfers decodes
    into thousands, which each collection until they are freed would walk (the one after an
    import among them), and an extrinsic holds bytes, integers and frozen wire objects only
    (an era, a call: no mutable container), so it can never be part of a reference cycle.
    """

    signer: AccountId
    signature: Signature
    nonce: U32
    tip: U64
    era: Era
    call: Call

    def encode(self) -> bytes:
        return encode_versioned(self)

    def hash(self) -> bytes:
        return blake2_256(self.encode())

    def verify_signature(self, genesis_hash: bytes, spec_version: int) -> None:
        """Raise InvalidTransaction("bad_proof") unless the signature covers this chain and spec."""
        message = compute_signing_message(
            SigningPayload(self.call, self.nonce, self.tip, self.era, genesis_hash, spec_version)
        )
        try:
            verify_signature(self.signer, message, self.signature)
        except InvalidSignature as exc:
            raise InvalidTransaction("bad_proof", str(exc)) from None


def compute_signing_message(payload: SigningPayload) -> bytes:
    raw = encode(payload)
    return blake2_256(raw) if len(raw) > 256 else raw


def sign_extrinsic(
    keypair: Keypair,
    call: Call,
    *,
    nonce: int,
    genesis_hash: bytes,
    spec_version: int,
    tip: int = 0,
    era: Era = IMMORTAL,
) -> Extrinsic:
    """Build and sign an extrinsic."""
    payload = SigningPayload(call, nonce, tip, era, genesis_hash, spec_version)
    return Extrinsic(keypair.public, keypair.sign(compute_signing_message(payload)), nonce, tip, era, call)


def decode_extrinsic(data: bytes) -> Extrinsic:
    """An extrinsic from its bytes; CodecError if malformed, InvalidTransaction if oversize."""
    if len(data) > MAX_EXTRINSIC_SIZE:
        raise InvalidTransaction(
            "exhausts_resources", f"extrinsic is {len(data)} bytes, the limit is {MAX_EXTRINSIC_SIZE}"
        )
    return decode_versioned(data, Extrinsic)
