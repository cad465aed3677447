"""Finality voters are paid from votes carried on chain: ``rewards.note_votes`` checks every
vote (signature, validator, set, target on this chain, newer than the voter's credit, one per
voter) before it credits anything, a voter earns the blocks its vote newly covers, and each
era the voters' pot (their share of the block reward and the training-fee share) is paid by
vote points while the authors' pot is paid by authoring points, conserved to the unit.

Real LevelDB chains (the `local` spec: Alice, Bob, Charlie, Dave), real ed25519 votes."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
import test_pallet_pol
from chainkit import ALICE, BOB, CHARLIE, FERDIE, open_chain, sign, train_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import calls
from chain.codec import decode, encode
from chain.crypto import Keypair, dev_keypair
from chain.errors import CodecError
from chain.pallets import balances, rewards, staking
from chain.votes import SET_ID, Checkpoint, SignedVote, Vote, sign_vote
from genesis.spec import ChainSpec, load_chain_spec

DAVE, EVE = dev_keypair("Dave"), dev_keypair("Eve")
KEYS = {k.public: k for k in (ALICE, BOB, CHARLIE, DAVE)}
REWARD = 1_000_000
ERA = 8


def _spec(**fields) -> ChainSpec:
    spec = load_chain_spec("local")
    return dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, **fields))


REWARDED = {"block_reward": REWARD, "validator_fee_share_ppm": 200_000, "voter_reward_share_ppm": 400_000, "era_length": ERA}


class Local(test_pallet_pol.Local):
    """test_pallet_pol's `local` chain (blocks sealed by their slot's owner, one slot per
    block, a failed call checked to change only its fee and nonce), with votes to note."""

    def vote(self, key: Keypair, number: int, round_number: int | None = None, **kw) -> SignedVote:
        """``key``'s vote for this chain's block ``number`` (from genesis)."""
        target = Checkpoint(kw.pop("block_hash", None) or self.chain.get_hash(number), number, round_number or 100 + number)
        return sign_vote(key, self.chain.genesis_hash, Vote(kw.pop("set_id", SET_ID), Checkpoint(self.chain.genesis_hash, 0, 0), target))

    def note(self, votes, key: Keypair = EVE):
        """One block holding ``key``'s note_votes; its receipt (test_pallet_pol.Local.report)."""
        return self.report(calls.NoteVotes(tuple(votes)), key)

    def fails(self, votes, error: str) -> str:
        receipt = self.note(votes)
        assert not receipt.success and receipt.error.startswith(f"rewards.{error}:"), receipt.error
        return receipt.error

    def points(self, key: Keypair) -> rewards.EraPoints:
        return rewards.POINTS.get(self.chain.state.overlay(), key.public) or rewards.EraPoints()

    def credited(self, key: Keypair) -> int | None:
        return rewards.CREDITED.get(self.chain.state.overlay(), key.public)

    def free(self, who: bytes) -> int:
        return balances.get_account(self.chain.state.overlay(), who).free


@pytest.fixture
def local(tmp_path):
    chain = open_chain(tmp_path / "db", _spec(**REWARDED))
    yield Local(chain)
    chain.db.close()


def test_a_voter_earns_exactly_the_blocks_its_vote_newly_covers(local) -> None:
    local.until(5)
    receipt = local.note([local.vote(BOB, 3), local.vote(CHARLIE, 2)])  # block 6
    assert receipt.success, receipt.error
    assert (local.points(BOB).voted, local.points(CHARLIE).voted) == (3, 2)  # T - L, L = 0 before any credit
    assert (local.credited(BOB), local.credited(CHARLIE)) == (3, 2)
    noted = [dict(e.args) for e in receipt.events if e.name == "VoteNoted"]
    assert [(n["target"], n["points"]) for n in noted] == [(3, 3), (2, 2)]
    assert local.note([local.vote(BOB, 5, round_number=200)]).success  # block 7: covers 4..5
    assert local.points(BOB).voted == 3 + 2 and local.credited(BOB) == 5
    assert local.points(BOB).authored == sum(rewards.AUTHORING_POINTS for n in range(1, 8) if local.chain.get_header(local.chain.get_hash(n)).author == BOB.public)


