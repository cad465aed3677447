"""The state trie: a radix-16 Merkle Patricia trie over raw storage keys.

Design
------
The trie follows the Merkle Patricia trie of Ethereum (yellow paper, appendix D) in the
"no extension node" layout that Substrate's trie uses (``sp-trie`` ``LayoutV0``): every node
carries its own compressed partial path, so a path of ``k`` nibbles with no branching costs
one node, not ``k``. There are two node kinds:

* **leaf**   — partial path + value;
* **branch** — partial path + up to 16 children (by the next nibble) + an optional value
  (the value of a key that is a prefix of other keys).

Why this shape:

* Keys are **raw storage keys**, not hashes of them, so the trie iterates in key order at any
  root: ``state_getKeysPaged`` works for historical roots too, and a light client can check a
  proof of absence with the key itself. Pallets that put user-chosen data in keys must hash
  it first (as Substrate's ``Blake2_128Concat`` map hasher does) so paths stay short.
* **Radix 16, not 2**: in Python the cost of an update is per node visited, not per byte
  hashed. A path through 100k keys is ~5 nodes in radix 16 against ~17 in radix 2, so a
  block of writes re-hashes about 4x fewer nodes; the price is larger proofs (up to 15
  sibling hashes per level), the same trade Substrate and Ethereum make.
* **Canonical**: the trie's shape depends only on the set of (key, value) pairs (a branch
  always has >= 2 entries, partial paths are always maximal), so the root is independent of
  insertion order and of how changes are split across commits.
* **Batched updates** (:meth:`Trie.compute_update`): changes are sorted and applied to the
  trie in one recursive descent that visits each touched node once, builds the new nodes
  in memory, and only then encodes and hashes each of them once, bottom-up. Update cost is
  O(changes x depth), with depth ~ log16(n).

Node encoding (canonical; a node's hash is ``blake2b(encoding, digest_size=32)``)
---------------------------------------------------------------------------------
::

    empty  = 0x00                                                   (only as EMPTY_ROOT)
    leaf   = 0x01 || partial || value
    branch = 0x02 || partial || bitmap || child_hash * popcount(bitmap)
    branch_with_value = 0x03 || partial || bitmap || child_hash * popcount || value

    partial = LEB128(nibble count) || nibbles packed two per byte, high nibble first,
              an odd count padded with a zero low nibble
    bitmap  = u16 little-endian, bit i set when the child for nibble i exists
    value   = the rest of the node (its length is implied by the node's length)

Children are always referenced by hash (no inlining of small nodes, unlike Ethereum), so a
proof is just a set of nodes. Decoding rejects every non-canonical form: unknown kind, a
non-minimal LEB128, a non-zero pad nibble, a branch with fewer than two entries.

``EMPTY_ROOT`` is the hash of the empty node ``0x00``:
``0x03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314`` (the same value as
Substrate's empty trie root, ``blake2_256([0])``).

Proofs
------
A read proof (:meth:`Trie.prove`) is the tuple of encoded nodes on the paths from the root to
each key — Substrate's ``state_getReadProof`` shape. :func:`verify_read_proof` indexes them by
hash and walks from the root; a missing node (tampered or truncated proof) or a malformed
one raises :class:`chain.errors.ProofError`. A walk that ends at an empty slot or diverging
partial path proves absence.
"""

from __future__ import annotations

import binascii
import gc
import hashlib
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import Any, Protocol

from chain.errors import MalformedNode, MissingTrieNode, ProofError, StateError, UnknownStateRoot

__all__ = [
    "EMPTY_ROOT",
    "MAX_CACHED_VALUE",
    "MAX_KEY_LEN",
    "MemoryNodeStore",
    "NodeStore",
    "Trie",
    "TrieUpdate",
    "compute_node_hash",
    "verify_read_proof",
]

HASH_LEN = 32
#: The largest value a cached node may hold (a leaf's, or a branch's own): accounts and other
#: small records stay in memory; model weights and the like are read from the store.
#: chain.state's value cache keeps the same bound.
MAX_CACHED_VALUE = 256
#: Longest storage key accepted. It bounds the trie depth (<= 2 nibbles per byte), and so the
#: recursion depth of updates and walks, well below Python's recursion limit.
MAX_KEY_LEN = 256

