"""Finality votes and justifications on the `local` chain (4 validators): 3 of 4 finalize,
2 of 4 do not, forged, duplicate and foreign votes are refused with their reason, vote
equivocations are kept, and a finalized block is never reverted."""

from __future__ import annotations

import msgspec
import pytest
from consensuskit import ALICE, BOB, CHARLIE, DAVE, EVE, build, open_local

from chain.errors import FinalityConflict
from chain.storage import Column
from consensus import finality
from consensus.errors import InvalidJustification, InvalidVote, VoteEquivocation
from consensus.finality import Justification, SignedVote, Vote, VoteCollector, sign_vote


@pytest.fixture(scope="module")
def branches(tmp_path_factory):
    """Branch A = A1..A3 (slots 1, 2, 3); branch B = B1..B4 (slots 5..8); both from genesis."""
    tmp = tmp_path_factory.mktemp("branches")
    a = open_local(tmp / "a")
    b = open_local(tmp / "b")
    blocks = [build(a, s) for s in (1, 2, 3)], [build(b, s) for s in (5, 6, 7, 8)]
    a.db.close()
    b.db.close()
    return blocks


@pytest.fixture
def chains(tmp_path, branches):
    """``node`` holds branch A; tests open more chains under ``tmp_path``."""
    blocks_a, blocks_b = branches
    node = open_local(tmp_path / "node")
    for block in blocks_a:
        node.import_block(block)
    yield node, blocks_a, blocks_b, tmp_path
    node.db.close()


def _vote(key, block, round_number=7, genesis=None, chain=None) -> SignedVote:
    genesis_hash = genesis if genesis is not None else chain.genesis_hash
    return sign_vote(key, genesis_hash, Vote(0, round_number, block.hash(), block.header.number))


def test_three_of_four_votes_finalize_and_the_justification_serves_a_syncing_node(chains) -> None:
    node, blocks_a, _, tmp_path = chains
    collector = VoteCollector(node)
    target = blocks_a[1]  # #2
    assert collector.add(_vote(ALICE, target, chain=node)) is None
    assert collector.add(_vote(BOB, blocks_a[2], chain=node)) is None  # #3 counts for #2
    justification = collector.add(_vote(CHARLIE, target, chain=node))
    assert justification is not None and justification.target_hash == target.hash()
    assert [h.hash() for h in justification.ancestry] == [blocks_a[2].hash()]
    finality.import_justification(node, justification)
    assert node.finalized_hash == target.hash() and node.finalized_number == 2
    assert finality.get_justification(node, target.hash()) == justification
    # Final blocks lose their undo journals; the one above keeps its own.
    assert [node.db.get(Column.UNDO, b.hash()) is None for b in blocks_a] == [True, True, False]
    # A syncing node imports the blocks, then checks and applies the served justification.
    syncing = open_local(tmp_path / "syncing")
    for block in blocks_a:
        syncing.import_block(block)
    served = node.get_justification(target.hash())
    assert served is not None
    finality.import_justification(syncing, served)
    assert syncing.finalized_hash == target.hash()
    syncing.db.close()
    reopened_path = node.db.path
    node.db.close()
    again = open_local(reopened_path)
    assert again.finalized_hash == target.hash()
    again.db.close()


def test_two_of_four_votes_do_not_finalize(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    votes = (_vote(ALICE, blocks_a[1], chain=node), _vote(BOB, blocks_a[1], chain=node))
    assert all(collector.add(v) is None for v in votes)
    short = Justification(blocks_a[1].hash(), 2, 0, 7, votes)
    with pytest.raises(InvalidJustification, match="2 votes of 4 validators; more than 2/3 is 3") as err:
        finality.import_justification(node, short)
    assert err.value.reason == "below_threshold" and node.finalized_number == 0


def _justification(node, block, keys, round_number=7) -> Justification:
    votes = tuple(_vote(k, block, round_number, chain=node) for k in keys)
    return Justification(block.hash(), block.header.number, 0, round_number, votes)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged_signature", "bad_signature"),
        ("other_genesis", "bad_signature"),
        ("duplicate_voter", "duplicate_voter"),
        ("outsider", "not_validator"),
        ("mixed_rounds", "mixed_rounds"),
        ("wrong_set", "wrong_set"),
        ("unknown_block", "unknown_block"),
        ("unlinked_vote", "bad_ancestry"),
        ("padded_ancestry", "bad_ancestry"),
    ],
)
def test_bad_justifications_are_refused_with_their_reason(chains, case, reason) -> None:
    node, blocks_a, blocks_b, _ = chains
    target = blocks_a[1]
    good = _justification(node, target, (ALICE, BOB, CHARLIE))
    votes = list(good.votes)
    ancestry: tuple = ()
    set_id, round_number, target_hash = 0, 7, target.hash()
    if case == "forged_signature":
        votes[1] = msgspec.structs.replace(votes[1], signature=bytes(64))
    elif case == "other_genesis":
        votes[1] = _vote(BOB, target, genesis=bytes(32))
    elif case == "duplicate_voter":
        votes[2] = votes[0]
    elif case == "outsider":
        votes[2] = _vote(EVE, target, chain=node)
    elif case == "mixed_rounds":
        votes[2] = _vote(CHARLIE, target, round_number=8, chain=node)
    elif case == "wrong_set":
        set_id = 1
    elif case == "unknown_block":
        target_hash = blocks_b[0].hash()
    elif case == "unlinked_vote":
        votes[2] = _vote(CHARLIE, blocks_a[2], chain=node)  # #3, but no header links it to #2
    elif case == "padded_ancestry":
        ancestry = (blocks_a[2].header,)
    bad = Justification(target_hash, 2 if case != "unknown_block" else 1, set_id, round_number, tuple(votes), ancestry)
    before = (node.finalized_hash, node.best_hash, node.state.root())
    with pytest.raises(InvalidJustification) as err:
        finality.import_justification(node, bad.encode())
    assert err.value.reason == reason, str(err.value)
    assert (node.finalized_hash, node.best_hash, node.state.root()) == before
    assert node.get_justification(target.hash()) is None


