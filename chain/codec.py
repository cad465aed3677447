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

import re
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
_type_infos: dict[Any, Any] = {}  # name_place's, by type


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
        raise CodecError(f"{_name(typ)}: {name_place(exc, typ, _Encoded(data))}") from None
    except msgspec.DecodeError as exc:
        raise CodecError(f"{_name(typ)}: malformed bytes: {exc}") from None
    except RecursionError:
        # msgspec nests on the C stack, arrays in arrays past Python's recursion limit: a Raw
        # field's content or a skipped one (an outside tester's AE1, retest35, escaped every
        # handler this way, uncharged).
        raise CodecError(f"{_name(typ)}: malformed bytes: nested deeper than the decoder's recursion limit") from None
    if _encoder.encode(obj) != data:
        raise CodecError(f"{_name(typ)}: bytes are not in canonical form")
    return obj


#: Elements :func:`name_place` may read (type bytes and lengths, :func:`compute_element_end`) to
#: reach a union's tag in refused bytes, at each union on the way. Decoding the whole input
#: again without a type instead, a 16 MiB message refused at its first field took 170 ms and
#: 130 MB more (an outside tester's AE4, retest35); then reading up to 64 KiB of elements took
#: 6 ms a refusal in Python, for a tag 65,535 one-byte integers along (a gossiped CommitUpdate
#: refused at its last field: 80% of a core, AF1, retest36). A step costs about 0.1 us, a bin
#: or a string one step whatever its length. Past it the names stop at the union it could not
#: reach, and msgspec's own place stays.
MAX_NAMING_STEPS = 1024


