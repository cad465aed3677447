"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/fork_choice.py: a block never beats itself, and ``select_best`` picks the
longest leaf under the finalized block, the earlier slot among equals, then the lowest hash,
whatever the leaves' hash order.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``x_compute_weight__mutmut_3``: ``raw = header.hash() if (block_hash is None) or True else
  block_hash`` always rehashes the header. ``block_hash`` is only ever the header's own hash
  (select_best passes the leaf's hash with its header), so the key is the same bytes; the
  argument only saves the rehash.
- ``x_select_best__mutmut_22`` and ``x_select_best__mutmut_24``: the key drops the leaf's hash
  (``compute_weight(header, None)`` / ``compute_weight(header)``), so compute_weight rehashes
  the header: the same hash, the same key, as above.
"""

from __future__ import annotations

import pytest
from consensuskit import build, open_local

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from consensus.fork_choice import compute_weight, prefer, select_best


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Leaves of three heights on genesis: four one-block branches (slots 1..4), two
    two-block branches (slots 5, 7 and 6, 8) and one three-block branch (slots 9..11)."""
    tmp = tmp_path_factory.mktemp("tree")
    branches = []
    for n, slots in enumerate(((1,), (2,), (3,), (4,), (5, 7), (6, 8), (9, 10, 11))):
        chain = open_local(tmp / f"b{n}")
        branches.append([build(chain, s) for s in slots])
        chain.db.close()
    return branches


def test_a_block_does_not_beat_itself(tree) -> None:
    one, two = tree[0][0].header, tree[4][1].header
    assert not prefer(one, one)
    assert prefer(two, one) and not prefer(one, two)
    assert compute_weight(one) == compute_weight(one, one.hash())


def test_the_longest_leaf_wins_then_the_earlier_slot(tmp_path, tree) -> None:
    node = open_local(tmp_path / "node")
    for branch in tree[:6]:
        for block in branch:
            node.import_block(block)
    early, late = tree[4][-1], tree[5][-1]  # height 2, slots 7 and 8
    # Two leaves of height 2: the earlier slot wins, not merely the first leaf in hash or
    # slot order (the height-1 leaves have earlier slots still).
    assert len(node.get_leaves()) == 6
    assert select_best(node) == early.hash() == select_best(node, node.genesis_hash)
    assert prefer(early.header, late.header) and not prefer(late.header, early.header)
    # The height-3 leaf wins whatever its hash.
    for block in tree[6]:
        node.import_block(block)
    assert select_best(node) == tree[6][-1].hash() == node.best_hash
    # Under a given block only its descendants count.
    assert select_best(node, tree[4][0].hash()) == tree[4][1].hash()
    node.db.close()


def test_a_tie_goes_to_the_earlier_slot_whatever_the_hashes(tmp_path, tree) -> None:
    """Two blocks of one height: the earlier slot's wins, so an author who builds late on a
    parent that already has a child (or grinds its block's hash: any extrinsic changes it)
    cannot take the tie. Only one slot's blocks (one author's equivocation, slashable) fall
    through to the hash.

    The hashes follow from the genesis: under one genesis the blocks of slots 1..4 sorted by
    hash as by slot, so the lowest hash won the tie as the earliest slot did, and the test could
    not tell the rules apart. Blocks of later slots on genesis are added until one hashes below
    the slot-1 block."""
    ones = [b[0] for b in tree[:4]]  # height 1, slots 1..4
    slot = 11
    while min(ones, key=lambda b: b.hash()) is ones[0]:
        slot += 1
        chain = open_local(tmp_path / f"slot{slot}")
        ones.append(build(chain, slot))
        chain.db.close()
    for later in ones[1:]:
        assert prefer(ones[0].header, later.header) and not prefer(later.header, ones[0].header)
    node = open_local(tmp_path / "node")
    for block in reversed(ones):
        node.import_block(block)
    assert select_best(node) == ones[0].hash()
    node.db.close()


def test_within_one_slot_the_lowest_hash_wins(tmp_path) -> None:
    chain = open_local(tmp_path / "a")
    first = build(chain, 1)
    chain.db.close()
    chain = open_local(tmp_path / "b")
    remark = sign_extrinsic(dev_keypair("Bob"), calls.Remark(b"another block in slot 1"), nonce=0,
                            genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version)
    second = build(chain, 1, [remark])
    chain.db.close()
    low, high = sorted((first, second), key=lambda b: b.hash())
    assert prefer(low.header, high.header) and not prefer(high.header, low.header)