def test_a_vote_covers_at_most_an_era_of_blocks(local) -> None:
    """A voter silent for longer than an era earns era_length points, not the whole gap: the
    blocks before this era were paid out from earlier eras' pots already."""
    local.until(12)
    assert local.note([local.vote(DAVE, 11)]).success
    assert local.points(DAVE).voted == ERA and local.credited(DAVE) == 11


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda lc: [], "NoVotes", "carries no vote"),
        (lambda lc: [msgspec.structs.replace(lc.vote(BOB, 3), signature=bytes(64))], "BadSignature", "vote #0 of"),
        (lambda lc: [lc.vote(BOB, 3), lc.vote(FERDIE, 3)], "NotValidator", "vote #1 of 5E2BmpVFzYGd386XRCZ76cDePMB3sfbZp5ZKGUsrG1m6gomN: the voter is not a validator"),
        (lambda lc: [lc.vote(BOB, 3, set_id=1)], "WrongSet", "set 1, the current set is 0"),
        (lambda lc: [lc.vote(BOB, 3, block_hash=b"\x07" * 32)], "NotOnThisChain", "is not this chain's block #3"),
        (lambda lc: [lc.vote(BOB, 4, block_hash=b"\x07" * 32)], "NotOnThisChain", "not below the block noting it"),
        (lambda lc: [lc.vote(BOB, 3), lc.vote(DAVE, 2), lc.vote(BOB, 1, round_number=7)], "DuplicateVoter", "vote #2 of"),
        (lambda lc: [lc.vote(CHARLIE, 2)], "Stale", "credited up to block #2 already"),
        (lambda lc: [lc.vote(CHARLIE, 1)], "Stale", "credited up to block #2 already"),
    ],
)
def test_each_bad_vote_fails_the_call_with_its_error_and_credits_nothing(local, make, error: str, message: str) -> None:
    local.until(2)
    assert local.note([local.vote(CHARLIE, 2)]).success  # block 3: Charlie is credited up to #2
    before = (local.points(BOB), local.points(CHARLIE), local.credited(BOB), local.credited(CHARLIE))
    assert message in local.fails(make(local), error)  # block 4
    assert (local.points(BOB), local.points(CHARLIE), local.credited(BOB), local.credited(CHARLIE)) == before


def test_a_vote_for_a_block_on_another_fork_is_refused(local, tmp_path) -> None:
    """A real fork of the same genesis: its #2 is a block this chain never had, and Bob's
    (validly signed) vote for it earns nothing here."""
    fork = Local(open_chain(tmp_path / "fork", _spec(**REWARDED)))
    try:
        fork.slot = 40  # other slots, other authors: other blocks at the same heights
        fork.until(2)
        vote = fork.vote(BOB, 2)
    finally:
        fork.chain.db.close()
    local.until(3)
    assert local.chain.get_hash(2) != vote.vote.target.block_hash
    assert "is not this chain's block #2" in local.fails([vote], "NotOnThisChain")
    assert local.credited(BOB) is None


def test_an_oversize_vote_list_is_refused_while_it_decodes() -> None:
    """The call's own bound (one vote per validator at most), checked before any vote decodes."""
    vote = SignedVote(Vote(SET_ID, Checkpoint(bytes(32), 0, 0), Checkpoint(bytes(32), 1, 1)), BOB.public, bytes(64))
    raw = encode([calls.NoteVotes.__struct_config__.tag, [vote] * (calls.MAX_NOTED_VOTES + 1)])
    with pytest.raises(CodecError, match=f"length <= {calls.MAX_NOTED_VOTES}"):
        decode(raw, calls.Call)
    assert decode(encode(calls.NoteVotes((vote,) * calls.MAX_NOTED_VOTES)), calls.Call) == calls.NoteVotes((vote,) * calls.MAX_NOTED_VOTES)


