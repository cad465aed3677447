"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/finality.py (Casper FFG adapted to rounds). Forgeries are built the
strong way: every vote is a real ed25519 signature by a validator, ancestry headers are
real headers (re-sealed when changed), and only the one rule under test is broken; each
test asserts the reason and the message's specifics.

Last run (2026-11-29, after the wrong_number and target_known fixes;
``rm -rf mutants && mutmut run --max-children 2 "consensus.finality*"``): 752 mutants, 735
killed, 17 survived: the 17 explained before those fixes (the ``check`` ids moved up with
the new lines), two of which were in fact killable and are now killed (below); the same
command then gives 737 killed, 15 survived (every one explained here).
``load_voter_state`` changed (2026-11-29: the record moved out of the database and a stored
source the node lacks is kept); ``mutmut run --max-children 1 "consensus.finality.x_load_voter_state*"``
gives 13 mutants, 12 killed, 1 survived (``_mutmut_7``, explained below).
``_surrounds`` and the vote signing moved to chain/votes.py (a4b4c29), which ``[tool.mutmut]
only_mutate`` does not list, so its old survivor ``x__surrounds__mutmut_3`` is no longer
made here.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``x_load_voter_state__mutmut_7``: ``VoterState(final, )`` instead of ``VoterState(final, 0)``:
  ``voted_round`` defaults to 0 (VoterState in consensus/finality.py), so the object is equal.
- ``x_import_justification__mutmut_11``: ``best = select_best(...) if ... or True`` also
  computes a best block for a target that is already final; ``Blockchain.finalize`` returns
  before reading ``best`` for such a target (it only stores the justification), and
  ``select_best`` only reads, so nothing differs
  (test_an_already_final_target_only_gets_its_justification_stored shows that path).
