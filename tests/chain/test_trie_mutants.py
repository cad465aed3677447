"""Mutation testing of chain/trie.py: node decoding, roots, batched updates and read proofs.

Run by name (``rm -rf mutants && mutmut run "chain.trie*" --max-children 2``; the module is
in ``[tool.mutmut] only_mutate``; narrower, e.g. ``"chain.trie.x__decode*"``). Scores
measured as tests/chain/test_signatures_mutants.py says, with the selection narrowed to the
fast tests of the three modules (about 12 minutes on 2 cores; the configured selection
holds them and more, which can only kill more).

Before these tests 1020 of 1149 mutants were caught (9 by a timeout) and 129 lived: every
refusal message of node decoding (a five-byte LEB128 length, the length bounds at 512/513
nibbles, a branch of exactly two bitmap bytes), ``_encode_leb128`` (its table is built at
import, so no test ran it under a mutant), the parent named when a node is missing from the
database (a mutant reported a missing child as an unknown state root), the cache and its
eviction, the collector left disabled after an update, iteration loading subtrees it should
skip and the wrong-node message of a truncated proof. A rerun with the new tests showed two
more that change a root and that the random property tests of tests/chain/test_trie.py
catch only by chance: the shortcut that replaces a leaf's value also taking a longer leaf
whose path merely ends with the changed key's nibbles. Now 1113/1149, no defect found; the
36 survivors are equivalent:

- ``_decode_node``: ``shift > 29`` for ``> 28`` (shift is a multiple of 7: both first hold
  at 35); ``range(17)`` over the bitmap (a u16 has no bit 16).
- ``_common_len``: ``hi = n + 1`` (the strings differ within n, so the answer is at most
  n - 1: a wider search, the same answer); ``mid = (lo + hi + 2) // 2`` (still in
  ``(lo, hi]``: the search ends at the same answer).
- ``_build`` (6): ``hi + lo == 1`` and ``j + i == 1`` for the differences, or the one-entry
  test dropped (a range of one entry reaches ``_build`` only at ``lo = 0``, and ``_build``
  of one entry is that same leaf); the ``bisect_left`` bounds ``hi`` -> ``None``/dropped and
  ``j + 1`` -> ``j - 1`` (the paths under one node are a contiguous run of the sorted list,
  so a wider search finds the same point).
- ``_update`` (9): the same for its range tests and bisects (``hi + lo``, ``j + i``, 5 bisect
  bounds); ``cache.get(None)`` (``_load`` consults the cache itself); ``len(path) - e - 2``
  in the leaf shortcut (would need two keys whose lengths differ by one nibble: keys are
  whole bytes).
- ``_update_one``: ``leaf_path <= path`` (equal paths returned earlier); the child and hash
  passed down when the slot holds no hash (2: a node reaching ``_update_one`` has only hashes
  or None as children, so that child is None and nothing below it is loaded).
- ``_seal`` (5): the pad nibble of a leaf sealed by the first case (3: only a root leaf is
  sealed there, its partial path the whole key, an even count); the ``list(children)``
  conversion forced or skipped (2: a clean node's children are all hashes, never assigned).
- ``_compute_update`` (3): the cheap guard before ``_check_key`` and the value check (the
  full check gives the same verdict).
- ``_evict``: the ``1`` in ``max(...)`` (it runs only when the cache is over its size, so the
  overflow term is at least 1).
- ``_viable``: ``and`` for ``or`` keeps a bound every key below already exceeds.
- ``_load``: the unknown-root message (``None``): unreachable, every caller checks the
  store for the root first. ``prove`` (3): the root's parent (``""``, ``b"XXXX"``, ``None``
  passed to ``_load``), likewise: the root is known stored before the walk.

Timeouts (9, counted as caught): loops that no longer end in ``_encode_leb128``,
``_common_len`` and ``_update``.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import random

import pytest

from chain import trie as trie_module
from chain.errors import MalformedNode, MissingTrieNode, ProofError, StateError, UnknownStateRoot
from chain.trie import (
    EMPTY_ROOT,
    MemoryNodeStore,
    Trie,
    _common_len,
    _decode_node,
    _encode_leb128,
    compute_node_hash,
    verify_read_proof,
)

# The fixture trie (hex paths): R is a branch at "" with children 1 -> X, 2 -> leaf C, 4 -> Y;
# X a branch at "1" + "00" with leaves A ("1000") and B ("1001"); Y a branch at "4" + "0"
# holding E's value ("40") with one child, leaf F ("4000").
A, B, C, E, F = b"\x10\x00", b"\x10\x01", b"\x20\x00", b"\x40", b"\x40\x00"
D = b"\x11\x00"  # not in the trie: its path leaves X's partial path "00" at once
STATE = {A: b"a", B: b"b", C: b"c", E: b"e", F: b"f"}


def _fixture() -> tuple[MemoryNodeStore, bytes, dict[str, bytes]]:
    """The stored fixture trie, its root, and the hash of each of its 7 nodes by name."""
    store = MemoryNodeStore()
    update = Trie(store).compute_update(EMPTY_ROOT, STATE)
    store.update(update.nodes)
    names = {"R": update.root}
    for node_hash, encoded in update.nodes.items():
        node = _decode_node(encoded)
        if len(node) == 2:
            names[{b"a": "A", b"b": "B", b"c": "C", b"f": "F"}[node[1]]] = node_hash
        elif node[2] == b"e":
            names["Y"] = node_hash
        elif node[0] == "00":
            names["X"] = node_hash
    assert len(update.nodes) == 7 and len(names) == 7
    assert _decode_node(store[names["Y"]]) == ("0", (names["F"], *[None] * 15), b"e")
    return store, update.root, names


def _missing(child: bytes, parent: bytes) -> str:
    return f"trie node 0x{child.hex()} (child of 0x{parent.hex()}) is not stored: the database is incomplete or corrupt"


def _refusal(exc_type: type[Exception], fn, *args) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args)
    assert type(info.value) is exc_type
    return str(info.value)


# --- a node missing from the database is named with its parent, on every path -------------------

# (what is done, the node deleted from the store, the parent the refusal must name)
_MISSING_CASES = [
    ("get A", "X", "R"),
    ("get A", "A", "X"),
    ("update A", "X", "R"),  # one change: _update_one from the root
    ("update A", "A", "X"),
    ("update A B", "A", "X"),  # two changes below X: _update into X
    ("update A C", "X", "R"),  # two changes below R, one into X
    ("update A D", "A", "X"),  # X's partial path split, then A's change below the old X
    ("delete C E F", "X", "R"),  # R left with X alone: merged with it, so X is loaded
    ("delete E", "F", "Y"),  # Y loses its value, left with F alone
    ("delete A", "B", "X"),  # X left with B alone
    ("iterate", "X", "R"),
    ("iterate", "A", "X"),
    ("prove A", "X", "R"),
    ("prove A", "A", "X"),
]


def _run(what: str, trie: Trie, root: bytes) -> object:
    verb, *names = what.split()
    keys = [{"A": A, "B": B, "C": C, "D": D, "E": E, "F": F}[n] for n in names]
    if verb == "get":
        return trie.get(root, keys[0])
    if verb == "update":
        return trie.compute_update(root, dict.fromkeys(keys, b"new"))
    if verb == "delete":
        return trie.compute_update(root, dict.fromkeys(keys))
    if verb == "iterate":
        return list(trie.iter_items(root))
    return trie.prove(root, keys)


@pytest.mark.parametrize(("what", "gone", "parent"), _MISSING_CASES)
def test_a_missing_node_is_missing_trie_node_naming_its_parent(what: str, gone: str, parent: str) -> None:
    """Not ``UnknownStateRoot`` (the root is stored): the error says which node's child is
    absent, so an operator can tell a corrupt database from a state that was never committed."""
    store, root, names = _fixture()
    _run(what, Trie(store), root)  # works while every node is stored
    del store[names[gone]]
    message = _refusal(MissingTrieNode, _run, what, Trie(store), root)
    assert message == _missing(names[gone], names[parent])


def test_an_unknown_root_is_named_as_such() -> None:
    store, _, _ = _fixture()
    other = bytes(range(32))
    unknown = f"state root 0x{other.hex()} is unknown: no trie node is stored under it"
    for fn in (lambda: Trie(store).prove(other, [A]), lambda: Trie(store).get(other, A),
               lambda: Trie(store).compute_update(other, {A: b"x"}), lambda: list(Trie(store).iter_items(other))):
        assert _refusal(UnknownStateRoot, fn) == unknown


def test_iteration_skips_subtrees_outside_its_prefix_and_start_without_loading_them() -> None:
    """The doc's promise, made testable: with X (keys under 0x10) missing, reads that cannot
    reach X still answer, so X was never loaded."""
    store, root, names = _fixture()
    del store[names["X"]]
    trie = Trie(store)
    assert list(trie.iter_items(root, prefix=b"\x40")) == [(E, b"e"), (F, b"f")]
    assert list(trie.iter_items(root, prefix=b"\x20")) == [(C, b"c")]
    assert list(trie.iter_items(root, start_after=b"\x20")) == [(C, b"c"), (E, b"e"), (F, b"f")]
    assert list(trie.iter_items(root, start_after=b"\x20\x00")) == [(E, b"e"), (F, b"f")]
    assert list(trie.iter_items(root, prefix=b"\x40", start_after=b"\x40")) == [(F, b"f")]


# --- the node cache -------------------------------------------------------------------------------


class _CountingStore(MemoryNodeStore):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.reads = 0

    def get(self, key, default=None):  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)


def test_a_node_is_read_from_the_store_once_then_served_from_the_cache() -> None:
    store, root, _ = _fixture()
    counting = _CountingStore(store)
    trie = Trie(counting)
    assert trie.get(root, A) == b"a"
    assert counting.reads == 1 + 3  # the root check, then R, X and A
    assert trie.get(root, A) == b"a" and trie.get(root, B) == b"b"
    assert counting.reads == 4 + 1 + 1 + 1  # the root checks and B only
    assert trie.compute_update(root, {A: None, B: b"bb"}).root == Trie(MemoryNodeStore()).compute_update(
        EMPTY_ROOT, {**STATE, A: None, B: b"bb"}
    ).root
    assert counting.reads == 7 + 1  # the root check: every node it touched was cached


def test_every_node_an_update_makes_is_cached_as_its_decoding() -> None:
    """Sealing fills the cache (the next block's hot path) with exactly what reading each new
    node back from the store would give."""
    trie = Trie(MemoryNodeStore())
    update = trie.compute_update(EMPTY_ROOT, {**STATE, b"\x10": b"branch value", b"\x55" * 40: b"long"})
    assert update.nodes and set(update.nodes) <= set(trie._cache)
    for node_hash, encoded in update.nodes.items():
        assert compute_node_hash(encoded) == node_hash
        assert trie._cache[node_hash] == _decode_node(encoded)


def test_the_cache_holds_cache_size_nodes_and_evicts_the_oldest_eighth() -> None:
    """Up to ``cache_size`` nodes stay; one more evicts the oldest max(overflow, size // 8, 1)."""
    def filled(size: int, count: int) -> list[bytes]:
        trie = Trie(MemoryNodeStore(), cache_size=size)
        for i in range(count):
            trie._remember(bytes([i]) * 32, ("", b""))
        return list(trie._cache)

    keys = [bytes([i]) * 32 for i in range(40)]
    assert filled(16, 16) == keys[:16]
    assert filled(16, 17) == keys[2:17]  # 16 // 8 = 2 evicted
    assert filled(8, 8) == keys[:8]
    assert filled(8, 9) == keys[1:9]  # 8 // 8 = 1
    assert filled(4, 5) == keys[1:5]  # 4 // 8 = 0: still one


def test_an_update_that_overfills_the_cache_leaves_exactly_cache_size_nodes() -> None:
    trie = Trie(MemoryNodeStore(), cache_size=7)
    update = trie.compute_update(EMPTY_ROOT, STATE)  # 7 nodes: the cache is exactly full
    assert len(update.nodes) == 7 and set(trie._cache) == set(update.nodes)
    trie = Trie(MemoryNodeStore(), cache_size=3)
    update = trie.compute_update(EMPTY_ROOT, STATE)  # 7 sealed, 4 over: the 4 oldest go
    assert list(trie._cache) == list(update.nodes)[-3:] and update.root in trie._cache
    assert Trie(MemoryNodeStore())._cache_size == 1_000_000


@pytest.mark.parametrize("enabled", [True, False])
def test_compute_update_restores_the_collectors_state(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, STATE)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


# --- decoding: every non-canonical form refused with its reason -----------------------------------


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_leb128_encodes_the_minimal_form() -> None:
    for n in [0, 1, 5, 127, 128, 129, 255, 300, 512, 16383, 16384, 2**21 + 5, 2**35]:
        assert _encode_leb128(n) == _leb(n)
    assert _encode_leb128(0) == b"\x00"
    assert _encode_leb128(127) == b"\x7f"
    assert _encode_leb128(128) == b"\x80\x01"
    assert _encode_leb128(300) == b"\xac\x02"
    assert _encode_leb128(2**14) == b"\x80\x80\x01"


_HASH1, _HASH2 = bytes(range(32)), bytes(range(1, 33))

_MALFORMED = [
    (b"", "empty byte string is not a trie node"),
    (b"\x00", "the empty node (0x00) is never stored; only EMPTY_ROOT names it"),
    (b"\x04\x00", "unknown trie node kind 0x04"),
    (b"\xff", "unknown trie node kind 0xff"),
    (b"\x01", "trie node truncated inside its partial path length"),
    (b"\x01\x80", "trie node truncated inside its partial path length"),
    (b"\x01\x80\x00", "non-minimal LEB128 partial path length in trie node"),
    (b"\x01\x81\x80\x00", "non-minimal LEB128 partial path length in trie node"),
    (b"\x01\x80\x80\x01", "partial path of 16384 nibbles exceeds the longest key"),
    (b"\x01\x80\x80\x80\x80\x01", "partial path of 268435456 nibbles exceeds the longest key"),
    (b"\x01\x80\x80\x80\x80\x80\x01", "partial path length of trie node is too large"),
    (b"\x01" + _leb(513) + bytes(257), "partial path of 513 nibbles exceeds the longest key"),
    (b"\x01\x04\xab", "trie node truncated inside its partial path"),
    (b"\x01\x03\xab\xc1", "odd partial path of trie node has a non-zero pad nibble"),
    (b"\x02\x00", "branch node truncated inside its child bitmap"),
    (b"\x02\x00\x03", "branch node truncated inside its child bitmap"),
    (b"\x02\x00\x00\x00", "branch node without value has 0 child(ren); needs 2"),
    (b"\x02\x00\x01\x00" + _HASH1, "branch node without value has 1 child(ren); needs 2"),
    (b"\x02\x00\x03\x00" + _HASH1 + _HASH2[:31], "branch node truncated inside its child hashes"),
    (b"\x02\x00\x03\x00" + _HASH1 + _HASH2 + b"xyz", "branch node has 3 trailing bytes"),
    (b"\x03\x00\x00\x00value", "branch node with a value but no child should be a leaf"),
]


@pytest.mark.parametrize(("encoded", "reason"), _MALFORMED)
def test_each_non_canonical_node_is_refused_with_its_reason(encoded: bytes, reason: str) -> None:
    assert _refusal(MalformedNode, _decode_node, encoded) == reason
    # The same refusal, as a peer's proof gets it: a root that names the bad node (0x00's
    # hash is EMPTY_ROOT, the empty trie, which needs no proof).
    root = compute_node_hash(encoded)
    if root == EMPTY_ROOT:
        assert verify_read_proof(root, A, [encoded]) is None
        return
    message = _refusal(ProofError, verify_read_proof, root, A, [encoded])
    assert message == f"proof node 0x{root.hex()} is malformed: {reason}"


def test_decode_refuses_what_is_not_bytes_by_its_type() -> None:
    assert _refusal(MalformedNode, _decode_node, bytearray(b"\x01\x00")) == "a trie node must be bytes, got bytearray"
    assert _refusal(MalformedNode, _decode_node, "0100") == "a trie node must be bytes, got str"


def test_the_longest_canonical_forms_decode_exactly() -> None:
    """The edges just inside every bound: 512 nibbles (a 256-byte key), a two- and a
    three-byte LEB128 length, an odd count, all 16 children, a branch with value and one child."""
    assert _decode_node(b"\x01" + _leb(512) + bytes(range(256)) + b"v") == (bytes(range(256)).hex(), b"v")
    assert _decode_node(b"\x01\x81\x01" + bytes(65) + b"v") == ("0" * 129, b"v")
    odd = _decode_node(b"\x01\xff\x01" + b"\xab" * 127 + b"\xc0")  # 255 nibbles
    assert odd == ("ab" * 127 + "c", b"")
    assert _decode_node(b"\x01\x03\xab\xc0") == ("abc", b"")
    children = [bytes([i]) * 32 for i in range(16)]
    assert _decode_node(b"\x02\x00\xff\xff" + b"".join(children)) == ("", tuple(children), None)
    assert _decode_node(b"\x03\x01\x50\x00\x80" + _HASH1 + b"val") == ("5", (*[None] * 15, _HASH1), b"val")
    assert _decode_node(b"\x03\x00\x01\x00" + _HASH1) == ("", (_HASH1, *[None] * 15), b"")


# --- read proofs ------------------------------------------------------------------------------


def test_a_tampered_or_truncated_proof_is_refused_naming_the_missing_node() -> None:
    store, root, names = _fixture()
    proof = Trie(store).prove(root, [A])
    assert len(proof) == 3 and verify_read_proof(root, A, proof) == b"a"
    lacks_x = f"proof for key 0x{A.hex()} lacks node 0x{names['X'].hex()} at nibble 1 of the path (the proof is incomplete or was tampered with)"
    lacks_a = f"proof for key 0x{A.hex()} lacks node 0x{names['A'].hex()} at nibble 4 of the path (the proof is incomplete or was tampered with)"
    lacks_root = f"proof for key 0x{A.hex()} lacks the root node at nibble 0 of the path (the proof is incomplete or was tampered with)"
    assert _refusal(ProofError, verify_read_proof, root, A, [store[names["R"]], store[names["A"]]]) == lacks_x
    assert _refusal(ProofError, verify_read_proof, root, A, proof[:2]) == lacks_a
    assert _refusal(ProofError, verify_read_proof, root, A, proof[1:]) == lacks_root
    # A node with a byte appended, cut short, or with a changed value is another node.
    for forged in (store[names["A"]] + b"\0", store[names["A"]][:-1], store[names["A"]][:-1] + b"z"):
        assert _refusal(ProofError, verify_read_proof, root, A, [proof[0], proof[1], forged]) == lacks_a
    assert _refusal(ProofError, verify_read_proof, root, A, []) == f"empty proof cannot prove anything under root 0x{root.hex()}"
    # The proof is a set of nodes named by their hashes: their order, and nodes off the
    # key's path, change nothing (so one proof serves several keys).
    assert verify_read_proof(root, A, proof[::-1]) == b"a"
    assert verify_read_proof(root, A, [*proof, store[names["Y"]], store[names["C"]]]) == b"a"
    assert verify_read_proof(root, b"\x10\x02", proof) is None  # absent: X has no child 2


def test_proof_input_of_the_wrong_type_is_named() -> None:
    _, root, _ = _fixture()
    assert _refusal(ProofError, verify_read_proof, root, "1000", []) == "a storage key must be bytes, got str"
    assert _refusal(ProofError, verify_read_proof, root, A, 5) == "a proof must be a sequence of encoded nodes, got int"
    assert _refusal(ProofError, verify_read_proof, root, A, b"\x01") == "a proof must be a sequence of encoded nodes, got bytes"
    assert _refusal(ProofError, verify_read_proof, root, A, [b"\x01", "x"]) == "proof node 1 must be bytes, got str"
    assert _refusal(ProofError, verify_read_proof, root[:31], A, []).startswith("a state root must be 32 bytes, got b")


def test_bad_keys_and_values_in_an_update_are_named_by_type() -> None:
    trie = Trie(MemoryNodeStore())
    assert _refusal(StateError, trie.compute_update, EMPTY_ROOT, {"k": b"v"}) == "a storage key must be bytes, got str"
    assert _refusal(StateError, trie.compute_update, EMPTY_ROOT, {b"k": "v"}) == "a storage value must be bytes or None, got str"
    assert _refusal(StateError, trie.compute_update, EMPTY_ROOT, {b"k": 1}) == "a storage value must be bytes or None, got int"
    assert _refusal(StateError, trie.get, EMPTY_ROOT, 5) == "a storage key must be bytes, got int"


# --- the common-prefix search and the roots it shapes -------------------------------------------


def test_common_len_is_the_common_prefix_at_every_length() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        b = "".join(rng.choice("0af") for _ in range(rng.randint(1, 12)))
        a_from = rng.randint(0, 3)
        a = "".join(rng.choice("0af") for _ in range(a_from)) + b[: rng.randint(0, len(b))] + rng.choice(["", "1", "f0", b])
        if len(a) <= a_from:
            continue
        expected = next(
            (i for i, (x, y) in enumerate(zip(a[a_from:], b, strict=False)) if x != y), min(len(a) - a_from, len(b))
        )
        assert _common_len(a, a_from, b) == expected, (a, a_from, b)
    assert _common_len("abcdef", 0, "abcdeX") == 5  # they differ at the last place they share


def test_roots_are_pinned_for_splits_merges_and_branch_values() -> None:
    """The root of each shape, by hand from the encoding: a regression in any update path
    changes a consensus hash."""
    def h(data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=32).digest()

    leaf_a, leaf_b = h(b"\x01\x00a"), h(b"\x01\x00b")
    x = h(b"\x02\x02\x00\x03\x00" + leaf_a + leaf_b)  # partial "00", children 0 and 1
    c = h(b"\x01\x03\x00\x00c")  # partial "000", padded to two bytes
    y = h(b"\x03\x01\x00\x01\x00" + h(b"\x01\x01\x00f") + b"e")
    r = h(b"\x02\x00\x16\x00" + x + c + y)  # bitmap: nibbles 1, 2, 4
    trie = Trie(MemoryNodeStore())
    assert trie.compute_update(EMPTY_ROOT, STATE).root == r
    # Every order and split of the same writes and deletions gives the same roots.
    for order in itertools.permutations(STATE):
        assert Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, {k: STATE[k] for k in order}).root == r
    store, root, _ = _fixture()
    t = Trie(store)
    split = t.compute_update(root, {D: b"d", A: b"a2"}).root
    assert split == Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, {**STATE, D: b"d", A: b"a2"}).root
    merged = t.compute_update(root, {C: None, E: None, F: None}).root
    assert merged == h(b"\x02\x03\x10\x00\x03\x00" + leaf_a + leaf_b)  # X, partial "100", is the root
    assert t.compute_update(root, {E: None}).root == Trie(MemoryNodeStore()).compute_update(
        EMPTY_ROOT, {k: v for k, v in STATE.items() if k != E}
    ).root
    assert t.compute_update(root, {b"\x30": None, b"\x10": None}).root == root  # absent keys
    assert h(b"\x00") == trie_module.EMPTY_ROOT


