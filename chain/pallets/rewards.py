"""Rewards for compute: a block reward split between authors and finality voters, and the
voters' share of training fees, paid per era.

Every block mints ``block_reward`` (halved every ``reward_halving_blocks`` blocks, Bitcoin's
curve; 0 disables the halving), or what the total issuance's bound of 2^63-1 leaves of it. ``voter_reward_share_ppm`` of it goes to the voters' pot
(:data:`VOTER_POT_ACCOUNT`), the rest to the authors' pot (:data:`POT_ACCOUNT`), and the
block's author earns :data:`AUTHORING_POINTS` authoring points (Substrate's
``pallet-staking`` era reward points, 20 per block authored in ``pallet-authorship``).
``validator_fee_share_ppm`` of every training call's fee goes to the voters' pot instead of
the block's author: the validators who verified a block's training (sampled re-execution,
consensus.pol) are the ones whose finality votes include it.

Votes reach the state through ``rewards.note_votes(votes)`` (:func:`apply_note_votes`),
which anyone may submit and each block's author does (node.service: the newest vote it has
seen of each validator, above that validator's credit). Prior art: Cosmos SDK's
``x/distribution`` pays the validators whose signatures are in the previous block's
``LastCommit`` (BeginBlocker's ``AllocateTokens``, weighted by voting power), and Polkadot
pays era reward points per block authored and per GRANDPA/parachain vote. The runtime
checks every vote before it credits anything; the whole call fails with a specific error
if any vote is bad (cheap checks first, signatures last):

- ``RewardsDisabled``: the chain has no block reward and no fee share (nothing to pay, and
  such a chain keeps no reward records);
- ``NoVotes``: the call carries none; ``DuplicateVoter``: two votes of one voter;
- ``NotValidator``: the voter is not in the validator set (chain.pallets.staking);
- ``WrongSet``: the vote's set id is not the current one (chain.votes.SET_ID);
- ``NotOnThisChain``: ``system.BlockHash`` does not hold the target's hash at the target's
  number: a block of another fork, a block not below the one noting it, or one older than
  the window (:data:`chain.pallets.system.BLOCK_HASH_COUNT` blocks, which cannot be checked);
- ``Stale``: the target is not above the block this voter was last credited for;
- ``BadSignature``: the voter did not sign the vote for this chain's genesis hash.

Credit: a vote for block T of a voter last credited at block L (0 if never) earns
min(T - L, cap) vote points, the blocks it newly covers (an FFG vote attests its target and
every ancestor), and the voter's credit becomes T. The cap is ``era_length`` (BLOCK_HASH_COUNT
if 0): a vote is paid from this era's pot, which holds the rewards of at most an era of
blocks; a voter silent for longer does not take the pot's share of blocks whose rewards
earlier eras paid out already to the voters who voted then.

At the first block of each era (``number % era_length == 0``), before its extrinsics, the
authors' pot is paid pro rata to authoring points and the voters' pot pro rata to vote
points (each rounded down; each remainder stays in its pot for the next era, and a pot
whose points are all zero is kept whole), and the points are reset. The earners are
validators (a voter must be one; an author is Aura's slot owner), so the payout is bounded
by the validator set. The weight of note_votes is :data:`NOTE_VOTES_BASE_WEIGHT` plus
:data:`VOTE_CHECK_WEIGHT` per vote: signature checks are the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chain.calls import PPM, NoteVotes
from chain.codec import MAX_BALANCE, U64, AccountId, BlockNumber, Wire
from chain.crypto import ss58_encode
from chain.errors import DispatchError, InvalidSignature
from chain.pallets import revenue, staking, system
from chain.pallets.balances import TOTAL_ISSUANCE, apply_mint, get_account
from chain.pallets.items import StateAccess, StorageMap, StorageValue
from chain.votes import SET_ID, verify_signed_vote

if TYPE_CHECKING:
    from chain.config import RuntimeConfig
    from chain.pallets.context import CallContext

PALLET = "rewards"
AUTHORING_POINTS = 20
POT_ACCOUNT = revenue.compute_pallet_account(b"py/erapt")  # the authors' pot
VOTER_POT_ACCOUNT = revenue.compute_pallet_account(b"py/votpt")  # the voters' pot
#: Work units of note_votes: decoding and reads, then per vote one ed25519 check and reads
#: (pol.REPORT_BASE_WEIGHT, 500,000, covers two checks with decoding and hashing).
NOTE_VOTES_BASE_WEIGHT = 100_000
VOTE_CHECK_WEIGHT = 200_000


class EraPoints(Wire, frozen=True):
    """A validator's points so far this era: for blocks authored and for blocks its noted
    votes covered."""

    authored: U64 = 0
    voted: U64 = 0


POINTS = StorageMap("Rewards", "Points", EraPoints)  # validator -> era points so far
EARNERS = StorageValue("Rewards", "Earners", tuple[AccountId, ...], ())  # who has points, in order of first points
CREDITED = StorageMap("Rewards", "Credited", BlockNumber)  # voter -> the block its noted votes covered up to


def is_enabled(config: RuntimeConfig) -> bool:
    """A chain with neither a block reward nor a fee share pays nothing and keeps no records."""
    return bool(config.block_reward or config.validator_fee_share_ppm)


def compute_block_reward(config: RuntimeConfig, number: int) -> int:
    """The reward block ``number`` mints: ``block_reward`` halved once per full halving period."""
    if config.reward_halving_blocks == 0:
        return config.block_reward
    return config.block_reward >> (number // config.reward_halving_blocks)


def compute_minted_reward(state: StateAccess, config: RuntimeConfig, number: int) -> int:
    """What block ``number`` on ``state`` mints: its block reward, or what the issuance bound
    leaves of it (balances.apply_mint refuses more). A block_reward within the config's bounds
    (a spec's: a referendum may raise it to a tenth of the issuance a year only,
    chain.pallets.democracy.verify_inflation) may still outgrow it, and a mint refused before
    any extrinsic would refuse every block from then on: the chain would halt, with no way to
    vote the reward back down."""
    return min(compute_block_reward(config, number), MAX_BALANCE - TOTAL_ISSUANCE.get(state))


def compute_voters_part(config: RuntimeConfig, reward: int) -> int:
    """The part of a block's reward that goes to the voters' pot (rounded down)."""
    return reward * config.voter_reward_share_ppm // PPM  # at most PPM: the spec loader checks it


def compute_fee_share(config: RuntimeConfig, fee: int) -> int:
    """The part of a training call's fee that goes to the voters' pot (rounded down)."""
    return fee * config.validator_fee_share_ppm // PPM  # at most PPM: the spec loader checks it


def compute_vote_cap(config: RuntimeConfig) -> int:
    """The most points one noted vote earns (module docstring: an era of blocks)."""
    return config.era_length or system.BLOCK_HASH_COUNT


def get_points(state: StateAccess, who: bytes) -> EraPoints:
    return POINTS.get(state, who) or EraPoints()


def _apply_points(state: StateAccess, who: bytes, authored: int = 0, voted: int = 0) -> None:
    points = POINTS.get(state, who)
    if points is None:
        EARNERS.apply_set(state, (*EARNERS.get(state), who))
        points = EraPoints()
    POINTS.apply_set(state, EraPoints(points.authored + authored, points.voted + voted), who)


def on_initialize(state: StateAccess, config: RuntimeConfig, number: int, author: bytes) -> None:
    """Before block ``number``'s extrinsics: pay the era out if one starts here, then mint this
    block's reward into the two pots and credit its author's points. A chain with neither a
    block reward nor a fee share keeps no reward records at all (an empty block changes nothing).

    The payout runs whatever the config: the era in which a referendum turned rewards off
    earned its pots and points, which stayed for good when it ran only while rewards were on
    (an outside tester's finding, round 13). With nothing earned it changes nothing."""
    if config.era_length and number % config.era_length == 0:
        apply_era_payout(state)
    if not is_enabled(config):
        return
    reward = compute_minted_reward(state, config, number)
    voters = compute_voters_part(config, reward)
    if reward - voters:
        apply_mint(state, POT_ACCOUNT, reward - voters)
    if voters:
        apply_mint(state, VOTER_POT_ACCOUNT, voters)
    _apply_points(state, author, authored=AUTHORING_POINTS)


def apply_era_payout(state: StateAccess) -> None:
    """Pay the authors' pot by authoring points and the voters' pot by vote points; each
    remainder stays in its pot; the points are reset."""
    earners = EARNERS.get(state)
    if not earners:
        return
    points = [get_points(state, who) for who in earners]
    _apply_pay(state, POT_ACCOUNT, earners, [p.authored for p in points])
    _apply_pay(state, VOTER_POT_ACCOUNT, earners, [p.voted for p in points])
    for who in earners:
        POINTS.apply_delete(state, who)
    EARNERS.apply_set(state, ())


def _apply_pay(state: StateAccess, pot_account: bytes, earners: Sequence[bytes], points: Sequence[int]) -> None:
    total = sum(points)
    if not total:
        return  # nobody earned from this pot this era: it is kept whole for the next
    pot = get_account(state, pot_account).free
    for who, p in zip(earners, points, strict=True):
        amount = pot * p // total
        if amount:
            revenue.apply_debit(state, pot_account, amount, 0)
            revenue.apply_credit(state, who, amount)


def apply_fee_share(state: StateAccess, amount: int) -> None:
    """Credit ``amount`` of a training fee (already withdrawn from its payer) to the voters' pot."""
    revenue.apply_credit(state, VOTER_POT_ACCOUNT, amount)


def compute_note_votes_weight(call: NoteVotes) -> int:
    return NOTE_VOTES_BASE_WEIGHT + VOTE_CHECK_WEIGHT * len(call.votes)


def apply_note_votes(ctx: CallContext, call: NoteVotes) -> None:
    """Check every vote (module docstring, in that order), then credit each voter."""
    state, config = ctx.state, ctx.config
    if not is_enabled(config):
        raise DispatchError(PALLET, "RewardsDisabled", "this chain has no block reward and no fee share: votes earn nothing")
    if not call.votes:
        raise DispatchError(PALLET, "NoVotes", "the call carries no vote")
    validators = set(staking.get_validators(state))
    seen: set[bytes] = set()
    credits: list[tuple[bytes, int, int]] = []
    for index, signed in enumerate(call.votes):
        vote, voter = signed.vote, signed.voter
        who = f"vote #{index} of {ss58_encode(voter)}"
        if voter in seen:
            raise DispatchError(PALLET, "DuplicateVoter", f"{who}: the voter votes twice in one call")
        seen.add(voter)
        if voter not in validators:
            raise DispatchError(PALLET, "NotValidator", f"{who}: the voter is not a validator")
        if vote.set_id != SET_ID:
            raise DispatchError(PALLET, "WrongSet", f"{who} is for set {vote.set_id}, the current set is {SET_ID}")
        target = vote.target
        if target.block_number >= ctx.block.number:
            raise DispatchError(
                PALLET, "NotOnThisChain",
                f"{who}: its target #{target.block_number} is not below the block noting it (#{ctx.block.number})",
            )
        if system.get_block_hash(state, target.block_number) != target.block_hash:
            raise DispatchError(
                PALLET, "NotOnThisChain",
                f"{who}: its target {target.block_hash.hex()} is not this chain's block #{target.block_number} "
                f"(or is older than the last {system.BLOCK_HASH_COUNT} blocks)",
            )
        last = CREDITED.get(state, voter) or 0
        if target.block_number <= last:
            raise DispatchError(
                PALLET, "Stale",
                f"{who}: its target #{target.block_number} adds nothing: the voter is credited up to block #{last} already",
            )
        credits.append((voter, target.block_number, last))
    for index, signed in enumerate(call.votes):
        try:
            verify_signed_vote(ctx.genesis_hash, signed)
        except InvalidSignature as exc:
            raise DispatchError(PALLET, "BadSignature", f"vote #{index} of {ss58_encode(signed.voter)}: {exc}") from None
    cap = compute_vote_cap(config)
    for voter, target_number, last in credits:
        points = min(target_number - last, cap)
        CREDITED.apply_set(state, target_number, voter)
        _apply_points(state, voter, voted=points)
        ctx.emit(PALLET, "VoteNoted", voter=voter, target=target_number, points=points)