_EMPTY = 0x00
_LEAF = 0x01
_BRANCH = 0x02
_BRANCH_VALUE = 0x03

_HEX = "0123456789abcdef"
_NIBBLE = {c: i for i, c in enumerate(_HEX)}
# The character just after each hex digit: "prefix + _NEXT[c]" bounds the keys under "prefix + c".
_NEXT = {c: chr(ord(c) + 1) for c in _HEX}
_BIT = [1 << i for i in range(16)]


def compute_node_hash(encoded: bytes) -> bytes:
    """The 32-byte blake2b hash that names a node."""
    return hashlib.blake2b(encoded, digest_size=HASH_LEN).digest()


EMPTY_ROOT: bytes = compute_node_hash(bytes((_EMPTY,)))
_NODE_HASHER = hashlib.blake2b(digest_size=HASH_LEN)  # copied, never updated itself
# binascii's parser, not bytes.fromhex: the same bytes for the even-length lowercase hex paths
# it is given, at under half the cost (fromhex skips whitespace character by character).
_fromhex = binascii.unhexlify


class NodeStore(Protocol):
    """Where encoded nodes are looked up by hash (a dict, or the database's TRIE column)."""

    def get(self, node_hash: bytes, /) -> bytes | None: ...


class MemoryNodeStore(dict[bytes, bytes]):
    """An in-memory node store, for proofs, tests and tools."""


@dataclass(frozen=True, slots=True)
class TrieUpdate:
    """The result of :meth:`Trie.compute_update`: the new root and the nodes it added.

    ``nodes`` maps hash -> encoding for every node created by the update; storing them next
    to the old ones makes ``root`` readable.
    """

    root: bytes
    nodes: Mapping[bytes, bytes]


# In-memory nodes are plain tuples, the cheapest objects CPython builds; tuples holding only
# str/bytes/None (clean nodes) are untracked by the cyclic GC after their first collection,
# so a big cache of them adds little to each collection:
#
#   leaf   = (partial, value)                 len 2
#   branch = (partial, children, value|None)  len 3; children has 16 slots
#
# Paths are hex strings: slicing, comparing and prefix tests on them run in C, they sort
# like the bytes they encode, and bytes.hex()/fromhex convert for free. A clean branch (as
# stored and cached) has a tuple of children, each None or a 32-byte hash. A dirty branch
# (built by the update in progress, not yet hashed) has a list of children that may also
# hold dirty nodes; that list belongs to it alone. Clean nodes are never mutated.

_Node = tuple[Any, ...]


# --- encoding -----------------------------------------------------------------------------


def _encode_leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# The LEB128 of every nibble count a node can have (a partial path is part of one key, of at
# most MAX_KEY_LEN bytes, and decoding refuses longer ones): a table lookup on the hot path,
# where most leaves of hashed keys have more than 127 nibbles and so a two-byte length.
_LEB = [_encode_leb128(n) for n in range(2 * MAX_KEY_LEN + 1)]
_LEAF_HEAD = [bytes((_LEAF,)) + leb for leb in _LEB]  # a leaf's kind byte and partial path length


def _compute_step(node: _Node, path: str, d: int) -> tuple[bytes | None, bytes | None, int]:
    """One step of a lookup of hex ``path`` at nibble ``d``, shared by reads and proof checks.

    Returns ``(value, None, d)`` when the walk ends at ``node`` (value None: the key is
    absent), or ``(None, child_hash, d')`` to go on into that child at nibble ``d'``.
    """
    partial = node[0]
    if len(node) == 2:  # leaf
        found = len(path) - d == len(partial) and path.endswith(partial)
        return (node[1] if found else None), None, d
    if not path.startswith(partial, d):
        return None, None, d
    d += len(partial)
    if d == len(path):
        return node[2], None, d
    return None, node[1][_NIBBLE[path[d]]], d + 1


