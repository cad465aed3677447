"""Blocks: a header, the extrinsics, and a training proof for each TRAIN call that ran."""

from __future__ import annotations

from collections.abc import Sequence

import ml_runtime
from chain.codec import Wire, decode_versioned, encode_versioned
from chain.extrinsic import Extrinsic
from chain.header import Header
from chain.proofs import TrainingProof


class Body(Wire, frozen=True):
    extrinsics: tuple[Extrinsic, ...] = ()
    proofs: tuple[TrainingProof, ...] = ()


class Block(Wire, frozen=True):
    header: Header
    body: Body

    def encode(self) -> bytes:
        return encode_versioned(self)

    def hash(self) -> bytes:
        return self.header.hash()


def compute_extrinsics_root(encoded: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle root over the extrinsics' encoded bytes (encoded once by the caller)."""
    return ml_runtime.compute_merkle_root(encoded)


def decode_block(data: bytes) -> Block:
    return decode_versioned(data, Block)


def decode_body(data: bytes) -> Body:
    return decode_versioned(data, Body)


def encode_body(body: Body) -> bytes:
    return encode_versioned(body)
