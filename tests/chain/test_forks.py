"""The block tree: competing branches, fork choice, reorganisations through the journals,
the pool after a reorg, and the atomicity of a reorg, on real LevelDB databases.

Mutation testing of dcbe6e9 and 0be96e9 (the checkpoint), 2026-11-30, 13:52-14:12 UTC, mutmut
3.8.1: in a scratch copy (``git archive`` of b895873) whose ``[tool.mutmut]`` had only_mutate
narrowed to the files of this session's commits, ``mutmut run --max-children 1
"chain.x_nothing_matches*"`` made the mutants (none ran). In scope, 102: the mutants whose
changed original lines are both blamed on those commits (``git blame``) and not a line the
commits only moved or re-indented. Each was applied (one at a time) and ``python -m pytest -x
-p no:cacheprovider tests/chain/test_forks.py tests/node/test_network_lies.py
tests/node/test_cli.py -k checkpoint`` run in a fresh process, the files restored after each.
``mutmut apply NAME`` was not used: it replaces the first function of that name in the file, so
``xǁBlockchainǁverify_header__mutmut_38`` went into BlockRules.verify_header (a Protocol stub)
and "survived" untested (any method whose name another class of the module shares, ``__init__``
above all); a small script put each mutant's body into its own class's method instead.
Killed/in scope, before -> after the tests added then (each watched failing on its mutants):
Blockchain.__init__ 10/12 -> 12/12, verify_header 10/10, _is_on_checkpoint_chain 17/21 ->
18/21, find_checkpoint_conflict 7/7, finalize 6/7 -> 7/7, _build_block 12/12;
NodeService.__init__ 1/2, author_block 18/21 -> 21/21, import_justification 9/10 -> 10/10.
Killed by:

- the database refusal's whole message (``"XX(polchain purge-chain)..."`` and upper case: the
  test compared its start);
- A5 imported above the checkpoint #3 (``is_descendant(wanted, block_hash)`` for every block,
  checkpoint stored: each block above it was refused but one whose parent is the checkpoint);
- finalizing the finalized genesis again before the checkpoint is imported
  (``(block_hash == self.finalized_hash) and False``: it was a conflict);
- in tests/node/test_network_lies.py, the log lines compared whole and the checkpoint warning
  counted once over two slots (``_awaiting_checkpoint = None`` or ``False`` when said, the
  messages with ``XX`` around them).

Left, equivalent:

- _is_on_checkpoint_chain's ``<=`` for ``<`` and, for a block above the checkpoint's number
  when the checkpoint is not stored, ``None`` or ``True`` for ``False``: a stored block at or
  above that number means the best chain reached it (fork choice is the longest chain), so
  that database held another block at the checkpoint's number, and was refused when opened;
  at the number itself, ancestry and descent are both equality.
- NodeService.__init__'s ``_awaiting_checkpoint = None`` for ``False``: both falsy.

No bug was found."""

from __future__ import annotations

from pathlib import Path

import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, dev_spec, open_chain, sign

from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.errors import BlockError, FinalityConflict, StorageError, UnknownParent
from chain.extrinsic import Extrinsic
from chain.pallets import balances
from chain.pool import TransactionPool, Validity
from chain.storage import Column, Database, WriteBatch
from consensus.block_import import update_pool

# Two branches of the dev chain (Alice is the only validator, so branches differ by slot):
# A = A1 (slot 1), A2 (slot 2); B = B1 (slot 3), B2 (slot 4), B3 (slot 5), all from genesis.


def _build(chain: Blockchain, slot: int, xts: list[Extrinsic]) -> Block:
    built = chain.build_block(xts, ALICE, slot=slot)
    assert len(built.block.body.extrinsics) == len(xts)
    return built.block


