"""Rewards for compute: block rewards on a halving curve pooled per era and paid by authoring
points, and the validators' training-fee share pooled for the voters, through real blocks and
on a bare state (the voters' side: test_rewards_votes.py)."""

from __future__ import annotations

import dataclasses

import pytest
from chainkit import ALICE, BOB, CHARLIE, dev_spec, open_chain, sign, train_call

from chain import calls
from chain.pallets import balances, rewards


def _spec(**fields):
    spec = dev_spec()
    return dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, **fields))


@pytest.fixture
def chain(tmp_path):
    c = open_chain(tmp_path / "db", _spec(block_reward=1_000_000, reward_halving_blocks=6, validator_fee_share_ppm=200_000, era_length=4))
    yield c
    c.db.close()


def _free(chain, who: bytes) -> int:
    return balances.get_account(chain.state.overlay(), who).free


def test_the_halving_curve() -> None:
    cfg = _spec(block_reward=1000, reward_halving_blocks=10).runtime_config
    assert [rewards.compute_block_reward(cfg, n) for n in (0, 9, 10, 19, 20, 99, 10_000)] == [1000, 1000, 500, 500, 250, 1, 0]
    flat = _spec(block_reward=7).runtime_config
    assert rewards.compute_block_reward(flat, 10**9) == 7
    assert rewards.compute_fee_share(_spec(validator_fee_share_ppm=250_000).runtime_config, 1001) == 250


def test_rewards_pool_per_era_and_pay_the_authors_and_fee_shares_go_to_the_voters(chain) -> None:
    issuance = balances.TOTAL_ISSUANCE.get(chain.state.overlay())
    alice = _free(chain, ALICE.public)
    built = chain.build_block([sign(chain, BOB, train_call(steps=20, batch=8), 0)], ALICE, slot=1)  # block 1
    (receipt,) = built.receipts
    assert receipt.success, receipt.error
    share = rewards.compute_fee_share(chain.config, receipt.fee)
    assert share > 0
    state = chain.state.overlay()
    assert _free(chain, ALICE.public) == alice + receipt.fee - share  # the author keeps the rest
    assert balances.get_account(state, rewards.POT_ACCOUNT).free == 1_000_000
    assert balances.get_account(state, rewards.VOTER_POT_ACCOUNT).free == share  # the verifiers' (test_rewards_votes.py)
    assert balances.TOTAL_ISSUANCE.get(state) == issuance + 1_000_000  # only the reward is new money
    assert rewards.POINTS.get(state, ALICE.public) == rewards.EraPoints(authored=rewards.AUTHORING_POINTS)
    for n in (2, 3):
        chain.build_block([], ALICE, slot=n)
    before = _free(chain, ALICE.public)
    pot = balances.get_account(chain.state.overlay(), rewards.POT_ACCOUNT).free
    chain.build_block([], ALICE, slot=4)  # era start: the pot is paid, then block 4's reward minted
    state = chain.state.overlay()
    assert _free(chain, ALICE.public) == before + pot
    assert balances.get_account(state, rewards.POT_ACCOUNT).free == 1_000_000
    assert balances.get_account(state, rewards.VOTER_POT_ACCOUNT).free == share  # no votes noted: kept whole
    assert rewards.POINTS.get(state, ALICE.public) == rewards.EraPoints(authored=rewards.AUTHORING_POINTS)
    assert balances.TOTAL_ISSUANCE.get(state) == issuance + 4 * 1_000_000


def test_an_era_payout_is_pro_rata_and_keeps_the_remainder(chain) -> None:
    state = chain.state.overlay()
    revenue_credit = rewards.revenue.apply_credit
    revenue_credit(state, rewards.POT_ACCOUNT, 1001)
    rewards.POINTS.apply_set(state, rewards.EraPoints(authored=40), ALICE.public)
    rewards.POINTS.apply_set(state, rewards.EraPoints(authored=20), BOB.public)
    rewards.EARNERS.apply_set(state, (ALICE.public, BOB.public))
    alice, bob = (balances.get_account(state, k.public).free for k in (ALICE, BOB))
    pot = balances.get_account(state, rewards.POT_ACCOUNT).free
    rewards.apply_era_payout(state)
    assert balances.get_account(state, ALICE.public).free == alice + pot * 40 // 60
    assert balances.get_account(state, BOB.public).free == bob + pot * 20 // 60
    assert balances.get_account(state, rewards.POT_ACCOUNT).free == pot - pot * 40 // 60 - pot * 20 // 60
    assert rewards.POINTS.get(state, BOB.public) is None and rewards.EARNERS.get(state) == ()


