"""chain.trie: canonical roots, reads, ordered iteration, read proofs and bad input."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import MalformedNode, MissingTrieNode, ProofError, StateError, UnknownStateRoot
from chain.trie import (
    EMPTY_ROOT,
    MAX_CACHED_VALUE,
    MAX_KEY_LEN,
    MemoryNodeStore,
    Trie,
    compute_node_hash,
    verify_read_proof,
)

# Keys from a tiny alphabet share prefixes and are often prefixes of each other, which
# exercises splits, merges and branch values far more than random 32-byte keys would.
keys = st.lists(st.sampled_from([0x00, 0x01, 0x10, 0x1F, 0xFF]), max_size=4).map(bytes)
values = st.binary(max_size=6)
states = st.dictionaries(keys, values, max_size=40)


def _apply(trie: Trie, root: bytes, changes: dict[bytes, bytes | None]) -> bytes:
    update = trie.compute_update(root, changes)
    trie._store.update(update.nodes)  # type: ignore[attr-defined]
    return update.root


def _fresh_root(state: dict[bytes, bytes]) -> bytes:
    return Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, state).root


def test_empty_root_is_the_hash_of_the_empty_node() -> None:
    assert hashlib.blake2b(b"\x00", digest_size=32).digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314"
    assert Trie.EMPTY_ROOT == EMPTY_ROOT
    assert _fresh_root({}) == EMPTY_ROOT
    assert Trie(MemoryNodeStore()).compute_update(EMPTY_ROOT, {b"a": None}).root == EMPTY_ROOT


def test_get_and_iterate_match_a_dict_model() -> None:
    rng = random.Random(7)
    trie = Trie(MemoryNodeStore(), cache_size=64)  # small cache: exercise eviction and reloads
    root = EMPTY_ROOT
    model: dict[bytes, bytes] = {}
    for _ in range(60):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(rng.randint(1, 25)):
            key = bytes(rng.choice(b"\x00\x01\xab\xff") for _ in range(rng.randint(0, 5)))
            changes[key] = None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 40))
        root = _apply(trie, root, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert root == _fresh_root(model)
        for key in changes:
            assert trie.get(root, key) == model.get(key)
        assert list(trie.iter_items(root)) == sorted(model.items())


def test_empty_value_is_present_and_empty_key_is_a_key() -> None:
    trie = Trie(MemoryNodeStore())
    root = _apply(trie, EMPTY_ROOT, {b"": b"root value", b"k": b""})
    assert trie.get(root, b"") == b"root value"
    assert trie.get(root, b"k") == b""
    assert trie.get(root, b"kk") is None
    assert root != _apply(trie, EMPTY_ROOT, {b"": b"root value"})


@settings(max_examples=150, deadline=None)
@given(state=states, seed=st.integers(0, 2**32), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_root_is_independent_of_order_and_of_commit_boundaries(
    state: dict[bytes, bytes], seed: int, cuts: list[int]
) -> None:
    expected = _fresh_root(state)
    items = list(state.items())
    random.Random(seed).shuffle(items)
    # One key per commit, in a random order.
    trie = Trie(MemoryNodeStore())
    root = EMPTY_ROOT
    for key, value in items:
        root = _apply(trie, root, {key: value})
    assert root == expected
    # The same writes split into arbitrary commits, with noise written then deleted.
    trie = Trie(MemoryNodeStore())
    root = EMPTY_ROOT
    bounds = sorted({0, len(items), *(c for c in cuts if c < len(items))})
    for lo, hi in itertools.pairwise(bounds):
        chunk: dict[bytes, bytes | None] = dict(items[lo:hi])
        noise = b"\x07noise" + bytes([lo % 256])
        root = _apply(trie, root, {**chunk, noise: b"x"})
        root = _apply(trie, root, {noise: None})
    assert root == expected


@settings(max_examples=60, deadline=None)
@given(before=states, extra=states)
def test_deleting_added_keys_returns_to_the_earlier_root(
    before: dict[bytes, bytes], extra: dict[bytes, bytes]
) -> None:
    trie = Trie(MemoryNodeStore())
    root = _apply(trie, EMPTY_ROOT, dict(before))
    added = {k: v for k, v in extra.items() if k not in before}
    grown = _apply(trie, root, dict(added))
    assert _apply(trie, grown, dict.fromkeys(added)) == root
    assert _apply(trie, root, dict.fromkeys(before)) == EMPTY_ROOT


@settings(max_examples=60, deadline=None)
@given(state=states, probe=keys)
def test_proofs_of_presence_and_absence_verify(state: dict[bytes, bytes], probe: bytes) -> None:
    trie = Trie(MemoryNodeStore())
    root = _apply(trie, EMPTY_ROOT, dict(state))
    asked = [*list(state)[:3], probe]
    proof = trie.prove(root, asked)
    for key in asked:
        assert verify_read_proof(root, key, proof) == state.get(key)
        assert verify_read_proof(root, key, trie.prove(root, [key])) == state.get(key)


def _proof_fixture() -> tuple[bytes, tuple[bytes, ...], Trie]:
    trie = Trie(MemoryNodeStore())
    state = {hashlib.blake2b(bytes([i])).digest()[:6]: bytes([i]) * 3 for i in range(200)}
    state[b"acct:alice"] = b"100"
    root = _apply(trie, EMPTY_ROOT, dict(state))
    return root, trie.prove(root, [b"acct:alice", b"acct:bob"]), trie


def test_every_flipped_byte_in_a_proof_is_detected() -> None:
    root, proof, _ = _proof_fixture()
    assert verify_read_proof(root, b"acct:alice", proof) == b"100"
    assert verify_read_proof(root, b"acct:bob", proof) is None
    for i, node in enumerate(proof):
        for j in range(len(node)):
            bad = bytearray(node)
            bad[j] ^= 0x01
            tampered = (*proof[:i], bytes(bad), *proof[i + 1 :])
            with pytest.raises(ProofError):
                verify_read_proof(root, b"acct:alice", tampered)


def test_incomplete_empty_and_foreign_proofs_fail() -> None:
    root, proof, _ = _proof_fixture()
    with pytest.raises(ProofError, match="lacks"):
        verify_read_proof(root, b"acct:alice", proof[:-1])
    with pytest.raises(ProofError, match="lacks the root node"):
        verify_read_proof(root, b"acct:alice", proof[1:])
    with pytest.raises(ProofError, match="empty proof"):
        verify_read_proof(root, b"acct:alice", ())
    with pytest.raises(ProofError, match="lacks the root node"):
        verify_read_proof(bytes(32), b"acct:alice", proof)
    assert verify_read_proof(EMPTY_ROOT, b"anything", ()) is None


def test_malformed_proof_input_raises_proof_error() -> None:
    root, proof, _ = _proof_fixture()
    with pytest.raises(ProofError, match="32 bytes"):
        verify_read_proof(root[:31], b"k", proof)
    with pytest.raises(ProofError, match="key must be bytes"):
        verify_read_proof(root, "k", proof)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="sequence"):
        verify_read_proof(root, b"k", proof[0])
    with pytest.raises(ProofError, match="must be bytes"):
        verify_read_proof(root, b"k", [*proof, 5])  # type: ignore[list-item]
    # A node that hashes to the root but does not decode.
    garbage = b"\x09garbage"
    with pytest.raises(ProofError, match="malformed: unknown trie node kind"):
        verify_read_proof(compute_node_hash(garbage), b"k", [garbage])


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (b"", "empty byte string"),
        (b"\x00", "empty node"),
        (b"\x04\x00", "unknown trie node kind"),
        (b"\x01", "truncated inside its partial path length"),
        (b"\x01\x80\x00v", "non-minimal LEB128"),
        (b"\x01\x03\xab", "truncated inside its partial path"),
        (b"\x01\x01\xa1v", "non-zero pad nibble"),
        (b"\x02\x00\x03", "truncated inside its child bitmap"),
        (b"\x02\x00\x03\x00" + bytes(40), "truncated inside its child hashes"),
        (b"\x02\x00\x01\x00" + bytes(32), "needs 2"),
        (b"\x02\x00\x03\x00" + bytes(64) + b"x", "trailing bytes"),
        (b"\x03\x00\x00\x00value", "should be a leaf"),
    ],
)
def test_malformed_stored_nodes_raise_malformed_node(encoded: bytes, message: str) -> None:
    # (0x00 hashes to EMPTY_ROOT, which is never looked up: store it under another name.)
    root = compute_node_hash(encoded) if encoded != b"\x00" else b"\x11" * 32
    trie = Trie(MemoryNodeStore({root: encoded}))
    with pytest.raises(MalformedNode, match=message):
        trie.get(root, b"key")


def test_a_stored_node_that_does_not_match_its_hash_is_refused() -> None:
    trie = Trie(MemoryNodeStore({b"\x22" * 32: b"\x01\x00value"}))
    with pytest.raises(MalformedNode, match="does not match its hash"):
        trie.get(b"\x22" * 32, b"")


def test_missing_nodes_unknown_roots_and_bad_keys() -> None:
    store = MemoryNodeStore()
    trie = Trie(store, cache_size=1)
    root = _apply(trie, EMPTY_ROOT, {bytes([i, j]): b"v" for i in range(4) for j in range(4)})
    with pytest.raises(UnknownStateRoot, match="unknown"):
        trie.get(bytes(32), b"k")
    with pytest.raises(UnknownStateRoot):
        trie.compute_update(bytes(32), {b"k": b"v"})
    with pytest.raises(StateError, match="32 bytes"):
        trie.get(b"short", b"k")
    with pytest.raises(StateError, match="key must be bytes"):
        trie.get(root, "k")  # type: ignore[arg-type]
    with pytest.raises(StateError, match="key must be bytes"):
        trie.compute_update(root, {"k": b"v"})  # type: ignore[dict-item]
    with pytest.raises(StateError, match="value must be bytes"):
        trie.compute_update(root, {b"k": 5})  # type: ignore[dict-item]
    with pytest.raises(StateError, match="at most"):
        trie.compute_update(root, {bytes(300): b"v"})
    # Lose one child node: reads below it fail loudly, the others still work.
    child = next(h for h in store if h != root)
    del store[child]
    trie.clear_cache()
    with pytest.raises(MissingTrieNode, match="not stored"):
        for i in range(4):
            for j in range(4):
                trie.get(root, bytes([i, j]))


def test_iter_items_with_prefix_and_start_after() -> None:
    trie = Trie(MemoryNodeStore())
    state = {k: k.upper() for k in (b"a", b"ab", b"abc", b"abd", b"b", b"ba", b"c", b"")}
    root = _apply(trie, EMPTY_ROOT, dict(state))
    assert [k for k, _ in trie.iter_items(root)] == sorted(state)
    assert [k for k, _ in trie.iter_items(root, b"ab")] == [b"ab", b"abc", b"abd"]
    assert [k for k, _ in trie.iter_items(root, b"ab", b"ab")] == [b"abc", b"abd"]
    assert [k for k, _ in trie.iter_items(root, b"", b"abd")] == [b"b", b"ba", b"c"]
    assert [k for k, _ in trie.iter_items(root, b"b", b"a")] == [b"b", b"ba"]
    assert [k for k, _ in trie.iter_items(root, b"b", b"z")] == []
    assert list(trie.iter_items(root, b"x")) == []
    assert list(trie.iter_items(EMPTY_ROOT)) == []


@settings(max_examples=50, deadline=None)
@given(state=states, prefix=st.binary(max_size=2), after=st.none() | keys)
def test_iter_items_matches_a_sorted_filter(
    state: dict[bytes, bytes], prefix: bytes, after: bytes | None
) -> None:
    trie = Trie(MemoryNodeStore())
    root = _apply(trie, EMPTY_ROOT, dict(state))
    expected = sorted(
        (k, v) for k, v in state.items() if k.startswith(prefix) and (after is None or k > after)
    )
    assert list(trie.iter_items(root, prefix, after)) == expected


def test_deepest_trie_allowed_by_the_key_limit() -> None:
    # Every key a prefix of the next: one branch per key, the deepest shape a trie can take.
    trie = Trie(MemoryNodeStore())
    chain = {b"\x00" * i: bytes([i % 256]) for i in range(MAX_KEY_LEN + 1)}
    root = _apply(trie, EMPTY_ROOT, dict(chain))
    assert trie.get(root, b"\x00" * MAX_KEY_LEN) == bytes([MAX_KEY_LEN % 256])
    proof = trie.prove(root, [b"\x00" * MAX_KEY_LEN])
    assert len(proof) == MAX_KEY_LEN + 1
    assert verify_read_proof(root, b"\x00" * MAX_KEY_LEN, proof) == bytes([MAX_KEY_LEN % 256])
    assert len(list(trie.iter_items(root))) == MAX_KEY_LEN + 1
    assert _apply(trie, root, dict.fromkeys(chain)) == EMPTY_ROOT


def test_eviction_tolerates_another_thread_evicting_the_same_entries(monkeypatch) -> None:
    """An RPC read thread and the import thread may evict at once (rpc.reads): each takes the
    oldest entries, and one may delete an entry the other already deleted. Simulated here by
    deleting one of the entries between their choice and their deletion."""
    import chain.trie as trie_module

    trie = Trie(MemoryNodeStore(), cache_size=8)
    def islice_raced(cache, n):
        chosen = list(itertools.islice(cache, n))
        del cache[chosen[0]]  # the other thread was first
        return chosen

    monkeypatch.setattr(trie_module, "islice", islice_raced)
    for i in range(20):
        trie._remember(bytes([i]) * 32, ("", b"x"))  # fills past the bound: evicts
    assert len(trie._cache) <= 8 + 1


def _cached_values(trie: Trie) -> list[bytes | None]:
    """The values of the trie's cached nodes (a leaf's, a branch's own)."""
    return [node[-1] for node in trie._cache.values()]


