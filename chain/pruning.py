"""Offline state pruning: delete the trie nodes that no state the node still keeps refers to.

Why
---
The node is an archive node: a block's trie nodes are never deleted when later blocks
replace them, so every block's state stays readable, and the TRIE column grows by about
530 KB a block of 2,000 transfers (README, "Running a validator") whether or not anyone
reads the old states. A validator needs far fewer: the states of the blocks it may still
import on (every block not final) and a window of final ones for RPC callers and fraud
proofs about recent blocks.

What
----
:func:`prune_state` keeps the state of every stored block numbered at least the finalized
block's number minus ``keep`` (on any branch: no block that is not final is older than the
finalized one), and the best block's, finding them from the record of the last run
("Incremental runs" below). It marks every trie node reachable from those states'
roots (:meth:`chain.trie.Trie.mark_reachable`: each distinct node read once, checked
against its hash), and only then deletes every other node of the TRIE column, in batches.
This is geth's offline pruning (``geth snapshot prune-state``) in mark-and-sweep form:
with the node stopped, nothing can write a node the marking did not see.

Online (:class:`LivePrune`, ``polchain node --state-pruning N``): the same marking and sweep
while the node runs, on a LevelDB snapshot taken when no block is being written (the node
service starts it under its lock). Blocks keep being imported meanwhile, and a trie node is
content-addressed: a new block may store again a node that only a pruned state had (an
account back at an old balance), and the sweep, which saw that node unreachable in the
snapshot, would delete the new block's copy. So from the snapshot on, the state database
records every node a block stages (chain.state.StateDB.watch_nodes), and each batch of the
sweep drops those before it deletes, under the lock the staging takes: a node is either
recorded before the sweep's check, or put after its delete. Nodes a block stored after the
snapshot are not in it, so the sweep never sees them. Substrate's online pruning
(``--state-pruning``, a death row of the nodes each block replaced, with reference counts)
needs no marking; this trie journals no removals, so the marking stands in for it.

Checkpoints (the OPENING column, chain.transcripts) go in the same run: those of a block
older than the finalized one minus ``OPENING_WINDOW`` (4,096: a fraud proof's block must have
its parent among the chain's last ``system.BLOCK_HASH_COUNT`` blocks, chain.pallets.pol), and
those of a block at or below the finalized height that is not on the finalized chain (an
abandoned branch: no fraud proof about it is accepted). Every validator fetches and keeps a
training block's whole transcript (consensus.pol), up to ``max_transcript_bytes`` a block, so
kept for ever they were the largest column (an outside reviewer's finding). A node that
syncs an older block finds no checkpoints for it and imports it under its finality proof.

A trie node is content-addressed, and the nodes of one state all differ (a leaf holds the
rest of its raw key, and a branch the hashes of different children), so a node shared by a
kept state and a pruned one is reachable from the kept one and stays.

Incremental runs
----------------
A run reads the headers of the blocks whose states the last run left, not of every block ever
stored: each run records (META ``pruned``, :data:`META_PRUNED`) the lowest height whose
states it kept and the blocks stored at that height, on every branch, and the next run walks
the block tree (the CHILDREN column) up from those blocks. Every block whose state is still
held is among them: the states below that height are gone; a block stored since has a parent
on a branch that contains the finalized block, which is at or above that height; and a branch
that forked below it (off the finalized chain) has its blocks from that height on reached
through its block at that height. The walk finds the blocks that became old since (their
roots go first, as above), the kept ones (marked), and the next record. So a run reads the
blocks finalized since the last one, the kept window and the blocks not final. Before, every
run read every header and held, and looked up again, the root of every state ever pruned: an
outside tester measured 1.7-4.3 s a run at 100,000 blocks, O(N^2) over a chain's life. With
the tester's script on one machine (2026-11-30, 256 kept, 32 new final blocks a run): at
100,000 blocks 0.9-1.3 s a run before, 0.6 s after, and 16 MB of Python objects at a run's
peak before, 1.3 MB after (tracemalloc), as at 10,000 blocks. The RSS a run adds is now
LevelDB's mapped tables and cache (file-backed), read by the marking and the sweep: the sweep
still reads the TRIE column's keys, which the runs keep to the kept states' nodes, and the
checkpoints' sweep the OPENING column's keys (at most the fraud-proof window's blocks).

The record is written in the batch that deletes the pruned states' roots, so the two never
disagree: every state a walk from the record reaches (or, with no record, every state) has
its root, and one that has not is damage, which stops the run with nothing deleted (before,
the record came after the roots, in a batch of its own, and a root found missing was taken
for a state pruned before: an outside tester's S3, round 14, a damaged state inside the
window deleted and then called pruned). A database without a record (none pruned it: the
record came with runtime version 9, and an older runtime's database has another genesis), or
with one not to trust (malformed, naming a block not stored or not at the recorded height,
or whose blocks do not lead to the finalized and the best block: a block stored without its
place in the tree), has every header read, once: that run writes the record. ``keep`` may
change between runs: a smaller one prunes further up the walked blocks, a larger one keeps
what is left (the heights below the record are counted as pruned before). The offline
command and the online runs share the record.

Safety
------
- The marking reads every kept node before anything is deleted: a node missing or not
  matching its hash stops the pruning with nothing deleted (MissingTrieNode, MalformedNode).
- Only unreachable nodes are deleted, so a crash in the middle leaves a database that is
  complete for every kept state; running the pruning again finishes the job (every run
  sweeps the whole TRIE column, so nodes a stopped run left are found by the next). The pruned
  states' root nodes go first, in one synced batch with the record, so a pruned state is
  never found half there (its root gone, it is unknown as a whole).
- A pruned block's state is then unknown (``chain.trie.Trie.is_known_root`` is False for
  its root): RPC calls at it say so (rpc.reads), a fraud proof whose parent state is gone is
  "unknown_job", and nothing else reads states that old (imports and votes read the states
  of blocks that are not final, or of the finalized block).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from chain.blockchain import META_BEST, META_FINALIZED
from chain.errors import ChainError, MissingTrieNode
from chain.header import Header, decode_header
from chain.pallets.system import BLOCK_HASH_COUNT
from chain.state import StateDB, TrieColumn
from chain.storage import Column, Database, Snapshot
from chain.trie import Trie

__all__ = ["DEFAULT_KEEP", "META_PRUNED", "LivePrune", "PruneReport", "prune_state"]

#: Final blocks whose states are kept below the finalized one (Substrate's default window).
DEFAULT_KEEP = 256
#: Final blocks whose checkpoints are kept below the finalized one: the fraud-proof window.
OPENING_WINDOW = BLOCK_HASH_COUNT
#: The META record of how far pruning got (module docstring, "Incremental runs"): the lowest
#: height whose states the last run kept (u32 big-endian), then the hashes of the blocks stored
#: at that height, on every branch.
META_PRUNED = b"pruned"
_DELETE_BATCH = 10_000  # keys a write batch deletes: bounded memory whatever the column's size


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What :func:`prune_state` did."""

    finalized_number: int
    lowest_kept: int  # the lowest block number whose state was kept (held before the run)
    states_kept: int  # blocks (of any branch) whose state was kept
    nodes_kept: int
    nodes_deleted: int
    seconds: float
    openings_deleted: int = 0  # checkpoints of old or abandoned blocks (module docstring)
    headers_read: int = 0  # blocks whose headers the run read to find the states (module docstring, "Incremental runs")


