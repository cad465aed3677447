"""Blocks proven invalid (``Blockchain.invalidate``): the best chain moves off them in one
batch, their descendants are refused, fork choice never picks them, a finalized block cannot
be invalidated, and the mark is durable; on real LevelDB databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, dev_spec, open_chain, sign

from chain import calls
from chain.block import Block
from chain.blockchain import MAX_INVALID_REASON_BYTES, Blockchain
from chain.errors import ChainError, FinalityConflict, InvalidBlockAncestry, StorageError
from chain.proofs import FullReexecution
from chain.storage import Column, Database, WriteBatch
from consensus import fork_choice

# Two branches of the dev chain from genesis (Alice is the only validator, branches differ by
# slot): A = A1 (slot 1), A2 (slot 2); B = B1 (slot 3), B2 (slot 4), B3 (slot 5).


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> dict[str, Block]:
    tmp = tmp_path_factory.mktemp("invalid")
    a = open_chain(tmp / "a")
    b = open_chain(tmp / "b")
    out = {
        "A1": a.build_block([sign(a, ALICE, calls.Transfer(BOB.public, 10**9), 0)], ALICE, slot=1).block,
        "A2": a.build_block([sign(a, BOB, calls.Transfer(CHARLIE.public, 10**9), 0)], ALICE, slot=2).block,
        "B1": b.build_block([sign(b, ALICE, calls.Transfer(FERDIE.public, 2 * 10**9), 0)], ALICE, slot=3).block,
        "B2": b.build_block([sign(b, FERDIE, calls.Remark(b"b2"), 0)], ALICE, slot=4).block,
        "B3": b.build_block([sign(b, CHARLIE, calls.Transfer(BOB.public, 7 * 10**9), 0)], ALICE, slot=5).block,
    }
    a.db.close()
    b.db.close()
    return out


class _Counting(Database):
    """A real Database that counts write batches and can drop the next one (a crash before
    LevelDB writes it)."""

    batches = 0
    fail = False

    def write_batch(self, *, sync: bool = True) -> WriteBatch:
        batch = super().write_batch(sync=sync)
        type(self).batches += 1
        if type(self).fail:
            batch.__class__ = _Crashing
        return batch


class _Crashing(WriteBatch):
    __slots__ = ()

    def commit(self) -> None:
        self.discard()
        raise StorageError("simulated crash before the write")


def _open(path: Path, *, rules: bool = True) -> Blockchain:
    if rules:
        return open_chain(path)
    spec = dev_spec()
    return Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis)


def _reopen_counting(path: Path) -> Blockchain:
    from consensus.aura import Aura
    from consensus.block_import import ConsensusRules

    spec = dev_spec()
    return Blockchain(_Counting(path), chain_id=spec.id, build_genesis=spec.apply_genesis, rules=ConsensusRules(Aura(6000)))


def _fresh(path: Path, chain_blocks: list[Block], *, rules: bool = True) -> Blockchain:
    chain = _open(path, rules=rules)
    for block in chain_blocks:
        chain.import_block(block)
    return chain


def _dump(chain: Blockchain) -> dict[Column, list[tuple[bytes, bytes]]]:
    return {column: list(chain.db.iterate(column)) for column in Column}


def _flat_state(chain: Blockchain) -> list[tuple[bytes, bytes]]:
    return list(chain.db.iterate(Column.STATE))


def test_an_invalid_block_in_the_middle_of_the_best_chain_moves_it_to_the_other_branch_in_one_batch(tmp_path, blocks) -> None:
    node = _reopen_counting(tmp_path / "node")
    for name in ("A1", "A2", "B1", "B2", "B3"):
        node.import_block(blocks[name])
    h = {name: block.hash() for name, block in blocks.items()}
    assert node.best_hash == h["B3"]
    b_xt = blocks["B3"].body.extrinsics[0].hash()
    assert node.get_extrinsic_location(b_xt) is not None

    _Counting.batches = 0
    route = node.invalidate(h["B2"], "fraud: segment 3 of extrinsic 0 re-runs to another checkpoint")
    assert _Counting.batches == 1  # the INVALID records and the reorg: one batch
    assert route is not None
    assert (route.common, route.retracted, route.enacted) == (node.genesis_hash, (h["B3"], h["B2"], h["B1"]), (h["A1"], h["A2"]))
    fresh = _fresh(tmp_path / "fresh", [blocks["A1"], blocks["A2"]])
    assert node.best_hash == h["A2"] and node.best_header == blocks["A2"].header
    assert node.state.root() == blocks["A2"].header.state_root == fresh.state.root()
    assert _flat_state(node) == _flat_state(fresh)
    assert [node.get_hash(n) for n in range(4)] == [node.genesis_hash, h["A1"], h["A2"], None]
    assert node.get_extrinsic_location(b_xt) is None
    assert node.is_invalid(h["B2"]) and node.is_invalid(h["B3"]) and not node.is_invalid(h["B1"])
    assert node.get_invalid_reason(h["B2"]) == "fraud: segment 3 of extrinsic 0 re-runs to another checkpoint"
    assert "descends from invalid block" in (node.get_invalid_reason(h["B3"]) or "")
    # B1's only child is invalid: B1 is a leaf again (it can still become best); B3 is not.
    assert node.get_leaves() == tuple(sorted((h["A2"], h["B1"])))
    assert fork_choice.select_best(node) == h["A2"]
    node.db.close()
    fresh.db.close()


def test_descendants_of_an_invalid_block_are_refused_on_import_and_nothing_changes(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    side = _fresh(tmp_path / "side", [blocks["A1"], blocks["A2"], blocks["B1"]])
    assert side.invalidate(h["B1"], "withheld checkpoints") is None  # a side branch: the best chain stays
    assert side.best_hash == h["A2"] and side.get_leaves() == (h["A2"],)
    with pytest.raises(InvalidBlockAncestry, match=f"its parent #1 {h['B1'].hex()} is invalid: withheld checkpoints"):
        side.import_block(blocks["B2"])
    side.db.close()

    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["A2"], blocks["B1"], blocks["B2"]])
    best = node.best_hash  # A2 or B2, whichever hash is lower
    route = node.invalidate(h["B1"], "withheld checkpoints")
    assert (route is None) == (best == h["A2"])
    assert node.best_hash == h["A2"] and node.get_leaves() == (h["A2"],)
    before = _dump(node)
    with pytest.raises(InvalidBlockAncestry, match=f"descends from invalid block {h['B1'].hex()}"):
        node.import_block(blocks["B3"])
    assert _dump(node) == before and not node.has_block(h["B3"])

    # A node that hears of the fraud before it has the block refuses the block itself.
    other = _fresh(tmp_path / "other", [blocks["B1"]])
    assert other.invalidate(h["B2"], "fraud") is None
    root = other.state.root()
    with pytest.raises(InvalidBlockAncestry, match=f"block #2 {h['B2'].hex()} is invalid: fraud"):
        other.import_block(blocks["B2"])
    assert other.state.root() == root and other.best_hash == h["B1"] and not other.has_block(h["B2"])
    # A child of a block marked invalid before it was imported is refused too.
    with pytest.raises(InvalidBlockAncestry):
        other.verify_header(blocks["B3"].header)
    node.db.close()
    other.db.close()


@pytest.mark.parametrize("rules", [True, False], ids=["fork-choice", "no-rules"])
def test_a_node_with_no_other_branch_goes_back_to_the_parent(tmp_path, blocks, rules) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["B1"], blocks["B2"], blocks["B3"]], rules=rules)
    route = node.invalidate(h["B3"], "fraud")
    assert route is not None and route.retracted == (h["B3"],) and route.enacted == ()
    assert node.best_hash == h["B2"] and node.state.root() == blocks["B2"].header.state_root
    assert node.get_leaves() == (h["B2"],)
    route = node.invalidate(h["B1"], "fraud")
    assert route is not None and route.retracted == (h["B2"], h["B1"]) and route.enacted == ()
    genesis = _open(tmp_path / "genesis", rules=rules)
    assert node.best_hash == node.genesis_hash and node.best_number == 0
    assert node.state.root() == genesis.state.root() and _flat_state(node) == _flat_state(genesis)
    assert node.get_leaves() == (node.genesis_hash,)
    assert node.get_hash(1) is None
    # The chain goes on from genesis on another branch.
    node.import_block(blocks["A1"])
    assert node.best_hash == h["A1"]
    node.db.close()
    genesis.db.close()


def test_a_finalized_block_or_its_ancestor_cannot_be_invalidated_and_nothing_changes(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["A2"]])
    node.set_finalized(h["A1"])
    before = _dump(node)
    with pytest.raises(FinalityConflict, match=f"block #1 {h['A1'].hex()} is finalized"):
        node.invalidate(h["A1"], "fraud")
    with pytest.raises(FinalityConflict, match="is finalized"):
        node.invalidate(node.genesis_hash, "fraud")
    assert _dump(node) == before and node.best_hash == h["A2"] and not node.is_invalid(h["A1"])
    # A block above the finalized one still can be; the best chain falls back to the finalized block.
    node.invalidate(h["A2"], "fraud")
    assert node.best_hash == h["A1"] and node.state.root() == blocks["A1"].header.state_root
    node.db.close()


def test_the_invalid_mark_is_durable_and_a_crash_during_invalidate_loses_nothing(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _reopen_counting(tmp_path / "node")
    for name in ("A1", "A2", "B1", "B2", "B3"):
        node.import_block(blocks[name])
    before = _dump(node)
    _Counting.fail = True
    try:
        with pytest.raises(StorageError, match="simulated crash"):
            node.invalidate(h["B2"], "fraud")
    finally:
        _Counting.fail = False
    node.db.close()
    node = _reopen_counting(tmp_path / "node")
    assert _dump(node) == before and node.best_hash == h["B3"] and not node.is_invalid(h["B2"])

    node.invalidate(h["B2"], "fraud")
    node.db.close()
    node = _reopen_counting(tmp_path / "node")
    assert node.best_hash == h["A2"] and node.state.root() == blocks["A2"].header.state_root
    assert node.is_invalid(h["B2"]) and node.is_invalid(h["B3"]) and node.get_invalid_reason(h["B2"]) == "fraud"
    assert node.get_leaves() == tuple(sorted((h["A2"], h["B1"])))
    with pytest.raises(InvalidBlockAncestry, match="is invalid"):
        node.verify_header(blocks["B3"].header)
    node.db.close()


def test_invalidate_is_idempotent_bounds_the_reason_and_refuses_bad_arguments(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["B1"], blocks["B2"]])
    node.invalidate(h["B2"], "é" * 1000)
    reason = node.get_invalid_reason(h["B2"])
    assert reason is not None and reason == "é" * (MAX_INVALID_REASON_BYTES // 2)
    before = _dump(node)
    assert node.invalidate(h["B2"], "another reason") is None  # the first reason is kept
    assert _dump(node) == before
    with pytest.raises(ChainError, match="block hash must be 32 bytes"):
        node.invalidate(b"\x01" * 31, "fraud")
    with pytest.raises(ChainError, match="reason must be a str"):
        node.invalidate(h["B1"], b"fraud")  # type: ignore[arg-type]
    assert _dump(node) == before
    assert node.get_invalid_reason(h["B1"]) is None
    node.db.close()


def test_fork_choice_never_prefers_a_block_on_an_invalid_parent(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["B1"], blocks["B2"]])
    node.invalidate(h["B2"], "fraud")
    # B3 is longer than everything stored, but its parent is invalid.
    assert not fork_choice.prefer(blocks["B3"].header, node.best_header, node)
    assert fork_choice.select_best(node) == node.best_hash == h["A1"]  # B1's tie: A1's slot is earlier
    node.db.close()


def test_an_invalid_block_is_never_finalized_nor_made_best_by_finality(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["A2"], blocks["B1"]])
    node.invalidate(h["A2"], "fraud")
    before = _dump(node)
    with pytest.raises(InvalidBlockAncestry, match=f"the block to finalize {h['A2'].hex()} is invalid: fraud"):
        node.finalize(h["A2"])
    with pytest.raises(InvalidBlockAncestry, match=f"the new best block {h['A2'].hex()} is invalid"):
        node.finalize(h["A1"], best=h["A2"])
    assert _dump(node) == before
    node.finalize(h["A1"], best=h["A1"])  # the valid part of the branch can be
    assert node.finalized_hash == h["A1"] and node.best_hash == h["A1"]
    node.db.close()


def test_fork_choice_on_stored_candidates_skips_invalid_ones_and_counts_the_justified_block_itself(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["B1"], blocks["B2"], blocks["B3"]])
    assert node.best_hash == h["B3"]
    # A stored leaf that is the justified block beats a longer branch without it.
    assert fork_choice.prefer(blocks["A1"].header, node.best_header, node, justified=h["A1"])
    assert not fork_choice.prefer(blocks["A1"].header, node.best_header, node, justified=None)
    # When both contain the justified block, the longer wins.
    assert not fork_choice.prefer(blocks["A1"].header, node.best_header, node, justified=node.genesis_hash)
    node.invalidate(h["B2"], "fraud")
    # A stored candidate marked invalid never wins, even against a shorter best block.
    assert not fork_choice.prefer(blocks["B2"].header, blocks["A1"].header, node)
    # An invalid root (a justified block later proven invalid) falls back to the finalized block.
    assert fork_choice.select_best(node, h["B2"]) == fork_choice.select_best(node) == node.best_hash
    assert not node.is_invalid(node.best_hash)
    node.db.close()


class _InvalidatingVerifier:
    """The default verifier, after proving ``target`` invalid on ``chain``: a fraud proof that
    arrives while a block is being verified (the verifier may wait seconds on the network)."""

    def __init__(self, target: bytes) -> None:
        self.chain: Blockchain | None = None
        self.target = target
        self.inner = FullReexecution()

    def verify_block(self, block, block_hash, claims, source):
        assert self.chain is not None
        self.chain.invalidate(self.target, "fraud proven meanwhile")
        return self.inner.verify_block(block, block_hash, claims, source)


def test_a_block_whose_parent_is_proven_invalid_during_its_import_is_not_stored(tmp_path, blocks) -> None:
    from consensus.aura import Aura
    from consensus.block_import import ConsensusRules

    h = {name: block.hash() for name, block in blocks.items()}
    spec = dev_spec()
    verifier = _InvalidatingVerifier(h["B1"])
    node = Blockchain(
        Database(tmp_path / "node"), chain_id=spec.id, build_genesis=spec.apply_genesis,
        rules=ConsensusRules(Aura(6000)), verifier=verifier,
    )
    verifier.chain = node
    node.import_block(blocks["A1"])
    verifier.target = h["A1"]
    with pytest.raises(InvalidBlockAncestry, match="its parent was proven invalid while it was being imported: fraud proven meanwhile"):
        node.import_block(blocks["A2"])
    assert not node.has_block(h["A2"]) and node.best_hash == node.genesis_hash
    assert node.state.root() == node.get_header(node.genesis_hash).state_root
    node.db.close()


def test_the_leaves_stay_exact_through_invalid_siblings_and_dead_branches(tmp_path, blocks) -> None:
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["B1"], blocks["B2"]])
    node.invalidate(h["A1"], "fraud")  # a side branch: genesis keeps a valid child (B1)
    assert node.get_leaves() == (h["B2"],) and node.best_hash == h["B2"]
    node.invalidate(h["B1"], "fraud")  # genesis's last valid child: genesis is a leaf again
    assert node.get_leaves() == (node.genesis_hash,) and node.best_hash == node.genesis_hash
    node.db.close()

    # A branch that does not contain the finalized block never gets a leaf back.
    node = _fresh(tmp_path / "dead", [blocks["A1"], blocks["A2"], blocks["B1"], blocks["B2"]])
    node.finalize(h["A1"], best=h["A2"])
    assert node.get_leaves() == (h["A2"],)
    assert node.invalidate(h["B2"], "fraud") is None
    assert node.get_leaves() == (h["A2"],) and node.is_invalid(h["B2"]) and node.best_hash == h["A2"]
    node.db.close()


def test_select_best_skips_a_leaf_marked_invalid(tmp_path, blocks) -> None:
    """Defence in depth: invalidate drops invalid leaves, but the fork choice reads the mark."""
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["B1"], blocks["B2"]])
    assert fork_choice.select_best(node) == h["B2"]
    with node.db.write_batch() as batch:
        batch.put(Column.INVALID, h["B2"], b"marked by hand")
    assert fork_choice.select_best(node) == h["A1"]
    node.db.close()


def test_following_an_invalid_justified_block_moves_nothing(tmp_path, blocks) -> None:
    """The justified block A1 keeps the best chain on branch A though B is longer; a justified
    block later proven invalid (A2) is not followed: the fork choice still keeps A1."""
    from consensus.block_import import ConsensusRules
    from consensus.finality import follow_justified

    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["A1"], blocks["A2"], blocks["B1"], blocks["B2"], blocks["B3"]])
    assert isinstance(node.rules, ConsensusRules)
    node.rules.justified = h["A1"]
    follow_justified(node, h["A1"])
    assert node.best_hash == h["A2"]
    route = node.invalidate(h["A2"], "fraud")  # the best chain falls back to A1, which holds the justified block
    assert route is not None and node.best_hash == h["A1"]
    assert follow_justified(node, h["A2"]) is None
    assert node.best_hash == h["A1"]
    node.db.close()


def test_revoke_invalid_lifts_the_marks_of_the_causes_subtree_and_restores_its_leaves(tmp_path, blocks) -> None:
    """Finality outranks a fraud proof (node.service): revoke_invalid of a block whose
    ancestor was invalidated unmarks that ancestor's whole subtree in one batch, stores its
    leaves again and takes the parent off the leaves it was on only for want of a valid
    child; the marks stay lifted on reopening. A block that is not stored has its own mark
    deleted; one not marked is refused."""
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks[n] for n in ("A1", "A2", "B1", "B2", "B3")])
    node.invalidate(h["B2"], "fraud proof: extrinsic #0")
    assert node.get_leaves() == tuple(sorted((h["A2"], h["B1"])))
    assert node.revoke_invalid(h["B3"]) == h["B2"]  # the cause, found from a descendant
    assert not node.is_invalid(h["B2"]) and not node.is_invalid(h["B3"])
    assert node.get_leaves() == tuple(sorted((h["A2"], h["B3"])))
    assert fork_choice.select_best(node) == h["B3"]  # a candidate again (the best block stays until finality moves it)
    assert node.best_hash == h["A2"]
    with pytest.raises(ChainError, match="not marked invalid"):
        node.revoke_invalid(h["B3"])
    node.db.close()
    node = _open(tmp_path / "node")
    assert not node.is_invalid(h["B3"]) and node.get_leaves() == tuple(sorted((h["A2"], h["B3"])))
    node.invalidate(bytes(32), "fraud: a block not stored")  # marked only
    assert node.is_invalid(bytes(32)) and node.revoke_invalid(bytes(32)) == bytes(32) and not node.is_invalid(bytes(32))
    node.db.close()


def test_revoke_invalid_refuses_a_hash_that_is_not_32_bytes_before_reading(tmp_path, blocks) -> None:
    """A hash of 31 or 33 bytes is refused by its length, with the reason (not read as a key and
    refused as "not marked invalid"), as :meth:`Blockchain.invalidate` refuses it; nothing is
    written."""
    node = _fresh(tmp_path / "node", [blocks["B1"], blocks["B2"]])
    node.invalidate(blocks["B2"].hash(), "fraud proof: extrinsic #0")
    before = _dump(node)
    for bad in (b"\x01" * 31, b"\x01" * 33, blocks["B2"].hash()[:31]):
        with pytest.raises(ChainError, match=r"^block hash must be 32 bytes, got b'"):
            node.revoke_invalid(bad)
    assert _dump(node) == before
    node.db.close()


def test_revoke_invalid_after_invalidate_restores_the_leaves_and_marks_byte_for_byte(tmp_path, blocks) -> None:
    """invalidate then revoke_invalid of the same subtree leaves the INVALID and LEAVES columns
    as they were, byte for byte (a leaf's record is the empty value, as import writes it), and
    the in-memory leaves agree with the column."""
    node = _fresh(tmp_path / "node", [blocks[n] for n in ("A1", "A2", "B1", "B2", "B3")])
    columns = (Column.INVALID, Column.LEAVES)
    before = {column: list(node.db.iterate(column)) for column in columns}
    node.invalidate(blocks["B2"].hash(), "fraud proof: extrinsic #0")
    assert node.revoke_invalid(blocks["B2"].hash()) == blocks["B2"].hash()
    assert {column: list(node.db.iterate(column)) for column in columns} == before
    assert node.get_leaves() == tuple(sorted(key for key, _ in before[Column.LEAVES]))
    node.db.close()


def test_revoking_a_cause_keeps_a_descendant_proven_forged_on_its_own(tmp_path, blocks) -> None:
    """B3's own fraud is proven, then B1's; a finality proof of B2 lifts the marks of B1 and
    B2 (the path) but not B3's: invalidate keeps a descendant's own record, and revoke_invalid
    does not descend into it. Before, B1's mark overwrote B3's with "descends from B1", and
    lifting B1's subtree made B3 a fork-choice candidate again (a reviewer's finding, 2026-11-30)."""
    h = {name: block.hash() for name, block in blocks.items()}
    node = _fresh(tmp_path / "node", [blocks["B1"], blocks["B2"], blocks["B3"]])
    node.invalidate(h["B3"], "fraud proof: extrinsic #0 (B3's own)")
    node.invalidate(h["B1"], "fraud proof: extrinsic #0 (B1's)")
    assert node.get_invalid_reason(h["B3"]) == "fraud proof: extrinsic #0 (B3's own)"
    assert node.get_invalid_reason(h["B2"]) == f"descends from invalid block {h['B1'].hex()}"
    assert node.compute_invalid_cause(h["B2"]) == h["B1"] == node.revoke_invalid(h["B2"])
    assert not node.is_invalid(h["B1"]) and not node.is_invalid(h["B2"]) and node.is_invalid(h["B3"])
    assert node.get_leaves() == (h["B2"],) and fork_choice.select_best(node) == h["B2"]
    node.db.close()