@pytest.fixture(scope="module")
def branches(tmp_path_factory) -> dict[str, Block]:
    tmp = tmp_path_factory.mktemp("branches")
    a = open_chain(tmp / "a")
    b = open_chain(tmp / "b")
    shared = sign(a, ALICE, calls.Transfer(BOB.public, 10**9), 0)  # in A1 and in B1
    only_a = sign(a, BOB, calls.Transfer(CHARLIE.public, 3 * 10**9), 0)  # retracted, valid on B
    spent = sign(a, FERDIE, calls.Remark(b"a"), 0)  # retracted, B spends Ferdie's nonce 0
    blocks = {
        "A1": _build(a, 1, [shared, only_a]),
        "A2": _build(a, 2, [spent]),
        "B1": _build(b, 3, [shared]),
        "B2": _build(b, 4, [sign(b, FERDIE, calls.Remark(b"b"), 0)]),
        "B3": _build(b, 5, [sign(b, CHARLIE, calls.Transfer(BOB.public, 7 * 10**9), 0)]),
    }
    blocks["xt:shared"], blocks["xt:only_a"], blocks["xt:spent"] = shared, only_a, spent  # type: ignore[assignment]
    a.db.close()
    b.db.close()
    return blocks


def _flat_state(chain: Blockchain) -> list[tuple[bytes, bytes]]:
    return list(chain.db.iterate(Column.STATE))


def _fresh(path: Path, blocks: list[Block]) -> Blockchain:
    chain = open_chain(path)
    for block in blocks:
        chain.import_block(block)
    return chain


def _validator(chain: Blockchain):
    def validate(xt: Extrinsic) -> Validity:
        raw = xt.encode()
        v = chain.runtime.verify_extrinsic(chain.state.overlay(), xt, len(raw), chain.best_number + 1, allow_future=True)
        return Validity(v.priority, v.account_nonce, 64)

    return validate


def test_the_longer_branch_wins_and_the_state_equals_a_fresh_import(tmp_path, branches) -> None:
    node = _fresh(tmp_path / "node", [branches["A1"], branches["A2"]])
    a2 = branches["A2"].hash()
    assert node.best_hash == a2
    side = node.import_block(branches["B1"])
    assert not side.is_best and side.enacted == side.retracted == ()
    assert node.best_hash == a2 and node.get_hash(1) == branches["A1"].hash()
    node.import_block(branches["B2"])  # same height as A2 (slot 2), a later slot (4): A2 stays
    assert node.best_hash == a2
    imported = node.import_block(branches["B3"])
    b_hashes = tuple(branches[n].hash() for n in ("B1", "B2", "B3"))
    assert imported.is_best and node.best_hash == b_hashes[-1]
    assert imported.retracted == (a2, branches["A1"].hash()) and imported.enacted == b_hashes
    assert node.get_leaves() == tuple(sorted([a2, b_hashes[-1]]))
    assert node.get_children(node.genesis_hash) == tuple(sorted([branches["A1"].hash(), b_hashes[0]]))

    fresh = _fresh(tmp_path / "fresh", [branches["B1"], branches["B2"], branches["B3"]])
    assert node.state.root() == fresh.state.root() == branches["B3"].header.state_root
    assert _flat_state(node) == _flat_state(fresh)
    assert [node.get_hash(n) for n in range(4)] == [fresh.get_hash(n) for n in range(4)]
    only_a = branches["xt:only_a"].hash()  # type: ignore[attr-defined]
    shared = branches["xt:shared"].hash()  # type: ignore[attr-defined]
    assert node.get_extrinsic_location(only_a) is None
    assert node.get_extrinsic_location(shared) == (b_hashes[0], 0)

    # And back: two more blocks on A make A the longest again; the journals run both ways.
    a = open_chain(tmp_path / "a-more")
    for block in (branches["A1"], branches["A2"]):
        a.import_block(block)
    more = [_build(a, slot, []) for slot in (6, 7)]
    for block in more:
        node.import_block(block)
    assert node.best_hash == more[-1].hash() and node.state.root() == a.state.root()
    assert _flat_state(node) == _flat_state(a)
    assert node.get_extrinsic_location(only_a) == (branches["A1"].hash(), 1)
    for chain in (node, fresh, a):
        chain.db.close()


