"""Typed storage items over the state overlay, with Substrate's key layout.

A key is ``h(pallet) || h(item)`` for a value, followed by ``h(k) || k`` for each map key
(Substrate's Blake2_128Concat), where h is blake2b-128. Substrate hashes the two prefixes
with twox128; polchain uses blake2b-128 for both so it needs one hash family only. Keeping
the raw map key after its hash lets ``state_getKeysPaged`` list a map and recover its keys,
while the hash spreads keys evenly over the trie.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from chain.codec import decode, encode

V = TypeVar("V")

# Bounds of the per-item memo tables below; a full table is simply emptied (no LRU
# bookkeeping on the hot path). 65,536 entries cover a block's accounts many times over.
_MEMO_LIMIT = 1 << 16


class StateAccess(Protocol):
    """What a storage item needs from the state: the Overlay's read/write interface."""

    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


class BatchStateAccess(StateAccess, Protocol):
    """A state that also reads many keys in one call (the Overlay)."""

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...
    def peek_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...
    def set_many(self, items: Iterable[tuple[bytes, bytes]], *, read: bool = False) -> None: ...


def blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def compute_map_key_part(key: Any) -> bytes:
    """The bytes of one map key: u32 big-endian for ints (so they sort), raw bytes, or utf-8."""
    if isinstance(key, bool):
        raise TypeError("a bool is not a storage map key")
    if isinstance(key, int):
        raw = struct.pack(">I", key)
    elif isinstance(key, bytes):
        raw = key
    elif isinstance(key, str):
        raw = key.encode()
    else:
        raise TypeError(f"unsupported storage map key type {type(key).__name__}")
    return blake2_128(raw) + raw


class StorageValue(Generic[V]):
    """A single value of type ``V`` under ``h(pallet) || h(name)``."""

    def __init__(self, pallet: str, name: str, typ: type[V], default: V) -> None:
        self.key = blake2_128(pallet.encode()) + blake2_128(name.encode())
        self.typ = typ
        self.default = default

    def get(self, state: StateAccess) -> V:
        raw = state.get(self.key)
        return self.default if raw is None else decode(raw, self.typ)

    def apply_set(self, state: StateAccess, value: V) -> None:
        state.set(self.key, encode(value))


def _is_immutable(typ: Any) -> bool:
    """Whether decoded values of ``typ`` can be shared between readers (frozen Structs)."""
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct) and bool(typ.__struct_config__.frozen)


class StorageMap(Generic[V]):
    """A map from keys (ints, bytes or strs, possibly a tuple of them) to values of type ``V``.

    Two memo tables keep the hot path (a transfer reads and writes three accounts) off
    blake2b and the decoder: storage keys of single ``bytes`` keys (account ids), and, for
    frozen value types only, decoded values by their canonical bytes. Both are pure
    functions of their inputs, so a memo can never disagree with the state, whatever the
    overlay's transactions do.
    """

    def __init__(self, pallet: str, name: str, typ: type[V]) -> None:
        self.prefix = blake2_128(pallet.encode()) + blake2_128(name.encode())
        self.typ = typ
        self._keys: dict[bytes, bytes] = {}
        self._values: dict[bytes, V] | None = {} if _is_immutable(typ) else None

    def compute_key(self, *key: Any) -> bytes:
        # Only a lone bytes key is memoized: it is the hot case, and ints would collide with
        # bools (True == 1), which compute_map_key_part refuses.
        if len(key) == 1 and type(key[0]) is bytes:
            full = self._keys.get(key[0])
            if full is None:
                if len(self._keys) >= _MEMO_LIMIT:
                    self._keys.clear()
                full = self._keys[key[0]] = self.prefix + compute_map_key_part(key[0])
            return full
        return self.prefix + b"".join(compute_map_key_part(k) for k in key)

    def compute_keys(self, keys: Sequence[bytes]) -> list[bytes]:
        """:meth:`compute_key` of each single ``bytes`` key of ``keys`` (memoized alike)."""
        memo, compute_key = self._keys, self.compute_key
        return [memo.get(key) or compute_key(key) for key in keys]

    def get(self, state: StateAccess, *key: Any) -> V | None:
        # The memoized key inline: a transfer reads an account four times.
        full = self._keys.get(key[0]) if len(key) == 1 and type(key[0]) is bytes else None
        raw = state.get(full if full is not None else self.compute_key(*key))
        if raw is None:
            return None
        values = self._values
        if values is None:
            return decode(raw, self.typ)
        value = values.get(raw)
        if value is None:
            if len(values) >= _MEMO_LIMIT:
                values.clear()
            value = values[raw] = decode(raw, self.typ)
        return value

    def get_many(self, state: BatchStateAccess, keys: Sequence[bytes], *, peek: bool = False) -> list[V | None]:
        """:meth:`get` of each single ``bytes`` key of ``keys``, read in one batch
        (``state.get_many``, or ``state.peek_many`` with ``peek``): the accounts of a
        block's run of transfers."""
        full = self.compute_keys(keys)
        return self.decode_many(state.peek_many(full) if peek else state.get_many(full))

    def decode_many(self, raws: Sequence[bytes | None]) -> list[V | None]:
        """The values of ``raws`` (stored bytes, None for absent), decoded as :meth:`get` does."""
        values = self._values
        if values is None:
            return [None if raw is None else decode(raw, self.typ) for raw in raws]
        out: list[V | None] = []
        for raw in raws:
            value = None if raw is None else values.get(raw)
            if value is None and raw is not None:
                if len(values) >= _MEMO_LIMIT:
                    values.clear()
                value = values[raw] = decode(raw, self.typ)
            out.append(value)
        return out

    def get_raw(self, state: StateAccess, *key: Any) -> bytes | None:
        return state.get(self.compute_key(*key))

    def apply_set(self, state: StateAccess, value: V, *key: Any) -> None:
        full = self._keys.get(key[0]) if len(key) == 1 and type(key[0]) is bytes else None
        state.set(full if full is not None else self.compute_key(*key), encode(value))

    def apply_set_raw(self, state: StateAccess, raw: bytes, *key: Any) -> None:
        state.set(self.compute_key(*key), raw)

    def apply_delete(self, state: StateAccess, *key: Any) -> None:
        state.delete(self.compute_key(*key))
