"""chain.storage: columns, ordered iteration, atomic batches, reopen — on a real LevelDB.

Mutation testing of 863e0d1 and aa1fdee (a failed write is recorded; every later batch is
refused), the same run as tests/chain/test_block_mutants.py's docstring gives (mut17,
2026-11-30, 18:24-18:26 UTC; in scope the mutants of the lines those commits wrote). Tests: this
file. Killed/in scope, before -> after the assertions added (watched failing on their
mutants): WriteBatch.commit 7/10 -> 10/10, Database._record_write_error 4/4. Killed by the
refused batch's reuse in
test_after_a_failed_write_the_database_refuses_every_write_and_reopens_whole: the refusal's
``self._state = None``, ``"XXfailedXX"`` and ``"FAILED"`` (a refused batch is single use and
says so: "write batch already failed"). No survivors; no bug was found.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chain.errors import StorageError
from chain.storage import Column, Database


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "db")
    yield database
    database.close()


def test_columns_are_distinct_one_byte_prefixes() -> None:
    values = [c.value for c in Column]
    assert all(len(v) == 1 for v in values)
    assert len(set(values)) == len(values)


def test_put_get_delete_per_column(db: Database) -> None:
    with db.write_batch() as batch:
        batch.put(Column.HEADER, b"k", b"header")
        batch.put(Column.BODY, b"k", b"body")
    assert db.get(Column.HEADER, b"k") == b"header"
    assert db.get(Column.BODY, b"k") == b"body"
    assert db.get(Column.STATE, b"k") is None
    with db.write_batch() as batch:
        batch.delete(Column.HEADER, b"k")
    assert db.get(Column.HEADER, b"k") is None
    assert db.get(Column.BODY, b"k") == b"body"
    assert db.get_many(Column.BODY, [b"k", b"x", b"k"]) == [b"body", None, b"body"]
    assert db.get_many(Column.HEADER, []) == []


def test_iterate_is_ordered_and_stays_in_its_column_and_prefix(db: Database) -> None:
    with db.write_batch() as batch:
        for key in (b"b2", b"a", b"b1", b"b\xff", b"c", b"b"):
            batch.put(Column.STATE, key, key.upper())
        batch.put(Column.HEADER, b"b0", b"other column")
        batch.put(Column.TRIE, b"\xff\xff", b"column edge")
    assert [k for k, _ in db.iterate(Column.STATE)] == [b"a", b"b", b"b1", b"b2", b"b\xff", b"c"]
    assert list(db.iterate(Column.STATE, prefix=b"b")) == [
        (b"b", b"B"),
        (b"b1", b"B1"),
        (b"b2", b"B2"),
        (b"b\xff", b"B\xff"),
    ]
    assert [k for k, _ in db.iterate(Column.STATE, prefix=b"b", start=b"b2")] == [b"b2", b"b\xff"]
    assert next(db.iterate(Column.STATE, prefix=b"b", start=b"a"))[0] == b"b"
    assert list(db.iterate(Column.STATE, prefix=b"z")) == []
    assert list(db.iterate(Column.STATE, prefix=b"b", start=b"z")) == []
    assert list(db.iterate(Column.TRIE)) == [(b"\xff\xff", b"column edge")]
    # keys only, at the database and at a snapshot (the block tree's children: chain.pruning)
    with db.snapshot() as snapshot:
        for reader in (db, snapshot):
            assert list(reader.iterate_keys(Column.STATE, prefix=b"b")) == [b"b", b"b1", b"b2", b"b\xff"]
            assert list(reader.iterate_keys(Column.STATE)) == [b"a", b"b", b"b1", b"b2", b"b\xff", b"c"]
            assert list(reader.iterate_keys(Column.TRIE, prefix=b"\xff")) == [b"\xff\xff"]
            assert list(reader.iterate_keys(Column.STATE, prefix=b"z")) == []
            with pytest.raises(StorageError, match=r"^prefix must be bytes, got str$"):
                reader.iterate_keys(Column.STATE, prefix="b")  # type: ignore[arg-type]


def test_batch_discarded_by_an_exception_leaves_the_db_unchanged(db: Database) -> None:
    with db.write_batch() as batch:
        batch.put(Column.META, b"best", b"old")
    with pytest.raises(RuntimeError, match="boom"), db.write_batch() as batch:
        batch.put(Column.META, b"best", b"new")
        batch.put(Column.HEADER, b"h", b"half a block")
        raise RuntimeError("boom")
    assert db.get(Column.META, b"best") == b"old"
    assert db.get(Column.HEADER, b"h") is None
    assert not batch.is_open


def test_batch_is_single_use(db: Database) -> None:
    batch = db.write_batch()
    batch.put(Column.META, b"a", b"1")
    batch.commit()
    with pytest.raises(StorageError, match="already committed"):
        batch.put(Column.META, b"b", b"2")
    with pytest.raises(StorageError, match="already committed"):
        batch.commit()
    discarded = db.write_batch()
    discarded.put(Column.META, b"c", b"3")
    discarded.discard()
    with pytest.raises(StorageError, match="already discarded"):
        discarded.commit()
    assert db.get(Column.META, b"c") is None


def test_reopen_after_close_sees_committed_data_only(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = Database(path)
    with db.write_batch() as batch:
        batch.put(Column.NUMBER, (7).to_bytes(8, "big"), b"hash7")
    uncommitted = db.write_batch()
    uncommitted.put(Column.NUMBER, (8).to_bytes(8, "big"), b"hash8")
    db.close()
    db.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        db.get(Column.NUMBER, b"x")
    with Database(path, create=False) as again:
        assert again.get(Column.NUMBER, (7).to_bytes(8, "big")) == b"hash7"
        assert again.get(Column.NUMBER, (8).to_bytes(8, "big")) is None


def test_bad_input_raises_storage_error_and_stores_nothing(db: Database, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="key must be bytes"):
        db.get(Column.STATE, "text")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="column must be"):
        db.get(b"\x02", b"k")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="key must be bytes"):
        db.get_many(Column.STATE, [b"k", "text"])  # type: ignore[list-item]
    with pytest.raises(StorageError, match="column must be"):
        db.get_many(b"\x02", [b"k"])  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="value must be bytes"), db.write_batch() as batch:
        batch.put(Column.STATE, b"good", b"1")
        batch.put(Column.STATE, b"bad", 2)  # type: ignore[arg-type]
    assert db.get(Column.STATE, b"good") is None
    with pytest.raises(StorageError, match="cannot open"):
        Database(tmp_path / "missing", create=False)
    with pytest.raises(StorageError, match="cannot open"):
        Database(db.path)  # LevelDB's lock: one process, one handle


def test_a_database_written_with_snappy_compression_still_reads_and_grows(tmp_path: Path) -> None:
    """Databases are opened without compression (chain.storage: compaction re-compressed
    incompressible hashes at every level). One written by an older node, snappy-compressed
    (LevelDB's default), must read as before and take new writes: LevelDB records each table
    block's compression, so both kinds live side by side, through a compaction too."""
    import plyvel

    path = tmp_path / "old"
    old = plyvel.DB(str(path), create_if_missing=True)  # LevelDB's default: snappy
    old.put(Column.HEADER + b"h" * 32, b"header" * 40)
    old.compact_range()  # into a compressed table file, not only the log
    old.close()
    db = Database(path, create=False)
    try:
        assert db.get(Column.HEADER, b"h" * 32) == b"header" * 40
        with db.write_batch() as batch:
            batch.put(Column.BODY, b"b" * 32, b"body" * 40)
        db._require_open().compact_range()  # old and new blocks merged into one level
        assert db.get(Column.HEADER, b"h" * 32) == b"header" * 40
        assert db.get(Column.BODY, b"b" * 32) == b"body" * 40
    finally:
        db.close()


def test_tables_are_written_uncompressed(tmp_path: Path) -> None:
    """The setting itself: 64 KiB of zeros (snappy would store a few KiB) take their full
    size in the table files once compacted out of the log."""
    db = Database(tmp_path / "db")
    try:
        with db.write_batch() as batch:
            batch.put(Column.BODY, b"z" * 32, bytes(65536))
        db._require_open().compact_range()
        assert sum(f.stat().st_size for f in (tmp_path / "db").glob("*.ldb")) > 65536
    finally:
        db.close()


# --- a damaged database is refused, never read as data (an outside tester's findings, round 4) ---
def _written(path: Path, n: int = 200) -> dict[bytes, bytes]:
    """A database at ``path`` holding ``n`` values, in its tables (reopened once: LevelDB writes
    the log's records to a table when it recovers it) and, written after, in its log."""
    values = {i.to_bytes(4, "big"): bytes([i % 251]) * 300 for i in range(n)}
    db = Database(path)
    with db.write_batch() as batch:
        for key, value in list(values.items())[: n // 2]:
            batch.put(Column.STATE, key, value)
    db.close()
    db = Database(path)
    with db.write_batch() as batch:
        for key, value in list(values.items())[n // 2 :]:
            batch.put(Column.STATE, key, value)
    db.close()
    return values


def _flip(path: Path, at: float) -> None:
    """Invert 4 bytes of the file at ``path``, ``at`` of the way in."""
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * at)
    raw[i : i + 4] = bytes(b ^ 0xFF for b in raw[i : i + 4])
    path.write_bytes(bytes(raw))


def test_a_database_without_its_current_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """With CURRENT gone, LevelDB took the folder for a new database and deleted its tables: the
    node started a new chain from genesis, every block it had gone. It is refused, naming what
    is missing, and no file is touched; LevelDB's repair then gets every value back."""
    import plyvel

    values = _written(tmp_path / "db")
    (tmp_path / "db" / "CURRENT").unlink()
    before = {p.name: p.read_bytes() for p in (tmp_path / "db").iterdir()}
    with pytest.raises(StorageError, match=r"is damaged: it has .*MANIFEST-.* but no CURRENT file; restore it"):
        Database(tmp_path / "db")
    assert {p.name: p.read_bytes() for p in (tmp_path / "db").iterdir()} == before
    plyvel.repair_db(str(tmp_path / "db"))
    db = Database(tmp_path / "db")
    try:
        assert all(db.get(Column.STATE, k) == v for k, v in values.items())
    finally:
        db.close()
    Database(tmp_path / "new").close()  # an empty or missing folder is a new database, as before


def test_a_damaged_log_record_fails_the_open(tmp_path: Path) -> None:
    """LevelDB skipped a damaged block of the write-ahead log and replayed the rest: some
    blocks' batches were lost and later ones kept, and the node ran on (paranoid_checks)."""
    _written(tmp_path / "db")
    (log,) = (tmp_path / "db").glob("*.log")
    _flip(log, 0.5)
    with pytest.raises(StorageError, match=r"database at .* is damaged: Corruption: .*; restore it from a backup"):
        Database(tmp_path / "db")


def test_a_damaged_table_block_is_an_error_not_a_value(tmp_path: Path) -> None:
    """A flipped byte in a table was served as a state value; a read now checks the block's
    checksum and raises StorageError naming the damage (through get, get_many, iterate,
    iterate_keys and a snapshot's alike)."""
    values = _written(tmp_path / "db")
    tables = sorted((tmp_path / "db").glob("*.ldb"))
    assert tables
    for table in tables:
        _flip(table, 0.3)
    db = Database(tmp_path / "db", cache_bytes=0)
    try:
        reads = [
            lambda: [db.get(Column.STATE, k) for k in values],
            lambda: db.get_many(Column.STATE, list(values)),
            lambda: list(db.iterate(Column.STATE)),
            lambda: [db.snapshot().get(Column.STATE, k) for k in values],
            lambda: list(db.iterate_keys(Column.STATE)),
            lambda: list(db.snapshot().iterate(Column.STATE)),
            lambda: list(db.snapshot().iterate_keys(Column.STATE)),
        ]
        for read in reads:
            with pytest.raises(StorageError, match=r"database at .* is damaged: Corruption: block checksum mismatch"):
                read()
    finally:
        db.close()


def _size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def test_compact_frees_the_space_of_deleted_records(tmp_path: Path) -> None:
    """Database.compact compacts every column: plyvel's compact_range() without bounds hands
    LevelDB two empty slices, the range ["", ""), and compacts nothing, so `polchain
    prune-state` deleted a 100k-block archive's old states and left 407 MB on disk where a
    bounded compaction leaves 48 MB (an outside tester's finding, 2026-11-30)."""
    path = tmp_path / "db"
    with Database(path) as db:
        rng = random.Random(5)
        for column in (Column.TRIE, Column.INVALID):  # the lowest and the highest column
            with db.write_batch() as batch:
                for i in range(2_000):
                    batch.put(column, i.to_bytes(4, "big") + bytes(28), rng.randbytes(4096))
        db.compact()
        full = _size_on_disk(path)
        assert full > 16_000_000
        for column in (Column.TRIE, Column.INVALID):
            with db.write_batch() as batch:
                for i in range(2_000):
                    batch.delete(column, i.to_bytes(4, "big") + bytes(28))
        db.compact()
        assert _size_on_disk(path) < full // 8, (full, _size_on_disk(path))


def test_after_a_failed_write_the_database_refuses_every_write_and_reopens_whole(tmp_path: Path) -> None:
    """A write cut off by a full disk (here a file size limit: EFBIG, which Python receives as
    an error, ignoring SIGXFSZ) is recorded and heard of once; every later batch is refused
    and writes nothing, even once the disk has room again. A write that went through after
    the failed one put its partial log record in the middle of the log, and the next open
    refused the database as corrupt, every block lost (an outside tester's F6, round 12).
    Reopened, the database holds exactly what was written before the failure."""
    import resource

    heard: list[StorageError] = []
    db = Database(tmp_path / "db")
    db.on_write_error = heard.append
    with db.write_batch() as batch:
        batch.put(Column.META, b"before", b"1")
    log = max((tmp_path / "db").glob("*.log"), key=lambda p: p.stat().st_size)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (log.stat().st_size + 1024, hard))
    try:
        with pytest.raises(StorageError, match=r"^write batch to .* failed: .*File too large"), db.write_batch() as batch:
            batch.put(Column.META, b"cut", b"x" * (1 << 20))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert db.write_error is not None and heard == [db.write_error]
    with pytest.raises(StorageError, match=r"refused: an earlier write failed .*; reopen the database$"), db.write_batch() as batch:
        batch.put(Column.META, b"after", b"1")
    assert heard == [db.write_error]  # heard of once: a refusal is not a new failure
    refused = db.write_batch()
    refused.put(Column.META, b"after", b"1")
    with pytest.raises(StorageError, match="refused: an earlier write failed"):
        refused.commit()
    assert not refused.is_open  # single use, as a batch whose write failed
    with pytest.raises(StorageError, match=r"^write batch already failed$"):
        refused.commit()
    db.close()
    with Database(tmp_path / "db") as again:
        assert again.get(Column.META, b"before") == b"1"
        assert again.get(Column.META, b"cut") is None and again.get(Column.META, b"after") is None
        with again.write_batch() as batch:
            batch.put(Column.META, b"after", b"2")
        assert again.get(Column.META, b"after") == b"2"