def test_ties_go_to_the_earlier_slot_whatever_the_order(tmp_path, branches) -> None:
    one, two = branches["A1"], branches["B1"]  # both #1 on genesis, in slots 1 and 3
    for name, order in (("x", [one, two]), ("y", [two, one])):
        chain = _fresh(tmp_path / name, order)
        assert chain.best_hash == one.hash()
        assert chain.state.root() == one.header.state_root
        chain.db.close()


def test_a_reorg_puts_retracted_extrinsics_back_in_the_pool(tmp_path, branches) -> None:
    node = _fresh(tmp_path / "node", [branches["A1"], branches["A2"]])
    pool = TransactionPool(_validator(node))
    imported = [node.import_block(branches[n]) for n in ("B1", "B2", "B3")]
    retracted = tuple(h for i in imported for h in i.retracted)
    enacted = tuple(h for i in imported for h in i.enacted)
    assert set(retracted) == {branches["A1"].hash(), branches["A2"].hash()}
    resubmitted = update_pool(pool, node, retracted, enacted)
    only_a = branches["xt:only_a"].hash()  # type: ignore[attr-defined]
    # Bob's transfer is valid on B: back in the pool. Alice's was included by B1 too, and
    # Ferdie's nonce 0 went to another remark on B: neither comes back.
    assert resubmitted == [only_a]
    assert [xt.hash() for xt in pool.ready()] == [only_a]
    node.db.close()


def test_a_block_on_an_unknown_parent_is_refused_and_nothing_changes(tmp_path, branches) -> None:
    node = open_chain(tmp_path / "node")
    root = node.state.root()
    with pytest.raises(UnknownParent, match="is not imported"):
        node.import_block(branches["A2"])
    assert node.state.root() == root and node.best_number == 0 and node.get_leaves() == (node.genesis_hash,)
    node.db.close()


def test_a_branch_off_the_finalized_block_is_refused(tmp_path, branches) -> None:
    node = _fresh(tmp_path / "node", [branches["A1"], branches["A2"]])
    node.set_finalized(branches["A1"].hash())
    root = node.state.root()
    with pytest.raises(FinalityConflict, match="does not contain the finalized block"):
        node.import_block(branches["B1"])
    assert node.state.root() == root and node.best_hash == branches["A2"].hash()
    node.db.close()


def test_a_block_prepared_before_another_branch_was_finalized_is_not_written(tmp_path, branches) -> None:
    """A node verifies a block's training without its lock (node.service): if finality moves
    to another branch meanwhile, finish_import must refuse the prepared block, not store a
    block on a branch that lost, and the second check is the only one that can see it."""
    node = _fresh(tmp_path / "node", [branches["A1"]])
    prepared = node.prepare_import(branches["B1"])  # B1 forks at genesis: fine while A1 is not final
    openings = node.verify_training(prepared)
    node.set_finalized(branches["A1"].hash())
    root = node.state.root()
    with pytest.raises(FinalityConflict, match="finalized while it was being verified"):
        node.finish_import(prepared, openings)
    assert not node.has_block(branches["B1"].hash()) and node.state.root() == root
    assert node.best_hash == branches["A1"].hash()
    # Two announcements of one block verified side by side: the second write is refused.
    twice = node.prepare_import(branches["A2"])
    node.import_block(branches["A2"])
    with pytest.raises(BlockError, match="already imported"):
        node.finish_import(twice, [])
    assert node.best_hash == branches["A2"].hash()
    node.db.close()


class _Crashing(WriteBatch):
    """A batch that is dropped instead of written, as if the process died just before."""

    __slots__ = ()

    def commit(self) -> None:
        self.discard()
        raise StorageError("simulated crash before the write")


class _Counting(Database):
    """A real Database that counts write batches and can fail the next commit (a crash
    before LevelDB writes the batch: nothing of it reaches the disk)."""

    batches = 0
    fail = False

    def write_batch(self, *, sync: bool = True):
        batch = super().write_batch(sync=sync)
        type(self).batches += 1
        if type(self).fail:
            batch.__class__ = _Crashing
        return batch


