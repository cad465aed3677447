"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/fork_choice.py: a block never beats itself, and ``select_best`` picks the
longest leaf under the finalized block, the lowest hash among equals, whatever the leaves'
hash order.

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


def test_the_longest_leaf_wins_then_the_lowest_hash(tmp_path, tree) -> None:
    node = open_local(tmp_path / "node")
    for branch in tree[:6]:
        for block in branch:
            node.import_block(block)
    twos = sorted(b[-1].hash() for b in tree[4:6])
    # Two leaves of height 2: the lower hash wins, not the higher one, and not merely the
    # first leaf in hash order (a height-1 leaf must sort first for that to show).
    leaves = node.get_leaves()
    assert len(leaves) == 6
    assert select_best(node) == twos[0] == select_best(node, node.genesis_hash)
    assert min(leaves) != twos[0] != max(leaves)
    # The height-3 leaf wins whatever its hash.
    for block in tree[6]:
        node.import_block(block)
    assert select_best(node) == tree[6][-1].hash() == node.best_hash
    # Under a given block only its descendants count.
    assert select_best(node, tree[4][0].hash()) == tree[4][1].hash()
    node.db.close()
