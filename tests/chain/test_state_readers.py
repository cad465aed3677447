"""Readers of the best state while a block is written (found in review: RPC reads, pool
validation and the sampled verifier's reads run outside the node's block lock).

The flat column holds the best state for fast reads; a block's write batch moves it to the
new state and only then does the in-memory best root follow. A reader that checked "my base
is the best root" and then read the flat column could get the new block's value under the old
root: a view of no state at all. These tests read in that window, from a hook that runs right
after LevelDB wrote the batch, on a real database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chainkit import ALICE, BOB, dev_spec, sign

from chain import calls
from chain.blockchain import Blockchain
from chain.pallets import balances
from chain.state import StateDB
from chain.storage import Column, Database, WriteBatch

_hook: list[Callable[[], None]] = []


class _Watched(WriteBatch):
    __slots__ = ()

    def commit(self) -> None:
        super().commit()
        for hook in _hook:  # the batch is in LevelDB; the chain has not moved its best root yet
            hook()


class _WatchedDatabase(Database):
    def write_batch(self, *, sync: bool = True) -> WriteBatch:
        batch = super().write_batch(sync=sync)
        batch.__class__ = _Watched
        return batch


def test_an_overlay_on_the_best_state_never_reads_the_next_blocks_values(tmp_path: Path) -> None:
    spec = dev_spec()
    chain = Blockchain(_WatchedDatabase(tmp_path / "db"), chain_id=spec.id, build_genesis=spec.apply_genesis)
    key = balances.ACCOUNT.compute_key(BOB.public)
    early = chain.state.overlay()  # made before the block, first read inside the window
    before = balances.get_account(chain.state.overlay(), BOB.public)
    prefix = key[:32]
    listed_before = list(chain.state.overlay().iter_prefix(prefix))
    seen: list[tuple[bytes, object, object, list[tuple[bytes, bytes]]]] = []

    def read() -> None:
        during = chain.state.overlay()  # made inside the window: its base is still the old root
        seen.append((
            during.base_root,
            balances.get_account(early, BOB.public),
            balances.get_account(during, BOB.public),
            list(chain.state.overlay().iter_prefix(prefix)),
        ))

    genesis_root = chain.state.root()
    _hook.append(read)
    try:
        built = chain.build_block([sign(chain, ALICE, calls.Transfer(BOB.public, 10**9), 0)], ALICE, slot=1)
    finally:
        _hook.clear()
    assert built.receipts[0].success
    assert seen, "the hook did not run"
    base, from_early, from_during, listed = seen[-1]
    assert base == genesis_root
    assert from_early == before and from_during == before
    assert listed == listed_before
    # After the write, the best state is the block's, read from the flat column again.
    after = balances.get_account(chain.state.overlay(), BOB.public)
    assert after.free == before.free + 10**9
    assert chain.state.root() == built.block.header.state_root
    chain.db.close()


def test_a_commit_staged_by_stage_commit_is_not_read_under_the_old_root(tmp_path: Path) -> None:
    """The same for the StateDB write path of the module docstring (stage_commit, advance)."""
    db = Database(tmp_path / "db")
    state = StateDB(db)
    first = state.overlay()
    first.set(b"key", b"old")
    commit = state.compute_commit(first)
    with db.write_batch() as batch:
        state.stage_commit(batch, commit)
    state.advance(commit)
    state = StateDB(db)  # as after a restart: no value cached, every read goes to the column or the trie
    reader = state.overlay()
    second = state.overlay()
    second.set(b"key", b"new")
    later = state.compute_commit(second)
    with db.write_batch() as batch:
        state.stage_commit(batch, later)
    assert db.get(Column.STATE, b"key") == b"new"  # written, not yet advanced to
    assert reader.get(b"key") == b"old" and state.overlay().get(b"key") == b"old"
    assert state.overlay().get_many([b"key"]) == [b"old"] and state.overlay().peek_many([b"key"]) == [b"old"]  # batched reads too
    assert state.read_values([b"key"], at=commit.root) == {b"key": b"old"}  # a journal's read, too
    state.advance(later)
    assert reader.get(b"key") == b"old" and state.overlay().get(b"key") == b"new"
    db.close()