def test_a_reorg_is_one_batch_and_a_crash_before_it_loses_nothing(tmp_path, branches) -> None:
    from chainkit import dev_spec

    from consensus.aura import Aura
    from consensus.block_import import ConsensusRules

    spec = dev_spec()

    def reopen() -> Blockchain:
        return Blockchain(
            _Counting(tmp_path / "node"), chain_id=spec.id, build_genesis=spec.apply_genesis,
            rules=ConsensusRules(Aura(6000)),
        )

    node = reopen()
    for name in ("A1", "A2", "B1", "B2"):
        node.import_block(branches[name])
    before = (node.best_hash, node.state.root(), _flat_state(node), node.get_leaves())
    _Counting.fail = True
    try:
        with pytest.raises(StorageError, match="simulated crash"):
            node.import_block(branches["B3"])
    finally:
        _Counting.fail = False
    node.db.close()
    node = reopen()  # the process "restarts": the database is as it was before B3
    assert (node.best_hash, node.state.root(), _flat_state(node), node.get_leaves()) == before
    assert not node.has_block(branches["B3"].hash())

    _Counting.batches = 0
    imported = node.import_block(branches["B3"])
    assert _Counting.batches == 1 and imported.is_best
    node.db.close()
    node = reopen()
    fresh = _fresh(tmp_path / "fresh", [branches["B1"], branches["B2"], branches["B3"]])
    assert node.best_hash == branches["B3"].hash()
    assert node.state.root() == fresh.state.root() and _flat_state(node) == _flat_state(fresh)
    assert balances.get_account(node.state.overlay(), BOB.public) == balances.get_account(fresh.state.overlay(), BOB.public)
    node.db.close()
    fresh.db.close()


def _tree(tmp: Path) -> list[Block]:
    """A block tree: a main branch of 5, a branch of 4 off #1, of 3 off #3, of 2 off genesis;
    each block moves a different amount to a different account, so every state differs."""
    receivers = [BOB, CHARLIE, FERDIE]
    blocks: dict[str, Block] = {}
    plan = [("m", None, 5, 1), ("p", "m1", 4, 10), ("q", "m3", 3, 20), ("r", None, 2, 30)]
    for name, fork_at, length, first_slot in plan:
        builder = open_chain(tmp / f"builder-{name}")
        if fork_at is not None:
            path = [blocks[f"{fork_at[0]}{i}"] for i in range(1, int(fork_at[1:]) + 1)]
            for block in path:
                builder.import_block(block)
        for i in range(length):
            nonce = balances.get_account(builder.state.overlay(), ALICE.public).nonce
            xt = sign(builder, ALICE, calls.Transfer(receivers[(first_slot + i) % 3].public, 10**9 + first_slot * 100 + i), nonce)
            number = builder.best_number + 1
            blocks[f"{name}{number}"] = _build(builder, first_slot + i, [xt])
        builder.db.close()
    return list(blocks.values())


