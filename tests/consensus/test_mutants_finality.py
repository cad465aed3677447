"""Tests that kill the mutants mutation testing (mutmut, see README "Development") found
alive in consensus/finality.py. Forgeries are built the strong way: every vote is a real
ed25519 signature by a validator, ancestry headers are real headers (re-sealed when
changed), and only the one rule under test is broken; each test asserts the reason and the
message's specifics.

Survivors explained (equivalent mutants; ids from ``mutmut results``):

- ``x_import_justification__mutmut_11``: ``best = select_best(...) if ... or True`` also
  computes a best block for a target that is already final; ``Blockchain.finalize`` returns
  before reading ``best`` for such a target (it only stores the justification), so nothing
  differs (test_an_already_final_target_only_gets_its_justification_stored shows that path).
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
  vote with a larger round cannot be decoded, so never reaches the collector from a peer.
"""

from __future__ import annotations

import msgspec
import pytest
from consensuskit import ALICE, BOB, CHARLIE, DAVE, EVE, build, open_local

from chain.crypto import ss58_encode
from consensus import finality
from consensus.errors import InvalidJustification, InvalidVote, VoteEquivocation
from consensus.finality import Justification, SignedVote, Vote, VoteCollector, sign_vote


@pytest.fixture(scope="module")
def branches(tmp_path_factory):
    """Branch A = A1..A3 (slots 1, 2, 3); branch B = B1, B2 (slots 5, 6); both from genesis."""
    tmp = tmp_path_factory.mktemp("branches")
    a = open_local(tmp / "a")
    b = open_local(tmp / "b")
    blocks = [build(a, s) for s in (1, 2, 3)], [build(b, s) for s in (5, 6)]
    a.db.close()
    b.db.close()
    return blocks


@pytest.fixture
def node(tmp_path, branches):
    """A node holding branch A and branch B (B is not best: A is longer)."""
    blocks_a, blocks_b = branches
    chain = open_local(tmp_path / "node")
    for block in blocks_a + blocks_b:
        chain.import_block(block)
    yield chain
    chain.db.close()


def _signed(chain, key, block_hash: bytes, number: int, round_number: int = 7) -> SignedVote:
    return sign_vote(key, chain.genesis_hash, Vote(0, round_number, block_hash, number))


def _vote(chain, key, block, round_number: int = 7) -> SignedVote:
    return _signed(chain, key, block.hash(), block.header.number, round_number)


def _justify(chain, block, keys=(ALICE, BOB, CHARLIE), round_number: int = 7, ancestry=()) -> Justification:
    votes = tuple(_vote(chain, k, block, round_number) for k in keys)
    return Justification(block.hash(), block.header.number, 0, round_number, votes, tuple(ancestry))


def _refused(chain, justification, reason: str, message: str) -> None:
    before = (chain.finalized_hash, chain.best_hash, chain.state.root())
    with pytest.raises(InvalidJustification, match=message) as err:
        finality.import_justification(chain, justification.encode())
    assert err.value.reason == reason, str(err.value)
    assert (chain.finalized_hash, chain.best_hash, chain.state.root()) == before
    assert chain.get_justification(justification.target_hash) is None


def test_the_threshold_is_more_than_two_thirds() -> None:
    assert [finality.compute_threshold(n) for n in range(1, 11)] == [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]


def test_make_vote_signs_the_best_block_for_the_round(node, branches) -> None:
    blocks_a, _ = branches
    signed = finality.make_vote(node, ALICE, 12)
    assert signed == sign_vote(ALICE, node.genesis_hash, Vote(0, 12, blocks_a[2].hash(), 3))
    assert signed.voter == ALICE.public
    assert VoteCollector(node).add(signed, 12) is None  # a valid, counted vote


def test_a_signature_does_not_carry_over_to_another_vote(node, branches) -> None:
    """Real signatures for A1, moved onto votes for A2 (or another round): refused."""
    blocks_a, _ = branches
    genuine = _justify(node, blocks_a[0])
    for changes in ({"block_hash": blocks_a[1].hash(), "block_number": 2}, {"round": 8}):
        votes = tuple(
            msgspec.structs.replace(v, vote=msgspec.structs.replace(v.vote, **changes)) for v in genuine.votes
        )
        target = blocks_a[1] if "block_hash" in changes else blocks_a[0]
        forged = Justification(target.hash(), target.header.number, 0, votes[0].vote.round, votes)
        _refused(node, forged, "bad_signature", f"vote of {ss58_encode(ALICE.public)}: ")
        with pytest.raises(InvalidVote, match=f"vote of {ss58_encode(ALICE.public)}: ") as err:
            VoteCollector(node).add(votes[0])
        assert err.value.reason == "bad_signature"