def _decode_node(data: bytes) -> _Node:
    """Decode and validate one node; raises MalformedNode saying what is wrong."""
    if type(data) is not bytes:
        raise MalformedNode(f"a trie node must be bytes, got {type(data).__name__}")
    size = len(data)
    if size == 0:
        raise MalformedNode("empty byte string is not a trie node")
    kind = data[0]
    if kind == _EMPTY:
        raise MalformedNode("the empty node (0x00) is never stored; only EMPTY_ROOT names it")
    if kind > _BRANCH_VALUE:
        raise MalformedNode(f"unknown trie node kind 0x{kind:02x}")
    # LEB128 nibble count, minimal form only (canonical encodings make hashes unique).
    pos = 1
    count = 0
    shift = 0
    while True:
        if pos >= size:
            raise MalformedNode("trie node truncated inside its partial path length")
        byte = data[pos]
        pos += 1
        count |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise MalformedNode("non-minimal LEB128 partial path length in trie node")
            break
        shift += 7
        if shift > 28:
            raise MalformedNode("partial path length of trie node is too large")
    if count > 2 * MAX_KEY_LEN:
        raise MalformedNode(f"partial path of {count} nibbles exceeds the longest key")
    packed_len = (count + 1) // 2
    if pos + packed_len > size:
        raise MalformedNode("trie node truncated inside its partial path")
    partial = data[pos : pos + packed_len].hex()
    pos += packed_len
    if count % 2:
        if partial[-1] != "0":
            raise MalformedNode("odd partial path of trie node has a non-zero pad nibble")
        partial = partial[:-1]
    if kind == _LEAF:
        return (partial, data[pos:])
    if pos + 2 > size:
        raise MalformedNode("branch node truncated inside its child bitmap")
    bitmap = data[pos] | data[pos + 1] << 8
    pos += 2
    children: list[bytes | None] = [None] * 16
    n_children = 0
    for i in range(16):
        if bitmap >> i & 1:
            end = pos + HASH_LEN
            if end > size:
                raise MalformedNode("branch node truncated inside its child hashes")
            children[i] = data[pos:end]
            pos = end
            n_children += 1
    value: bytes | None = None
    if kind == _BRANCH_VALUE:
        value = data[pos:]
        if n_children < 1:
            raise MalformedNode("branch node with a value but no child should be a leaf")
    else:
        if pos != size:
            raise MalformedNode(f"branch node has {size - pos} trailing bytes")
        if n_children < 2:
            raise MalformedNode(f"branch node without value has {n_children} child(ren); needs 2")
    return (partial, tuple(children), value)


def _check_root(root: object) -> bytes:
    if type(root) is not bytes or len(root) != HASH_LEN:
        raise StateError(f"a state root must be {HASH_LEN} bytes, got {root!r:.80}")
    return root


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes):
        raise StateError(f"a storage key must be bytes, got {type(key).__name__}")
    if len(key) > MAX_KEY_LEN:
        raise StateError(f"a storage key is at most {MAX_KEY_LEN} bytes, got {len(key)}")
    return key


def _common_len(a: str, a_from: int, b: str) -> int:
    """Length of the common prefix of ``a[a_from:]`` and ``b``."""
    n = min(len(a) - a_from, len(b))
    if a.startswith(b[:n], a_from):
        return n
    # They differ within n. Below hashed key prefixes they mostly differ at once.
    if a[a_from] != b[0]:
        return 0
    if a[a_from + 1] != b[1]:
        return 1
    lo, hi = 2, n - 1  # binary search on startswith keeps the work in C
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.startswith(b[:mid], a_from):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _build(paths: list[str], values: list[bytes | None], lo: int, hi: int, d: int) -> _Node:
    """A fresh (dirty) subtree holding the entries ``lo:hi`` of ``paths``/``values`` (sorted,
    distinct, non-empty, all with values) below depth d. Ranges, not slices, so no list is
    copied per level."""
    if hi - lo == 1:
        return (paths[lo][d:], values[lo])
    first = paths[lo]
    e = d + _common_len(first, d, paths[hi - 1][d:])
    value = None
    i = lo
    if len(first) == e:
        # Sorted order puts the key that ends here (a prefix of all the others) first.
        value = values[lo]
        i += 1
    children: list[Any] = [None] * 16
    head = first[:e]
    while i < hi:
        path = paths[i]
        c = path[e]
        j = i + 1
        if j < hi and paths[j][e] == c:  # more than one entry below this nibble (else no bisect)
            j = bisect_left(paths, head + _NEXT[c], j + 1, hi)
        children[_NIBBLE[c]] = (path[e + 1 :], values[i]) if j - i == 1 else _build(paths, values, i, j, e + 1)
        i = j
    return (first[d:e], children, value)