def test_any_import_order_keeps_the_flat_state_and_indexes_on_the_best_branch(tmp_path) -> None:
    import random

    blocks = _tree(tmp_path)
    by_hash = {b.hash(): b for b in blocks}
    outcomes = set()
    for seed in range(3):
        rng = random.Random(seed)
        node = open_chain(tmp_path / f"node-{seed}")
        pending = list(blocks)
        while pending:
            ready = [b for b in pending if node.has_block(b.header.parent_hash)]
            block = rng.choice(ready)
            pending.remove(block)
            node.import_block(block)
            # The best block is the longest leaf (ties: the earlier slot, then the lowest hash) ...
            leaves = node.get_leaves()
            key = {h: (node.get_header(h).number, -node.get_header(h).slot, bytes(255 - x for x in h)) for h in leaves}
            assert node.best_hash == max(leaves, key=key.__getitem__)
            # ... the flat column holds exactly its state ...
            root = node.best_header.state_root
            assert node.state.root() == root
            assert _flat_state(node) == list(node.state.trie.iter_items(root, b""))
            # ... and NUMBER and LOOKUP index exactly its branch.
            current, on_best = node.best_hash, set()
            for number in range(node.best_number, 0, -1):
                assert node.get_hash(number) == current
                for index, xt in enumerate(by_hash[current].body.extrinsics):
                    assert node.get_extrinsic_location(xt.hash()) == (current, index)
                on_best.add(current)
                current = by_hash[current].header.parent_hash
            assert node.get_hash(node.best_number + 1) is None
            for other in set(by_hash) - on_best:
                assert all(node.get_extrinsic_location(xt.hash()) is None for xt in by_hash[other].body.extrinsics)
        outcomes.add((node.best_hash, node.state.root()))
        node.db.close()
    assert len(outcomes) == 1


def test_a_checkpoint_refuses_every_other_block_of_its_number_and_a_database_that_followed_one(tmp_path) -> None:
    """``checkpoint=(2, A2)``: B2 (another block #2, on the same A1) is refused before any
    work, with the reason, nothing stored and the state root unchanged; A2 imports. A database
    whose best chain holds B2 is refused when opened with that checkpoint, and opens with its
    own block #2 as checkpoint or with a checkpoint above its best block (not reached yet)."""
    from chain.errors import ChainError, InvalidBlockAncestry

    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    a1 = _build(a, 1, [])
    a2 = _build(a, 2, [sign(a, ALICE, calls.Remark(b"a"), 0)])
    b.import_block(a1)
    b2 = _build(b, 3, [sign(b, ALICE, calls.Remark(b"b"), 0)])
    assert b2.header.number == 2 and b2.hash() != a2.hash()
    b.db.close()
    c = open_chain(tmp_path / "c", checkpoint=(2, a2.hash()))
    c.import_block(a1)
    root, best = c.state.root(), c.best_hash
    with pytest.raises(InvalidBlockAncestry) as err:
        c.import_block(b2)
    assert str(err.value) == f"block #2 {b2.hash().hex()} is not the checkpoint 0x{a2.hash().hex()}: it is on another chain"
    assert (c.state.root(), c.best_hash, c.has_block(b2.hash())) == (root, best, False)
    c.import_block(a2)
    assert c.best_hash == a2.hash()
    c.db.close()
    spec = dev_spec()
    db = Database(tmp_path / "b")
    with pytest.raises(ChainError) as err:
        Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis, checkpoint=(2, a2.hash()))
    db.close()
    assert str(err.value) == (
        f"the database's best chain holds block #2 0x{b2.hash().hex()}, not the checkpoint 0x{a2.hash().hex()}: it "
        "followed another chain; purge it (polchain purge-chain) to sync again"
    )
    for fine in ((2, b2.hash()), (3, a2.hash())):
        open_chain(tmp_path / "b", checkpoint=fine).db.close()
    a.db.close()


def _long_range(tmp_path: Path) -> tuple[list[Block], list[Block]]:
    """An honest chain A1..A5 and, from genesis, another B1..B5 (both sealed by Alice, the dev
    chain's one validator, in other slots): what a long-range attacker's old keys sign."""
    honest, attacker = open_chain(tmp_path / "honest"), open_chain(tmp_path / "attacker")
    a = [_build(honest, slot, []) for slot in (1, 2, 3, 4, 5)]
    b = [_build(attacker, slot, []) for slot in (10, 11, 12, 13, 14)]
    honest.db.close()
    attacker.db.close()
    return a, b