def test_the_declared_weight_grows_with_the_votes_checked(local) -> None:
    state = local.chain.state.overlay()
    weights = [
        local.chain.runtime.compute_dispatch_info(state, sign(local.chain, EVE, calls.NoteVotes(tuple(local.vote(k, 0) for k in keys)), 0)).weight
        for keys in ((), (BOB,), (BOB, CHARLIE))
    ]
    assert weights == [rewards.NOTE_VOTES_BASE_WEIGHT + n * rewards.VOTE_CHECK_WEIGHT for n in range(3)]


def test_the_call_has_a_json_form(local) -> None:
    call = calls.NoteVotes((local.vote(BOB, 0),))
    as_json = calls.call_to_json(call)
    assert (as_json["pallet"], as_json["call"]) == ("rewards", "note_votes")
    assert calls.call_from_json(as_json) == call


def test_the_era_pays_authors_by_authoring_points_and_voters_by_vote_points_conserving_every_unit(local) -> None:
    chain = local.chain
    issuance = balances.TOTAL_ISSUANCE.get(chain.state.overlay())
    local.until(2)
    train = sign(chain, FERDIE, train_call(steps=20, batch=8), 0)
    (receipt,) = local.block([train]).receipts  # block 3: a training fee, part of it for the voters
    assert receipt.success, receipt.error
    share = rewards.compute_fee_share(chain.config, receipt.fee)
    assert share > 0
    assert local.note([local.vote(BOB, 3), local.vote(CHARLIE, 1), local.vote(DAVE, 2)]).success  # block 4
    local.until(ERA - 1)
    voters_part = REWARD * 400_000 // 1_000_000
    state = chain.state.overlay()
    pots = (rewards.POT_ACCOUNT, rewards.VOTER_POT_ACCOUNT)
    author_pot, voter_pot = (balances.get_account(state, p).free for p in pots)
    assert author_pot == (ERA - 1) * (REWARD - voters_part)  # blocks 1..7 minted
    assert voter_pot == (ERA - 1) * voters_part + share  # the fee share is the voters' (they verified)
    points = {k.public: local.points(k) for k in (ALICE, BOB, CHARLIE, DAVE)}
    authored = sum(p.authored for p in points.values())
    voted = sum(p.voted for p in points.values())
    assert authored == (ERA - 1) * rewards.AUTHORING_POINTS and voted == 3 + 1 + 2
    before = {who: local.free(who) for who in points}
    local.block()  # block 8: the era starts, the pots are paid, then block 8 mints
    paid = {who: local.free(who) - before[who] for who in points}
    for who, p in points.items():
        assert paid[who] == author_pot * p.authored // authored + voter_pot * p.voted // voted
    assert paid[BOB.public] > paid[ALICE.public]  # Bob authored as often as Alice but also voted most
    state = chain.state.overlay()
    kept_author = author_pot - sum(author_pot * p.authored // authored for p in points.values())
    kept_voter = voter_pot - sum(voter_pot * p.voted // voted for p in points.values())
    assert balances.get_account(state, rewards.POT_ACCOUNT).free == kept_author + REWARD - voters_part
    assert balances.get_account(state, rewards.VOTER_POT_ACCOUNT).free == kept_voter + voters_part
    assert balances.TOTAL_ISSUANCE.get(state) == issuance + ERA * REWARD  # only rewards are new money
    assert rewards.EARNERS.get(state) == (local.owner(ERA).public,)  # block 8's author only, from 0
    assert local.points(BOB).voted == 0 and local.credited(BOB) == 3  # credits outlive the era


def test_voters_pot_waits_for_an_era_with_votes(local) -> None:
    """No vote noted in an era: the voters' pot is kept whole for the next one (never lost,
    never paid to the authors)."""
    local.until(ERA)
    state = local.chain.state.overlay()
    assert balances.get_account(state, rewards.VOTER_POT_ACCOUNT).free == ERA * (REWARD * 400_000 // 1_000_000)


def test_importers_agree_on_noted_votes(local, tmp_path) -> None:
    local.until(3)
    assert local.note([local.vote(BOB, 2), local.vote(ALICE, 3)]).success
    local.until(ERA + 1)
    other = open_chain(tmp_path / "other", _spec(**REWARDED))
    try:
        for number in range(1, local.chain.best_number + 1):
            other.import_block(local.chain.get_block(local.chain.get_hash(number)))
        assert other.state.root() == local.chain.state.root()
    finally:
        other.db.close()


def test_a_chain_without_rewards_refuses_note_votes_and_keeps_no_records(tmp_path) -> None:
    lc = Local(open_chain(tmp_path / "plain", load_chain_spec("local")))
    try:
        lc.until(2)
        assert "no block reward and no fee share" in lc.fails([lc.vote(BOB, 1)], "RewardsDisabled")
        state = lc.chain.state.overlay()
        assert rewards.CREDITED.get(state, BOB.public) is None and rewards.EARNERS.get(state) == ()
        assert rewards.POINTS.get(state, BOB.public) is None
    finally:
        lc.chain.db.close()



def test_the_author_notes_each_validators_newest_vote_that_adds_something(local, tmp_path) -> None:
    """consensus.vote_notes picks, per validator of the best state, its newest vote whose target
    is on the best chain and above its credit; the note it signs passes the runtime's checks."""
    from consensus.vote_notes import make_note_votes, select_votes_to_note

    fork = Local(open_chain(tmp_path / "fork", _spec(**REWARDED)))
    try:
        fork.slot = 40
        fork.until(3)
        off_chain = fork.vote(CHARLIE, 3, round_number=500)  # Charlie's newest: another fork's #3
    finally:
        fork.chain.db.close()
    local.until(4)
    assert local.note([local.vote(DAVE, 3)]).success  # block 5: Dave credited up to #3
    votes = [
        local.vote(BOB, 2, round_number=10), local.vote(BOB, 4, round_number=11),  # Bob's newest: #4
        off_chain, local.vote(CHARLIE, 1, round_number=20),  # Charlie's newest on this chain: #1
        local.vote(DAVE, 2, round_number=30),  # not above Dave's credit
        local.vote(ALICE, 4, round_number=40, set_id=1),  # another set
        local.vote(FERDIE, 4, round_number=50),  # not a validator
    ]
    chosen = select_votes_to_note(local.chain, votes)
    assert [(v.voter, v.vote.target.block_number) for v in chosen] == sorted([(BOB.public, 4), (CHARLIE.public, 1)])
    author = local.owner(local.slot + 1)
    note = make_note_votes(local.chain, author, [], votes)
    assert note is not None and note.call == calls.NoteVotes(chosen) and note.signer == author.public
    (receipt,) = local.block([note]).receipts  # block 6, by the note's signer
    assert receipt.success, receipt.error
    assert (local.credited(BOB), local.credited(CHARLIE)) == (4, 1)
    assert make_note_votes(local.chain, author, [], votes) is None  # nothing adds anything now
    assert not note.era.is_alive(local.chain.best_number + 1)  # it lives for its one block


def test_nothing_is_noted_on_a_chain_without_rewards(tmp_path) -> None:
    from consensus.vote_notes import make_note_votes

    lc = Local(open_chain(tmp_path / "plain", load_chain_spec("local")))
    try:
        lc.until(2)
        assert make_note_votes(lc.chain, ALICE, [], [lc.vote(BOB, 1)]) is None
    finally:
        lc.chain.db.close()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    chain = open_chain(tmp_path_factory.mktemp("bare") / "db", _spec(**REWARDED))
    yield chain
    chain.db.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    author_pot=st.integers(0, 2**61), voter_pot=st.integers(0, 2**61),  # with genesis issuance: below 2^63-1
    points=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=4),
)
def test_an_era_payout_conserves_both_pots_to_the_unit(bare, author_pot: int, voter_pot: int, points) -> None:
    """Whatever the points: each pot pays pro rata (rounded down), keeps the remainder (less
    than one unit per earner), keeps everything if nobody has its points, and total issuance
    does not move."""
    state = bare.state.overlay()  # a fresh overlay per example: nothing is written to disk
    earners = [k.public for k in (ALICE, BOB, CHARLIE, DAVE)][: len(points)]
    balances.apply_mint(state, rewards.POT_ACCOUNT, author_pot)
    balances.apply_mint(state, rewards.VOTER_POT_ACCOUNT, voter_pot)
    for who, (authored, voted) in zip(earners, points, strict=False):
        rewards.POINTS.apply_set(state, rewards.EraPoints(authored, voted), who)
    rewards.EARNERS.apply_set(state, tuple(earners))
    issuance = balances.TOTAL_ISSUANCE.get(state)
    pots = (rewards.POT_ACCOUNT, rewards.VOTER_POT_ACCOUNT)
    before = {who: balances.get_account(state, who).free for who in (*earners, *pots)}
    rewards.apply_era_payout(state)
    after = {who: balances.get_account(state, who).free for who in (*earners, *pots)}
    assert sum(after.values()) == sum(before.values()) and balances.TOTAL_ISSUANCE.get(state) == issuance
    for pot, column in ((rewards.POT_ACCOUNT, 0), (rewards.VOTER_POT_ACCOUNT, 1)):
        total = sum(p[column] for p in points)
        held = before[pot]
        paid = [held * p[column] // total if total else 0 for p in points]
        assert after[pot] == held - sum(paid)
        assert after[pot] < len(points) or total == 0 or held == after[pot] == 0
    for who, (authored, voted) in zip(earners, points, strict=False):
        a_total, v_total = sum(p[0] for p in points), sum(p[1] for p in points)
        expected = (before[rewards.POT_ACCOUNT] * authored // a_total if a_total else 0) + (
            before[rewards.VOTER_POT_ACCOUNT] * voted // v_total if v_total else 0
        )
        assert after[who] - before[who] == expected
    assert rewards.EARNERS.get(state) == () and all(rewards.POINTS.get(state, who) is None for who in earners)


def test_the_author_leaves_out_validators_its_era_start_block_removes(local) -> None:
    """Dave's double vote is punished: he is queued to leave the set at the next era start.
    The note for the block that starts the era leaves his vote out (that block's
    on_initialize removes him before the note is applied, and his vote would fail the
    whole note: NotValidator); for the blocks before, his vote is noted as usual."""
    from consensus.vote_notes import make_note_votes, select_votes_to_note

    local.until(2)
    genesis = Checkpoint(local.chain.genesis_hash, 0, 0)
    first = sign_vote(DAVE, local.chain.genesis_hash, Vote(SET_ID, genesis, Checkpoint(local.chain.get_hash(1), 1, 9)))
    second = sign_vote(DAVE, local.chain.genesis_hash, Vote(SET_ID, genesis, Checkpoint(local.chain.get_hash(2), 2, 9)))
    (receipt,) = local.block([sign(local.chain, EVE, calls.ReportVoteEquivocation(encode(first), encode(second)), 0)]).receipts
    assert receipt.success, receipt.error
    assert staking.PENDING_REMOVAL.get(local.chain.state.overlay()) == (DAVE.public,)
    local.until(ERA - 2)
    votes = [local.vote(DAVE, 5), local.vote(BOB, 5)]
    assert {v.voter for v in select_votes_to_note(local.chain, votes)} == {DAVE.public, BOB.public}  # block 7: no era start
    local.block()  # block 7
    assert [v.voter for v in select_votes_to_note(local.chain, votes)] == [BOB.public]  # block 8 starts the era
    author = local.owner(local.slot + 1)
    (receipt,) = local.block([make_note_votes(local.chain, author, [], votes)]).receipts  # block 8
    assert receipt.success, receipt.error
    assert DAVE.public not in staking.get_validators(local.chain.state.overlay())
    assert local.credited(BOB) == 5 and local.credited(DAVE) is None
