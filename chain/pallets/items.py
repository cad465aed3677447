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
from typing import Any, Generic, Protocol, TypeVar

from chain.codec import decode, encode

V = TypeVar("V")


class StateAccess(Protocol):
    """What a storage item needs from the state: the Overlay's read/write interface."""

    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


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


class StorageMap(Generic[V]):
    """A map from keys (ints, bytes or strs, possibly a tuple of them) to values of type ``V``."""

    def __init__(self, pallet: str, name: str, typ: type[V]) -> None:
        self.prefix = blake2_128(pallet.encode()) + blake2_128(name.encode())
        self.typ = typ

    def compute_key(self, *key: Any) -> bytes:
        return self.prefix + b"".join(compute_map_key_part(k) for k in key)

    def get(self, state: StateAccess, *key: Any) -> V | None:
        raw = state.get(self.compute_key(*key))
        return None if raw is None else decode(raw, self.typ)

    def get_raw(self, state: StateAccess, *key: Any) -> bytes | None:
        return state.get(self.compute_key(*key))

    def apply_set(self, state: StateAccess, value: V, *key: Any) -> None:
        state.set(self.compute_key(*key), encode(value))

    def apply_set_raw(self, state: StateAccess, raw: bytes, *key: Any) -> None:
        state.set(self.compute_key(*key), raw)

    def apply_delete(self, state: StateAccess, *key: Any) -> None:
        state.delete(self.compute_key(*key))
