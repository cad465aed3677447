"""Finality (Casper FFG adapted to rounds) on the `local` chain (4 validators): 3 of 4 on
consecutive rounds finalize, 2 of 4 do not, forged, duplicate and foreign votes are refused
with their reason, double and surround votes are kept as evidence, the reviewer's A-then-B
scenario cannot finalize two conflicting blocks, a restart keeps the source, and a finalized
block is never reverted."""

from __future__ import annotations

import msgspec
import pytest
from chainkit import open_chain
from consensuskit import ALICE, BOB, CHARLIE, DAVE, EVE, build, open_local, slot_owner

from chain.errors import FinalityConflict
from chain.storage import Column
from consensus import finality
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from consensus.errors import InvalidJustification, InvalidVote, VoteEquivocation
from consensus.finality import (
    Checkpoint,
    Justification,
    SignedVote,
    Vote,
    VoteCollector,
    VoterState,
    sign_vote,
)

FOUR = (ALICE, BOB, CHARLIE, DAVE)


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


def _cp(block, round_number: int) -> Checkpoint:
    return Checkpoint(block.hash(), block.header.number, round_number)


def _genesis(chain) -> Checkpoint:
    return Checkpoint(chain.genesis_hash, 0, 0)


def _vote(key, block, round_number=7, source=None, genesis=None, chain=None) -> SignedVote:
    genesis_hash = genesis if genesis is not None else chain.genesis_hash
    src = source if source is not None else Checkpoint(genesis_hash, 0, 0)
    return sign_vote(key, genesis_hash, Vote(0, src, _cp(block, round_number)))


def _justify(collector, chain, block, round_number, keys=FOUR[:3], source=None):
    """Votes of ``keys`` from ``source`` (default genesis) to ``block``: the link justifies it."""
    out = None
    for key in keys:
        out = collector.add(_vote(key, block, round_number, source=source, chain=chain))
    return out


def test_consecutive_supermajority_links_finalize_and_the_justification_serves_a_syncing_node(chains) -> None:
    node, blocks_a, _, tmp_path = chains
    collector = VoteCollector(node)
    target = blocks_a[1]  # #2
    # Round 5: genesis -> A2 justifies (A2, 5); genesis is final already, nothing new is.
    assert _justify(collector, node, target, 5) is None
    assert collector.highest_justified() == _cp(target, 5)
    # Round 6: (A2, 5) -> round 6 (a vote for #3 counts for #2): A2 is final.
    source = _cp(target, 5)
    assert collector.add(_vote(ALICE, target, 6, source=source, chain=node)) is None
    assert collector.add(_vote(BOB, blocks_a[2], 6, source=source, chain=node)) is None
    justification = collector.add(_vote(CHARLIE, target, 6, source=source, chain=node))
    assert justification is not None and justification.target_hash == target.hash()
    assert (justification.source, justification.round) == (source, 6)
    assert [h.hash() for h in justification.ancestry] == [blocks_a[2].hash()]
    finality.import_justification(node, justification)
    assert node.finalized_hash == target.hash() and node.finalized_number == 2
    assert finality.get_justification(node, target.hash()) == justification
    assert finality.finalized_checkpoint(node) == source
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
    assert again.finalized_hash == target.hash() and finality.finalized_checkpoint(again) == source
    again.db.close()


