"""The node's state: a Merkle trie for roots, history and proofs, a flat column for speed.

Layout
------
* The **trie** (chain.trie, column TRIE) is keyed by raw storage keys. Every committed state
  root stays readable, with ``at=root``, for as long as its nodes are stored; nodes are never
  deleted, so this is an **archive node** (pruning would need reference counts or a
  mark-and-sweep over roots that are no longer wanted; not done).
* The **flat column** (STATE) maps each key to its value in the **best** state only. Reads
  of the best state are one LevelDB get instead of a walk of ~log16(n) nodes, and
  ``keys_paged`` on the best state is a LevelDB range scan. Because it tracks one state, a
  reorg (a new best block that is not a child of the old one) rolls it back: chain.blockchain
  keeps a journal per block (the value before and after of every key the block changed, read
  with :meth:`StateDB.read_values`), and moves the flat column with :meth:`StateDB.stage_flat`
  and :meth:`StateDB.move_best` in the reorg's one batch. :meth:`StateDB.advance` still
  refuses a commit that does not build on the best state.
* META ``state/best_root`` records which root the flat column holds; it is written in the
  same batch as the flat values, so after a crash the two always agree.
* In memory, :class:`StateDB` keeps the best state's values that blocks lately read or
  wrote (at most ``value_cache_size`` of them, each at most ``MAX_CACHED_VALUE`` bytes: model
  weights are read from the column), updated with each batch's own flat changes when the
  best state moves: the accounts a block of transfers touches again are dict reads, not
  LevelDB reads.

Readers on other threads
------------------------
RPC reads, the pool's validation and a node's training verification read the best state
while the importing thread writes the next block. An overlay of the best state reads the
flat column only while that column holds its base root; but the column moves in the block's
batch, before the in-memory root follows (:meth:`StateDB.advance`, :meth:`StateDB.move_best`).
A reader that checked "my base is the best root" and then read the column in that window
would see the next block's value under the old root, a view of no state at all (found in
review). So staging flat changes marks the column as moving, the move clears the mark, and a
best-state read checks root and mark and reads the column under one lock that the writer
takes to set either: a read that sees the column settled on its base finishes before the
batch can be written. Otherwise it reads the trie at its base root, which never changes.
Iteration takes its LevelDB iterator (a snapshot) under the same lock. If a batch with staged
flat changes is discarded instead (an error while staging; a failed write), the mark stays
until the next move: best-state reads go to the trie meanwhile, slower but right.

Write path of a block
---------------------
::

    overlay = state.overlay()                 # or state.overlay(at=parent_root) on a fork
    ... overlay.set / delete / start_transaction / rollback_transaction ...
    commit = state.compute_commit(overlay)    # pure: new root + trie nodes + flat changes
    with db.write_batch() as batch:           # the block's one atomic batch
        state.stage_commit(batch, commit)
        batch.put(Column.HEADER, ...)         # header, body, receipts, indexes...
    state.advance(commit)                     # after the batch is written

The :class:`Overlay` is the only mutable state object. Its nested transactional layers let
a failed extrinsic be rolled back to its start while the fee, charged in an outer layer,
stays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from types import MappingProxyType
from typing import Final

from chain.errors import OverlayError, StateError, UnknownStateRoot
from chain.storage import Column, Database, Snapshot, WriteBatch
from chain.trie import EMPTY_ROOT, HASH_LEN, MAX_CACHED_VALUE, MAX_KEY_LEN, Trie

__all__ = ["MAX_CACHED_VALUE", "MAX_TRANSACTION_DEPTH", "Overlay", "StateCommit", "StateDB"]

#: META key of the root whose values the flat STATE column holds.
BEST_ROOT_KEY: Final = b"state/best_root"
#: Nesting limit of overlay transactions (Substrate's is 255 too); it bounds memory and
#: catches unbalanced start/commit pairs early.
MAX_TRANSACTION_DEPTH: Final = 255

_ABSENT: Final = object()  # "not in the overlay's changes": distinct from None (deleted)


def _check_key(key: object) -> None:
    if not isinstance(key, bytes):
        raise StateError(f"a storage key must be bytes, got {type(key).__name__}")
    if len(key) > MAX_KEY_LEN:
        raise StateError(f"a storage key is at most {MAX_KEY_LEN} bytes, got {len(key)}")


def _check_keys(keys: Sequence[object]) -> None:
    """:func:`_check_key` of each of ``keys``, the common case (all exactly bytes) in C. Only
    the type: as :meth:`Overlay.get`, a read does not refuse a key longer than a write may be."""
    if set(map(type, keys)) - {bytes}:
        for key in keys:
            if type(key) is not bytes:
                _check_key(key)


def _check_value(value: object) -> None:
    if not isinstance(value, bytes):
        raise StateError(f"a storage value must be bytes, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class StateCommit:
    """The outcome of executing a block on a state, ready to be stored.

    ``base_root`` is the state it was computed on, ``root`` the new state root,
    ``trie_nodes`` the new trie nodes (hash -> encoding) and ``changes`` the net changes to
    storage (key -> value, None for deleted), which also update the flat column.
    ``base_values``: values at ``base_root`` the overlay read while it ran (key -> value,
    None for absent), so that :meth:`StateDB.read_values` need not read them again.
    """

    base_root: bytes
    root: bytes
    trie_nodes: Mapping[bytes, bytes]
    changes: Mapping[bytes, bytes | None]
    base_values: Mapping[bytes, bytes | None] = field(default_factory=lambda: MappingProxyType({}))


class Overlay:
    """Uncommitted writes on top of a base state, with nested transactional layers.

    Reads see the newest write of a key, else the base state. ``start_transaction`` opens a
    layer; ``rollback_transaction`` undoes every write made since, ``commit_transaction``
    folds them into the layer below. Each layer is an undo log (key -> the entry it
    replaced), so a write is O(1) and a commit or rollback costs the layer's own writes.

    The base is fixed when the overlay is made (see :meth:`StateDB.overlay`).
    """

    __slots__ = ("_base_get", "_base_get_many", "_base_iter", "_base_values", "_changes", "_layers", "_peeked", "base_root")

    def __init__(
        self,
        base_root: bytes,
        base_get: Callable[[bytes], bytes | None],
        base_iter: Callable[[bytes], Iterator[tuple[bytes, bytes]]],
        base_get_many: Callable[[list[bytes]], list[bytes | None]] | None = None,
    ) -> None:
        self.base_root = base_root
        self._base_get = base_get
        self._base_iter = base_iter
        self._base_get_many = base_get_many or (lambda keys: [base_get(key) for key in keys])
        self._changes: dict[bytes, bytes | None] = {}
        self._layers: list[dict[bytes, object]] = []
        # Every base value read: the base never changes under an overlay, and a block's
        # journal needs the old value of each key it wrote, most of which it read first.
        self._base_values: dict[bytes, bytes | None] = {}
        # Base values read ahead by peek_many and not read since (not base reads yet).
        self._peeked: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if type(key) is not bytes:
            _check_key(key)
        value = self._changes.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._base_values.get(key, _ABSENT)
            if value is _ABSENT:
                if self._peeked:
                    value = self._peeked.pop(key, _ABSENT)
                if value is _ABSENT:
                    value = self._base_get(key)
                self._base_values[key] = value  # type: ignore[assignment]
        return value  # type: ignore[return-value]

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """:meth:`get` of each of ``keys``, in order, with the base values not read yet read
        in one batch: one call for many reads."""
        _check_keys(keys)
        changes, known = self._changes, self._base_values
        missing = [key for key in keys if key not in changes and key not in known]
        if missing:
            peeked = self._peeked
            values: list[object] = [peeked.pop(key, _ABSENT) for key in missing] if peeked else [_ABSENT] * len(missing)
            if _ABSENT in values:
                unread = [key for key, value in zip(missing, values, strict=True) if value is _ABSENT]
                read = iter(self._read_base(unread))
                values = [next(read) if value is _ABSENT else value for value in values]
            known.update(zip(missing, values, strict=True))  # type: ignore[arg-type]
        return [changes[key] if key in changes else known[key] for key in keys]

    def peek_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """:meth:`get_many` that leaves no trace in :meth:`base_values`: the base values it
        reads are kept aside until :meth:`get` or :meth:`get_many` reads them, if ever. For
        reading ahead (a block's run of transfers reads the accounts of the transfers to
        come in batches, and may stop before some of them): the overlay's base reads stay
        those of the keys the block really read."""
        _check_keys(keys)
        changes, known, peeked = self._changes, self._base_values, self._peeked
        missing = [key for key in keys if key not in changes and key not in known and key not in peeked]
        if missing:
            values = self._read_base(missing)
            if len(missing) == len(keys):
                peeked.update(zip(keys, values, strict=True))
                return values  # all of them read now (the common case: a run's fresh accounts)
            peeked.update(zip(missing, values, strict=True))
        return [changes[key] if key in changes else known[key] if key in known else peeked[key] for key in keys]

    def _read_base(self, unread: list[bytes]) -> list[bytes | None]:
        """The base values of ``unread`` (checked keys neither changed, read nor peeked), in one batch."""
        return self._base_get_many(unread)

    def set_many(self, items: Iterable[tuple[bytes, bytes]], *, read: bool = False) -> None:
        """:meth:`set` of each (key, value) pair, in order. With ``read``, each key is first
        read as :meth:`get` reads it (its base value becomes a base read if it is neither
        changed nor read yet): a batch of read-modify-writes, as a run of transfers makes of
        the accounts it read ahead with :meth:`peek_many`."""
        changes, known, peeked = self._changes, self._base_values, self._peeked
        write = self._write if self._layers else changes.__setitem__  # no undo log to keep
        for key, value in items:
            if type(key) is not bytes or len(key) > MAX_KEY_LEN:
                _check_key(key)
            if type(value) is not bytes:
                _check_value(value)
            if read and key not in changes and key not in known:
                old = peeked.pop(key, _ABSENT) if peeked else _ABSENT
                known[key] = self._base_get(key) if old is _ABSENT else old  # type: ignore[assignment]
            write(key, value)

    def set(self, key: bytes, value: bytes) -> None:
        if type(key) is not bytes or len(key) > MAX_KEY_LEN:
            _check_key(key)
        if type(value) is not bytes:
            _check_value(value)
        self._write(key, value)

    def delete(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) > MAX_KEY_LEN:
            _check_key(key)
        self._write(key, None)

    def _write(self, key: bytes, value: bytes | None) -> None:
        changes = self._changes
        if self._layers:
            undo = self._layers[-1]
            if key not in undo:
                undo[key] = changes.get(key, _ABSENT)
        changes[key] = value

    # --- transactional layers -------------------------------------------------------------

    @property
    def transaction_depth(self) -> int:
        return len(self._layers)

    def start_transaction(self) -> None:
        if len(self._layers) >= MAX_TRANSACTION_DEPTH:
            raise OverlayError(f"more than {MAX_TRANSACTION_DEPTH} nested transactions")
        self._layers.append({})

    def commit_transaction(self) -> None:
        if not self._layers:
            raise OverlayError("commit_transaction without an open transaction")
        undo = self._layers.pop()
        if self._layers:
            parent = self._layers[-1]
            for key, old in undo.items():
                # The parent keeps its own, older record of the key if it has one.
                parent.setdefault(key, old)

    def rollback_transaction(self) -> None:
        if not self._layers:
            raise OverlayError("rollback_transaction without an open transaction")
        changes = self._changes
        for key, old in self._layers.pop().items():
            if old is _ABSENT:
                del changes[key]
            else:
                changes[key] = old  # type: ignore[assignment]

    @contextmanager
    def transaction(self) -> Iterator[Overlay]:
        """A layer that commits when the block ends normally, rolls back on an exception."""
        self.start_transaction()
        try:
            yield self
        except BaseException:
            self.rollback_transaction()
            raise
        self.commit_transaction()

    # --- views ----------------------------------------------------------------------------

    def base_values(self) -> dict[bytes, bytes | None]:
        """The base state's values of the keys read so far (None: absent), a copy."""
        return dict(self._base_values)

    def changes(self) -> dict[bytes, bytes | None]:
        """Net changes against the base state, including open transactions' (a copy).

        Writes that restore a base value, or delete an absent key, are still listed; they do
        not change the root.
        """
        return dict(self._changes)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the merged view (base + changes) under ``prefix``, in key order."""
        _check_key(prefix)
        mine = sorted((k, v) for k, v in self._changes.items() if k.startswith(prefix))
        return self._merge(self._base_iter(prefix), mine)

    @staticmethod
    def _merge(
        base: Iterator[tuple[bytes, bytes]], mine: list[tuple[bytes, bytes | None]]
    ) -> Iterator[tuple[bytes, bytes]]:
        i = 0
        n = len(mine)
        for key, value in base:
            while i < n and mine[i][0] < key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
            if i < n and mine[i][0] == key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
            else:
                yield key, value
        for key, v in mine[i:]:
            if v is not None:
                yield key, v


class TrieColumn:
    """The TRIE column seen as a chain.trie.NodeStore."""

    __slots__ = ("_db",)

    def __init__(self, db: Database | Snapshot) -> None:
        self._db = db

    def get(self, node_hash: bytes, /) -> bytes | None:
        return self._db.get(Column.TRIE, node_hash)


class StateDB:
    """The node's state over one :class:`~chain.storage.Database`: best state + history.

    Holds the best state root in memory; see the module docstring for the write path.
    Historical reads (``at=root``) work for every root whose trie nodes are stored.
    """

    def __init__(self, db: Database, *, cache_size: int = 1_000_000, value_cache_size: int = 1 << 17) -> None:
        self._db = db
        self._trie = Trie(TrieColumn(db), cache_size=cache_size)
        # Guards _root, _moving and _values against readers on other threads (module docstring).
        self._lock = threading.Lock()
        self._moving = False  # flat changes are staged in a batch that may be written any time
        # Values of the best state that blocks read or wrote lately (None: absent), so that
        # the accounts a block of transfers touches again are not each a LevelDB read. It
        # always describes the state at self._root: advance and move_best update it with the
        # very changes the flat column got in the batch just written, anything else empties
        # it. A full cache is emptied. Read and filled under self._lock, as the column is read.
        self._values: dict[bytes, bytes | None] = {}
        self._value_cache_size = value_cache_size
        self._staged_flat: tuple[bytes, Mapping[bytes, bytes | None]] | None = None
        # An online pruning run's record of the trie nodes staged since its snapshot (None: no
        # run), and the lock under which staging records and the sweep deletes (chain.pruning).
        self._fresh_nodes: set[bytes] | None = None
        self._prune_lock = threading.Lock()
        stored = db.get(Column.META, BEST_ROOT_KEY)
        if stored is None:
            self._root = EMPTY_ROOT
        elif len(stored) != HASH_LEN:
            raise StateError(f"META {BEST_ROOT_KEY!r} holds {len(stored)} bytes, not a state root")
        elif not self._trie.is_known_root(stored):
            raise StateError(f"best state root 0x{stored.hex()} has no stored trie root node")
        else:
            self._root = stored

    @property
    def trie(self) -> Trie:
        """The trie reader over the TRIE column (for tools, benchmarks and proofs)."""
        return self._trie

    def root(self) -> bytes:
        """State root of the best (latest committed and advanced) state."""
        return self._root

    def is_known_root(self, root: bytes) -> bool:
        """Whether ``root`` can be read with ``at=`` (its trie root node is stored)."""
        return self._trie.is_known_root(root)

    def get(self, key: bytes, *, at: bytes | None = None) -> bytes | None:
        """The value of ``key`` in the best state (flat column), or at state root ``at``."""
        if at is None:
            _check_key(key)
            return self._db.get(Column.STATE, key)
        return self._trie.get(at, key)

    def keys_paged(
        self,
        prefix: bytes,
        count: int,
        start_key: bytes | None = None,
        *,
        at: bytes | None = None,
    ) -> list[bytes]:
        """Up to ``count`` keys starting with ``prefix``, in key order, strictly after
        ``start_key`` (Substrate's ``state_getKeysPaged``)."""
        _check_key(prefix)
        if start_key is not None:
            _check_key(start_key)
        if type(count) is not int or count < 0:
            raise StateError(f"count must be a non-negative int, got {count!r}")
        if at is not None:
            return [k for k, _ in islice(self._trie.iter_items(at, prefix, start_key), count)]
        keys: list[bytes] = []
        if count == 0:
            return keys
        for key, _ in self._db.iterate(Column.STATE, prefix=prefix, start=start_key):
            if key == start_key:
                continue  # start_key itself is excluded, as in Substrate
            keys.append(key)
            if len(keys) == count:
                break
        return keys

    def prove(self, keys: Sequence[bytes], *, at: bytes | None = None) -> tuple[bytes, ...]:
        """A read proof of ``keys`` at ``at`` (default: the best state)."""
        return self._trie.prove(self._root if at is None else at, keys)

    def overlay(self, *, at: bytes | None = None) -> Overlay:
        """A fresh overlay over the best state, or over the state at root ``at`` (e.g. to
        execute a block on a fork).

        An overlay on the best state reads the flat column while that state is still the
        best one, and the trie at its base root once :meth:`advance` has moved on, so its
        view never changes under it.
        """
        if at is None:
            base = self._root
            return Overlay(
                base,
                partial(self._get_base, base),
                partial(self._iter_base, base),
                partial(self._get_base_many, base),
            )
        if not self._trie.is_known_root(at):
            raise StateError(f"cannot open an overlay at unknown state root 0x{at.hex()}")
        trie = self._trie
        return Overlay(
            at,
            partial(trie.get, at),
            partial(trie.iter_items, at),
            lambda keys: [trie.get(at, key) for key in keys],
        )

    def _get_base(self, base: bytes, key: bytes) -> bytes | None:
        with self._lock:
            if base == self._root and not self._moving:
                return self._get_best(key)
        return self._trie.get(base, key)

    def _get_base_many(self, base: bytes, keys: list[bytes]) -> list[bytes | None]:
        """:meth:`_get_base` of each of ``keys``: the best state's values under one lock
        (value cache, then the flat column's misses in one batch), else the trie's."""
        with self._lock:
            if base == self._root and not self._moving:
                cached, limit = self._values, self._value_cache_size
                found = [cached.get(key, _ABSENT) for key in keys]
                misses = [key for key, value in zip(keys, found, strict=True) if value is _ABSENT]
                if not misses:
                    return found  # type: ignore[return-value]
                read = iter(self._db.get_many(Column.STATE, misses))
                out: list[bytes | None] = []
                for key, value in zip(keys, found, strict=True):
                    if value is _ABSENT:
                        value = next(read)
                        if value is None or len(value) <= MAX_CACHED_VALUE:
                            if len(cached) >= limit:
                                cached.clear()
                            cached[key] = value
                    out.append(value)  # type: ignore[arg-type]
                return out
        trie = self._trie
        return [trie.get(base, key) for key in keys]

    def _get_best(self, key: bytes) -> bytes | None:
        """The best state's value of ``key``: from the value cache, else the flat column."""
        value = self._values.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._db.get(Column.STATE, key)
            if value is None or len(value) <= MAX_CACHED_VALUE:
                if len(self._values) >= self._value_cache_size:
                    self._values.clear()
                self._values[key] = value
        return value  # type: ignore[return-value]

    def _update_values(self, changes: Mapping[bytes, bytes | None]) -> None:
        values = self._values
        values.update(changes)
        for key in [key for key, value in changes.items() if value is not None and len(value) > MAX_CACHED_VALUE]:
            del values[key]  # not kept (MAX_CACHED_VALUE), and no older value may stand for it
        if len(values) > self._value_cache_size:
            values.clear()

    def _iter_base(self, base: bytes, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._lock:
            if base == self._root and not self._moving:
                return self._db.iterate(Column.STATE, prefix=prefix)  # its snapshot is taken now
        return self._trie.iter_items(base, prefix)

    def _mark_moving(self) -> None:
        with self._lock:
            self._moving = True

    def compute_commit(self, overlay: Overlay) -> StateCommit:
        """The new root, trie nodes and flat changes of ``overlay``. Pure: nothing written.

        The commit builds on the overlay's base root; if that is no longer the best state,
        the commit can still be stored as a side state (trie nodes only), not advanced to.
        """
        if overlay.transaction_depth:
            raise OverlayError(
                f"overlay has {overlay.transaction_depth} open transaction(s); commit or roll "
                "them back first"
            )
        changes = overlay.changes()
        update = self._trie.compute_update(overlay.base_root, changes)
        return StateCommit(
            overlay.base_root, update.root, update.nodes, MappingProxyType(changes), MappingProxyType(overlay.base_values())
        )

    def stage_commit(self, batch: WriteBatch, commit: StateCommit) -> None:
        """Put ``commit`` into the caller's batch: trie nodes always; flat values and the
        best-root marker only when it builds on the best state (a fork's state is readable
        with ``at=`` but does not touch the flat column)."""
        self.stage_nodes(batch, commit)
        if commit.base_root != self._root:
            return
        self._mark_moving()
        for key, value in commit.changes.items():
            if value is None:
                batch.delete(Column.STATE, key)
            else:
                batch.put(Column.STATE, key, value)
        batch.put(Column.META, BEST_ROOT_KEY, commit.root)

    def read_values(
        self, keys: Iterable[bytes], *, at: bytes | None = None, known: Mapping[bytes, bytes | None] = MappingProxyType({})
    ) -> dict[bytes, bytes | None]:
        """The values of ``keys`` in the best state (flat column), or at state root ``at``:
        a block's journal reads its keys' values before the block with this. ``known``:
        values already read at that same state (a commit's ``base_values``), not read again."""
        with self._lock:
            if at is None or (at == self._root and not self._moving):
                get = self._get_best
                return {key: known[key] if key in known else get(key) for key in keys}
        trie = self._trie
        return {key: known[key] if key in known else trie.get(at, key) for key in keys}

    def stage_nodes(self, batch: WriteBatch, commit: StateCommit) -> None:
        """Put only ``commit``'s trie nodes into the batch (a block on a side branch)."""
        if self._fresh_nodes is not None:  # an online pruning run: recorded before the batch is written
            with self._prune_lock:
                if self._fresh_nodes is not None:
                    self._fresh_nodes.update(commit.trie_nodes)
        batch.put_many(Column.TRIE, commit.trie_nodes.items())

    # --- online pruning (chain.pruning.LivePrune) ---------------------------------------------
    def watch_nodes(self) -> None:
        """Record the trie nodes staged from now on, until :meth:`unwatch_nodes`. Call it with
        no block's batch staged and not yet written (its nodes would go unrecorded)."""
        with self._prune_lock:
            if self._fresh_nodes is not None:
                raise StateError("an online pruning run is under way already")
            self._fresh_nodes = set()

    def unwatch_nodes(self) -> None:
        with self._prune_lock:
            self._fresh_nodes = None

    def delete_nodes(self, doomed: list[bytes], meta: tuple[bytes, bytes] | None) -> int:
        """Delete the trie nodes ``doomed`` (then empty it) but those staged since
        :meth:`watch_nodes`; returns how many it deleted. A node staged later is put after
        this delete, in the batch of the block that staged it. ``meta``, a META key and value
        (chain.pruning's record of how far the run got), goes in the same batch, synced."""
        with self._prune_lock:
            fresh = self._fresh_nodes
            if fresh is None:
                raise StateError("no online pruning run is under way: nothing records the nodes blocks store")
            gone = [node_hash for node_hash in doomed if node_hash not in fresh]
            if gone or meta is not None:
                with self._db.write_batch(sync=meta is not None) as batch:
                    for node_hash in gone:
                        batch.delete(Column.TRIE, node_hash)
                    if meta is not None:
                        batch.put(Column.META, *meta)
        doomed.clear()
        return len(gone)

    def stage_flat(self, batch: WriteBatch, changes: Mapping[bytes, bytes | None], root: bytes) -> None:
        """Move the flat column by ``changes`` (None: delete) so that it holds state ``root``.

        The caller guarantees that the best state plus ``changes`` is the state ``root`` (a
        reorg's net change: the retracted blocks' old values, then the enacted blocks' new
        ones) and calls :meth:`move_best` once the batch is written.
        """
        self._mark_moving()
        # Keys are distinct, so puts and deletes may be staged in any order; the puts go in
        # one put_many (a block of transfers writes thousands of accounts, and deletes none).
        if None not in changes.values():
            batch.put_many(Column.STATE, changes.items())  # type: ignore[arg-type]
        else:
            batch.put_many(Column.STATE, ((key, value) for key, value in changes.items() if value is not None))
            for key, value in changes.items():
                if value is None:
                    batch.delete(Column.STATE, key)
        batch.put(Column.META, BEST_ROOT_KEY, root)
        self._staged_flat = (root, changes)

    def move_best(self, root: bytes) -> None:
        """Make ``root`` the best state in memory after a :meth:`stage_flat` batch was written."""
        if not self._trie.is_known_root(root):
            raise UnknownStateRoot(f"cannot move the best state to unknown root 0x{root.hex()}")
        staged, self._staged_flat = self._staged_flat, None
        with self._lock:
            if staged is not None and staged[0] == root and root != self._root:
                self._update_values(staged[1])
            elif root != self._root:
                self._values.clear()
            self._root, self._moving = root, False

    def advance(self, commit: StateCommit) -> None:
        """Make ``commit`` the best state in memory; call it after its batch was written."""
        if commit.base_root != self._root:
            raise StateError(
                f"commit builds on 0x{commit.base_root.hex()}, not on the best state "
                f"0x{self._root.hex()}; switching forks needs undo records (not supported)"
            )
        with self._lock:
            self._update_values(commit.changes)
            self._root, self._moving = commit.root, False