def test_decoding_bounds_are_exact(node) -> None:
    limit = finality.MAX_JUSTIFICATION_BYTES
    with pytest.raises(InvalidJustification, match=r"^justification: ") as err:
        finality.decode_justification(bytes(limit))
    assert err.value.reason == "malformed"
    with pytest.raises(InvalidJustification, match=f"at most {limit} bytes, got {limit + 1}") as err:
        finality.decode_justification(bytes(limit + 1))
    assert err.value.reason == "oversize"
    with pytest.raises(InvalidVote, match=r"^vote: ") as err:
        finality.decode_signed_vote(bytes(finality.MAX_VOTE_BYTES))
    assert err.value.reason == "malformed"
    with pytest.raises(InvalidVote, match="at most 256 bytes, got 257") as err:
        finality.decode_signed_vote(bytes(257))
    assert err.value.reason == "malformed"
    assert finality.get_justification(node, node.best_hash) is None


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("wrong_set", "wrong_set", "justification for set 1, the current set is 0"),
        ("mixed_rounds", "mixed_rounds", "is for set 0 round 8, the justification's is set 0 round 7"),
        ("duplicate_voter", "duplicate_voter", "votes twice"),
        ("unknown_block", "unknown_block", "is not imported"),
        ("wrong_number", "malformed", "target block is #2, the justification says #3"),
        ("outsider", "not_validator", f"{ss58_encode(EVE.public)} is not a validator"),
        ("conflicting", "conflicts_with_finalized", "is not on the chain of the finalized block #1"),
        ("forged_signature", "bad_signature", f"vote of {ss58_encode(BOB.public)}: "),
    ],
)
def test_each_refusal_names_its_cause(node, branches, case, reason, message) -> None:
    blocks_a, blocks_b = branches
    finality.import_justification(node, _justify(node, blocks_a[0]))  # A1 final
    j = _justify(node, blocks_a[1])
    votes = list(j.votes)
    if case == "wrong_set":
        j = msgspec.structs.replace(j, set_id=1)
    elif case == "mixed_rounds":
        votes[2] = _vote(node, CHARLIE, blocks_a[1], round_number=8)
    elif case == "duplicate_voter":
        votes[2] = votes[0]
    elif case == "unknown_block":
        j = msgspec.structs.replace(j, target_hash=bytes(32))
    elif case == "wrong_number":
        j = msgspec.structs.replace(j, target_number=3)
    elif case == "outsider":
        votes[2] = _vote(node, EVE, blocks_a[1])
    elif case == "conflicting":
        j = _justify(node, blocks_b[1])
        votes = list(j.votes)
    elif case == "forged_signature":
        votes[1] = msgspec.structs.replace(votes[1], signature=ALICE.sign(b"something else"))
    j = msgspec.structs.replace(j, votes=tuple(votes))
    _refused(node, j, reason, message)
    if case == "conflicting":  # verify alone refuses it too, not only finalize
        with pytest.raises(InvalidJustification) as err:
            finality.verify_justification(node, j)
        assert err.value.reason == reason


def test_an_already_final_target_only_gets_its_justification_stored(node, branches) -> None:
    blocks_a, _ = branches
    finality.import_justification(node, _justify(node, blocks_a[1]))  # A2 final
    before = (node.finalized_hash, node.best_hash, node.state.root())
    late = _justify(node, blocks_a[0], keys=(BOB, CHARLIE, DAVE))
    finality.verify_justification(node, late)
    assert finality.import_justification(node, late) is None
    assert (node.finalized_hash, node.best_hash, node.state.root()) == before
    assert finality.get_justification(node, blocks_a[0].hash()) == late


