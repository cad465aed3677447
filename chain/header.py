"""Block headers and their digest.

A header commits to its parent, number, state root, extrinsics root, slot and author, and its
digest carries consensus data: the proof-of-learning commitment (the root over the block's
training transcripts and the work they claim, engine ``POL_``). The author's seal is a separate
field, so the pre-hash is simply the hash of the header with an empty seal; the block hash is
blake2_256 of the sealed header's bytes.

The seal is an ed25519 signature over ``SEAL_DOMAIN || genesis hash || pre-hash``
(:func:`compute_seal_message`), framed as finality votes (chain.votes) and extrinsics are: every
signature a validator makes names the chain it is made for. Without the genesis hash, a key
that sealed slot s on two chains with the same slot duration (a testnet and its mainnet, a
chain and its relaunch) signed two headers of the same slot that either chain's
``pol.report_equivocation`` accepted, so an honest validator could be slashed with a header of
another chain (outside tester's F4, 2026-11-29). The domain keeps a seal from ever verifying
as any other signed message.
"""

from __future__ import annotations

import struct
from typing import Annotated

import msgspec

from chain.codec import (
    U8,
    U64,
    AccountId,
    BlockNumber,
    Hash32,
    Wire,
    decode,
    decode_versioned,
    encode,
    encode_versioned,
)
from chain.crypto import Keypair, blake2_256, verify_signature
from chain.errors import BlockError

ZERO_HASH = bytes(32)
POL_ENGINE = b"POL_"
SEAL_DOMAIN = b"polchain/block-seal/v1"

# Substrate's DigestItem discriminants, kept so digest.logs read familiarly over RPC.
DIGEST_CONSENSUS = 4
DIGEST_PRE_RUNTIME = 6


# A header's digest holds what consensus puts there (the slot and the POL_ commitment: two
# items of at most 60 bytes of data), and nothing a block carries is unbounded: a header from
# a peer (an announcement, a block response of up to 16 MiB) is refused while it is decoded,
# not after. Unbounded, one response of 2.8 million empty digest logs took 0.48 s and 353 MB
# to decode before any check saw it (found by mutation testing of node.network.messages).
MAX_DIGEST_ITEMS = 8
MAX_DIGEST_DATA = 256


class DigestItem(Wire, frozen=True):
    """One digest log: (kind, 4-byte engine id, data)."""

    kind: U8
    engine: Annotated[bytes, msgspec.Meta(min_length=4, max_length=4)]
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_DIGEST_DATA)]


class PolCommitment(Wire, frozen=True):
    """What a block claims about its training: the transcripts' root and the work done."""

    transcripts_root: Hash32
    training_steps: U64
    work_units: U64


class Header(Wire, frozen=True):
    parent_hash: Hash32
    number: BlockNumber
    state_root: Hash32
    extrinsics_root: Hash32
    slot: U64
    author: AccountId
    digest: Annotated[tuple[DigestItem, ...], msgspec.Meta(max_length=MAX_DIGEST_ITEMS)] = ()
    seal: Annotated[bytes, msgspec.Meta(max_length=64)] = b""  # an ed25519 signature; empty at genesis

    def encode(self) -> bytes:
        return encode_versioned(self)

    def hash(self) -> bytes:
        return blake2_256(self.encode())

    def pre_hash(self) -> bytes:
        """The hash of the header without its seal (the author signs it framed: compute_seal_message)."""
        return blake2_256(encode_versioned(_unsealed(self)))

    def get_pol_commitment(self) -> PolCommitment:
        """The proof-of-learning commitment in the digest; BlockError if absent or twice."""
        items = [d for d in self.digest if d.kind == DIGEST_CONSENSUS and d.engine == POL_ENGINE]
        if len(items) != 1:
            raise BlockError(f"header #{self.number} has {len(items)} POL_ commitments, expected 1")
        return decode(items[0].data, PolCommitment)


def _unsealed(header: Header) -> Header:
    return msgspec.structs.replace(header, seal=b"")


def compute_seal_message(genesis_hash: bytes, header: Header) -> bytes:
    """What the author of ``header`` signs on the chain whose genesis is ``genesis_hash``."""
    if type(genesis_hash) is not bytes or len(genesis_hash) != 32:
        # (A caller's bug, never a peer's input: an empty hash would frame no chain at all.)
        raise ValueError(f"a seal names a 32-byte genesis hash, got {genesis_hash!r:.80}")
    return SEAL_DOMAIN + genesis_hash + header.pre_hash()


def seal_header(key: Keypair, genesis_hash: bytes, header: Header) -> Header:
    """``header`` sealed by ``key`` for the chain whose genesis is ``genesis_hash``."""
    return msgspec.structs.replace(header, seal=key.sign(compute_seal_message(genesis_hash, header)))


def verify_seal(genesis_hash: bytes, header: Header) -> None:
    """Raise chain.errors.InvalidSignature unless ``header`` is sealed by its author for the
    chain whose genesis is ``genesis_hash``."""
    verify_signature(header.author, compute_seal_message(genesis_hash, header), header.seal)


def compute_pol_digest(commitment: PolCommitment) -> DigestItem:
    return DigestItem(DIGEST_CONSENSUS, POL_ENGINE, encode(commitment))


def compute_slot_digest(slot: int) -> DigestItem:
    return DigestItem(DIGEST_PRE_RUNTIME, b"aura", struct.pack("<Q", slot))


def compute_largest_header() -> Header:
    """The largest header the bounds admit: every number at its top, MAX_DIGEST_ITEMS logs of
    MAX_DIGEST_DATA bytes, a 64-byte seal (what bounds an announcement: node.network.messages)."""
    top32, top64 = 2**32 - 1, 2**63 - 1
    logs = tuple(DigestItem(255, bytes(4), bytes(MAX_DIGEST_DATA)) for _ in range(MAX_DIGEST_ITEMS))
    return Header(bytes(32), top32, bytes(32), bytes(32), top64, bytes(32), logs, bytes(64))


def decode_header(data: bytes) -> Header:
    return decode_versioned(data, Header)