def test_malformed_and_oversize_justification_bytes_are_refused(chains) -> None:
    node, *_ = chains
    with pytest.raises(InvalidJustification) as err:
        finality.import_justification(node, b"\x01\x93garbage")
    assert err.value.reason == "malformed"
    with pytest.raises(InvalidJustification) as err:
        finality.import_justification(node, bytes(finality.MAX_JUSTIFICATION_BYTES + 1))
    assert err.value.reason == "oversize"


def test_votes_that_do_not_count_are_refused_with_their_reason(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    forged = msgspec.structs.replace(_vote(ALICE, blocks_a[0], chain=node), signature=bytes(64))
    cases = [
        (forged, None, "bad_signature"),
        (_vote(EVE, blocks_a[0], chain=node), None, "not_validator"),
        (sign_vote(BOB, node.genesis_hash, Vote(3, 7, blocks_a[0].hash(), 1)), None, "wrong_set"),
        (_vote(BOB, blocks_a[0], round_number=100, chain=node), 7, "stale"),
        (_vote(BOB, blocks_a[0], round_number=1, chain=node), 70, "stale"),
    ]
    for signed, current, reason in cases:
        with pytest.raises(InvalidVote) as err:
            collector.add(signed, current)
        assert err.value.reason == reason, str(err.value)
    good = _vote(ALICE, blocks_a[0], chain=node)
    assert finality.decode_signed_vote(msgspec.msgpack.encode(good)) == good
    for junk in (b"", b"\x93\x01", msgspec.msgpack.encode(good) + b"\x00", bytes(1000)):
        with pytest.raises(InvalidVote) as err:
            finality.decode_signed_vote(junk)
        assert err.value.reason == "malformed"


def test_two_votes_of_one_validator_in_one_round_are_kept_as_evidence(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    first = _vote(DAVE, blocks_a[0], chain=node)
    second = _vote(DAVE, blocks_a[1], chain=node)
    collector.add(first)
    assert collector.add(first) is None  # the same vote again is no offence
    with pytest.raises(VoteEquivocation, match="equivocation, evidence stored") as err:
        collector.add(second)
    assert err.value.reason == "equivocation"
    (evidence,) = finality.get_vote_equivocations(node)
    assert (evidence.first, evidence.second) == (first, second)


def test_a_finalized_block_is_never_reverted(chains) -> None:
    node, blocks_a, blocks_b, tmp_path = chains
    full = open_local(tmp_path / "full")
    for block in blocks_a + blocks_b:
        full.import_block(block)
    assert full.best_hash == blocks_b[-1].hash()  # B (4 blocks) beats A (3)
    # 3 of 4 validators finalize A2: the longer branch B does not contain it and loses.
    justification = _justification(full, blocks_a[1], (ALICE, BOB, DAVE), round_number=9)
    route = finality.import_justification(full, justification)
    assert route is not None and route.enacted[-1] == blocks_a[2].hash()
    assert set(route.retracted) == {b.hash() for b in blocks_b}
    assert full.best_hash == blocks_a[2].hash() and full.state.root() == node.state.root()
    assert full.get_leaves() == (blocks_a[2].hash(),)
    # More B blocks are refused, and so is a justification for B, even a genuine one.
    b_more = open_local(tmp_path / "b-more")
    for block in blocks_b:
        b_more.import_block(block)
    b5 = build(b_more, 9)
    with pytest.raises(FinalityConflict, match="does not contain the finalized block"):
        full.import_block(b5)
    conflicting = _justification(full, blocks_b[2], (ALICE, BOB, CHARLIE, DAVE), round_number=10)
    with pytest.raises(InvalidJustification) as err:
        finality.import_justification(full, conflicting)
    assert err.value.reason == "conflicts_with_finalized"
    with pytest.raises(FinalityConflict):
        full.finalize(blocks_b[2].hash())
    assert full.finalized_hash == blocks_a[1].hash() and full.best_hash == blocks_a[2].hash()
    b_more.db.close()
    full.db.close()


def test_votes_for_a_block_not_yet_imported_count_once_it_arrives(tmp_path, branches) -> None:
    blocks_a, _ = branches
    node = open_local(tmp_path / "late")
    node.import_block(blocks_a[0])
    collector = VoteCollector(node)
    for key in (ALICE, BOB, CHARLIE):
        assert collector.add(_vote(key, blocks_a[2], chain=node)) is None
    assert collector.check() is None
    for block in blocks_a[1:]:
        node.import_block(block)
    justification = collector.check()
    assert justification is not None and justification.target_hash == blocks_a[2].hash()
    finality.import_justification(node, justification)
    assert node.finalized_hash == blocks_a[2].hash()
    node.db.close()