- ``x_import_justification__mutmut_26`` .. ``_32`` (the reason, message or arguments of the
  ``except ChainError`` in import_justification): unreachable after verify_justification.
  It has checked that the target is imported and on the finalized chain, and select_best
  returns the target or a descendant, so ``finalize`` has no FinalityConflict left to raise;
  the clause only turns an impossible crash into a refusal. (The one ChainError that could
  still land there is a StorageError from a failing disk write, which it would then label
  "conflicts_with_finalized", the peer's fault; no test can make LevelDB fail that write.)
- ``x_compute_evidence_key__mutmut_10``: ``struct.pack(">qq", ...)`` instead of ``">QQ"``. Set
  ids and rounds are ``U64`` wire integers, which chain/codec.py caps at 2**63 - 1 (msgpack's
  signed range), and below that the signed and unsigned big-endian bytes are identical; a
  vote with a larger round cannot be decoded, so never reaches the collector from a peer
  (test_an_equivocation_in_the_highest_round_is_stored_and_carried pins the top key).
- ``xǁVoteCollectorǁnote_justified__mutmut_1``: ``self._justified[checkpoint] = ""`` instead of
  ``None``: the dict is an insertion-ordered set; its values are never read.
- ``xǁVoteCollectorǁnote_justified__mutmut_13`` (``_2`` before): ``len(...) >= KEPT_JUSTIFIED`` instead of ``>``.
  At exactly KEPT_JUSTIFIED entries the pruning slice ``[: len - KEPT_JUSTIFIED]`` is empty,
  so the mutant deletes nothing either (test_the_collector_keeps_the_newest_justified_checkpoints
  pins the bound from the other side).
- ``xǁVoteCollectorǁcheck__mutmut_107``, ``_115``, ``_119`` (``_78``, ``_86``, ``_90`` before): ``break`` instead of ``continue``
  after a source's group in a round has passed ``len(counted) >= needed`` (the continues for
  "rounds not consecutive", "already final or off the finalized chain" and "not higher than
  the one found"). Breaking only skips the round's other source groups, and none of them can
  count enough: a round keeps one vote per voter, ``counted`` keeps only voters of the
  current set (``get_voters``: the finalized state's), and two disjoint groups of more than
  2/3 of its n validators would need more than n of them.

The collector again (2026-12-02, after the caught equivocators and the cached voter set;
``rm -rf mutants && mutmut run --max-children 1 "consensus.finality.xǁVoteCollectorǁ*"``): 368
mutants, 359 killed, 9 survived: the five above, and four more, each explained:

- ``xǁVoteCollectorǁ__init____mutmut_4`` and ``_5``: the voter set's cache starts as ``None``
  instead of an empty set, or marked as of ``""`` instead of ``None``: either way the first
  ``_voter_set`` finds it not of the finalized block (a 32-byte hash) and reads the set.
- ``xǁVoteCollectorǁ_voter_set__mutmut_6``: ``self._voters_at = None`` instead of the finalized
  hash: the set is read again at every vote, the same set; only the cost differs (10.3 against
  3.7 us a refused vote, measured in the commit that added the cache).
- ``xǁVoteCollectorǁcheck__mutmut_78``: the proof of justification kept is replaced by one of
  an *equal* checkpoint order, not only a higher one. Two checkpoints of one order are one
  checkpoint (the order is its round, then its block number, and two blocks justified in one
  round would take more than a third of the set voting twice), so the kept proof proves the
  same checkpoint either way.

Killed since the last scores (the ``break`` at the two continues *before* that count;
with the genesis set they were equivalent, as the docstring said, but since staking's eras
a proven offender leaves the set at an era start, so the set can shrink under kept votes):

- ``xǁVoteCollectorǁcheck__mutmut_24`` ("source proven invalid") and ``_38`` ("too few
  counted"): a round's first group can pass ``len(votes) >= needed`` by raw votes and still
  count nothing, its voters having left the set (or its source proven invalid), while a
  later group of the same round from the remaining validators finalizes:
  test_a_group_that_cannot_count_does_not_hide_a_later_group_of_the_round. (A short group
  before a supermajority one: test_a_short_link_does_not_hide_a_supermajority_link_of_the_same_round.)
"""

from __future__ import annotations

import re

import msgspec
import pytest
from consensuskit import ALICE, BOB, CHARLIE, DAVE, EVE, build, open_chain, open_local

from chain.crypto import ss58_encode
from chain.header import seal_header
from chain.storage import Column
from consensus import finality
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

THREE = (ALICE, BOB, CHARLIE)


@pytest.fixture(scope="module")
def branches(tmp_path_factory):
    """Branch A = A1..A3 (slots 1, 2, 4); branch B = B1, B2 (slots 5, 6); both from genesis."""
    tmp = tmp_path_factory.mktemp("branches")
    a = open_local(tmp / "a")
    b = open_local(tmp / "b")
    first = [build(a, s) for s in (1, 2)]
    blocks = [*first, _a3_hashing_below(tmp, first)], [build(b, s) for s in (5, 6)]
    a.db.close()
    b.db.close()
    return blocks


def _a3_hashing_below(tmp, first):
    """A3 (slot 4), with a remark chosen so that its hash is below A2's: the ancestry test
    needs hash order to differ from number order, whatever the genesis hash is."""
    from chainkit import sign

    from chain import calls

    for attempt in range(64):
        chain = open_local(tmp / f"a3-{attempt}")
        try:
            for block in first:
                chain.import_block(block)
            a3 = build(chain, 4, [sign(chain, ALICE, calls.Remark(bytes([attempt])), 0)])
        finally:
            chain.db.close()
        if a3.hash() < first[1].hash():
            return a3
    raise AssertionError("no remark of 64 gives A3 a hash below A2's")


@pytest.fixture
def node(tmp_path, branches):
    """A node holding branch A and branch B (B is not best: A is longer)."""
    blocks_a, blocks_b = branches
    chain = open_local(tmp_path / "node")
    for block in blocks_a + blocks_b:
        chain.import_block(block)
    yield chain
    chain.db.close()


def _cp(block, round_number: int) -> Checkpoint:
    return Checkpoint(block.hash(), block.header.number, round_number)


def _genesis(chain) -> Checkpoint:
    return Checkpoint(chain.genesis_hash, 0, 0)


def _signed(chain, key, source: Checkpoint, target: Checkpoint, set_id: int = 0) -> SignedVote:
    return sign_vote(key, chain.genesis_hash, Vote(set_id, source, target))


def _vote(chain, key, block, round_number: int = 7, source: Checkpoint | None = None) -> SignedVote:
    return _signed(chain, key, source if source is not None else _genesis(chain), _cp(block, round_number))


def _final(chain, block, keys=THREE, source_round: int = 5, ancestry=()) -> Justification:
    """A finality proof for ``block``: the link (block, source_round) -> source_round + 1."""
    source = _cp(block, source_round)
    votes = tuple(_vote(chain, k, block, source_round + 1, source) for k in keys)
    return Justification(block.hash(), block.header.number, 0, source_round + 1, source, votes, tuple(ancestry))


def _refused(chain, justification, reason: str, message: str) -> None:
    before = (chain.finalized_hash, chain.best_hash, chain.state.root())
    with pytest.raises(InvalidJustification, match=message) as err:
        finality.import_justification(chain, justification.encode())
    assert err.value.reason == reason, str(err.value)
    assert (chain.finalized_hash, chain.best_hash, chain.state.root()) == before
    assert chain.get_justification(justification.target_hash) is None


def test_the_threshold_is_more_than_two_thirds() -> None:
    assert [finality.compute_threshold(n) for n in range(1, 11)] == [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]


def _extend(chain, slots) -> None:
    """Blocks on the best block in ``slots``: the challenge window (challenge_blocks = 4 in the
    local preset) lets a validator vote for a block only once it has 4 descendants."""
    for slot in slots:
        build(chain, slot)


def test_make_vote_signs_the_best_block_from_the_source(node, branches) -> None:
    blocks_a, blocks_b = branches
    genesis = _genesis(node)
    assert node.config.challenge_blocks == 4
    assert finality.make_vote(node, ALICE, 12, genesis) is None  # A3 is best: nothing has 4 descendants
    _extend(node, (7, 8, 9, 10))
    signed = finality.make_vote(node, ALICE, 12, genesis)  # for A3, the block 4 below the best
    assert signed == sign_vote(ALICE, node.genesis_hash, Vote(0, genesis, _cp(blocks_a[2], 12)))
    assert signed is not None and signed.voter == ALICE.public
    assert VoteCollector(node).add(signed, 12) is None  # a valid, counted vote
    source = _cp(blocks_a[0], 12)
    assert finality.make_vote(node, ALICE, 12, source) is None  # the round is not after the source
    assert finality.make_vote(node, ALICE, 13, source) is not None
    assert finality.make_vote(node, ALICE, 13, Checkpoint(bytes(32), 1, 1)) is None  # unknown source
    assert finality.make_vote(node, ALICE, 13, _cp(blocks_b[0], 1)) is None  # best is not above it


def test_a_signature_does_not_carry_over_to_another_vote(node, branches) -> None:
    """Real signatures for the link (A1, 5) -> (A1, 6), moved onto another target block,
    another round or another source: refused by verification and by the collector."""
    blocks_a, _ = branches
    genuine = _final(node, blocks_a[0])
    moves = [
        ({"target": _cp(blocks_a[1], 6)}, (blocks_a[1].header,)),
        ({"target": _cp(blocks_a[0], 7), "source": _cp(blocks_a[0], 6)}, ()),
        ({"source": _cp(blocks_a[0], 4), "target": _cp(blocks_a[0], 5)}, ()),
    ]
    for changes, ancestry in moves:
        votes = tuple(msgspec.structs.replace(v, vote=msgspec.structs.replace(v.vote, **changes)) for v in genuine.votes)
        vote = votes[0].vote
        forged = Justification(blocks_a[0].hash(), 1, 0, vote.round, vote.source, votes, ancestry)
        _refused(node, forged, "bad_signature", f"^vote of {ss58_encode(ALICE.public)}: ")
        with pytest.raises(InvalidVote, match=f"^vote of {ss58_encode(ALICE.public)}: ") as err:
            VoteCollector(node).add(votes[0])
        assert err.value.reason == "bad_signature"
    assert finality.get_vote_equivocations(node) == []


def test_decoding_bounds_are_exact(node) -> None:
    limit = finality.MAX_JUSTIFICATION_BYTES
    with pytest.raises(InvalidJustification, match=r"^justification: ") as err:
        finality.decode_justification(bytes(limit))
    assert err.value.reason == "malformed"
    with pytest.raises(InvalidJustification, match=f"^a justification is at most {limit} bytes, got {limit + 1}$") as err:
        finality.decode_justification(bytes(limit + 1))
    assert err.value.reason == "oversize"
    with pytest.raises(InvalidVote, match=r"^vote: ") as err:
        finality.decode_signed_vote(bytes(finality.MAX_VOTE_BYTES))
    assert err.value.reason == "malformed"
    with pytest.raises(InvalidVote, match=r"^a signed vote is at most 256 bytes, got 257$") as err:
        finality.decode_signed_vote(bytes(257))
    assert err.value.reason == "malformed"
    assert finality.get_justification(node, node.best_hash) is None


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("wrong_set", "wrong_set", "^justification for set 1, the current set is 0$"),
        ("mixed_rounds", "mixed_rounds", "is for set 0, link from round 5 to 8; the justification's is set 0, link from #2 round 5 to round 6$"),
        ("mixed_sets", "mixed_rounds", "is for set 1, link from round 5 to 6; "),
        ("mixed_sources", "mixed_rounds", "is for set 0, link from round 4 to 6; "),
        ("mixed_source_blocks", "mixed_rounds", "is for set 0, link from round 5 to 6; "),
        ("duplicate_voter", "duplicate_voter", f"^{ss58_encode(ALICE.public)} votes twice$"),
        ("backwards", "bad_link", "^a link from round 5 to round 5 goes backwards$"),
        ("unknown_block", "unknown_block", f"^target block {bytes(32).hex()} is not imported$"),
        ("wrong_number", "malformed", "^target block is #2, the justification says #3$"),
        ("conflicting", "conflicts_with_finalized", "^target #2 [0-9a-f]{64} is not on the chain of the finalized block #1 [0-9a-f]{64}$"),
        ("outsider", "not_validator", f"^{ss58_encode(EVE.public)} is not a validator$"),
        ("below_threshold", "below_threshold", "^2 votes of 4 validators; more than 2/3 is 3$"),
        ("other_source_block", "not_final", "^the link's source #1 is not the target #2: the link justifies the target, it does not finalize it$"),
        ("other_source_number", "not_final", "^the link's source #3 is not the target #2: "),
        ("rounds_not_consecutive", "not_final", "^a link from round 5 to round 7 justifies its target but finalizes its source only when the rounds are consecutive$"),
        ("forged_signature", "bad_signature", f"^vote of {ss58_encode(BOB.public)}: "),
    ],
)
def test_each_refusal_names_its_cause(node, branches, case, reason, message) -> None:
    blocks_a, blocks_b = branches
    finality.import_justification(node, _final(node, blocks_a[0]))  # A1 final
    target = blocks_a[1]
    j = _final(node, target)
    votes = list(j.votes)
    source = j.source

    def relink(src: Checkpoint, round_number: int, keys=THREE) -> None:
        nonlocal j, votes
        votes = [_vote(node, k, target, round_number, src) for k in keys]
        j = msgspec.structs.replace(j, source=src, round=round_number)

    if case == "wrong_set":
        j = msgspec.structs.replace(j, set_id=1)
    elif case == "mixed_rounds":
        votes[2] = _vote(node, CHARLIE, target, 8, source)
    elif case == "mixed_sets":
        votes[2] = _signed(node, CHARLIE, source, _cp(target, 6), set_id=1)
    elif case == "mixed_sources":
        votes[2] = _vote(node, CHARLIE, target, 6, _cp(target, 4))
    elif case == "mixed_source_blocks":
        votes[2] = _vote(node, CHARLIE, target, 6, _cp(blocks_a[0], 5))
    elif case == "duplicate_voter":
        votes[2] = votes[0]
    elif case == "backwards":
        relink(source, 5)
    elif case == "unknown_block":
        j = msgspec.structs.replace(j, target_hash=bytes(32))
    elif case == "wrong_number":
        j = msgspec.structs.replace(j, target_number=3)
    elif case == "conflicting":
        j = _final(node, blocks_b[1])
        votes = list(j.votes)
    elif case == "outsider":
        votes[2] = _vote(node, EVE, target, 6, source)
    elif case == "below_threshold":
        votes = votes[:2]
    elif case == "other_source_block":
        relink(_cp(blocks_a[0], 5), 6)
    elif case == "other_source_number":
        relink(Checkpoint(target.hash(), 3, 5), 6)
    elif case == "rounds_not_consecutive":
        relink(source, 7)
    elif case == "forged_signature":
        votes[1] = msgspec.structs.replace(votes[1], signature=ALICE.sign(b"something else"))
    j = msgspec.structs.replace(j, votes=tuple(votes))
    _refused(node, j, reason, message)
    with pytest.raises(InvalidJustification) as err:  # verify alone refuses it too
        finality.verify_justification(node, j)
    assert err.value.reason == reason


def test_a_sole_validators_link_must_reach_the_target_from_its_source(tmp_path) -> None:
    chain = open_chain(tmp_path / "dev")  # the dev chain: Alice validates alone
    b1 = chain.build_block([], ALICE, slot=1).block
    b2 = chain.build_block([], ALICE, slot=2).block

    def link(source: Checkpoint, target) -> Justification:
        vote = _signed(chain, ALICE, source, _cp(target, 2))
        return Justification(target.hash(), target.header.number, 0, 2, source, (vote,))

    message = "^the target #1 does not descend from the link's source$"
    _refused(chain, link(_cp(b2, 1), b1), "bad_link", message)  # the source is above the target
    _refused(chain, link(Checkpoint(bytes(32), 0, 1), b1), "bad_link", message)  # unknown source
    good = link(_cp(b1, 1), b2)  # from (B1, 1) the sole vote justifies, so finalizes, B2
    assert finality.import_justification(chain, good) is None
    assert chain.finalized_hash == b2.hash()
    assert finality.finalized_checkpoint(chain) == _cp(b2, 2)  # a sole validator's: the target round
    chain.db.close()


def test_an_already_final_target_only_gets_its_justification_stored(node, branches) -> None:
    blocks_a, _ = branches
    finality.import_justification(node, _final(node, blocks_a[1]))  # A2 final
    before = (node.finalized_hash, node.best_hash, node.state.root())
    late = _final(node, blocks_a[0], keys=(BOB, CHARLIE, DAVE))
    finality.verify_justification(node, late)
    assert finality.import_justification(node, late) is None
    assert (node.finalized_hash, node.best_hash, node.state.root()) == before
    assert finality.get_justification(node, blocks_a[0].hash()) == late


def test_import_moves_the_best_block_under_the_finalized_one(node, branches) -> None:
    blocks_a, blocks_b = branches
    assert node.best_hash == blocks_a[2].hash()
    route = finality.import_justification(node, _final(node, blocks_b[0]))
    assert route is not None and route.enacted == tuple(b.hash() for b in blocks_b)
    assert node.finalized_hash == blocks_b[0].hash() and node.best_hash == blocks_b[1].hash()


def test_ancestry_two_blocks_deep_is_accepted_in_number_order(node, branches) -> None:
    """Two votes for A3 and one for A1 from (A1, 5) in round 6 finalize A1 through A2 and A3:
    the collector lists that ancestry by number (A2 before A3, though A3's hash is the
    lower), and verification accepts a justification whose votes link through two headers."""
    blocks_a, _ = branches
    assert blocks_a[2].hash() < blocks_a[1].hash()  # so hash order would differ
    collector = VoteCollector(node)
    source = _cp(blocks_a[0], 5)
    collector.note_justified(source)
    assert collector.add(_vote(node, ALICE, blocks_a[2], 6, source)) is None
    assert collector.add(_vote(node, BOB, blocks_a[2], 6, source)) is None
    made = collector.add(_vote(node, CHARLIE, blocks_a[0], 6, source))
    assert made is not None and made.target_hash == blocks_a[0].hash()
    assert (made.target_number, made.set_id, made.round, made.source) == (1, 0, 6, source)
    assert [h.hash() for h in made.ancestry] == [blocks_a[1].hash(), blocks_a[2].hash()]
    assert collector.highest_justified() == _cp(blocks_a[0], 6)  # only A1 has three votes
    finality.import_justification(node, made.encode())
    assert node.finalized_hash == blocks_a[0].hash()
    assert finality.get_justification(node, blocks_a[0].hash()) == made
    assert finality.finalized_checkpoint(node) == source


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("names_target_with_wrong_number", "^a vote names the target with number 3, not #2$"),
        ("lies_about_its_number", "for #5 .* is not shown to contain the target$"),
        ("forged_header_at_target_height", "for #2 .* is not shown to contain the target$"),
        ("missing_header", f"^the vote of {ss58_encode(CHARLIE.public)} for #3 [0-9a-f]{{64}} is not shown to contain the target$"),
        ("padded", "^1 ancestry headers link no vote to the target$"),
    ],
)
def test_ancestry_forgeries_are_refused_with_the_specific_cause(node, branches, case, message) -> None:
    blocks_a, blocks_b = branches
    j = _final(node, blocks_a[1])
    votes, source = list(j.votes), j.source
    ancestry: tuple = ()
    if case == "names_target_with_wrong_number":
        votes[2] = _signed(node, CHARLIE, source, Checkpoint(blocks_a[1].hash(), 3, 6))
    elif case == "lies_about_its_number":
        votes[2] = _signed(node, CHARLIE, source, Checkpoint(blocks_a[2].hash(), 5, 6))
        ancestry = (blocks_a[2].header,)
    elif case == "forged_header_at_target_height":
        # A3's header renumbered to #2 (its parent is the target) and re-sealed by its author.
        header = msgspec.structs.replace(blocks_a[2].header, number=2)
        header = seal_header(CHARLIE, node.genesis_hash, header)
        votes[2] = _signed(node, CHARLIE, source, Checkpoint(header.hash(), 2, 6))
        ancestry = (header,)
    elif case == "missing_header":
        votes[2] = _vote(node, CHARLIE, blocks_a[2], 6, source)
    elif case == "padded":  # one header links Charlie's vote, one links nothing
        votes[2] = _vote(node, CHARLIE, blocks_a[2], 6, source)
        ancestry = (blocks_a[2].header, blocks_b[0].header)
    _refused(node, msgspec.structs.replace(j, votes=tuple(votes), ancestry=ancestry), "bad_ancestry", message)


def test_vote_refusals_name_their_cause_and_the_round_window_is_exact(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    genesis = _genesis(node)
    a1_at_5 = _cp(blocks_a[0], 5)
    cases = [
        (_signed(node, BOB, genesis, _cp(blocks_a[0], 7), set_id=3), None, "wrong_set", "^vote for set 3, the current set is 0$"),
        (_vote(node, EVE, blocks_a[0]), None, "not_validator", f"^0x{EVE.public.hex()} is not a validator$"),
        (msgspec.structs.replace(_vote(node, BOB, blocks_a[0]), signature=BOB.sign(b"x")), None, "bad_signature", f"^vote of {ss58_encode(BOB.public)}: "),
        (_vote(node, BOB, blocks_a[0], 4), 20, "stale", "^vote for round 4, the local round is 20$"),
        (_vote(node, BOB, blocks_a[0], 23), 20, "stale", "^vote for round 23, the local round is 20$"),
        (_vote(node, BOB, blocks_a[0], 5, a1_at_5), None, "bad_link", re.escape("a vote's target (#1, round 5) must come after its source (#1, round 5)")),
        (_vote(node, BOB, blocks_a[0], 9, _cp(blocks_a[1], 5)), None, "bad_link", re.escape("a vote's target (#1, round 9) must come after its source (#2, round 5)")),
    ]
    for signed, current, reason, message in cases:
        with pytest.raises(InvalidVote, match=message) as err:
            collector.add(signed, current)
        assert err.value.reason == reason, str(err.value)
    # The window is (current - KEPT_ROUNDS, current + MAX_FUTURE_ROUNDS]: 5 and 22 count.
    for round_number in (5, 21, 22):
        assert collector.add(_vote(node, BOB, blocks_a[0], round_number), 20) is None
    assert collector.add(_vote(node, CHARLIE, blocks_a[0], 6, a1_at_5)) is None  # a target at the source's height
    assert finality.get_vote_equivocations(node) == []


def test_a_double_vote_is_stored_under_its_key(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    first, second = _vote(node, DAVE, blocks_a[0]), _vote(node, DAVE, blocks_a[1])
    assert collector.add(first) is None
    assert collector.add(first) is None  # the same vote again
    message = f"^{ss58_encode(DAVE.public)}: two votes with target round 7 \\(double_vote, evidence stored\\)$"
    with pytest.raises(VoteEquivocation, match=message) as err:
        collector.add(second)
    assert err.value.reason == "double_vote"
    ((key, value),) = list(node.iter_evidence())
    assert key == finality.compute_evidence_key(0, 7, DAVE.public)
    assert key == b"vote/" + bytes(7) + b"\x00" + bytes(7) + b"\x07" + DAVE.public
    stored = msgspec.msgpack.decode(value, type=finality.VoteEquivocationEvidence)
    assert err.value.evidence == stored == finality.VoteEquivocationEvidence(first, second, "double_vote")
    assert node.db.get(Column.EVIDENCE, key) == value


def test_an_equivocation_in_the_highest_round_is_stored_and_carried(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    last = 2**63 - 1  # the highest round a U64 holds (chain/codec.py)
    first, second = _vote(node, DAVE, blocks_a[0], last), _vote(node, DAVE, blocks_a[1], last)
    collector.add(first)
    with pytest.raises(VoteEquivocation) as err:
        collector.add(second)
    (stored,) = finality.get_vote_equivocations(node)
    assert err.value.evidence == stored and (stored.first, stored.second) == (first, second)
    assert finality.compute_evidence_key(0, last, DAVE.public) == b"vote/" + bytes(8) + b"\x7f" + b"\xff" * 7 + DAVE.public


@pytest.mark.parametrize("order", ["outer_first", "inner_first"])
def test_a_surround_vote_is_stored_in_either_order(node, branches, order) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    outer = _vote(node, DAVE, blocks_a[2], 9, _cp(blocks_a[0], 5))  # link 5 -> 9
    inner = _vote(node, DAVE, blocks_a[2], 8, _cp(blocks_a[1], 6))  # link 6 -> 8
    # Not offences: links sharing a source round with either, or starting and ending later.
    harmless = [
        _vote(node, DAVE, blocks_a[2], 10, _cp(blocks_a[1], 6)),  # 6 -> 10
        _vote(node, DAVE, blocks_a[2], 7, _cp(blocks_a[0], 5)),  # 5 -> 7
    ]
    first, second = (outer, inner) if order == "outer_first" else (inner, outer)
    assert collector.add(_vote(node, ALICE, blocks_a[0], 3)) is None  # a round without Dave's vote, first
    assert collector.add(first) is None
    assert all(collector.add(v) is None for v in harmless)
    o, i = (5, 9), (6, 8)
    a, b = (o, i) if order == "outer_first" else (i, o)
    message = (
        f"^{ss58_encode(DAVE.public)}: link {a[0]}->{a[1]} and link {b[0]}->{b[1]}, one surrounds the other "
        "\\(surround_vote, evidence stored\\)$"
    )
    with pytest.raises(VoteEquivocation, match=message) as err:
        collector.add(second)
    assert err.value.reason == "surround_vote"
    ((key, _),) = list(node.iter_evidence())
    assert key == finality.compute_evidence_key(0, second.vote.round, DAVE.public)
    (evidence,) = finality.get_vote_equivocations(node)
    assert err.value.evidence == evidence
    assert (evidence.first, evidence.second, evidence.kind) == (first, second, "surround_vote")


def test_a_stored_voter_state_is_raised_to_the_final_checkpoint_only(node, branches) -> None:
    blocks_a, _ = branches
    finality.import_justification(node, _final(node, blocks_a[0]))  # A1 final, at round 5
    final = _cp(blocks_a[0], 5)
    assert finality.load_voter_state(node, None) == VoterState(final, 0)
    unknown = VoterState(Checkpoint(bytes(32), 2, 9), 9)
    for stored, loaded in [
        (VoterState(_cp(blocks_a[1], 5), 6), VoterState(_cp(blocks_a[1], 5), 6)),  # same round: kept
        (VoterState(_cp(blocks_a[2], 8), 8), VoterState(_cp(blocks_a[2], 8), 8)),
        (VoterState(_cp(blocks_a[1], 4), 7), VoterState(final, 7)),  # below the final round
        (unknown, unknown),  # a block this node lacks (a purged node's record): kept, never lowered
    ]:
        assert finality.load_voter_state(node, stored) == loaded
        collector = VoteCollector(node)
        collector.note_justified(loaded.justified)  # as node.service does
        assert collector.highest_justified() == (final if loaded is unknown else loaded.justified)
    _extend(node, (7, 8, 9, 10))  # A3 gets its 4 descendants (the challenge window)
    assert finality.make_vote(node, ALICE, 9, unknown.justified) is None
    vote = finality.make_vote(node, ALICE, 9, finality.load_voter_state(node, None).justified)
    assert vote is not None and vote.vote.source == final


def test_a_block_finalized_without_a_justification_is_at_round_zero(node, branches) -> None:
    blocks_a, _ = branches
    assert finality.finalized_checkpoint(node) == _genesis(node) == finality.genesis_checkpoint(node)
    node.finalize(blocks_a[0].hash())
    assert finality.finalized_checkpoint(node) == _cp(blocks_a[0], 0)


def test_highest_justified_prefers_round_then_height_on_the_finalized_chain(node, branches) -> None:
    blocks_a, blocks_b = branches
    collector = VoteCollector(node)
    assert collector.highest_justified() == _genesis(node)
    collector.note_justified(_cp(blocks_a[1], 6))
    collector.note_justified(_cp(blocks_b[1], 6))  # same round and height: the first noted stays
    assert collector.highest_justified() == _cp(blocks_a[1], 6)
    collector.note_justified(_cp(blocks_a[1], 7))
    collector.note_justified(_cp(blocks_a[2], 7))
    collector.note_justified(_cp(blocks_a[0], 7))
    assert collector.highest_justified() == _cp(blocks_a[2], 7)
    collector.note_justified(_cp(blocks_a[0], 8))
    assert collector.highest_justified() == _cp(blocks_a[0], 8)
    collector.note_justified(Checkpoint(bytes(32), 5, 9))  # not imported
    assert collector.highest_justified() == _cp(blocks_a[0], 8)
    finality.import_justification(node, _final(node, blocks_a[0], source_round=8))  # A1 final
    collector.note_justified(_cp(blocks_b[0], 10))  # off the finalized chain (pruned)
    assert collector.highest_justified() == _cp(blocks_a[0], 8)
    assert collector.is_justified(_cp(blocks_a[1], 7)) and not collector.is_justified(_cp(blocks_a[1], 8))


def test_the_collector_keeps_the_newest_justified_checkpoints(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    kept = finality.KEPT_JUSTIFIED
    for round_number in range(1, kept + 1):  # with genesis (round 0): one too many
        collector.note_justified(_cp(blocks_a[0], round_number))
    assert not collector.is_justified(_genesis(node))
    assert all(collector.is_justified(_cp(blocks_a[0], r)) for r in range(1, kept + 1))
    collector.note_justified(_cp(blocks_a[1], kept + 5))
    assert not collector.is_justified(_cp(blocks_a[0], 1)) and collector.is_justified(_cp(blocks_a[0], 2))


def test_check_returns_the_highest_justification_of_all_rounds(node, branches) -> None:
    """Links finalize A1 (round 6), A3 (round 8), A2 (round 10) and A3 again (round 12):
    the proof returned is the first one for the highest block."""
    blocks_a, _ = branches
    collector = VoteCollector(node)
    links = [(blocks_a[0], 5), (blocks_a[2], 7), (blocks_a[1], 9), (blocks_a[2], 11)]
    for block, source_round in links:
        collector.note_justified(_cp(block, source_round))
    for key in THREE:
        for block, source_round in links:
            collector.add(_vote(node, key, block, source_round + 1, _cp(block, source_round)))
    best = collector.check()
    assert best is not None and (best.round, best.target_hash, best.target_number) == (8, blocks_a[2].hash(), 3)


def test_votes_from_a_source_not_justified_count_once_it_is(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    source = _cp(blocks_a[1], 5)
    for key in THREE:
        assert collector.add(_vote(node, key, blocks_a[1], 6, source)) is None
    assert collector.highest_justified() == _genesis(node)
    collector.note_justified(source)
    made = collector.check()
    assert made is not None and (made.target_hash, made.source, made.ancestry) == (blocks_a[1].hash(), source, ())


def test_a_vote_for_a_round_pruned_at_once_adds_nothing(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    for round_number in range(100, 100 + finality.KEPT_ROUNDS):
        assert collector.add(_vote(node, ALICE, blocks_a[0], round_number)) is None
    for key in (BOB, CHARLIE, DAVE):  # the oldest round: dropped at once, never counted
        assert collector.add(_vote(node, key, blocks_a[0], 1)) is None
    assert collector.highest_justified() == _genesis(node)
    assert collector.check() is None


def test_a_vote_off_the_source_does_not_hide_the_others(node, branches) -> None:
    blocks_a, blocks_b = branches
    finality.import_justification(node, _final(node, blocks_a[0]))  # A1 final
    collector = VoteCollector(node)
    source = _cp(blocks_a[1], 6)
    collector.note_justified(source)
    assert collector.add(_vote(node, DAVE, blocks_b[1], 7, source)) is None  # B2: not above A2
    assert collector.add(_vote(node, ALICE, blocks_a[2], 7, source)) is None
    assert collector.add(_vote(node, BOB, blocks_a[2], 7, source)) is None
    made = collector.add(_vote(node, CHARLIE, blocks_a[2], 7, source))
    assert made is not None and made.target_hash == blocks_a[1].hash()
    assert [v.voter for v in made.votes] == sorted(k.public for k in THREE)
    assert [h.hash() for h in made.ancestry] == [blocks_a[2].hash()]
    assert collector.highest_justified() == _cp(blocks_a[2], 7)


def test_a_short_link_does_not_hide_a_supermajority_link_of_the_same_round(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    source = _cp(blocks_a[1], 6)
    collector.note_justified(source)
    assert collector.add(_vote(node, DAVE, blocks_a[2], 7)) is None  # from genesis, alone: first in the round
    for key in (ALICE, BOB):
        assert collector.add(_vote(node, key, blocks_a[1], 7, source)) is None
    made = collector.add(_vote(node, CHARLIE, blocks_a[1], 7, source))
    assert made is not None and (made.target_hash, made.source) == (blocks_a[1].hash(), source)


def test_follow_justified_moves_only_to_a_justified_block_above_the_finalized_one(node, branches) -> None:
    blocks_a, blocks_b = branches
    assert finality.follow_justified(node, bytes(32)) is None  # unknown
    assert finality.follow_justified(node, blocks_a[0].hash()) is None  # the best contains it
    route = finality.follow_justified(node, blocks_b[0].hash())
    assert route is not None and node.best_hash == blocks_b[1].hash()
    finality.import_justification(node, _final(node, blocks_b[0]))
    assert finality.follow_justified(node, node.genesis_hash) is None  # below the finalized
    assert node.best_hash == blocks_b[1].hash()


ERA = 4  # blocks per era in the shrinking set's chain: block 4 starts the second era


@pytest.fixture(scope="module")
def shrinking(tmp_path_factory):
    """Blocks 1..4 on the local chain with ``era_length`` 4, where block 3 carries Eve's
    reports of Charlie's and Dave's double votes (real signatures), so block 4 (an era
    start) takes them out of the set: Alice and Bob remain. Then two children of block 4,
    5a and 5b, sealed by the slot owners of the two-validator set."""
    import dataclasses

    from chainkit import sign

    from chain import calls
    from chain.codec import encode
    from genesis.spec import load_chain_spec

    spec = load_chain_spec("local")
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, era_length=ERA))
    tmp = tmp_path_factory.mktemp("shrinking")
    a, b = open_chain(tmp / "a", spec), open_chain(tmp / "b", spec)
    blocks = [build(a, 1), build(a, 2)]
    genesis = _genesis(a)
    reports = [
        sign(a, EVE, calls.ReportVoteEquivocation(*(encode(_signed(a, key, genesis, _cp(blk, 9))) for blk in blocks)), nonce)
        for nonce, key in enumerate((CHARLIE, DAVE))
    ]
    blocks.append(build(a, 3, reports))
    assert all(r.success for r in a.get_receipts(blocks[-1].hash())), a.get_receipts(blocks[-1].hash())
    blocks.append(build(a, 4))
    for block in blocks:
        b.import_block(block)
    five_a = a.build_block([], (ALICE, BOB)[6 % 2], slot=6).block
    five_b = b.build_block([], (ALICE, BOB)[7 % 2], slot=7).block
    a.db.close()
    b.db.close()
    return spec, blocks, five_a, five_b


def _shrinking_node(path, shrinking):
    spec, blocks, five_a, five_b = shrinking
    chain = open_chain(path, spec)
    for block in [*blocks, five_a, five_b]:
        chain.import_block(block)
    return chain, blocks[3], five_a, five_b


@pytest.mark.parametrize("case", ["left_the_set", "source_proven_invalid"])
def test_a_group_that_cannot_count_does_not_hide_a_later_group_of_the_round(tmp_path, shrinking, case) -> None:
    """Charlie and Dave vote in round 11 while still validators; then block 4, which removed
    them, is finalized, and 2 of the 2 validators left are a supermajority. Their group (the
    round's first) has 2 votes, enough to be looked at, but counts nothing: its voters left
    the set ("left_the_set": the counted filter drops them), or its source was proven invalid
    after it was justified ("source_proven_invalid"). Alice's and Bob's link of the same round
    from (5a, 10) must still justify 5a and finalize it: a ``break`` at either ``continue``
    skipped them (kills ``check__mutmut_38`` and ``_24``; with a fixed set they are
    equivalent, see above)."""
    chain, era_start, five_a, five_b = _shrinking_node(tmp_path / "node", shrinking)
    collector = VoteCollector(chain)
    own = _cp(five_a, 10)
    if case == "left_the_set":
        theirs = _cp(five_a, 9)  # another justified source: its own group in round 11
        target = five_a
    else:
        theirs = _cp(five_b, 10)
        target = five_b
    for checkpoint in (theirs, own):
        collector.note_justified(checkpoint)
    for key in (CHARLIE, DAVE):  # before the shrink: 2 of 4, below the threshold of 3
        assert collector.add(_vote(chain, key, target, 11, theirs)) is None
    if case == "source_proven_invalid":
        chain.invalidate(five_b.hash(), "fraud: a test's verdict")
        assert chain.is_invalid(five_b.hash())
    chain.finalize(era_start.hash())
    assert finality.get_voters(chain) == (ALICE.public, BOB.public)
    assert collector.add(_vote(chain, ALICE, five_a, 11, own)) is None
    made = collector.add(_vote(chain, BOB, five_a, 11, own))
    assert made is not None
    assert (made.target_hash, made.target_number, made.round, made.source) == (five_a.hash(), 5, 11, own)
    assert sorted(v.voter for v in made.votes) == sorted((ALICE.public, BOB.public)) and made.ancestry == ()
    finality.import_justification(chain, made.encode())
    assert chain.finalized_hash == five_a.hash()
    chain.db.close()