def prune_state(db: Database, keep: int = DEFAULT_KEEP, *, progress: Callable[[str], None] | None = None) -> PruneReport:
    """Delete every trie node of ``db`` that the states of the blocks numbered at least the
    finalized block's minus ``keep``, and the best block's, do not reach (module docstring).
    ``db`` must not be in use by a node (open it as the node would: its LOCK keeps a node out)."""
    _check_keep(keep)
    report = _prune(db, db, keep, lambda doomed, meta: _delete(db, doomed, meta), progress or (lambda _message: None))
    if progress is not None:
        progress(f"{report.nodes_deleted:,} nodes deleted; compacting the database")
    db.compact()
    return report


class LivePrune:
    """One online pruning run of a running node's state (module docstring, "Online").

    Made when no block is being written (the node service holds its lock): it takes the
    snapshot and starts the state database's record of staged nodes. :meth:`run` then marks
    and sweeps on any thread while blocks are imported; it ends the record and releases the
    snapshot whatever happens. No compaction: LevelDB compacts in the background."""

    def __init__(self, db: Database, state: StateDB, keep: int = DEFAULT_KEEP) -> None:
        _check_keep(keep)
        self._db, self._state, self._keep = db, state, keep
        state.watch_nodes()
        try:
            self._snapshot = db.snapshot()
        except BaseException:
            state.unwatch_nodes()
            raise

    def run(self, progress: Callable[[str], None] | None = None) -> PruneReport:
        try:
            return _prune(self._snapshot, self._db, self._keep, self._state.delete_nodes, progress or (lambda _message: None))
        finally:
            self._snapshot.close()
            self._state.unwatch_nodes()