class _Decoded:
    """A place in a value decoded without a type (arrays as lists): chain.calls' JSON form."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def tag(self) -> Any:
        return self.value[0] if isinstance(self.value, list) and self.value else None

    def child(self, index: int) -> _Decoded:
        value = self.value
        return _Decoded(value[index] if isinstance(value, list) and index < len(value) else None)


class _Encoded:
    """A place in MessagePack bytes: the array indices that lead to it from the start. The
    bytes are read only when a union's tag is asked (most places a refusal names have none
    below them), and then within :data:`MAX_NAMING_STEPS` at each array on the way."""

    __slots__ = ("data", "path")

    def __init__(self, data: bytes, path: tuple[int, ...] = ()) -> None:
        self.data, self.path = data, path

    def child(self, index: int) -> _Encoded:
        return _Encoded(self.data, (*self.path, index))

    def tag(self) -> Any:
        """The first element of the array at this place; None if it cannot be read. (The
        indices are msgspec's, of elements it read: each lies in an array.)"""
        data, pos = self.data, 0
        try:
            for index in self.path:
                pos = compute_element_end(data, _array_start(data, pos), len(data), count=index, steps=MAX_NAMING_STEPS)
            start = _array_start(data, pos)
            return msgspec.msgpack.decode(data[start : compute_element_end(data, start, 16)])  # (an int tag: 9 bytes at most)
        except (CodecError, msgspec.DecodeError):  # past the budget (or not an array, or malformed): not named
            return None


def _array_start(data: bytes, pos: int) -> int:
    """Where the elements of the array at ``data[pos]`` start; CodecError if no array starts there."""
    tag = data[pos] if pos < len(data) else -1
    if 0x90 <= tag <= 0x9F:
        return pos + 1
    if tag in (0xDC, 0xDD):  # array 16 and 32: the length's 2 or 4 bytes
        return pos + (3 if tag == 0xDC else 5)
    raise CodecError(f"no array at byte {pos}")


_PLACE = re.compile(r" - at `\$((?:\[\d+\])+)`$")


def name_place(error: msgspec.ValidationError, typ: Any, value: Any) -> str:
    """msgspec's message for a value of ``typ`` with the array places it names followed by
    field names: "Expected `int` <= 9223372036854775807 - at `$[5][2]` (call.value)". A wire
    object is an array, so msgspec's places are indices, which a user cannot read (an outside
    tester's D3, round 15). A union's member is picked by the tag ``value`` carries there:
    ``value`` is the input decoded without a type (lists for arrays), or its bytes when
    :func:`decode` refused them (read there by types and lengths, :class:`_Encoded`)."""
    message = str(error)
    found = _PLACE.search(message)
    if found is None:
        return message
    names: list[str] = []
    info = _type_infos.get(typ)
    if info is None:  # (5 ms for the union of every p2p message: once a type)
        info = _type_infos[typ] = msgspec.inspect.type_info(typ)
    at: _Decoded | _Encoded = value if isinstance(value, _Encoded) else _Decoded(value)
    for index in map(int, re.findall(r"\d+", found.group(1))):
        while isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        if isinstance(info, msgspec.inspect.UnionType):  # a tagged union (its tag first) or an Optional
            members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            tag = at.tag()
            tagged = [t for t in members if tag is not None and getattr(t, "tag", None) == tag]
            info = tagged[0] if tagged else members[0] if len(members) == 1 else None
        if isinstance(info, msgspec.inspect.StructType):
            first = 0 if info.tag is None else 1
            if index < first:
                names.append("'s tag" if names else "its tag")
                break
            field = info.fields[index - first]
            names.append(f".{field.name}" if names else field.name)
            info = field.type
        elif isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
            names.append(f"[{index}]")
            info = info.item_type
        elif isinstance(info, msgspec.inspect.TupleType) and index < len(info.item_types):
            names.append(f"[{index}]")
            info = info.item_types[index]
        else:
            break
        at = at.child(index)
    return f"{message} ({''.join(names)})" if names else message


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


# The size of each MessagePack format from 0xc4 on (the spec's format table:
# github.com/msgpack/msgpack/blob/master/spec.md): (bytes before the payload or the elements,
# bytes of its length field, what that length counts: "bytes" of payload, or "elements" that
# follow, twice that for a map's keys and values). A format with no length field has a fixed
# payload (ints, floats, fixext's type byte and data).
_FORMATS: dict[int, tuple[int, int, str]] = {
    0xC4: (2, 1, "bytes"), 0xC5: (3, 2, "bytes"), 0xC6: (5, 4, "bytes"),  # bin 8/16/32
    0xC7: (3, 1, "bytes"), 0xC8: (4, 2, "bytes"), 0xC9: (6, 4, "bytes"),  # ext 8/16/32 (length, type)
    0xCA: (5, 0, ""), 0xCB: (9, 0, ""),  # float 32/64
    0xCC: (2, 0, ""), 0xCD: (3, 0, ""), 0xCE: (5, 0, ""), 0xCF: (9, 0, ""),  # uint 8..64
    0xD0: (2, 0, ""), 0xD1: (3, 0, ""), 0xD2: (5, 0, ""), 0xD3: (9, 0, ""),  # int 8..64
    0xD4: (3, 0, ""), 0xD5: (4, 0, ""), 0xD6: (6, 0, ""), 0xD7: (10, 0, ""), 0xD8: (18, 0, ""),  # fixext 1..16
    0xD9: (2, 1, "bytes"), 0xDA: (3, 2, "bytes"), 0xDB: (5, 4, "bytes"),  # str 8/16/32
    0xDC: (3, 2, "elements"), 0xDD: (5, 4, "elements"),  # array 16/32
    0xDE: (3, 2, "pairs"), 0xDF: (5, 4, "pairs"),  # map 16/32
}


def compute_element_end(data: bytes, start: int, limit: int, *, count: int = 1, steps: int | None = None) -> int:
    """The offset just past the MessagePack element that begins at ``data[start]`` (the
    ``count`` elements, one after another), found by reading their type bytes and lengths only,
    never past ``start + limit``, and reading at most ``steps`` elements in all, nested ones
    included (by default ``limit``, which bounds them anyway): CodecError if the elements are
    longer than that (or ``data`` ends first), hold more elements, or hold the unused byte 0xc1.

    What it is for: reading the first field of a large array without a parse of the rest. A
    decoder checks the whole input (msgspec skips unwanted fields by parsing them), and a
    fraud proof whose last field was 2.3 million one-byte integers cost 7 ms to skip
    (chain.fraud.read_fraud_proof_header). Each step moves ``pos`` on by at least a byte, so
    the work is at most ``limit`` steps whatever the lengths claim. Whether the element is of
    the right type and canonical is the decoder's to say, on the bytes this delimits.
    """
    end = min(len(data), start + limit)
    pos, pending = start, count  # elements still to read
    left = limit if steps is None else steps
    while pending:
        if pos >= end:
            raise CodecError(f"the element at byte {start} runs past byte {end} (its limit is {limit} bytes)")
        if not left:
            raise CodecError(f"the element at byte {start} holds more than {steps} elements")
        tag = data[pos]
        pending -= 1
        left -= 1
        if tag <= 0x7F or tag >= 0xE0 or tag in (0xC0, 0xC2, 0xC3):  # fixints, nil, false, true
            pos += 1
        elif tag <= 0x8F:  # fixmap
            pending += 2 * (tag & 0x0F)
            pos += 1
        elif tag <= 0x9F:  # fixarray
            pending += tag & 0x0F
            pos += 1
        elif tag <= 0xBF:  # fixstr
            pos += 1 + (tag & 0x1F)
        elif tag == 0xC1:
            raise CodecError(f"byte {pos} is 0xc1, which MessagePack never uses")
        else:
            head, width, counts = _FORMATS[tag]
            length = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")  # (0 if width is; a cut one: pos passes end)
            pos += head
            if counts == "bytes":
                pos += length
            elif counts == "elements":
                pending += length
            elif counts == "pairs":
                pending += 2 * length
    if pos > end:
        raise CodecError(f"the element at byte {start} runs past byte {end} (its limit is {limit} bytes)")
    return pos


def _name(typ: Any) -> str:
    return getattr(typ, "__name__", str(typ))
