"""The canonical binary encoding of every hashed or signed object.

Wire objects are frozen msgspec Structs encoded as MessagePack arrays (``array_like``), so
a value has exactly one encoding: fields in declaration order, integers in their shortest
form, bytes as ``bin``. MessagePack alone admits other encodings of the same value (an
integer padded to a wider type, say), so :func:`decode` re-encodes what it read and refuses
bytes that are not the canonical form: two different byte strings never decode to the same
object, and hashes of wire objects cannot be malleated.

Top-level objects (extrinsics, headers, blocks) start with one version byte,
:data:`CODEC_VERSION`, so the format can change with a runtime upgrade without ambiguity.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

import msgspec

from chain.errors import CodecError

CODEC_VERSION = 1

# Small named types. msgspec checks the bounds while decoding; bounds must fit an int64.
# Hash32 and AccountId differ in their description only: typing caches ``Annotated`` by its
# arguments, so without it they would be one object, and code that tells an account from a
# hash by identity (the JSON form of calls, chain.calls._kind) would take every hash for one.
Hash32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32, description="a 32-byte hash")]
AccountId = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32, description="a 32-byte account id")]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
Balance = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
BlockNumber = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U8 = Annotated[int, msgspec.Meta(ge=0, le=2**8 - 1)]
U16 = Annotated[int, msgspec.Meta(ge=0, le=2**16 - 1)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

MAX_BALANCE = 2**63 - 1

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


class Wire(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True, gc=False):
    """Base of every wire object: frozen, positional, unknown fields refused.

    Not tracked by the cyclic garbage collector (msgspec's ``gc=False``): a frozen object whose
    fields are all immutable (bytes, numbers, strings, tuples, other wire objects; never a list,
    dict or set: tests/chain/test_wire.py checks every subclass) can only refer to objects made
    before it, so it is never part of a reference cycle, and reference counting frees it. A block
    of transfers decodes into thousands of them; tracked, each collection after the block walked
    them all (measured: about half the collections of a run of transfer blocks, and about 1% of
    their import).
    """


def encode(obj: Any) -> bytes:
    """The canonical bytes of a wire object (no version byte)."""
    return _encoder.encode(obj)


def encode_each(objs: Iterable[Any]) -> list[bytes]:
    """:func:`encode` of each object, in one call (a block's thousands of accounts)."""
    return list(map(_encoder.encode, objs))


def decode(data: bytes, typ: type[T]) -> T:
    """Decode canonical bytes into ``typ``; raise CodecError on anything else."""
    decoder = _decoders.get(typ)
    if decoder is None:
        decoder = _decoders[typ] = msgspec.msgpack.Decoder(typ)
    try:
        obj = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise CodecError(f"{_name(typ)}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CodecError(f"{_name(typ)}: malformed bytes: {exc}") from None
    if _encoder.encode(obj) != data:
        raise CodecError(f"{_name(typ)}: bytes are not in canonical form")
    return obj


def encode_versioned(obj: Any) -> bytes:
    """Version byte + canonical bytes: the form of top-level objects on the wire and on disk."""
    return bytes((CODEC_VERSION,)) + _encoder.encode(obj)


def encode_versioned_each(objs: Iterable[Any]) -> list[bytes]:
    """:func:`encode_versioned` of each object, in one loop without two calls per object (a
    block's thousands of extrinsics are encoded for its extrinsics root on every import)."""
    version, encode_one = bytes((CODEC_VERSION,)), _encoder.encode
    return [version + encode_one(obj) for obj in objs]


def decode_versioned(data: bytes, typ: type[T]) -> T:
    """Inverse of :func:`encode_versioned`; refuses an unknown version."""
    if not data:
        raise CodecError(f"{_name(typ)}: empty input")
    if data[0] != CODEC_VERSION:
        raise CodecError(f"{_name(typ)}: unknown codec version {data[0]} (expected {CODEC_VERSION})")
    return decode(bytes(data[1:]), typ)


def _name(typ: Any) -> str:
    return getattr(typ, "__name__", str(typ))
