"""chain.state: overlays and their layers, commits into LevelDB, history, paging, proofs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import OverlayError, StateError, UnknownStateRoot
from chain.state import MAX_CACHED_VALUE, MAX_TRANSACTION_DEPTH, Overlay, StateCommit, StateDB
from chain.storage import Column, Database
from chain.trie import EMPTY_ROOT, verify_read_proof


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "db")
    yield database
    database.close()


def _commit(state: StateDB, db: Database, overlay: Overlay) -> StateCommit:
    commit = state.compute_commit(overlay)
    with db.write_batch() as batch:
        state.stage_commit(batch, commit)
    state.advance(commit)
    return commit


def _write(state: StateDB, db: Database, changes: dict[bytes, bytes | None]) -> bytes:
    overlay = state.overlay()
    for key, value in changes.items():
        if value is None:
            overlay.delete(key)
        else:
            overlay.set(key, value)
    return _commit(state, db, overlay).root


def test_overlay_get_set_delete_over_the_best_state(db: Database) -> None:
    state = StateDB(db)
    assert state.root() == EMPTY_ROOT
    _write(state, db, {b"a": b"1", b"b": b"2"})
    overlay = state.overlay()
    assert overlay.get(b"a") == b"1"
    overlay.set(b"a", b"10")
    overlay.delete(b"b")
    overlay.set(b"c", b"3")
    assert (overlay.get(b"a"), overlay.get(b"b"), overlay.get(b"c")) == (b"10", None, b"3")
    assert overlay.changes() == {b"a": b"10", b"b": None, b"c": b"3"}
    assert state.get(b"a") == b"1"  # nothing reaches the state before a commit
    _commit(state, db, overlay)
    assert (state.get(b"a"), state.get(b"b"), state.get(b"c")) == (b"10", None, b"3")


def test_nested_layers_roll_back_a_failed_call_but_keep_its_fee(db: Database) -> None:
    state = StateDB(db)
    _write(state, db, {b"bob": b"100", b"alice": b"0"})
    overlay = state.overlay()
    overlay.start_transaction()  # the extrinsic
    overlay.set(b"bob", b"99")  # fee charged
    overlay.start_transaction()  # the call
    overlay.set(b"bob", b"0")
    overlay.set(b"alice", b"99")
    overlay.start_transaction()  # a nested helper that commits into the call
    overlay.delete(b"alice")
    overlay.set(b"new", b"x")
    overlay.commit_transaction()
    assert overlay.get(b"alice") is None and overlay.get(b"new") == b"x"
    overlay.rollback_transaction()  # the call fails
    overlay.commit_transaction()
    assert overlay.transaction_depth == 0
    assert overlay.changes() == {b"bob": b"99"}
    fee_only = state.overlay()
    fee_only.set(b"bob", b"99")
    assert state.compute_commit(overlay).root == state.compute_commit(fee_only).root


def test_transaction_context_manager_and_misuse(db: Database) -> None:
    state = StateDB(db)
    overlay = state.overlay()
    with overlay.transaction():
        overlay.set(b"kept", b"1")
    with pytest.raises(ValueError, match="dispatch failed"), overlay.transaction():
        overlay.set(b"dropped", b"1")
        raise ValueError("dispatch failed")
    assert overlay.changes() == {b"kept": b"1"}
    with pytest.raises(OverlayError, match="without an open transaction"):
        overlay.commit_transaction()
    with pytest.raises(OverlayError, match="without an open transaction"):
        overlay.rollback_transaction()
    overlay.start_transaction()
    with pytest.raises(OverlayError, match="open transaction"):
        state.compute_commit(overlay)
    for _ in range(MAX_TRANSACTION_DEPTH - 1):
        overlay.start_transaction()
    with pytest.raises(OverlayError, match="nested"):
        overlay.start_transaction()


def test_bad_keys_and_values_raise_state_error_and_change_nothing(db: Database) -> None:
    state = StateDB(db)
    _write(state, db, {b"k": b"v"})
    root = state.root()
    overlay = state.overlay()
    with pytest.raises(StateError, match="key must be bytes"):
        overlay.set("k", b"v")  # type: ignore[arg-type]
    with pytest.raises(StateError, match="value must be bytes"):
        overlay.set(b"k", "v")  # type: ignore[arg-type]
    with pytest.raises(StateError, match="key must be bytes"):
        overlay.get(1)  # type: ignore[arg-type]
    with pytest.raises(StateError, match="key must be bytes"):
        overlay.delete(bytearray(b"k"))  # type: ignore[arg-type]
    with pytest.raises(StateError, match="key must be bytes"):
        state.get("k")  # type: ignore[arg-type]
    with pytest.raises(StateError, match="count"):
        state.keys_paged(b"", -1)
    assert overlay.changes() == {}
    assert state.root() == root and state.get(b"k") == b"v"


def test_deleting_everything_returns_to_the_empty_root(db: Database) -> None:
    state = StateDB(db)
    first = _write(state, db, {b"a": b"1"})
    _write(state, db, {b"b": b"2", b"c": b"3"})
    assert _write(state, db, {b"b": None, b"c": None}) == first
    assert _write(state, db, {b"a": None}) == EMPTY_ROOT
    assert list(db.iterate(Column.STATE)) == []


@settings(max_examples=30, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.binary(max_size=3), st.none() | st.binary(max_size=3)), max_size=30
    ),
    cut=st.integers(0, 30),
)
def test_root_does_not_depend_on_how_writes_are_split_into_blocks(
    tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[bytes, bytes | None]], cut: int
) -> None:
    final: dict[bytes, bytes | None] = {}
    for key, value in writes:
        final[key] = value
    with (
        Database(tmp_path_factory.mktemp("one")) as one_db,
        Database(tmp_path_factory.mktemp("two")) as two_db,
    ):
        one, two = StateDB(one_db), StateDB(two_db)
        _write(one, one_db, final)
        for chunk in (writes[:cut], writes[cut:]):
            overlay = two.overlay()
            for key, value in chunk:
                if value is None:
                    overlay.delete(key)
                else:
                    overlay.set(key, value)
            _commit(two, two_db, overlay)
        assert one.root() == two.root()
        assert list(one_db.iterate(Column.STATE)) == list(two_db.iterate(Column.STATE))


def test_historical_reads_at_older_roots(db: Database) -> None:
    state = StateDB(db)
    r1 = _write(state, db, {b"x": b"1", b"y": b"1"})
    r2 = _write(state, db, {b"x": b"2", b"y": None})
    assert state.get(b"x") == b"2" and state.get(b"y") is None
    assert state.get(b"x", at=r1) == b"1" and state.get(b"y", at=r1) == b"1"
    assert state.get(b"x", at=r2) == b"2" and state.get(b"y", at=r2) is None
    assert state.keys_paged(b"", 10, at=r1) == [b"x", b"y"]
    assert state.get(b"x", at=EMPTY_ROOT) is None
    with pytest.raises(UnknownStateRoot, match="unknown"):
        state.get(b"x", at=b"\x42" * 32)
    with pytest.raises(StateError, match="32 bytes"):
        state.get(b"x", at=b"\x42")
    with pytest.raises(UnknownStateRoot):
        state.prove([b"x"], at=b"\x42" * 32)


def test_keys_paged_with_prefix_start_and_count(db: Database) -> None:
    state = StateDB(db)
    keys = [b"acct:" + bytes([i]) for i in range(10)] + [b"acc", b"b", b"acct"]
    _write(state, db, {k: b"v" for k in keys})
    acct = sorted(k for k in keys if k.startswith(b"acct:"))
    for at in (None, state.root()):
        assert state.keys_paged(b"acct:", 3, at=at) == acct[:3]
        assert state.keys_paged(b"acct:", 3, acct[2], at=at) == acct[3:6]
        assert state.keys_paged(b"acct:", 100, acct[-1], at=at) == []
        assert state.keys_paged(b"acct:", 100, b"a", at=at) == acct
        assert state.keys_paged(b"acct:", 0, at=at) == []
        assert state.keys_paged(b"", 4, at=at) == [b"acc", b"acct", b"acct:\x00", b"acct:\x01"]
        assert state.keys_paged(b"zz", 5, at=at) == []
    # Paging through everything returns each key once, in order.
    seen: list[bytes] = []
    start = None
    while page := state.keys_paged(b"", 4, start):
        seen += page
        start = page[-1]
    assert seen == sorted(keys)


def test_overlay_iter_prefix_merges_base_and_changes(db: Database) -> None:
    state = StateDB(db)
    _write(state, db, {b"p1": b"a", b"p3": b"c", b"p5": b"e", b"q": b"z"})
    for overlay in (state.overlay(), state.overlay(at=state.root())):
        overlay.set(b"p2", b"B")
        overlay.delete(b"p3")
        overlay.set(b"p5", b"E")
        overlay.set(b"p9", b"I")
        overlay.delete(b"p0")
        assert list(overlay.iter_prefix(b"p")) == [
            (b"p1", b"a"),
            (b"p2", b"B"),
            (b"p5", b"E"),
            (b"p9", b"I"),
        ]


def test_proofs_from_the_state_verify_against_its_root(db: Database) -> None:
    state = StateDB(db)
    old = _write(state, db, {b"alice": b"10", b"bob": b"20"})
    _write(state, db, {b"alice": b"11"})
    proof = state.prove([b"alice", b"carol"])
    assert verify_read_proof(state.root(), b"alice", proof) == b"11"
    assert verify_read_proof(state.root(), b"carol", proof) is None
    assert verify_read_proof(old, b"alice", state.prove([b"alice"], at=old)) == b"10"


def test_an_overlay_keeps_its_view_after_the_best_state_moves(db: Database) -> None:
    state = StateDB(db)
    base = _write(state, db, {b"k": b"old"})
    stale = state.overlay()
    _write(state, db, {b"k": b"new"})
    assert stale.get(b"k") == b"old"
    stale.set(b"j", b"1")
    commit = state.compute_commit(stale)
    assert commit.base_root == base
    with pytest.raises(StateError, match="not on the best state"):
        state.advance(commit)
    # A side state: stored as trie nodes only, readable with at=, flat column untouched.
    with db.write_batch() as batch:
        state.stage_commit(batch, commit)
    assert state.get(b"k", at=commit.root) == b"old" and state.get(b"j", at=commit.root) == b"1"
    assert state.get(b"j") is None and state.get(b"k") == b"new"


def test_fork_overlay_at_an_older_root(db: Database) -> None:
    state = StateDB(db)
    r1 = _write(state, db, {b"a": b"1"})
    _write(state, db, {b"a": b"2"})
    fork = state.overlay(at=r1)
    assert fork.get(b"a") == b"1"
    with pytest.raises(StateError, match="unknown state root"):
        state.overlay(at=b"\x01" * 32)


def test_block_batch_is_atomic_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = Database(path)
    state = StateDB(db)
    committed = _write(state, db, {b"a": b"1"})
    overlay = state.overlay()
    overlay.set(b"a", b"2")
    overlay.set(b"b", b"3")
    commit = state.compute_commit(overlay)
    with pytest.raises(RuntimeError, match="crash"), db.write_batch() as batch:
        state.stage_commit(batch, commit)
        batch.put(Column.HEADER, b"h", b"header")
        raise RuntimeError("crash while importing")
    assert state.root() == committed and state.get(b"a") == b"1" and state.get(b"b") is None
    assert db.get(Column.TRIE, commit.root) is None
    db.close()
    with Database(path) as again:
        reopened = StateDB(again)
        assert reopened.root() == committed
        assert reopened.get(b"a") == b"1" and reopened.get(b"a", at=committed) == b"1"
        assert _write(reopened, again, {b"a": b"2", b"b": b"3"}) == commit.root
    with Database(path) as third:
        assert StateDB(third).root() == commit.root


def test_corrupt_best_root_record_is_reported(db: Database) -> None:
    with db.write_batch() as batch:
        batch.put(Column.META, b"state/best_root", b"\x01" * 32)
    with pytest.raises(StateError, match="no stored trie root node"):
        StateDB(db)
    with db.write_batch() as batch:
        batch.put(Column.META, b"state/best_root", b"short")
    with pytest.raises(StateError, match="not a state root"):
        StateDB(db)


def test_a_commit_carries_the_base_values_its_overlay_read_and_read_values_reuses_them(db: Database) -> None:
    state = StateDB(db)
    base = _write(state, db, {b"a": b"1", b"b": b"2"})
    overlay = state.overlay()
    assert overlay.get(b"a") == b"1" and overlay.get(b"x") is None
    overlay.set(b"a", b"10")
    assert overlay.get(b"a") == b"10"  # the write wins over the remembered base value
    overlay.set(b"b", b"20")  # written without a read: not among the base values
    commit = state.compute_commit(overlay)
    assert dict(commit.base_values) == {b"a": b"1", b"x": None}
    # The journal's old values: those read are taken from the commit, the others read.
    assert state.read_values(commit.changes, at=commit.base_root, known=commit.base_values) == {b"a": b"1", b"b": b"2"}
    assert state.read_values([b"a"], at=base, known={b"a": b"known"}) == {b"a": b"known"}


@pytest.mark.parametrize("at_root", [False, True])
def test_get_many_reads_like_get_and_peek_many_leaves_no_base_read(db: Database, at_root: bool) -> None:
    # Overlay.get_many / peek_many: a run of transfers reads its accounts in batches, ahead of
    # use (chain.runtime); the block's base reads (its journal's old values) must stay those of
    # the keys it read with get/get_many, whatever was peeked.
    state = StateDB(db, value_cache_size=2)  # the value cache is emptied while a batch is read
    root = _write(state, db, {b"a": b"1", b"b": b"2", b"c": b"3"})
    overlay = state.overlay(at=root) if at_root else state.overlay()
    overlay.set(b"a", b"10")
    overlay.delete(b"b")
    keys = [b"a", b"b", b"c", b"x", b"c"]
    assert overlay.peek_many(keys) == [b"10", None, b"3", None, b"3"]
    assert overlay.base_values() == {}  # peeked, not read
    assert overlay.get(b"c") == b"3" and overlay.base_values() == {b"c": b"3"}
    assert overlay.get_many([b"x", b"y", b"a"]) == [None, None, b"10"]
    assert overlay.base_values() == {b"c": b"3", b"x": None, b"y": None}  # x peeked, y read: both base reads now
    assert overlay.get_many(keys) == [overlay.get(key) for key in keys]
    overlay.set_many([(b"d", b"4"), (b"c", b"30")])
    assert overlay.changes() == {b"a": b"10", b"b": None, b"d": b"4", b"c": b"30"}
    # read=True: read-modify-writes; a key peeked or not read yet becomes a base read, a key
    # changed already does not.
    assert overlay.peek_many([b"p"]) == [None] and b"p" not in overlay.base_values()
    overlay.set_many([(b"p", b"1"), (b"q", b"2"), (b"a", b"11")], read=True)
    assert overlay.base_values() == {b"c": b"3", b"x": None, b"y": None, b"p": None, b"q": None}
    assert overlay.changes() == {b"a": b"11", b"b": None, b"d": b"4", b"c": b"30", b"p": b"1", b"q": b"2"}
    with pytest.raises(StateError, match="must be bytes"):
        overlay.get_many([b"ok", "text"])  # type: ignore[list-item]
    with pytest.raises(StateError, match="must be bytes"):
        overlay.peek_many(["text"])  # type: ignore[list-item]
    with pytest.raises(StateError, match="must be bytes, got bytearray"):
        overlay.get_many([bytearray(b"a")])  # type: ignore[list-item]
    with pytest.raises(StateError, match="must be bytes, got bytearray"):
        overlay.peek_many([b"a", bytearray(b"a")])  # type: ignore[list-item]
    with pytest.raises(StateError, match="value must be bytes"):
        overlay.set_many([(b"e", b"5"), (b"f", 6)])  # type: ignore[list-item]
    with pytest.raises(StateError, match="at most 256 bytes"):
        overlay.set_many([(bytes(257), b"5")])
    assert overlay.changes()[b"e"] == b"5" and b"f" not in overlay.changes()  # the pairs before the bad one


@pytest.mark.parametrize("cache_size", [1 << 17, 2])
def test_best_state_reads_follow_every_move_of_the_best_state(db: Database, cache_size: int) -> None:
    # StateDB keeps the best state's values that blocks read or wrote (chain.state: the value
    # cache); after each advance, reorg (stage_flat + move_best) and abandoned batch, every
    # overlay on the best state reads what the flat column and the trie hold.
    state = StateDB(db, value_cache_size=cache_size)
    keys = [b"a", b"b", b"c", b"d"]

    def check() -> None:
        overlay = state.overlay()
        for key in keys:
            assert overlay.get(key) == db.get(Column.STATE, key) == state.get(key, at=state.root())
        column = [db.get(Column.STATE, key) for key in keys]
        assert state.overlay().get_many(keys) == column and state.overlay().peek_many(keys) == column
        assert state.read_values(keys) == {key: db.get(Column.STATE, key) for key in keys}

    r1 = _write(state, db, {b"a": b"1", b"b": b"2"})
    check()
    _write(state, db, {b"a": b"3", b"d": b"4"})
    check()
    # A side branch on r1, then a reorg to it: the flat column moves by the net change.
    side = state.overlay(at=r1)
    side.set(b"a", b"9")
    side.set(b"c", b"7")
    commit = state.compute_commit(side)
    with db.write_batch() as batch:
        state.stage_nodes(batch, commit)
    check()
    # A reorg batch that is abandoned changes nothing.
    with pytest.raises(RuntimeError, match="abandoned"), db.write_batch() as batch:
        state.stage_flat(batch, {b"a": b"9", b"c": b"7", b"d": None}, commit.root)
        raise RuntimeError("abandoned")
    check()
    with db.write_batch() as batch:
        state.stage_flat(batch, {b"a": b"9", b"c": b"7", b"d": None}, commit.root)
    state.move_best(commit.root)
    assert state.root() == commit.root
    check()
    assert state.overlay().get(b"a") == b"9" and state.overlay().get(b"d") is None
    _write(state, db, {b"b": None, b"c": b"8"})
    check()


def _cached_value_bytes(state: StateDB) -> int:
    """Bytes of values held by the state's two caches: its value cache and its trie's node cache."""
    values = sum(len(v) for v in state._values.values() if v is not None)
    nodes = sum(len(node[-1] or b"") for node in state._trie._cache.values())
    return values + nodes


def test_large_values_are_read_from_the_database_not_kept_in_memory(db: Database) -> None:
    """Both caches were bounded by entries, not bytes (a million trie nodes, 2^17 values), so a
    node that imported blocks registering 1 MiB models kept every weights value it wrote or
    read in memory twice: RSS 112 -> 823 MB over 40 blocks of honest traffic, no plateau (an
    outside tester's finding, 2026-11-30). A value above MAX_CACHED_VALUE bytes is now never
    cached (reads go to LevelDB); every read still sees the state, also when a key's cached
    small value is replaced by a large one, and the other way round."""
    state = StateDB(db)
    big = MAX_CACHED_VALUE + 1
    for block in range(8):
        changes: dict[bytes, bytes | None] = {b"small%d" % i: b"s%d" % block for i in range(4)}
        changes |= {b"big%d/%d" % (block, i): bytes([block]) * (64 << 10) for i in range(4)}
        changes[b"flip"] = bytes([block]) * (big if block % 2 else 8)  # large, small, large...
        _write(state, db, changes)
        overlay = state.overlay()
        assert overlay.get(b"flip") == changes[b"flip"] and state.get(b"flip", at=state.root()) == changes[b"flip"]
        keys = list(changes)
        assert overlay.get_many(keys) == list(changes.values())
        assert [state.get(key, at=state.root()) for key in keys] == list(changes.values())
    # Written 2 MiB in large values and read them back twice: none of it is held.
    assert _cached_value_bytes(state) < 4 * MAX_CACHED_VALUE
    assert state.overlay().get(b"small0") == b"s7"
    # A value of exactly MAX_CACHED_VALUE bytes is still cached (the bound is inclusive).
    _write(state, db, {b"edge": b"e" * MAX_CACHED_VALUE})
    assert state.overlay().get(b"edge") == b"e" * MAX_CACHED_VALUE
    assert state._values.get(b"edge") == b"e" * MAX_CACHED_VALUE


def test_values_read_from_the_column_are_cached_up_to_max_cached_value_bytes_and_the_cache_stays_bounded(db: Database) -> None:
    """The bound is inclusive on reads too: a value of exactly MAX_CACHED_VALUE bytes read from
    the flat column (a cache miss, one key or a batch) is kept, one byte more is not; a missing
    key is kept as None. The cache is cleared before it would pass ``value_cache_size``. Read
    through a fresh StateDB on the same database, whose cache starts empty (a write fills the
    writer's own cache, with the same bound, so it would not show the reads)."""
    edge, over = b"e" * MAX_CACHED_VALUE, b"o" * (MAX_CACHED_VALUE + 1)
    writer = StateDB(db)
    _write(writer, db, {b"edge1": edge, b"edge2": edge, b"over1": over, b"over2": over})
    assert writer._values == {b"edge1": edge, b"edge2": edge}  # the writer's batch: the same bound
    state = StateDB(db, value_cache_size=3)
    overlay = state.overlay()
    assert overlay.get(b"edge1") == edge and overlay.get(b"over1") == over
    assert overlay.get_many([b"edge2", b"over2"]) == [edge, over]
    assert state._values == {b"edge1": edge, b"edge2": edge}
    assert overlay.get(b"missing1") is None and state._values == {b"edge1": edge, b"edge2": edge, b"missing1": None}
    assert overlay.get(b"missing2") is None and state._values == {b"missing2": None}  # full at 3: cleared first
    assert state.overlay().get_many([b"missing3", b"missing4", b"edge1"]) == [None, None, edge]  # a fresh overlay reads through
    assert state._values == {b"edge1": edge}  # cleared again before the fourth entry