def test_a_checkpoint_refuses_a_branch_stored_before_it_and_authoring_its_number(tmp_path) -> None:
    """A node that stored B1..B3 beside A1..A3 and is restarted with ``checkpoint=(3, A3)``:
    B4, on the stored B3, was imported and became best, passing the checkpoint (an outside
    tester's finding, round 9). Now it is refused with the reason, nothing changes, and B3 is no
    longer a leaf the best block may move to. Nor does the node author a block #3 of its own."""
    from chain.errors import ChainError, InvalidBlockAncestry

    a, b = _long_range(tmp_path)
    node = open_chain(tmp_path / "node")
    for block in a[:3] + b[:3]:
        node.import_block(block)
    assert b[2].hash() in node.get_leaves()
    node.db.close()
    node = open_chain(tmp_path / "node", checkpoint=(3, a[2].hash()))
    assert node.get_leaves() == (a[2].hash(),)
    root, best = node.state.root(), node.best_hash
    with pytest.raises(InvalidBlockAncestry) as err:
        node.import_block(b[3])
    assert str(err.value) == (
        f"block #4 {b[3].hash().hex()} does not descend from the checkpoint #3 0x{a[2].hash().hex()}: it is on another chain"
    )
    assert (node.state.root(), node.best_hash, node.has_block(b[3].hash())) == (root, best, False)
    for block in a[3:]:  # A5 too: its parent is above the checkpoint, not the checkpoint itself
        node.import_block(block)
    assert node.best_hash == a[4].hash()
    node.db.close()
    fresh = open_chain(tmp_path / "fresh", checkpoint=(3, a[2].hash()))
    for block in a[:2]:
        fresh.import_block(block)
    root = fresh.state.root()
    with pytest.raises(ChainError, match=r"^block #3 is the checkpoint 0x[0-9a-f]{64}: this node imports it, it does not author another$"):
        fresh.build_block([], ALICE, slot=20)
    assert (fresh.state.root(), fresh.best_number) == (root, 2)
    fresh.db.close()


def test_a_checkpoint_lets_nothing_below_it_be_finalized_before_it_is_imported(tmp_path) -> None:
    """A node with ``checkpoint=(3, A3)`` syncing the attacker's B1, B2 first: a justification by
    the old keys finalized B2, and the honest A1 then conflicted with finality for good (the
    node sat at #2, and reopened so; an outside tester's finding, round 9). Now B2 is not
    finalized (the checkpoint is not imported yet), the honest chain imports and becomes best,
    and a block on the checkpoint's chain is finalized. A database that finalized a block off
    the checkpoint's chain is refused when opened with it."""
    from chain.errors import ChainError

    a, b = _long_range(tmp_path)
    node = open_chain(tmp_path / "node", checkpoint=(3, a[2].hash()))
    for block in b[:2]:
        node.import_block(block)
    with pytest.raises(FinalityConflict) as err:
        node.set_finalized(b[1].hash())
    assert str(err.value) == (
        f"block #2 {b[1].hash().hex()} is below the checkpoint #3 0x{a[2].hash().hex()}, which is not imported yet: "
        "not finalized before it is"
    )
    assert node.finalized_number == 0
    # The finalized block itself (genesis, below the checkpoint) is final already: finalizing
    # it again (its justification stored) is no conflict, though nothing shows it on the chain.
    assert node.finalize(node.genesis_hash) is None and node.finalized_number == 0
    for block in a:
        node.import_block(block)
    assert node.best_hash == a[4].hash()
    node.set_finalized(a[1].hash())  # below the checkpoint, on its chain, now that it is imported
    assert node.finalized_hash == a[1].hash()
    node.db.close()
    other = open_chain(tmp_path / "other")
    for block in a[:3] + b[:2]:
        other.import_block(block)
    other.finalize(b[0].hash(), best=b[1].hash())  # (no checkpoint: allowed)
    other.db.close()
    spec = dev_spec()
    db = Database(tmp_path / "other")
    with pytest.raises(ChainError) as refused:
        Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis, checkpoint=(3, a[2].hash()))
    db.close()
    assert str(refused.value) == (
        f"the database's finalized block #1 0x{b[0].hash().hex()} is not on the chain of the checkpoint #3 0x{a[2].hash().hex()}: "
        "it followed another chain; purge it (polchain purge-chain) to sync again"
    )