def test_only_nodes_whose_value_is_at_most_max_cached_value_bytes_are_cached() -> None:
    """A node is cached, when an update seals it or a read loads it, only if its value is at
    most MAX_CACHED_VALUE bytes (inclusive): a leaf under a branch (sealed inline), a leaf that
    is the root, and a branch's own value alike. A larger one is read from the store again,
    and every read still returns it."""
    edge, over = b"e" * MAX_CACHED_VALUE, b"o" * (MAX_CACHED_VALUE + 1)
    state = {
        b"\x10": edge, b"\x11": over,  # two leaves of one branch
        b"\x20": edge, b"\x20\x01": b"x",  # a branch whose own value is at the bound
        b"\x30": over, b"\x30\x01": b"y",  # and one whose own value is above it
    }
    store = MemoryNodeStore()
    trie = Trie(store)
    root = _apply(trie, EMPTY_ROOT, state)
    assert _cached_values(trie).count(edge) == 2 and over not in _cached_values(trie)
    reader = Trie(store)  # an empty cache: every node loaded from the store
    assert {key: reader.get(root, key) for key in state} == state
    assert _cached_values(reader).count(edge) == 2 and over not in _cached_values(reader)
    assert {key: reader.get(root, key) for key in state} == state  # read again: the large ones from the store
    for value, kept in ((edge, True), (over, False)):  # a root that is a leaf
        alone = Trie(MemoryNodeStore())
        _apply(alone, EMPTY_ROOT, {b"\x40": value})
        assert _cached_values(alone) == ([value] if kept else [])