def test_two_of_four_votes_do_not_finalize(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    source = _cp(blocks_a[1], 5)
    collector.note_justified(source)
    votes = (_vote(ALICE, blocks_a[1], 6, source, chain=node), _vote(BOB, blocks_a[1], 6, source, chain=node))
    assert all(collector.add(v) is None for v in votes)
    short = Justification(blocks_a[1].hash(), 2, 0, 6, source, votes)
    with pytest.raises(InvalidJustification, match="2 votes of 4 validators; more than 2/3 is 3") as err:
        finality.import_justification(node, short)
    assert err.value.reason == "below_threshold" and node.finalized_number == 0


def _justification(node, block, keys, round_number=6, source_round=5) -> Justification:
    """A finality proof for ``block``: votes of the link (block, source_round) -> round_number."""
    source = _cp(block, source_round)
    votes = tuple(_vote(k, block, round_number, source, chain=node) for k in keys)
    return Justification(block.hash(), block.header.number, 0, round_number, source, votes)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged_signature", "bad_signature"),
        ("other_genesis", "bad_signature"),
        ("duplicate_voter", "duplicate_voter"),
        ("outsider", "not_validator"),
        ("mixed_rounds", "mixed_rounds"),
        ("mixed_sources", "mixed_rounds"),
        ("wrong_set", "wrong_set"),
        ("unknown_block", "unknown_block"),
        ("unlinked_vote", "bad_ancestry"),
        ("padded_ancestry", "bad_ancestry"),
        ("rounds_not_consecutive", "not_final"),
        ("justifies_only", "not_final"),
        ("backwards", "bad_link"),
    ],
)
def test_bad_justifications_are_refused_with_their_reason(chains, case, reason) -> None:
    node, blocks_a, blocks_b, _ = chains
    target = blocks_a[1]
    good = _justification(node, target, (ALICE, BOB, CHARLIE))
    votes = list(good.votes)
    ancestry: tuple = ()
    set_id, round_number, target_hash, source = 0, 6, target.hash(), good.source
    if case == "forged_signature":
        votes[1] = msgspec.structs.replace(votes[1], signature=bytes(64))
    elif case == "other_genesis":
        votes[1] = sign_vote(BOB, bytes(32), votes[1].vote)
    elif case == "duplicate_voter":
        votes[2] = votes[0]
    elif case == "outsider":
        votes[2] = _vote(EVE, target, 6, source, chain=node)
    elif case == "mixed_rounds":
        votes[2] = _vote(CHARLIE, target, 8, source, chain=node)
    elif case == "mixed_sources":
        votes[2] = _vote(CHARLIE, target, 6, _cp(target, 4), chain=node)
    elif case == "wrong_set":
        set_id = 1
    elif case == "unknown_block":
        target_hash = blocks_b[0].hash()
    elif case == "unlinked_vote":
        votes[2] = _vote(CHARLIE, blocks_a[2], 6, source, chain=node)  # #3, but no header links it to #2
    elif case == "padded_ancestry":
        ancestry = (blocks_a[2].header,)
    elif case in ("rounds_not_consecutive", "backwards"):
        round_number = 7 if case == "rounds_not_consecutive" else 5
        votes = [_vote(k, target, round_number, source, chain=node) for k in (ALICE, BOB, CHARLIE)]
    elif case == "justifies_only":  # the old one-round proof: votes from genesis contain A2
        source = _genesis(node)
        votes = [_vote(k, target, 6, source, chain=node) for k in (ALICE, BOB, CHARLIE)]
    number = 2 if case != "unknown_block" else 1
    bad = Justification(target_hash, number, set_id, round_number, source, tuple(votes), ancestry)
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
    genesis = _genesis(node)
    cases = [
        (forged, None, "bad_signature"),
        (_vote(EVE, blocks_a[0], chain=node), None, "not_validator"),
        (sign_vote(BOB, node.genesis_hash, Vote(3, genesis, _cp(blocks_a[0], 7))), None, "wrong_set"),
        (_vote(BOB, blocks_a[0], round_number=100, chain=node), 7, "stale"),
        (_vote(BOB, blocks_a[0], round_number=1, chain=node), 70, "stale"),
        (_vote(BOB, blocks_a[0], 5, source=_cp(blocks_a[0], 5), chain=node), None, "bad_link"),  # target round = source round
        (_vote(BOB, blocks_a[0], 9, source=_cp(blocks_a[1], 5), chain=node), None, "bad_link"),  # target below the source
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
    assert finality.get_vote_equivocations(node) == []


def test_a_double_vote_is_kept_as_evidence(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    first = _vote(DAVE, blocks_a[0], chain=node)
    second = _vote(DAVE, blocks_a[1], chain=node)  # same target round 7, another block
    collector.add(first)
    assert collector.add(first) is None  # the same vote again is no offence
    with pytest.raises(VoteEquivocation, match="double_vote, evidence stored") as err:
        collector.add(second)
    assert err.value.reason == "double_vote"
    (evidence,) = finality.get_vote_equivocations(node)
    assert (evidence.first, evidence.second, evidence.kind) == (first, second, "double_vote")


def test_a_caught_equivocator_s_other_votes_of_the_round_are_refused_unchecked(chains) -> None:
    """Once a double vote is stored, a third vote of the voter for that round is refused as
    "equivocator" before its signature is checked (a forged one says so, not bad_signature),
    stores nothing, and counts nothing; its first vote stays, its other rounds are read."""
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    first = _vote(DAVE, blocks_a[0], chain=node)
    collector.add(first)
    with pytest.raises(VoteEquivocation):
        collector.add(_vote(DAVE, blocks_a[1], chain=node))
    stored = finality.get_vote_equivocations(node)
    for third in (
        _vote(DAVE, blocks_a[2], chain=node),
        msgspec.structs.replace(_vote(DAVE, blocks_a[2], chain=node), signature=bytes(64)),
    ):
        with pytest.raises(InvalidVote) as err:
            collector.add(third, 7)
        assert err.value.reason == "equivocator", str(err.value)
        assert "equivocated in round 7: its other votes of it are not read" in str(err.value)
    assert collector.add(first) is None  # the kept vote again is still no offence
    assert finality.get_vote_equivocations(node) == stored
    assert list(collector.recent_votes()) == [first]
    # Another round of the same voter, and another voter of the same round, are checked.
    for other in (_vote(DAVE, blocks_a[2], 8, chain=node), _vote(BOB, blocks_a[0], chain=node)):
        with pytest.raises(InvalidVote) as err:
            collector.add(msgspec.structs.replace(other, signature=bytes(64)))
        assert err.value.reason == "bad_signature"
        assert collector.add(other) is None


def test_a_surround_voter_is_caught_in_the_round_of_its_second_vote(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    collector.add(_vote(DAVE, blocks_a[2], 9, source=_cp(blocks_a[0], 5), chain=node))  # link 5 -> 9
    with pytest.raises(VoteEquivocation):
        collector.add(_vote(DAVE, blocks_a[2], 8, source=_cp(blocks_a[1], 6), chain=node))  # 6 -> 8 inside it
    with pytest.raises(InvalidVote) as err:
        collector.add(_vote(DAVE, blocks_a[1], 8, source=_cp(blocks_a[0], 5), chain=node))
    assert err.value.reason == "equivocator"


def test_caught_equivocators_are_forgotten_with_their_round(chains) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    collector.add(_vote(DAVE, blocks_a[0], 1, chain=node))
    with pytest.raises(VoteEquivocation):
        collector.add(_vote(DAVE, blocks_a[1], 1, chain=node))
    for round_number in range(2, finality.KEPT_ROUNDS + 2):
        collector.add(_vote(BOB, blocks_a[0], round_number, chain=node))
    assert 1 not in collector._rounds and collector._caught == {}
    # Its round gone (a node's current round refuses it as stale first), a vote is read again.
    with pytest.raises(InvalidVote) as err:
        collector.add(msgspec.structs.replace(_vote(DAVE, blocks_a[2], 1, chain=node), signature=bytes(64)))
    assert err.value.reason == "bad_signature"


def test_the_voter_set_is_read_again_when_the_finalized_block_changes(tmp_path) -> None:
    """The collector keeps the finalized state's validators as a set between votes; a
    validator slashed for a double vote and removed at the era start is refused as
    "not_validator" once that block is final, by the same collector."""
    from chain import calls
    from chain.extrinsic import sign_extrinsic

    chain = open_local(tmp_path / "chain")
    try:
        collector = VoteCollector(chain)
        one = build(chain, 1)
        first = _vote(BOB, one, 5, chain=chain)
        assert collector.add(first) is None
        second = sign_vote(BOB, chain.genesis_hash, Vote(0, _genesis(chain), Checkpoint(chain.genesis_hash, 0, 5)))
        report = sign_extrinsic(
            CHARLIE, calls.ReportVoteEquivocation(msgspec.msgpack.encode(first), msgspec.msgpack.encode(second)), nonce=0,
            genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version,
        )
        build(chain, 2, [report])
        assert chain.get_receipts(chain.best_hash)[0].success
        era = chain.runtime.config.era_length
        slot = 2
        while chain.best_number < era:
            slot += 1
            if slot_owner(slot) is not BOB:  # disabled: it leaves the set at the era start
                build(chain, slot)
        assert BOB.public in finality.get_voters(chain)  # the finalized state is still genesis'
        later = _vote(BOB, one, 6, chain=chain)
        with pytest.raises(InvalidVote) as err:
            collector.add(msgspec.structs.replace(later, signature=bytes(64)))
        assert err.value.reason == "bad_signature"  # a validator's: its signature is read
        chain.finalize(chain.best_hash)
        assert chain.best_number == era and BOB.public not in finality.get_voters(chain)
        with pytest.raises(InvalidVote) as err:
            collector.add(later)
        assert err.value.reason == "not_validator"
    finally:
        chain.db.close()


@pytest.mark.parametrize("order", ["outer_first", "inner_first"])
def test_a_surround_vote_is_kept_as_evidence(chains, order) -> None:
    node, blocks_a, _, _ = chains
    collector = VoteCollector(node)
    outer = _vote(DAVE, blocks_a[2], 9, source=_cp(blocks_a[0], 5), chain=node)  # link 5 -> 9
    inner = _vote(DAVE, blocks_a[2], 8, source=_cp(blocks_a[1], 6), chain=node)  # link 6 -> 8
    # Not an offence: a link that starts and ends later, or shares the source round.
    harmless = _vote(DAVE, blocks_a[2], 10, source=_cp(blocks_a[1], 6), chain=node)
    first, second = (outer, inner) if order == "outer_first" else (inner, outer)
    collector.add(first)
    collector.add(harmless)
    with pytest.raises(VoteEquivocation, match="surround_vote, evidence stored") as err:
        collector.add(second)
    assert err.value.reason == "surround_vote"
    (evidence,) = finality.get_vote_equivocations(node)
    assert (evidence.first, evidence.second, evidence.kind) == (first, second, "surround_vote")


def test_round_one_for_a_and_round_two_for_b_cannot_finalize_conflicting_blocks(tmp_path) -> None:
    """The reviewer's scenario: branch A (one block), branch B (two blocks); all four vote
    for A in round 1, then for B in round 2. Under the old rule each round was a proof of
    finality. Now neither finalizes, an honest validator cannot vote for B from its source,
    fork choice keeps the justified A, and the round-2 votes that would finalize A are
    double votes."""
    a_side, b_side = open_local(tmp_path / "a"), open_local(tmp_path / "b")
    a1 = build(a_side, 1)
    b1, b2 = build(b_side, 2), build(b_side, 3)
    node = open_local(tmp_path / "node", Aura(1000))
    rules = node.rules
    assert isinstance(rules, ConsensusRules)
    for block in (a1, b1, b2):
        node.import_block(block)
    assert node.best_hash == b2.hash()  # the longer branch, before anything is justified
    collector = VoteCollector(node)
    genesis = _genesis(node)
    round_one = [_vote(k, a1, 1, genesis, chain=node) for k in FOUR]
    assert all(collector.add(v) is None for v in round_one)
    # Round 1 justifies (A1, 1); nothing is final, and its votes prove nothing final.
    assert collector.highest_justified() == _cp(a1, 1) and node.finalized_number == 0
    old_style = Justification(a1.hash(), 1, 0, 1, genesis, tuple(round_one))
    with pytest.raises(InvalidJustification) as err:
        finality.verify_justification(node, old_style)
    assert err.value.reason == "not_final"
    # An honest validator votes from (A1, 1): with B2 as its best block it cannot vote ...
    assert finality.make_vote(node, ALICE, 2, collector.highest_justified()) is None
    # ... and the fork choice, pointed at the justified A1, moves the best block there.
    rules.justified = a1.hash()
    route = finality.follow_justified(node, a1.hash())
    assert route is not None and node.best_hash == a1.hash()
    assert rules.prefer(node, build(b_side, 4).header, node.best_header) is False  # a longer B no longer wins
    # The round-2 votes for B (from genesis) are not an offence on their own, and finalize nothing.
    round_two_b = [_vote(k, b2, 2, genesis, chain=node) for k in FOUR]
    assert all(collector.add(v) is None for v in round_two_b)
    assert node.finalized_number == 0 and collector.check() is None
    # Finalizing A1 takes round-2 votes from (A1, 1): each one is a double vote now.
    for key in FOUR:
        with pytest.raises(VoteEquivocation) as err:
            collector.add(_vote(key, a1, 2, _cp(a1, 1), chain=node))
        assert err.value.reason == "double_vote"
    assert collector.check() is None and node.finalized_number == 0
    assert len(finality.get_vote_equivocations(node)) == 4
    for chain in (a_side, b_side, node):
        chain.db.close()


def test_a_stored_record_is_where_a_restarted_voter_goes_on_from(chains) -> None:
    # The record itself is stored by the node, outside the database (node.voter_record;
    # tests/node/test_voter_record.py purges the database under a running validator).
    node, blocks_a, _, _ = chains
    assert finality.load_voter_state(node, None) == VoterState(_genesis(node), 0)
    collector = VoteCollector(node)
    _justify(collector, node, blocks_a[1], 5)
    justified = collector.highest_justified()
    assert justified == _cp(blocks_a[1], 5)
    stored = VoterState(justified, 5)
    path = node.db.path
    node.db.close()
    again = open_local(path)
    try:
        assert finality.load_voter_state(again, stored) == stored
        # A new collector told the stored source (as node.service does) starts from it, not from genesis.
        fresh = VoteCollector(again)
        fresh.note_justified(stored.justified)
        assert fresh.highest_justified() == justified
        for slot in (9, 10, 11, 12):  # the challenge window: A3 is voted for once it has 4 descendants
            build(again, slot)
        vote = finality.make_vote(again, ALICE, 6, fresh.highest_justified())
        assert vote is not None and vote.vote.source == justified
    finally:
        again.db.close()
        node.db = open_local(path).db  # the fixture closes it


def test_a_stored_source_the_node_lacks_is_kept_and_no_vote_is_made_from_it(chains) -> None:
    # After a purge the record names a block the sync has not reached: lowering the source to
    # what the node has would make its next vote surround the ones it cast before.
    node, _, _, _ = chains
    for slot in (9, 10, 11, 12):
        build(node, slot)
    unknown = VoterState(Checkpoint(bytes(32), 7, 9), 9)
    assert finality.load_voter_state(node, unknown) == unknown
    assert finality.make_vote(node, ALICE, 10, unknown.justified) is None
    assert finality.make_vote(node, ALICE, 10, finality.load_voter_state(node, None).justified) is not None


def test_a_finalized_block_is_never_reverted(chains) -> None:
    node, blocks_a, blocks_b, tmp_path = chains
    full = open_local(tmp_path / "full")
    for block in blocks_a + blocks_b:
        full.import_block(block)
    assert full.best_hash == blocks_b[-1].hash()  # B (4 blocks) beats A (3)
    # 3 of 4 validators finalize A2: the longer branch B does not contain it and loses.
    justification = _justification(full, blocks_a[1], (ALICE, BOB, DAVE), round_number=9, source_round=8)
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
    conflicting = _justification(full, blocks_b[2], FOUR, round_number=11, source_round=10)
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
    _justify(collector, node, blocks_a[0], 5)  # (A1, 5) justified
    source = _cp(blocks_a[0], 5)
    for key in (ALICE, BOB, CHARLIE):
        assert collector.add(_vote(key, blocks_a[2], 6, source, chain=node)) is None
    assert collector.check() is None
    for block in blocks_a[1:]:
        node.import_block(block)
    justification = collector.check()
    assert justification is not None and justification.target_hash == blocks_a[0].hash()
    assert collector.highest_justified() == _cp(blocks_a[2], 6)
    finality.import_justification(node, justification)
    assert node.finalized_hash == blocks_a[0].hash()
    node.db.close()


def test_a_sole_validator_finalizes_its_justified_checkpoint_at_once(tmp_path) -> None:
    """Without a challenge window either: a sole validator sealed every block itself."""
    chain = open_chain(tmp_path / "dev")  # the dev chain: Alice validates alone
    assert chain.config.challenge_blocks == 4
    block = chain.build_block([], ALICE, slot=1).block
    collector = VoteCollector(chain)
    vote = finality.make_vote(chain, ALICE, 1, collector.highest_justified())
    assert vote is not None
    justification = collector.add(vote)
    assert justification is not None and justification.target_hash == block.hash()
    finality.import_justification(chain, justification)
    assert chain.finalized_hash == block.hash()
    assert finality.finalized_checkpoint(chain) == _cp(block, 1)
    chain.db.close()


def _mislabeled(key, block, number: int, round_number: int, source: Checkpoint, chain) -> SignedVote:
    """``key``'s vote for ``block`` under a block number that is not its own (signed: the
    validator itself lies)."""
    target = Checkpoint(block.hash(), number, round_number)
    return sign_vote(key, chain.genesis_hash, Vote(0, source, target))


def test_one_validators_vote_under_a_false_block_number_cannot_stall_finality(tmp_path, branches) -> None:
    """A vote names its target by hash and number. The collector counted it by hash, and
    put it in the justification it built, whose check then refused the number
    ("bad_ancestry"): one byzantine validator of four, voting early in every round with a
    false number, kept every node from finalizing anything. A vote whose number is not its
    block's is now refused when the block is known ("wrong_number"), and not counted when
    the block comes later; the three honest votes finalize."""
    blocks_a, _ = branches
    for known in (True, False):
        node = open_local(tmp_path / f"known-{known}")
        for block in blocks_a[: 3 if known else 2]:
            node.import_block(block)
        collector = VoteCollector(node)
        _justify(collector, node, blocks_a[1], 5)  # (A2, 5) justified
        source = _cp(blocks_a[1], 5)
        lie = _mislabeled(DAVE, blocks_a[2], 7, 6, source, node)  # A3 is #3
        if known:
            with pytest.raises(InvalidVote, match=r"names block #7 .* which is #3$") as err:
                collector.add(lie)
            assert err.value.reason == "wrong_number"
        else:
            assert collector.add(lie) is None  # kept: the block may come
            node.import_block(blocks_a[2])
        justification = None
        for key in (ALICE, BOB, CHARLIE):
            justification = collector.add(_vote(key, blocks_a[1], 6, source, chain=node))
        assert justification is not None
        finality.import_justification(node, justification)  # before: InvalidJustification "bad_ancestry"
        assert node.finalized_hash == blocks_a[1].hash()
        assert DAVE.public not in {v.voter for v in justification.votes}
        node.db.close()