@pytest.mark.parametrize(
    ("stored", "changes"),
    [
        # X at "100" (the root) with leaves "100000" and "1001"; 0x1000 ends with the partial
        # "00" of the leaf at X's nibble 0, two nibbles short of its key.
        ({b"\x10\x00\x00": b"v1", b"\x10\x01": b"v2"}, {b"\x10\x00": b"new", b"\x10\x01": b"v3"}),
        # A root at "1" with a leaf whose partial is the changed key's whole path.
        ({b"\x10\x10\x00": b"v1", b"\x11\x00": b"v2"}, {b"\x10\x00": b"new", b"\x11\x00": b"v3"}),
    ],
)
def test_a_new_value_replaces_a_leafs_value_only_for_that_leafs_own_key(
    stored: dict[bytes, bytes], changes: dict[bytes, bytes]
) -> None:
    """The shortcut for a changed key whose leaf is already there must not take a longer
    leaf whose path merely ends with the same nibbles: the new key gets a leaf of its own."""
    store = MemoryNodeStore()
    trie = Trie(store)
    old = trie.compute_update(EMPTY_ROOT, stored)
    store.update(old.nodes)
    new = trie.compute_update(old.root, changes)
    store.update(new.nodes)
    expected = {**stored, **changes}
    assert new.root == Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, expected).root
    assert list(trie.iter_items(new.root)) == sorted(expected.items())
