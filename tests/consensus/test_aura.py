"""Aura's header checks on import: wrong author, bad seal, slot order, future slots, and
equivocation evidence, on the `local` chain with real keys and LevelDB."""

from __future__ import annotations

import msgspec
import pytest
from consensuskit import ALICE, BOB, DAVE, EVE, build, open_local

from chain import calls
from chain.block import Block
from chain.crypto import ss58_encode
from chain.extrinsic import sign_extrinsic
from chain.header import Header, seal_header
from consensus.aura import Aura, compute_slot_author, get_equivocations
from consensus.errors import InvalidHeader


def _reseal(genesis: bytes, header: Header, key, **changes) -> Header:
    return seal_header(key, genesis, msgspec.structs.replace(header, **changes))


@pytest.fixture
def pair(tmp_path):
    author = open_local(tmp_path / "author")
    node = open_local(tmp_path / "node")
    yield author, node
    author.db.close()
    node.db.close()


def _unchanged(node):
    return node.best_hash, node.state.root(), node.get_leaves()


def test_slot_assignment_is_round_robin() -> None:
    validators = (b"a" * 32, b"b" * 32, b"c" * 32)
    assert [compute_slot_author(validators, s) for s in range(5)] == [validators[s % 3] for s in range(5)]
    with pytest.raises(InvalidHeader, match="empty") as err:
        compute_slot_author((), 1)
    assert err.value.reason == "not_validator"


def test_wrong_author_not_validator_and_bad_seal_are_refused(pair) -> None:
    author, node = pair
    block = build(author, 1)  # Bob's slot
    before = _unchanged(node)
    cases = [
        (_reseal(author.genesis_hash, block.header, ALICE, author=ALICE.public), "wrong_author", "belongs to another validator"),
        (_reseal(author.genesis_hash, block.header, EVE, author=EVE.public), "not_validator", "not a validator"),
        (msgspec.structs.replace(block.header, seal=bytes(64)), "bad_seal", "bad seal"),
        # Bob's own block, sealed by Bob for another chain (the seal names the genesis hash).
        (_reseal(b"\x42" * 32, block.header, BOB), "bad_seal", "bad seal"),
    ]
    for header, reason, message in cases:
        with pytest.raises(InvalidHeader, match=message) as err:
            node.import_block(Block(header, block.body))
        assert err.value.reason == reason
        assert _unchanged(node) == before
    node.import_block(block)
    assert node.best_hash == block.hash()


def test_building_in_another_validators_slot_is_refused(pair) -> None:
    author, _ = pair
    with pytest.raises(InvalidHeader, match="does not belong") as err:
        author.build_block([], ALICE, slot=1)
    assert err.value.reason == "wrong_author" and author.best_number == 0


def test_a_slot_not_after_the_parents_is_refused(pair) -> None:
    author, node = pair
    first = build(author, 5)  # Bob
    second = build(author, 6)  # Charlie
    node.import_block(first)
    # Bob again, in his own slot 5, on top of his block in slot 5.
    same = _reseal(author.genesis_hash, second.header, BOB, slot=5, author=BOB.public)
    with pytest.raises(InvalidHeader, match="not after its parent's 5") as err:
        node.import_block(Block(same, second.body))
    assert err.value.reason == "slot_not_increasing" and node.best_hash == first.hash()


def test_a_slot_too_far_in_the_future_is_refused(tmp_path) -> None:
    clock = [1000.0]  # seconds: with 1 s slots the local slot is 1000
    author = open_local(tmp_path / "author")
    node = open_local(tmp_path / "node", Aura(1000, max_future_slots=2, clock=lambda: clock[0]))
    ahead = author.build_block([], DAVE, slot=1003).block  # 1003 mod 4 = 3: Dave
    with pytest.raises(InvalidHeader, match="more than 2 after the local slot 1000") as err:
        node.import_block(ahead)
    assert err.value.reason == "future_slot" and node.best_number == 0
    clock[0] = 1001.0  # a second later the block is within the drift
    assert node.import_block(ahead).is_best
    author.db.close()
    node.db.close()


def test_two_blocks_of_one_author_in_one_slot_are_both_imported_and_kept_as_evidence(pair, caplog) -> None:
    """Both blocks are imported (as Substrate's Aura does), so nodes that saw them in
    opposite orders still converge by fork choice; the pair is kept for slashing, and the
    operator is told which block, author and slot."""
    author, node = pair
    first = build(author, 1)
    remark = sign_extrinsic(BOB, calls.Remark(b"x"), nonce=0, genesis_hash=author.genesis_hash, spec_version=author.runtime.spec_version)
    other = open_local(node.db.path + "-other")
    second = other.build_block([remark], BOB, slot=1).block  # Bob, slot 1 again, other content
    other.db.close()
    assert second.hash() != first.hash()
    node.import_block(first)
    node.import_block(second)
    assert node.has_block(first.hash()) and node.has_block(second.hash())
    assert (
        f"block #1: {ss58_encode(BOB.public)} already sealed block {first.hash().hex()} in slot 1 "
        "(equivocation, evidence stored; imported all the same)"
    ) in caplog.text
    assert node.best_hash == min(first.hash(), second.hash())  # same height: the lower hash
    (evidence,) = get_equivocations(node)
    assert (evidence.slot, evidence.author) == (1, BOB.public)
    assert (evidence.first, evidence.second) == (first.header, second.header)
    # Evidence survives a restart; the node itself refuses to author twice in a slot.
    path = node.db.path
    node.db.close()
    again = open_local(path)
    assert get_equivocations(again) == [evidence]
    again.build_block([], BOB, slot=5)
    parent = again.get_header(again.best_header.parent_hash)
    assert again.rules is not None
    with pytest.raises(InvalidHeader, match="already sealed a block in slot 5"):
        again.rules.check_claim(again, parent, BOB.public, 5)
    again.db.close()