def _check_keep(keep: object) -> None:
    if type(keep) is not int or keep < 0:
        raise ValueError(f"keep must be a non-negative int, got {keep!r}")


def _prune(
    reader: Database | Snapshot, db: Database, keep: int, delete: Callable[[list[bytes], tuple[bytes, bytes] | None], int],
    say: Callable[[str], None],
) -> PruneReport:
    """Find the blocks whose states stay or go from the record of the last run (or from every
    header, without one), mark on ``reader`` (the database ``db``, or a snapshot of it), delete
    the roots of the states that go with the record of how far the run got, then sweep the
    nodes ``reader`` holds that no kept state reaches, through ``delete`` (doomed nodes, the
    META record to put with them or None -> how many it deleted; it empties the list), then the
    checkpoints of old and abandoned blocks."""
    started = time.perf_counter()
    finalized_hash, final = _read_header(reader, META_FINALIZED)
    best_hash, best = _read_header(reader, META_BEST)
    finalized = final.number
    wanted = max(0, finalized - keep)
    walked = _walk_from_record(reader, finalized_hash, best_hash)
    blocks: Iterable[tuple[bytes, Header]]
    if walked is None:  # no record (none pruned it) or one not to trust
        blocks, pruned_before = _read_every_header(reader), 0
    else:
        recorded_height, blocks = walked
        pruned_before = max(0, recorded_height - wanted)  # heights an earlier run with a smaller keep pruned
    roots = {best.state_root}
    old_roots: set[bytes] = set()
    kept: list[int] = []  # the numbers of the blocks whose states are kept
    held: list[tuple[int, bytes]] = []  # (number, hash) of every block at or above ``wanted``
    read = 0
    for block_hash, header in blocks:
        read += 1
        if header.number < wanted:
            old_roots.add(header.state_root)
            continue
        held.append((header.number, block_hash))
        if reader.get(Column.TRIE, header.state_root) is None:
            # Every state at or above the recorded height (or every state, with no record) is
            # whole: a run deletes roots only in the batch that records how far it got. (No
            # state is empty: genesis stores the runtime's version.)
            raise MissingTrieNode(
                f"the state of block #{header.number} (0x{block_hash.hex()}) is kept, but its root node "
                f"0x{header.state_root.hex()} is not stored: the database is damaged (nothing was deleted)"
            )
        roots.add(header.state_root)
        kept.append(header.number)
    lowest = min(kept, default=finalized)
    already = f"; {pruned_before} pruned before" if pruned_before else ""
    say(f"marking the trie nodes of {len(kept)} states (blocks #{lowest} and up; finalized #{finalized}{already})")
    trie = Trie(TrieColumn(reader))  # its cache stays empty: mark_reachable reads the store
    marked: set[bytes] = set()
    for root in sorted(roots):  # any order: sorted, so that a run is repeatable
        trie.mark_reachable(root, marked)
    say(f"{len(marked):,} nodes kept; deleting the others")
    # The pruned states' root nodes first, in one synced batch with the record of how far the
    # run got: from then on each of them is unknown as a whole (Blockchain.has_state), never
    # half there, whenever the sweep stops, and the record and the roots never disagree.
    # (From a record, only the states that became old since: those pruned before are not read.)
    doomed = [root for root in sorted(old_roots - marked) if reader.get(Column.TRIE, root) is not None]
    swept = set(doomed)  # (a snapshot still shows them below)
    deleted = delete(doomed, _compute_record(lowest, [block_hash for number, block_hash in held if number == lowest]))
    for node_hash in reader.iterate_keys(Column.TRIE):
        if node_hash not in marked and node_hash not in swept:
            doomed.append(node_hash)
            if len(doomed) == _DELETE_BATCH:
                deleted += delete(doomed, None)
    deleted += delete(doomed, None)
    openings = _sweep_openings(reader, db, finalized)
    return PruneReport(finalized, lowest, len(kept), len(marked), deleted, time.perf_counter() - started, openings, read)


