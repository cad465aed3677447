"""Rewards for compute: a block reward and a share of training fees, paid per era.

Every block mints ``block_reward`` (halved every ``reward_halving_blocks`` blocks, Bitcoin's
curve; 0 disables the halving) into the era's reward pot, and its author earns
:data:`AUTHORING_POINTS` era points (Substrate's ``pallet-staking`` era reward points, 20 per
block authored in ``pallet-authorship``). ``validator_fee_share_ppm`` of every training call's
fee goes to the same pot instead of the block's author: every validator re-runs a sample of
every block's training, so that work is paid by the era, not by the one block. At the first
block of each era (``number % era_length == 0``), before its extrinsics, the pot is paid to
the era's validators pro rata to their points (rounded down; the remainder stays in the pot
for the next era) and the points are reset.

What this does not do yet: pay finality voters as such. Votes live in justifications off
state; crediting the validators whose votes included a block needs the justification (or a
vote bitfield) carried into the chain as an inherent, which is consensus work. Until then the
points count blocks authored, which under Aura's round robin is each validator's share of
slots it actually filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chain.calls import PPM
from chain.codec import U64, AccountId
from chain.pallets import revenue
from chain.pallets.balances import apply_mint, get_account
from chain.pallets.items import StateAccess, StorageMap, StorageValue

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "rewards"
AUTHORING_POINTS = 20
POT_ACCOUNT = revenue.compute_pallet_account(b"py/erapt")

POINTS = StorageMap("Rewards", "Points", U64)  # validator -> era points so far
EARNERS = StorageValue("Rewards", "Earners", tuple[AccountId, ...], ())  # who has points, in order of first points


def compute_block_reward(config: RuntimeConfig, number: int) -> int:
    """The reward block ``number`` mints: ``block_reward`` halved once per full halving period."""
    if config.reward_halving_blocks == 0:
        return config.block_reward
    return config.block_reward >> (number // config.reward_halving_blocks)


def compute_fee_share(config: RuntimeConfig, fee: int) -> int:
    """The part of a training call's fee that goes to the era's pot (rounded down)."""
    return fee * config.validator_fee_share_ppm // PPM  # at most PPM: the spec loader checks it


def on_initialize(state: StateAccess, config: RuntimeConfig, number: int, author: bytes) -> None:
    """Before block ``number``'s extrinsics: pay the era out if one starts here, then mint this
    block's reward into the pot and credit its author's points. A chain with neither a block
    reward nor a fee share keeps no reward records at all (an empty block changes nothing)."""
    if not (config.block_reward or config.validator_fee_share_ppm):
        return
    if config.era_length and number % config.era_length == 0:
        apply_era_payout(state)
    reward = compute_block_reward(config, number)
    if reward:
        apply_mint(state, POT_ACCOUNT, reward)
    points = POINTS.get(state, author)
    if points is None:
        EARNERS.apply_set(state, (*EARNERS.get(state), author))
        points = 0
    POINTS.apply_set(state, points + AUTHORING_POINTS, author)


def apply_era_payout(state: StateAccess) -> None:
    """Pay the pot to the era's earners pro rata to points; the remainder stays in the pot."""
    earners = EARNERS.get(state)
    if not earners:
        return
    points = [POINTS.get(state, who) or 0 for who in earners]
    total = sum(points)
    pot = get_account(state, POT_ACCOUNT).free
    for who, p in zip(earners, points, strict=True):
        amount = pot * p // total
        if amount:
            revenue.apply_debit(state, POT_ACCOUNT, amount, 0)
            revenue.apply_credit(state, who, amount)
        POINTS.apply_delete(state, who)
    EARNERS.apply_set(state, ())


def apply_fee_share(state: StateAccess, amount: int) -> None:
    """Credit ``amount`` of a training fee (already withdrawn from its payer) to the pot."""
    revenue.apply_credit(state, POT_ACCOUNT, amount)