def test_ancestry_two_blocks_deep_is_accepted_in_number_order(node, branches) -> None:
    """Two votes for A3 and one for A1 justify A1 through A2 and A3: the collector lists
    that ancestry by number (A2 before A3, though A3's hash is the lower), and verification
    accepts a justification whose votes link through two headers."""
    blocks_a, _ = branches
    assert blocks_a[2].hash() < blocks_a[1].hash()  # so hash order would differ
    collector = VoteCollector(node)
    assert collector.add(_vote(node, ALICE, blocks_a[2])) is None
    assert collector.add(_vote(node, BOB, blocks_a[2])) is None
    made = collector.add(_vote(node, CHARLIE, blocks_a[0]))
    assert made is not None and made.target_hash == blocks_a[0].hash()
    assert [h.hash() for h in made.ancestry] == [blocks_a[1].hash(), blocks_a[2].hash()]
    finality.import_justification(node, made.encode())
    assert node.finalized_hash == blocks_a[0].hash()
    assert finality.get_justification(node, blocks_a[0].hash()) == made


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("names_target_with_wrong_number", "a vote names the target with number 3, not #2"),
        ("lies_about_its_number", "for #5 .* is not shown to contain the target"),
        ("forged_header_at_target_height", "for #2 .* is not shown to contain the target"),
        ("padded", "1 ancestry headers link no vote to the target"),
    ],
)
def test_ancestry_forgeries_are_refused_with_the_specific_cause(node, branches, case, message) -> None:
    blocks_a, _ = branches
    target = blocks_a[1]
    ancestry: tuple = ()
    votes = [_vote(node, k, target) for k in (ALICE, BOB, CHARLIE)]
    if case == "names_target_with_wrong_number":
        votes[2] = _signed(node, CHARLIE, target.hash(), 3)
    elif case == "lies_about_its_number":
        votes[2] = _signed(node, CHARLIE, blocks_a[2].hash(), 5)
        ancestry = (blocks_a[2].header,)
    elif case == "forged_header_at_target_height":
        # A3's header renumbered to #2 (its parent is the target) and re-sealed by its author.
        header = msgspec.structs.replace(blocks_a[2].header, number=2)
        header = msgspec.structs.replace(header, seal=CHARLIE.sign(header.pre_hash()))
        votes[2] = _signed(node, CHARLIE, header.hash(), 2)
        ancestry = (header,)
    elif case == "padded":  # one header links Charlie's vote, one links nothing
        votes[2] = _vote(node, CHARLIE, blocks_a[2])
        ancestry = (blocks_a[2].header, branches[1][0].header)
    j = Justification(target.hash(), 2, 0, 7, tuple(votes), ancestry)
    _refused(node, j, "bad_ancestry", message)


def test_vote_refusals_name_their_cause_and_the_round_window_is_exact(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    cases = [
        (sign_vote(BOB, node.genesis_hash, Vote(3, 7, blocks_a[0].hash(), 1)), None, "wrong_set", "vote for set 3, the current set is 0"),
        (_vote(node, EVE, blocks_a[0]), None, "not_validator", f"{ss58_encode(EVE.public)} is not a validator"),
        (msgspec.structs.replace(_vote(node, BOB, blocks_a[0]), signature=BOB.sign(b"x")), None, "bad_signature", f"vote of {ss58_encode(BOB.public)}: "),
        (_vote(node, BOB, blocks_a[0], round_number=4), 20, "stale", "vote for round 4, the local round is 20"),
        (_vote(node, BOB, blocks_a[0], round_number=23), 20, "stale", "vote for round 23, the local round is 20"),
    ]
    for signed, current, reason, message in cases:
        with pytest.raises(InvalidVote, match=message) as err:
            collector.add(signed, current)
        assert err.value.reason == reason, str(err.value)
    # The window is (current - KEPT_ROUNDS, current + MAX_FUTURE_ROUNDS]: 5 and 22 count.
    for round_number in (5, 21, 22):
        assert collector.add(_vote(node, BOB, blocks_a[0], round_number=round_number), 20) is None


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


def test_check_returns_the_highest_justification_of_all_rounds(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    for key in (ALICE, BOB, CHARLIE):
        collector.add(_vote(node, key, blocks_a[0], round_number=7))
        collector.add(_vote(node, key, blocks_a[2], round_number=8))
        collector.add(_vote(node, key, blocks_a[1], round_number=9))
    best = collector.check()
    assert best is not None and (best.round, best.target_hash) == (8, blocks_a[2].hash())


def test_a_vote_for_a_round_pruned_at_once_adds_nothing(node, branches) -> None:
    blocks_a, _ = branches
    collector = VoteCollector(node)
    for round_number in range(100, 100 + finality.KEPT_ROUNDS):
        assert collector.add(_vote(node, ALICE, blocks_a[0], round_number)) is None
    assert collector.add(_vote(node, BOB, blocks_a[0], 1)) is None  # oldest: dropped at once
    assert collector.check() is None


def test_a_vote_off_the_finalized_chain_does_not_hide_the_others(node, branches) -> None:
    blocks_a, _ = branches
    finality.import_justification(node, _justify(node, blocks_a[0]))  # A1 final
    collector = VoteCollector(node)
    genesis = node.get_header(node.genesis_hash)
    assert collector.add(_signed(node, DAVE, node.genesis_hash, genesis.number, 9)) is None  # counted first
    assert collector.add(_vote(node, ALICE, blocks_a[2], 9)) is None
    assert collector.add(_vote(node, BOB, blocks_a[2], 9)) is None
    made = collector.add(_vote(node, CHARLIE, blocks_a[2], 9))
    assert made is not None and made.target_hash == blocks_a[2].hash()
    assert [v.voter for v in made.votes] == sorted(k.public for k in (ALICE, BOB, CHARLIE))