def _walk_from_record(
    reader: Database | Snapshot, finalized_hash: bytes, best_hash: bytes,
) -> tuple[int, list[tuple[bytes, Header]]] | None:
    """The lowest height the last run kept, from its record (that height and the blocks stored
    there), and every stored block from those blocks up (hash, header), through the block tree
    (CHILDREN): every block whose state an earlier run left (module docstring, "Incremental
    runs"). None if there is no record, or one not to trust: malformed, naming a block that is
    not stored or not at the recorded height, or whose blocks do not lead to both the
    finalized and the best block (a damaged record, or blocks stored without their place in
    the tree, from before it existed): the caller reads every header instead."""
    raw = reader.get(Column.META, META_PRUNED)
    if raw is None or len(raw) < 4 + 32 or (len(raw) - 4) % 32:
        return None
    height = struct.unpack(">I", raw[:4])[0]
    frontier = frozenset(raw[i : i + 32] for i in range(4, len(raw), 32))
    blocks: list[tuple[bytes, Header]] = []
    todo = list(frontier)
    while todo:
        block_hash = todo.pop()
        raw_header = reader.get(Column.HEADER, block_hash)
        if raw_header is None:
            return None
        header = decode_header(raw_header)
        if block_hash in frontier and header.number != height:
            return None
        blocks.append((block_hash, header))
        todo.extend(key[32:] for key in reader.iterate_keys(Column.CHILDREN, prefix=block_hash))
    found = {block_hash for block_hash, _ in blocks}
    if finalized_hash not in found or best_hash not in found:
        return None
    return height, blocks


def _read_every_header(reader: Database | Snapshot) -> Iterator[tuple[bytes, Header]]:
    """Every stored block (hash, header), in hash order: a run without a record to start from."""
    for block_hash, raw in reader.iterate(Column.HEADER):
        yield block_hash, decode_header(raw)


def _compute_record(lowest: int, frontier: Iterable[bytes]) -> tuple[bytes, bytes]:
    """The META record (key, value) that every state below ``lowest`` is pruned, and the blocks
    stored at that height (every branch, in no order), from which the next run walks the block
    tree."""
    return META_PRUNED, struct.pack(">I", lowest) + b"".join(frontier)


def _sweep_openings(reader: Database | Snapshot, db: Database, finalized: int) -> int:
    """Delete the checkpoints of blocks below ``finalized - OPENING_WINDOW``, and of blocks at
    or below ``finalized`` off the finalized chain; how many. Such a block is never imported
    again, so nothing writes its checkpoints meanwhile (no record is needed, as for nodes)."""
    oldest = finalized - OPENING_WINDOW
    verdicts: dict[bytes, bool] = {}  # block hash -> its checkpoints go
    doomed: list[bytes] = []
    deleted = 0
    for key in reader.iterate_keys(Column.OPENING):  # (values unread: up to 1 MiB each)
        block_hash = key[:32]
        goes = verdicts.get(block_hash)
        if goes is None:
            raw = reader.get(Column.HEADER, block_hash)
            number = None if raw is None else decode_header(raw).number
            goes = verdicts[block_hash] = number is not None and (
                number < oldest or (number <= finalized and reader.get(Column.NUMBER, struct.pack(">I", number)) != block_hash)
            )
        if goes:
            doomed.append(key)
            if len(doomed) == _DELETE_BATCH:
                deleted += _delete(db, doomed, column=Column.OPENING)
    return deleted + _delete(db, doomed, column=Column.OPENING)


def _delete(db: Database, doomed: list[bytes], meta: tuple[bytes, bytes] | None = None, *, column: Column = Column.TRIE) -> int:
    """Delete ``doomed`` keys of ``column`` (then empty it), with ``meta`` (a META key and
    value: the pruning record) put in the same batch, synced, if given (the roots' batch).
    Unsynced without it: what is swept is garbage, so a batch a crash loses is only garbage
    left for the next run."""
    count = len(doomed)
    if count or meta is not None:
        with db.write_batch(sync=meta is not None) as batch:
            for key in doomed:
                batch.delete(column, key)
            if meta is not None:
                batch.put(Column.META, *meta)
        doomed.clear()
    return count


def _read_header(db: Database | Snapshot, meta_key: bytes) -> tuple[bytes, Header]:
    block_hash = db.get(Column.META, meta_key)
    raw = None if block_hash is None else db.get(Column.HEADER, block_hash)
    if block_hash is None or raw is None:
        raise ChainError(f"the database has no {meta_key.decode()} block: it is not a polchain database or is damaged")
    return block_hash, decode_header(raw)
