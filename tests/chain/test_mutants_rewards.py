"""Tests that pin chain/pallets/rewards.py's vote checks and pay-out and consensus/vote_notes.py's
choice of votes, rule by rule (the targets of mutation testing, see README "Development").

Mutation score (mutmut 3.8.1, ``rm -rf mutants && mutmut run --max-children 2
"chain.pallets.rewards*" "consensus.vote_notes*"``, then the survivors again after this
module): 406 mutants, 401 killed (382 by the earlier tests, 19 by this module), 5 survived,
explained (equivalent mutants; ids from ``mutmut results``):

- ``chain.pallets.rewards.x__apply_pay__mutmut_11``, ``_14``, ``_15``: ``zip(earners, points,
  strict=True)`` with ``strict`` None, left out or False: ``points`` is built from
  ``earners``, one entry each, so the lengths never differ.
- ``chain.pallets.rewards.x__apply_pay__mutmut_27``: the pot debited with an existential
  deposit of 1 instead of 0: a pot left with ``0 < left < 1`` units cannot exist (integers),
  so the check never fires either way.
- ``consensus.vote_notes.x_select_votes_to_note__mutmut_22``: the window's floor at block 1
  instead of 0: a vote for block 0 (genesis) never adds anything (every credit is at least 0,
  and a target must be above it), so it is left out either way.
"""

from __future__ import annotations

import pytest
from chainkit import ALICE, BOB, CHARLIE, open_chain, sign
from test_rewards_votes import DAVE, REWARDED, Local, _spec

from chain import calls
from chain.config import RuntimeConfig
from chain.pallets import balances, rewards, system
from consensus.vote_notes import make_note_votes, select_votes_to_note


@pytest.fixture
def local(tmp_path):
    chain = open_chain(tmp_path / "db", _spec(**REWARDED))
    yield Local(chain)
    chain.db.close()


def test_rewards_are_on_with_a_block_reward_or_a_fee_share_alone() -> None:
    assert rewards.is_enabled(RuntimeConfig(block_reward=1, validator_fee_share_ppm=0))
    assert rewards.is_enabled(RuntimeConfig(block_reward=0, validator_fee_share_ppm=1))
    assert not rewards.is_enabled(RuntimeConfig(block_reward=0, validator_fee_share_ppm=0))


def test_a_reward_all_for_voters_mints_nothing_into_the_authors_pot(tmp_path) -> None:
    """With voter_reward_share_ppm at 100%, the authors' pot is never touched: not even an
    empty account appears in state (it would change the state root)."""
    chain = open_chain(tmp_path / "db", _spec(**(REWARDED | {"voter_reward_share_ppm": 1_000_000})))
    try:
        lc = Local(chain)
        lc.until(3)
        state = chain.state.overlay()
        assert balances.ACCOUNT.get(state, rewards.POT_ACCOUNT) is None
        assert balances.get_account(state, rewards.VOTER_POT_ACCOUNT).free == 3 * REWARDED["block_reward"]
    finally:
        chain.db.close()


def test_the_refusals_name_what_is_wrong_and_the_noted_events_name_voter_target_points(tmp_path, local) -> None:
    plain = Local(open_chain(tmp_path / "plain", _spec()))
    try:
        plain.until(2)
        error = plain.fails([plain.vote(BOB, 1)], "RewardsDisabled")
        assert error == "rewards.RewardsDisabled: this chain has no block reward and no fee share: votes earn nothing"
    finally:
        plain.chain.db.close()
    local.until(4)
    assert local.fails([], "NoVotes") == "rewards.NoVotes: the call carries no vote"
    receipt = local.note([local.vote(BOB, 3), local.vote(CHARLIE, 2)])
    noted = [(e.pallet, e.name, dict(e.args)) for e in receipt.events if e.name == "VoteNoted"]
    assert noted == [
        ("rewards", "VoteNoted", {"voter": "0x" + BOB.public.hex(), "target": 3, "points": 3}),
        ("rewards", "VoteNoted", {"voter": "0x" + CHARLIE.public.hex(), "target": 2, "points": 2}),
    ]


def test_the_author_notes_only_targets_inside_the_block_hash_window(local, monkeypatch) -> None:
    """The window is blocks best + 1 - BLOCK_HASH_COUNT .. best, both ends included (what
    system.BlockHash holds for the next block): a smaller window here to reach its floor."""
    local.until(6)
    monkeypatch.setattr(system, "BLOCK_HASH_COUNT", 4)  # the next block, #7, holds #3..#6
    votes = [local.vote(BOB, 2), local.vote(CHARLIE, 3), local.vote(DAVE, 6)]
    chosen = select_votes_to_note(local.chain, votes)
    assert [(v.voter, v.vote.target.block_number) for v in chosen] == sorted([(CHARLIE.public, 3), (DAVE.public, 6)])


def test_each_voters_newest_vote_wins_whatever_the_order(local) -> None:
    """Per voter the vote of the highest round, first come among equal rounds; a vote left out
    (older, or off the best chain) does not stop the others being considered."""
    local.until(5)
    older, newer = local.vote(BOB, 2, round_number=10), local.vote(BOB, 4, round_number=11)
    twin = local.vote(BOB, 3, round_number=11)  # same round as ``newer``: the first one kept
    off_chain = local.vote(CHARLIE, 4, round_number=30, block_hash=b"\x07" * 32)
    for votes in ([newer, older, twin, local.vote(DAVE, 3)], [older, newer, twin, local.vote(DAVE, 3)]):
        chosen = {v.voter: v.vote.target.block_number for v in select_votes_to_note(local.chain, votes)}
        assert chosen == {BOB.public: 4, DAVE.public: 3}
    chosen = {v.voter: v.vote.target.block_number for v in select_votes_to_note(local.chain, [off_chain, local.vote(DAVE, 3)])}
    assert chosen == {DAVE.public: 3}
    assert local.note([local.vote(DAVE, 3)]).success  # Dave credited up to #3
    stale = local.vote(DAVE, 2, round_number=40)
    chosen = {v.voter: v.vote.target.block_number for v in select_votes_to_note(local.chain, [stale, local.vote(BOB, 4)])}
    assert chosen == {BOB.public: 4}


def test_the_note_takes_the_nonce_after_the_authors_own_candidates(local) -> None:
    local.until(3)
    author = local.owner(local.slot + 1)
    base = balances.get_account(local.chain.state.overlay(), author.public).nonce
    own = [sign(local.chain, author, calls.Remark(b"mine"), base + i) for i in range(2)]
    other = sign(local.chain, ALICE if author.public != ALICE.public else BOB, calls.Remark(b"theirs"), 0)
    note = make_note_votes(local.chain, author, [own[0], other, own[1]], [local.vote(BOB, 2)])
    assert note is not None and note.nonce == base + 2
    receipts = local.block([own[0], other, own[1], note]).receipts
    assert all(r.success for r in receipts), [r.error for r in receipts]
    assert local.points(BOB).voted == 2