def test_a_chain_without_rewards_keeps_no_records(tmp_path) -> None:
    c = open_chain(tmp_path / "plain")
    try:
        c.build_block([], ALICE, slot=1)
        state = c.state.overlay()
        assert c.runtime.config.block_reward == 0
        assert rewards.POINTS.get(state, ALICE.public) is None and rewards.EARNERS.get(state) == ()
        assert balances.get_account(state, rewards.POT_ACCOUNT).free == 0
    finally:
        c.db.close()


def test_the_era_after_rewards_are_turned_off_is_still_paid_out(chain) -> None:
    """A referendum that sets block_reward and validator_fee_share_ppm to 0 left the current
    era's pots and points for good: the era payout ran only while rewards were on (an outside
    tester's finding, round 13: 3,000,000 planck stranded over 5 era starts, and paid on stale
    points if rewards came back). The era start pays them out whatever the config; with
    nothing earned it reads one record and changes nothing."""
    for n in (1, 2, 3):
        chain.build_block([], ALICE, slot=n)
    state = chain.state.overlay()
    pot = balances.get_account(state, rewards.POT_ACCOUNT).free
    assert pot == 3_000_000 and rewards.EARNERS.get(state) == (ALICE.public,)
    alice = balances.get_account(state, ALICE.public).free
    off = dataclasses.replace(chain.config, block_reward=0, validator_fee_share_ppm=0)
    assert not rewards.is_enabled(off)
    rewards.on_initialize(state, off, 4, ALICE.public)  # block 4 starts an era (era_length 4)
    assert balances.get_account(state, ALICE.public).free == alice + pot
    assert balances.get_account(state, rewards.POT_ACCOUNT).free == 0
    assert rewards.EARNERS.get(state) == () and rewards.POINTS.get(state, ALICE.public) is None
    rewards.on_initialize(state, off, 8, ALICE.public)  # nothing earned: nothing changes
    assert balances.get_account(state, ALICE.public).free == alice + pot


def test_importers_agree(chain, tmp_path) -> None:
    for n in range(1, 7):
        chain.build_block([sign(chain, CHARLIE, calls.Remark(b"x"), n - 1)], ALICE, slot=n)
    other = open_chain(tmp_path / "other", _spec(block_reward=1_000_000, reward_halving_blocks=6, validator_fee_share_ppm=200_000, era_length=4))
    try:
        for number in range(1, chain.best_number + 1):
            block_hash = chain.get_hash(number)
            assert block_hash is not None
            other.import_block(chain.get_block(block_hash))
        assert other.state.root() == chain.state.root()
    finally:
        other.db.close()


def test_the_block_hash_window_keeps_the_last_block_hash_count_blocks(chain) -> None:
    """system.BlockHash: block N records N-1's hash and forgets the one BLOCK_HASH_COUNT older,
    so the state holds a bounded window of its ancestry (what pol.report_fraud checks against)."""
    from chain.pallets import system

    state = chain.state.overlay()
    n = system.BLOCK_HASH_COUNT
    system.apply_on_initialize(state, n, b"\x01" * 32)  # records n-1; nothing old enough to forget
    system.apply_on_initialize(state, n + 1, b"\x02" * 32)  # records n, forgets 0
    assert system.get_block_hash(state, n - 1) == b"\x01" * 32
    assert system.get_block_hash(state, n) == b"\x02" * 32
    assert system.get_block_hash(state, 0) is None
    chain.build_block([], ALICE, slot=1)
    assert system.get_block_hash(chain.state.overlay(), 0) == chain.genesis_hash