def _build_live(paths: list[str], values: list[bytes | None], d: int) -> _Node | None:
    """:func:`_build` of the entries that have a value (deletions dropped); None if none has."""
    if None in values:
        live = [i for i, value in enumerate(values) if value is not None]
        paths, values = [paths[i] for i in live], [values[i] for i in live]
    return _build(paths, values, 0, len(paths), d) if paths else None


class Trie:
    """Reads and updates Merkle Patricia tries whose nodes live in a :class:`NodeStore`.

    A Trie object holds no root: every method takes the root to work on, so one Trie serves
    every historical state whose nodes are stored (the node is an archive node: nodes are
    never deleted). It keeps a bounded cache of decoded nodes, filled by reads and by every
    :meth:`compute_update` (whose new nodes are the next block's hot path); a cached node
    costs about 340 bytes plus its value, and only nodes whose value is at most
    :data:`MAX_CACHED_VALUE` bytes are cached, so the default of a million nodes is ~600 MB at
    most. (Bounded by count alone, a node that imported blocks of 1 MiB model weights kept
    them all: an outside tester's finding, 2026-11-30.) A node left out is read from the
    store when needed, so an update must build on a root whose nodes are stored.

    One thread at a time updates it (the node's import or authoring, under the node's lock);
    reads may run on other threads meanwhile (the event loop, RPC read threads): nodes are
    immutable and named by their hash, each operation on the cache dict is atomic under the
    GIL, and eviction tolerates another thread evicting the same entries.
    """

    EMPTY_ROOT: bytes = EMPTY_ROOT

    def __init__(self, store: NodeStore, *, cache_size: int = 1_000_000) -> None:
        self._store = store
        self._cache: dict[bytes, _Node] = {}
        self._cache_size = cache_size

    # --- node access ----------------------------------------------------------------------

    def _load(self, node_hash: bytes, parent: bytes | None) -> _Node:
        node = self._cache.get(node_hash)
        if node is not None:
            return node
        encoded = self._store.get(node_hash)
        if encoded is None:
            if parent is None:
                raise UnknownStateRoot(
                    f"state root 0x{node_hash.hex()} is unknown: no trie node is stored under it"
                )
            raise MissingTrieNode(
                f"trie node 0x{node_hash.hex()} (child of 0x{parent.hex()}) is not stored: "
                "the database is incomplete or corrupt"
            )
        try:
            node = _decode_node(encoded)
        except MalformedNode as exc:
            raise MalformedNode(
                f"stored trie node 0x{node_hash.hex()} is malformed: {exc}"
            ) from exc
        if compute_node_hash(encoded) != node_hash:
            raise MalformedNode(f"stored trie node 0x{node_hash.hex()} does not match its hash")
        self._remember(node_hash, node)
        return node

    def _remember(self, node_hash: bytes, node: _Node) -> None:
        value = node[-1]  # a leaf's value, a branch's own (None)
        if value is not None and len(value) > MAX_CACHED_VALUE:
            return
        self._cache[node_hash] = node
        if len(self._cache) > self._cache_size:
            self._evict()

    def _evict(self) -> None:
        # FIFO eviction of the oldest eighth: cheaper than LRU bookkeeping on every hit, and
        # the hot top of the trie is re-inserted by every update anyway.
        cache = self._cache
        for old in list(
            islice(cache, max(len(cache) - self._cache_size, self._cache_size // 8, 1))
        ):
            cache.pop(old, None)  # (an RPC read thread evicting at the same time may have taken it)

    def _load_root(self, root: bytes) -> _Node:
        # The cache also holds nodes of updates that were computed but maybe never stored
        # (they are content-addressed, so still correct); asking the store keeps "unknown
        # root" exact for roots that were never committed.
        if self._store.get(root) is None:
            raise UnknownStateRoot(
                f"state root 0x{root.hex()} is unknown: no trie node is stored under it"
            )
        return self._load(root, None)

    def clear_cache(self) -> None:
        self._cache.clear()

    def is_known_root(self, root: bytes) -> bool:
        """Whether ``root`` is the empty root or its root node is stored."""
        root = _check_root(root)
        return root == EMPTY_ROOT or self._store.get(root) is not None

    def mark_reachable(self, root: bytes, marked: set[bytes]) -> int:
        """Add to ``marked`` the hash of every node of the trie named by ``root``; returns how
        many were not in it yet (for pruning, chain.pruning).

        A node already in ``marked`` is not walked again: every node below one that a walk
        marked was marked by the same walk, so several states that share subtrees cost one
        visit a distinct node. Reads the store, not the cache (a node that is only cached is
        not stored), and checks each node as :meth:`_load` does: UnknownStateRoot for a root
        not stored, MissingTrieNode or MalformedNode for a node below it; ``marked`` is then
        incomplete and must not be used to delete anything."""
        root = _check_root(root)
        if root == EMPTY_ROOT or root in marked:
            return 0
        if self._store.get(root) is None:
            raise UnknownStateRoot(f"state root 0x{root.hex()} is unknown: no trie node is stored under it")
        added = 0
        stack = [(root, b"")]  # (node, its parent); the root's is never named: it is stored (above)
        while stack:
            node_hash, parent = stack.pop()
            if node_hash in marked:
                continue
            encoded = self._store.get(node_hash)
            if encoded is None:
                raise MissingTrieNode(
                    f"trie node 0x{node_hash.hex()} (child of 0x{parent.hex()}) is not stored: "
                    "the database is incomplete or corrupt"
                )
            if compute_node_hash(encoded) != node_hash:
                raise MalformedNode(f"stored trie node 0x{node_hash.hex()} does not match its hash")
            node = _decode_node(encoded)
            marked.add(node_hash)
            added += 1
            if len(node) == 3:
                stack.extend((child, node_hash) for child in node[1] if child is not None and child not in marked)
        return added

    # --- reads ------------------------------------------------------------------------------

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """The value of ``key`` in the trie named by ``root``, or None when absent."""
        root = _check_root(root)
        path = _check_key(key).hex()
        if root == EMPTY_ROOT:
            return None
        node_hash = root
        node = self._load_root(root)
        d = 0
        while True:
            value, child, d = _compute_step(node, path, d)
            if child is None:
                return value
            node = self._load(child, node_hash)
            node_hash = child

    def iter_items(
        self, root: bytes, prefix: bytes = b"", start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs under ``prefix``, in key order, strictly after ``start_after``.

        Subtrees that cannot hold a matching key are skipped without being loaded.
        """
        root = _check_root(root)
        pre = _check_key(prefix).hex()
        after = None if start_after is None else _check_key(start_after).hex()
        if root == EMPTY_ROOT:
            return iter(())
        return self._iter(self._load_root(root), root, "", pre, after)

    @staticmethod
    def _viable(path: str, pre: str, after: str | None) -> tuple[bool, str | None]:
        """Can keys starting with ``path`` start with ``pre`` and exceed ``after``? Also the
        bound still to check below ``path`` (None once every key under it is greater)."""
        n = min(len(path), len(pre))
        if path[:n] != pre[:n]:
            return False, after
        if after is None:
            return True, None
        n = min(len(path), len(after))
        head, bound = path[:n], after[:n]
        if head < bound:
            return False, after
        if head > bound or len(path) > len(after):
            return True, None
        return True, after

    def _iter(
        self, node: _Node, node_hash: bytes, above: str, pre: str, after: str | None
    ) -> Iterator[tuple[bytes, bytes]]:
        path = above + node[0]
        ok, after = self._viable(path, pre, after)
        if not ok:
            return
        value = node[-1]
        if value is not None and path.startswith(pre) and (after is None or path > after):
            yield bytes.fromhex(path), value
        if len(node) == 2:
            return
        for i, child in enumerate(node[1]):
            if child is None:
                continue
            ok, _ = self._viable(path + _HEX[i], pre, after)
            if ok:
                child_node = self._load(child, node_hash)
                yield from self._iter(child_node, child, path + _HEX[i], pre, after)

    def prove(self, root: bytes, keys: Sequence[bytes]) -> tuple[bytes, ...]:
        """The encoded nodes on the paths to ``keys`` (each node once, root first).

        Enough for :func:`verify_read_proof` to prove each key's value or its absence.
        """
        root = _check_root(root)
        paths = [_check_key(k).hex() for k in keys]
        if root == EMPTY_ROOT:
            return ()
        if self._store.get(root) is None:
            raise UnknownStateRoot(
                f"state root 0x{root.hex()} is unknown: no trie node is stored under it"
            )
        proof: dict[bytes, bytes] = {}
        for path in paths:
            node_hash = root
            parent: bytes | None = None
            d = 0
            while True:
                encoded = self._store.get(node_hash)
                if encoded is None:
                    raise MissingTrieNode(
                        f"trie node 0x{node_hash.hex()} (child of 0x{(parent or b'').hex()}) "
                        "is not stored: the database is incomplete or corrupt"
                    )
                proof.setdefault(node_hash, encoded)
                node = self._load(node_hash, parent)
                if len(node) == 2 or not path.startswith(node[0], d):
                    break
                d += len(node[0])
                if d == len(path):
                    break
                child = node[1][_NIBBLE[path[d]]]
                if child is None:
                    break
                parent, node_hash = node_hash, child
                d += 1
        return tuple(proof.values())

    # --- updates ------------------------------------------------------------------------------

    def compute_update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
        """Apply ``changes`` (key -> new value, None deletes) to the trie at ``root``.

        Pure: nothing is stored. Returns the new root and every node of the new trie that the
        old one lacks. Deleting an absent key is a no-op.
        """
        root = _check_root(root)
        # An update allocates tens of thousands of short-lived tuples and lists and creates no
        # reference cycles; left running, the cyclic GC rescans the large, old node cache many
        # times per block and halves the throughput. Reference counting frees all of it.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._compute_update(root, changes)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _compute_update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
        for key, value in changes.items():
            if type(key) is not bytes or len(key) > MAX_KEY_LEN:
                _check_key(key)
            if value is not None and type(value) is not bytes and not isinstance(value, bytes):
                raise StateError(
                    f"a storage value must be bytes or None, got {type(value).__name__}"
                )
        old = None if root == EMPTY_ROOT else self._load_root(root)
        if not changes:
            return TrieUpdate(root, MappingProxyType({}))
        # Two parallel lists, sorted by path: bisecting the paths alone compares strings,
        # not (path, value) tuples, on the hottest line of an update.
        unsorted = list(map(bytes.hex, changes))  # (bytes sort like their hex paths)
        changed = list(changes.values())
        order = sorted(range(len(unsorted)), key=unsorted.__getitem__)  # str keys: CPython's fastest compare
        paths = [unsorted[i] for i in order]
        values = [changed[i] for i in order]
        new = self._update(old, root, 0, paths, values, 0, len(paths), None in values)
        if new is None:
            return TrieUpdate(EMPTY_ROOT, MappingProxyType({}))
        nodes: dict[bytes, bytes] = {}
        # Sealing straight into the cache warms it for the next block's update.
        new_root = _seal(new, nodes, self._cache)
        if len(self._cache) > self._cache_size:
            self._evict()
        return TrieUpdate(new_root, MappingProxyType(nodes))

    def _update(
        self, node: _Node | None, node_hash: bytes, d: int, paths: list[str], values: list[bytes | None], lo: int, hi: int,
        deleting: bool,
    ) -> Any:
        """The subtree ``node`` (at depth d) with the changes ``lo:hi`` of ``paths``/``values``
        applied; they all share path[:d]. Returns a dirty node, or None for an empty subtree.
        ``deleting``: whether the update deletes any key (without deletions no branch can lose
        an entry, so none needs :meth:`_normalize`)."""
        if hi - lo == 1:
            return self._update_one(node, node_hash, d, paths[lo], values[lo])
        if node is None:
            return _build_live(paths[lo:hi], values[lo:hi], d)
        if len(node) == 2:
            leaf_path = paths[lo][:d] + node[0]
            k = bisect_left(paths, leaf_path, lo, hi)
            merged_paths, merged_values = paths[lo:hi], values[lo:hi]
            if not (k < hi and paths[k] == leaf_path):
                # (A change to this very key wins over the stored value.)
                merged_paths.insert(k - lo, leaf_path)
                merged_values.insert(k - lo, node[1])
            return _build_live(merged_paths, merged_values, d)
        partial, old_children, value = node
        first, last = paths[lo], paths[hi - 1]
        if first.startswith(partial, d) and last.startswith(partial, d):
            m = len(partial)  # every change goes below this node (sorted: first and last bound the rest)
        else:
            m = min(_common_len(first, d, partial), _common_len(last, d, partial))
        children: list[Any]
        if m < len(partial):
            # Some change leaves this node's partial path: split it where they diverge, the
            # old node becoming one child of a new branch. _normalize merges it back if the
            # changes were only deletions of absent keys.
            children = [None] * 16
            children[_NIBBLE[partial[m]]] = (partial[m + 1 :], old_children, value)
            partial = partial[:m]
            value = None
        else:
            children = list(old_children)
        e = d + len(partial)
        i = lo
        if len(first) == e:
            value = values[lo]
            i += 1
        cache = self._cache
        head = first[:e]
        while i < hi:
            path = paths[i]
            c = path[e]
            j = i + 1
            if j < hi and paths[j][e] == c:  # more than one change below this nibble (else no bisect)
                j = bisect_left(paths, head + _NEXT[c], j + 1, hi)
            idx = _NIBBLE[c]
            child = children[idx]
            if type(child) is bytes:
                child_hash = child
                child = cache.get(child_hash) or self._load(child_hash, node_hash)
            else:
                child_hash = node_hash
            if j - i == 1:
                # One change below: most often a new value for the key of a leaf there.
                new_value = values[i]
                if (
                    new_value is not None and child is not None and len(child) == 2
                    and len(path) - e - 1 == len(child[0]) and path.endswith(child[0])
                ):
                    children[idx] = (child[0], new_value)
                else:
                    children[idx] = self._update_one(child, child_hash, e + 1, path, new_value)
            else:
                children[idx] = self._update(child, child_hash, e + 1, paths, values, i, j, deleting)
            i = j
        if not deleting:  # every entry kept, at least one added if the path was split
            return (partial, children, value)
        return self._normalize(partial, children, value, node_hash)

    def _update_one(
        self, node: _Node | None, node_hash: bytes, d: int, path: str, value: bytes | None
    ) -> Any:
        """:meth:`_update` for a single change: the common case below the top levels."""
        if node is None:
            return None if value is None else (path[d:], value)
        partial = node[0]
        if len(node) == 2:
            if len(path) - d == len(partial) and path.endswith(partial):
                return None if value is None else (partial, value)
            if value is None:
                return node  # deleting an absent key
            leaf_path = path[:d] + partial
            if leaf_path < path:
                return _build([leaf_path, path], [node[1], value], 0, 2, d)
            return _build([path, leaf_path], [value, node[1]], 0, 2, d)
        if not path.startswith(partial, d):
            if value is None:
                return node
            m = _common_len(path, d, partial)
            e = d + m
            children: list[Any] = [None] * 16
            children[_NIBBLE[partial[m]]] = (partial[m + 1 :], node[1], node[2])
            if len(path) == e:
                return (partial[:m], children, value)
            children[_NIBBLE[path[e]]] = (path[e + 1 :], value)
            return (partial[:m], children, None)
        e = d + len(partial)
        children = list(node[1])
        if len(path) == e:
            if value is None:
                return self._normalize(partial, children, None, node_hash)
            return (partial, children, value)
        idx = _NIBBLE[path[e]]
        child = children[idx]
        if type(child) is bytes:
            children[idx] = self._update_one(
                self._load(child, node_hash), child, e + 1, path, value
            )
        else:
            children[idx] = self._update_one(child, node_hash, e + 1, path, value)
        if value is None:
            return self._normalize(partial, children, node[2], node_hash)
        return (partial, children, node[2])

    def _normalize(
        self, partial: str, children: list[Any], value: bytes | None, parent: bytes
    ) -> _Node | None:
        """The canonical node for these entries: never a branch with fewer than two."""
        count = 16 - children.count(None)
        if count == 0:
            return None if value is None else (partial, value)
        if count == 1 and value is None:
            idx = next(i for i, c in enumerate(children) if c is not None)
            child = children[idx]
            if type(child) is bytes:
                child = self._load(child, parent)
            if len(child) == 2:
                return (partial + _HEX[idx] + child[0], child[1])
            return (partial + _HEX[idx] + child[0], child[1], child[2])
        return (partial, children, value)


def _seal(node: _Node, nodes: dict[bytes, bytes], cache: dict[bytes, _Node]) -> bytes:
    """Hash a dirty subtree bottom-up, each node once; collect encodings, cache clean nodes.

    The hot path of a block's root (a block of transfers seals thousands of nodes, most of
    them leaves): each encoding is one concatenation, each hash a copy of a blake2b object
    made once (hashlib's keyword constructor costs more than the hash of a small node), and
    a branch seals its dirty leaves in its own loop rather than one call each.
    """
    if len(node) == 2:
        partial, value = node
        n = len(partial)
        encoded = _LEAF_HEAD[n] + _fromhex(partial + "0" if n & 1 else partial) + value
    else:
        partial, children, value = node
        if type(children) is not list:
            children = list(children)  # a clean node re-sealed (e.g. moved by a split)
        bitmap = 0
        hashes: list[bytes] = []  # the children's hashes, in nibble order
        for i, child in enumerate(children):
            if child is None:
                continue
            bitmap |= _BIT[i]
            if type(child) is not bytes:
                if len(child) == 2:  # a dirty leaf: _seal's first case, inline
                    leaf_partial = child[0]
                    n = len(leaf_partial)
                    leaf = _LEAF_HEAD[n] + _fromhex(leaf_partial + "0" if n & 1 else leaf_partial) + child[1]
                    hasher = _NODE_HASHER.copy()
                    hasher.update(leaf)
                    leaf_hash = hasher.digest()
                    nodes[leaf_hash] = leaf
                    if len(child[1]) <= MAX_CACHED_VALUE:
                        cache[leaf_hash] = child
                    child = children[i] = leaf_hash
                else:
                    child = children[i] = _seal(child, nodes, cache)
            hashes.append(child)
        n = len(partial)
        encoded = b"".join((
            b"\x02" if value is None else b"\x03",
            _LEB[n],
            _fromhex(partial + "0" if n & 1 else partial),
            bitmap.to_bytes(2, "little"),
            *hashes,
            b"" if value is None else value,
        ))
        node = (partial, tuple(children), value)
    hasher = _NODE_HASHER.copy()
    hasher.update(encoded)
    node_hash = hasher.digest()
    nodes[node_hash] = encoded
    if value is None or len(value) <= MAX_CACHED_VALUE:
        cache[node_hash] = node
    return node_hash


def verify_read_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The value of ``key`` proven by ``proof`` against ``root``, or None for proven absence.

    Raises ProofError when the proof does not establish either: a node on the key's path is
    missing (tampered or truncated proof), a node is malformed, or the input is ill-typed.
    Nodes not on the key's path are ignored, so one proof can serve several keys.
    """
    if type(root) is not bytes or len(root) != HASH_LEN:
        raise ProofError(f"a state root must be {HASH_LEN} bytes, got {root!r:.80}")
    if not isinstance(key, bytes):
        raise ProofError(f"a storage key must be bytes, got {type(key).__name__}")
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        raise ProofError(f"a proof must be a sequence of encoded nodes, got {type(proof).__name__}")
    if root == EMPTY_ROOT:
        return None
    if not proof:
        raise ProofError(f"empty proof cannot prove anything under root 0x{root.hex()}")
    by_hash: dict[bytes, bytes] = {}
    for i, item in enumerate(proof):
        if not isinstance(item, bytes):
            raise ProofError(f"proof node {i} must be bytes, got {type(item).__name__}")
        by_hash[compute_node_hash(item)] = item
    path = key.hex()
    node_hash = root
    d = 0
    while True:
        encoded = by_hash.get(node_hash)
        if encoded is None:
            where = "the root node" if node_hash == root else f"node 0x{node_hash.hex()}"
            raise ProofError(
                f"proof for key 0x{key.hex()} lacks {where} at nibble {d} of the path "
                "(the proof is incomplete or was tampered with)"
            )
        try:
            node = _decode_node(encoded)
        except MalformedNode as exc:
            raise ProofError(f"proof node 0x{node_hash.hex()} is malformed: {exc}") from exc
        value, child, d = _compute_step(node, path, d)
        if child is None:
            return value
        node_hash = child
