"""Democracy: holders of POL vote on the runtime config (fees, limits, proof-of-learning
parameters), council-free, and a passed change is enacted at a block boundary.

The shape is chain.pallets.governance's (Substrate's democracy/referenda: propose, vote with
conviction-less locks, tally at the end, enactment delay), with POL instead of a model's
shares and the chain's :class:`chain.config.RuntimeConfig` instead of a model's settings.

Life of a referendum, in blocks, with the periods of the config in force when it is proposed
(``gov_voting_blocks`` and ``gov_enactment_blocks``, the same periods a shared model's
first vote uses, so a dev chain's short periods serve both):

1. ``democracy.propose(changes)``: ``changes`` are (field, value) pairs, sorted by field name
   with no field twice (one canonical encoding per proposal), each a field of RuntimeConfig
   that may change mid-chain (:data:`FIXED` lists those that may not, and why), and the config
   they make must pass the spec loader's bounds (``RuntimeConfig.compute_problems``: one table)
   and the mid-chain ones (a block length that carries a fraud report, a block weight of at
   most a third of a slot: :func:`compute_weight_ceiling`, a voting period of at least
   :data:`MIN_GOVERNED_VOTING_BLOCKS` blocks, a reporter's share of at most
   :data:`MAX_GOVERNED_REPORTER_SHARE_PPM`), and must not make undoing them by referendum dearer than a ten-thousandth of all POL
   (:func:`verify_recoverable`: Unrecoverable) nor make a year of blocks mint more than
   :data:`MAX_INFLATION_PPM` of it (:func:`verify_inflation`: Inflationary).
   The proposer moves :data:`PROPOSAL_DEPOSIT` into the pallet's account; it is returned
   when the vote ends if the turnout reached the quorum (passed or not), and burned if it
   did not (as Substrate's referenda keep the submission deposit of a referendum that was not
   approved): the agenda is shared, and a referendum nobody turns out for took a slot an
   honest one may have been refused (AgendaFull). Filling a block's MAX_AGENDA slots cost 16
   fees, about 0.023 POL; now it burns 16 deposits, 1,600 POL, unless the attacker alone
   brings a tenth of all POL to vote. A malformed proposal is refused before anything moves:
   its sender pays only the fee.
2. ``democracy.vote(ref, aye, amount)``: ``amount`` POL of the voter's free balance moves into
   the pallet's account (the lock; the ballot records it), so it can be neither transferred,
   staked nor spent on fees while the vote runs; the rest of the free balance still pays fees.
   A vote leaves at least :func:`compute_vote_reserve` free (InsufficientFreeAfterVote): the
   fee of the unlock that takes it back, so the lock never outlives the vote for want of it.
   Once per account per referendum (AlreadyVoted).
3. At the block where voting ends, :func:`apply_on_initialize` tallies it, before that block's
   extrinsics: it passes with turnout >= :data:`QUORUM_PPM` of the total issuance and ayes >
   :data:`THRESHOLD_PPM` of the votes cast. A passed referendum waits ``enactment_blocks``
   (at least 1) and is enacted at the start of a block: the new config is written under
   ``:runtime_config`` after the bounds are checked again against the config and the
   issuance then in force (another referendum may have changed them); if they fail, the referendum ends ``failed``
   with the reason and nothing changes.
4. ``democracy.unlock(ref)``: once the vote has ended, each voter takes its lock back, one
   call per voter: no block ever loops over voters.

The new config governs the blocks after the one that enacted it: each block is built and
imported with the config in its parent's state (chain.blockchain), so the extrinsics of the
enactment block still pay the old fees.

Work per block is bounded as in governance, by the pallet's agendas (chain.pallets.agenda: at
most MAX_AGENDA tallies and MAX_AGENDA enactments a block; AgendaFull for a proposal whose end
block is full; the enactments due are taken from a queue of their own, the earliest due first,
the rest carried over, so proposals can delay an enactment, never fail it).
"""

from __future__ import annotations

from dataclasses import fields, replace
from itertools import pairwise
from typing import Any

import msgspec

from chain import calls
from chain.block import BLOCK_OVERHEAD
from chain.codec import U32, AccountId, Balance, BlockNumber, Wire
from chain.config import (
    FIXED,
    MAX_BLOCK_LENGTH,
    RUNTIME_CONFIG_KEY,
    RuntimeConfig,
    decode_runtime_config,
    encode_runtime_config,
)
from chain.errors import CodecError, DispatchError
from chain.extrinsic import MAX_EXTRINSIC_SIZE
from chain.pallets import balances, revenue, rewards, system
from chain.pallets.agenda import MAX_AGENDA, Agenda, Queue
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue

PALLET = "democracy"
PPM = calls.PPM
# 100 POL (9 decimals): what an agenda slot holds while the vote runs, burned without a quorum,
# so that filling every block's agenda burns real funds (the fee alone is about 0.0014 POL).
PROPOSAL_DEPOSIT = 100 * 10**9
QUORUM_PPM = 100_000  # turnout: a tenth of all POL in existence
THRESHOLD_PPM = 500_000  # ayes: a strict majority of the votes cast
# The pallet's account holds every deposit and every locked vote until it is returned.
DEMOCRACY_ACCOUNT = revenue.compute_pallet_account(b"py/democ")
#: The weights democracy.propose, vote and unlock declare (chain.runtime.DISPATCH).
PROPOSE_WEIGHT = 300_000
VOTE_WEIGHT = 200_000
UNLOCK_WEIGHT = 100_000
#: What a voter sends to take its lock back (compute_vote_reserve): the longest unlock.
_RECLAIMS = ((calls.UnlockVote(2**32 - 1), UNLOCK_WEIGHT),)
FIELDS = frozenset(f.name for f in fields(RuntimeConfig))
#: A referendum may not raise what it costs to undo it by referendum
#: (:func:`compute_recovery_cost`) above this share of the total issuance (1/RECOVERY_SHARE):
#: a holder of a ten-thousandth of all POL can always propose, vote and take its lock back.
RECOVERY_SHARE = 10_000
#: The weight a pol.report_fraud declares before its segment (pol.REPORT_BASE_WEIGHT; pol
#: imports this module, so the value is repeated here and a test checks the two agree).
REPORT_BASE_WEIGHT = 500_000
#: The calls that undo a referendum, at their longest: a proposal that changes every field
#: at its widest value, a vote, an unlock; and the largest fraud report, so that no
#: referendum can price out the proof of a faulty block (a reviewer's finding: a byte_fee
#: that passed made a 2 MiB report cost 1.4 million POL). The fees compute_recovery_cost counts.
#: As (extrinsic length, weight), measured once here: the longest report is a 2 MiB
#: extrinsic, and encoding it on every proposal and enactment cost 150 us (measured) for a
#: call weighed at 26 us.
_RECOVERY = tuple(
    (balances.compute_longest_length(call), weight)
    for call, weight in (
        (calls.ProposeConfig(tuple(calls.ConfigChange(name, 2**63 - 1) for name in sorted(FIELDS))), PROPOSE_WEIGHT),
        (calls.VoteConfig(2**32 - 1, True, 2**63 - 1), VOTE_WEIGHT),
        *_RECLAIMS,
        (calls.ReportFraud(bytes(calls.MAX_FRAUD_PROOF_BYTES)), REPORT_BASE_WEIGHT),
    )
)
# A mid-chain bound on max_block_length beyond the spec loader's (whose upper bound,
# config.MAX_BLOCK_LENGTH, a referendum meets through compute_problems): a referendum may not
# shrink blocks below the largest extrinsic the chain accepts (2 MiB; a pol.report_fraud of a
# large model's proof is one), or a faulty block could not be proven.
MAX_GOVERNED_BLOCK_LENGTH = MAX_BLOCK_LENGTH
MIN_GOVERNED_BLOCK_LENGTH = BLOCK_OVERHEAD + MAX_EXTRINSIC_SIZE
# A mid-chain ceiling on max_block_weight: a third of a slot at the speed of the slowest
# call's work unit (compute_weight_ceiling: 1 ms / 3 / SLOWEST_NS_PER_UNIT, an integer, since
# consensus never reads a timing). Substrate gives a block 2 s of compute in a 6 s slot for
# the same reason: the author must build the block, and every node import it, inside the
# slot. With no ceiling a referendum set 9e18 units, years of training a block. A chain whose
# spec starts above it may still lower its weight to anywhere (compute_config).
# The speed is the slowest unit of any call, not of training alone: the ceiling was derived
# from the training kernels' 0.087 ns a unit (ml_runtime.NS_PER_UNIT), 2.3e10 units for a 6 s
# slot, while every other call is weighed at about 1 ns a unit; at that limit one block of
# 430 register_model calls took 11.0 s to author and 12.0 s to import (tester16's W2, round 12).
# SLOWEST_NS_PER_UNIT is what benches/weights.py measures (the import of a real block of each
# call at the worst state an attacker can afford, per unit the call declares; its "ns/unit"
# column): transfers, the calibration, 0.62-0.69 ns a unit (tester16, load 1-3) and 0.9-1.4
# under load 3-5 (README, Weights); the slowest other calls about the same (unlock_vote and
# withdraw_unbonded 0.71-0.72, tester11's uncovered_weights.py; a bounty claim 0.64, the
# widest TRAIN shape 0.52-0.74, an empty remark about 0.75 at chain.runtime.EXTRINSIC_BASE_WEIGHT).
# Rounded up to 1 ns, the unit every fixed weight was set at ("a unit is about 1 ns"): a 6 s
# slot's ceiling is then the default weight, 2e9 units. A loaded machine is slower at every
# call alike (transfers at 1.4 ns under load 3-5); no ceiling in units can follow its load.
SLOWEST_NS_PER_UNIT = 1
# A mid-chain floor on the referendum voting period (gov_voting_blocks), in blocks. With one
# block (config.MINIMUMS allows it, for a spec) the block holding a proposal was the only
# block its vote ran in: a holder of the quorum put its proposal and its aye in one block and
# every other holder's vote was refused (an outside tester's finding, round 7a: 11.7% of the
# POL turned slashing off against 5.7 times as much). 1,800 blocks are 3 hours of 6 s slots:
# the FastTrackVotingPeriod of Polkadot's and Kusama's democracy pallet, the vote of a proposal
# their technical committee fast-tracked (shorter only by the committee's unanimous "instant"
# origin); their ordinary voting periods were 28 and 7 days, and OpenGov's decision periods are
# 28 and 14. No committee here fast-tracks anything: 3 hours is the least any referendum gets. In blocks, not time, because an author decides what its own block holds:
# the others must have many blocks, of many authors, to vote in. A spec may start below it
# (the dev chain votes in 3 blocks, as Substrate's fast-runtime builds do); a referendum may
# then raise the period but not lower it (compute_config).
MIN_GOVERNED_VOTING_BLOCKS = 1_800
# A mid-chain ceiling on the block reward, relative to the total issuance: a year of blocks
# (a block a slot; a Julian year, MILLISECONDS_PER_YEAR in Substrate's era payouts) may mint at
# most MAX_INFLATION_PPM of it: 10%, Polkadot's highest yearly inflation (its era payout's
# MAX_ANNUAL_INFLATION, the top of its staking reward curve). With no ceiling but a balance's,
# one referendum set 2^63-1 and the next block minted the issuance up to 2^63-1 into the
# authors' pot: the validators held 99.95% of all POL, no referendum without them could reach
# the quorum again, and they alone then passed what they liked (an outside tester's finding,
# round 7a). Relative, so the issuance may grow by at most a tenth a year, compounded.
MAX_INFLATION_PPM = 100_000
# A mid-chain ceiling on the reporter's share of a slash. SelfReport refuses only the
# offender's own key, and a key costs nothing: an offender who reports itself from another
# account gets reporter_share_ppm of its slash back, so at 100% (which a referendum could set)
# a slash cost it nothing (an outside tester's note, round 7a). Half still leaves it losing
# half; Polkadot pays reporters a tenth of the slash (pallet-staking's reward_proportion), as
# this chain's specs do. A spec's larger share may stay.
MAX_GOVERNED_REPORTER_SHARE_PPM = 500_000
YEAR_MS = 1000 * 3600 * 24 * 36525 // 100


def compute_weight_ceiling(slot_duration_ms: int) -> int:
    """The highest max_block_weight a referendum may raise a chain of this slot to: a third of
    the slot, in nanoseconds, at SLOWEST_NS_PER_UNIT."""
    return slot_duration_ms * 1_000_000 // (3 * SLOWEST_NS_PER_UNIT)


def compute_reward_ceiling(total_issuance: int, slot_duration_ms: int) -> int:
    """The highest reward a block may mint after a referendum raised it: a year of
    ``slot_duration_ms`` slots, each minting it, mints at most MAX_INFLATION_PPM of ``total_issuance``."""
    return total_issuance * MAX_INFLATION_PPM * slot_duration_ms // (PPM * YEAR_MS)


def verify_inflation(current: RuntimeConfig, config: RuntimeConfig, total_issuance: int, number: int) -> None:
    """Inflationary if block ``number`` would mint more under ``config`` than
    compute_reward_ceiling allows, and more than under ``current`` (a chain whose spec set a
    larger reward may keep it or lower it). The reward compared is what block ``number`` mints
    (rewards.compute_block_reward, after the halvings due by then): no later block mints more
    under the same config, and a change of reward_halving_blocks alone can raise it."""
    reward, ceiling = rewards.compute_block_reward(config, number), compute_reward_ceiling(total_issuance, config.slot_duration_ms)
    if reward > max(rewards.compute_block_reward(current, number), ceiling):
        raise _fail(
            "Inflationary",
            f"block {number:,} would mint {reward:,}, more than {ceiling:,}: a year of {config.slot_duration_ms:,} ms "
            f"blocks may mint at most {MAX_INFLATION_PPM / 10_000:g}% of the {total_issuance:,} POL units in existence "
            "(Polkadot's highest yearly inflation); a larger reward hands the validators the supply, and with it every "
            "later vote",
        )


class Referendum(Wire, frozen=True):
    proposer: AccountId
    changes: tuple[calls.ConfigChange, ...]
    deposit: Balance
    created: BlockNumber
    ends: BlockNumber
    enactment_blocks: U32
    ayes: Balance = 0
    nays: Balance = 0
    status: str = "voting"  # voting, passed, rejected, enacted, failed
    enact_at: BlockNumber | None = None
    note: str = ""


class Ballot(Wire, frozen=True):
    aye: bool
    amount: Balance  # locked in DEMOCRACY_ACCOUNT until unlocked


NEXT_REFERENDUM = StorageValue("Democracy", "NextReferendum", int, 0)
REFERENDA = StorageMap("Democracy", "Referenda", Referendum)
BALLOTS = StorageMap("Democracy", "Ballots", Ballot)  # (referendum, voter) -> ballot
AGENDA = Agenda("Democracy")  # block -> referenda to tally (and, on a chain from before ENACTMENTS, to enact)
ENACTMENTS = Queue("Democracy", "Enactments")  # block -> passed referenda due then (chain.pallets.agenda)
# The configs replaced within the last system.BLOCK_HASH_COUNT blocks (the window in which a
# fraud proof can name its block, chain.pallets.pol): block E -> the config E itself ran with,
# stored by E's first enactment, and the blocks E in ascending order.
REPLACED = StorageMap("Democracy", "Replaced", bytes)
REPLACED_AT = StorageValue("Democracy", "ReplacedAt", tuple[U32, ...], ())


def _fail(error: str, message: str) -> DispatchError:
    return DispatchError(PALLET, error, message)


def get_referendum(state: StateAccess, referendum: int) -> Referendum:
    found = REFERENDA.get(state, referendum)
    if found is None:
        raise _fail("UnknownReferendum", f"no referendum {referendum}")
    return found


def get_config(state: StateAccess) -> RuntimeConfig:
    """The config in ``state`` (genesis wrote it; an enacted referendum rewrites it)."""
    raw = state.get(RUNTIME_CONFIG_KEY)
    if raw is None:
        raise _fail("NoRuntimeConfig", f"the state holds no runtime config under {RUNTIME_CONFIG_KEY!r}")
    try:
        return decode_runtime_config(raw)
    except CodecError as exc:
        raise _fail("NoRuntimeConfig", f"the stored runtime config is malformed: {exc}") from None


def get_config_of_block(state: StateAccess, number: int) -> RuntimeConfig:
    """The config block ``number`` of this chain ran with (its parent state's), for a block
    within the last system.BLOCK_HASH_COUNT: a job is judged under the limits it was run
    under, not under limits a referendum set later (which could make a fraud unprovable)."""
    for enacted in REPLACED_AT.get(state):
        if number <= enacted:  # block `enacted` ran before its own enactment, with the old config
            raw = REPLACED.get(state, enacted)
            if raw is not None:
                return decode_runtime_config(raw)
    return get_config(state)


def compute_config(current: RuntimeConfig, changes: tuple[calls.ConfigChange, ...]) -> RuntimeConfig:
    """``current`` with ``changes`` applied; DispatchError naming the first rule they break:
    NoChanges, NotCanonical (unsorted or a field twice), UnknownField, FixedField (with why),
    InvalidConfig (a bound of RuntimeConfig.compute_problems, a mid-chain ceiling, or the
    mid-chain floor of the voting period, MIN_GOVERNED_VOTING_BLOCKS)."""
    if not changes:
        raise _fail("NoChanges", "a referendum changes at least one field")
    names = [c.name for c in changes]
    for before, after in pairwise(names):
        if before >= after:
            raise _fail(
                "NotCanonical",
                f"changes are sorted by field name with each field once: {after!r} follows {before!r}",
            )
    for name in names:
        if name not in FIELDS:
            raise _fail("UnknownField", f"the runtime config has no field {name!r}")
        if name in FIXED:
            raise _fail("FixedField", f"{name} cannot change mid-chain: {FIXED[name]}")
    config = replace(current, **{c.name: c.value for c in changes})
    problems = config.compute_problems()
    if "max_block_length" in names and config.max_block_length < MIN_GOVERNED_BLOCK_LENGTH:
        problems.append(
            f"max_block_length must be at least {MIN_GOVERNED_BLOCK_LENGTH:,} mid-chain (got {config.max_block_length:,}): "
            f"every extrinsic the chain accepts ({MAX_EXTRINSIC_SIZE:,} bytes, a fraud report) must fit a block"
        )
    shortest = min(current.gov_voting_blocks, MIN_GOVERNED_VOTING_BLOCKS)
    if config.gov_voting_blocks < shortest:
        problems.append(
            f"gov_voting_blocks must be at least {MIN_GOVERNED_VOTING_BLOCKS:,} blocks mid-chain, or no lower than now "
            f"({current.gov_voting_blocks:,}), got {config.gov_voting_blocks:,}: the other holders must have blocks to "
            "vote in; a referendum that voted in one block was decided by its proposer in the proposal's own block"
        )
    if config.reporter_share_ppm > max(current.reporter_share_ppm, MAX_GOVERNED_REPORTER_SHARE_PPM):
        problems.append(
            f"reporter_share_ppm may rise to at most {MAX_GOVERNED_REPORTER_SHARE_PPM:,} mid-chain (got "
            f"{config.reporter_share_ppm:,}): an offender reporting itself from another account gets that share of its "
            "slash back"
        )
    heaviest = compute_weight_ceiling(config.slot_duration_ms)
    if config.max_block_weight > max(current.max_block_weight, heaviest):
        problems.append(
            f"max_block_weight may rise to at most {heaviest:,} units mid-chain (got {config.max_block_weight:,}): a "
            f"third of a {config.slot_duration_ms:,} ms slot at {SLOWEST_NS_PER_UNIT} ns a unit, the slowest any call's "
            "unit runs (benches/weights.py); an author could not build a heavier block in its slot, nor a validator check it"
        )
    if problems:
        raise _fail("InvalidConfig", f"the config would break its bounds: {problems[0]}")
    return config


def compute_recovery_cost(config: RuntimeConfig) -> int:
    """What a referendum can make undoing it cost one account: the fees of the longest
    propose, vote, unlock and fraud report under ``config``, and the existential deposit it
    must keep (the proposal deposit, which no referendum changes, comes on top)."""
    return sum(config.compute_fee(length, weight, 0) for length, weight in _RECOVERY) + config.existential_deposit


def verify_recoverable(current: RuntimeConfig, config: RuntimeConfig, total_issuance: int) -> None:
    """Unrecoverable if ``config`` would make undoing it cost more than 1/RECOVERY_SHARE of the
    total issuance, and more than under ``current`` (a change that does not raise the cost
    always passes). A referendum set base_fee to 10^16, above the whole issuance: no
    extrinsic could be paid again, the vote to undo it included, and every vote lock stayed
    locked; an existential deposit of 10^16 stopped every proposal and vote the same way (an
    outside tester's finding, round 4). Fees are in planck: a value meant in POL is 10^9 too
    large, so an honest mistake did it too."""
    cost, bound = compute_recovery_cost(config), max(compute_recovery_cost(current), total_issuance // RECOVERY_SHARE)
    if cost > bound:
        raise _fail(
            "Unrecoverable",
            f"undoing this change by referendum would cost {cost:,} (the fees of a proposal, a vote, an unlock and a "
            f"fraud report, and the existential deposit), more than {bound:,}: a ten-thousandth of all POL",
        )


def compute_turnout_met(referendum: Referendum, total_issuance: int) -> bool:
    """At least one vote, and turnout >= QUORUM_PPM of the total issuance: the vote counts (and
    the proposer gets the deposit back)."""
    cast = referendum.ayes + referendum.nays
    return cast > 0 and cast * PPM >= QUORUM_PPM * total_issuance


def compute_passes(referendum: Referendum, total_issuance: int) -> bool:
    """Turnout >= QUORUM_PPM of the total issuance, and ayes > THRESHOLD_PPM of the votes cast."""
    cast = referendum.ayes + referendum.nays
    return compute_turnout_met(referendum, total_issuance) and referendum.ayes * PPM > THRESHOLD_PPM * cast


def apply_propose(ctx: CallContext, call: calls.ProposeConfig) -> None:
    state = ctx.state
    config, issuance = compute_config(ctx.config, call.changes), balances.TOTAL_ISSUANCE.get(state)
    verify_recoverable(ctx.config, config, issuance)
    verify_inflation(ctx.config, config, issuance, ctx.block.number)
    ends = ctx.block.number + ctx.config.gov_voting_blocks
    if not AGENDA.has_room(state, ends):
        raise _fail("AgendaFull", f"block {ends} already ends {MAX_AGENDA} referenda; propose in a later block")
    balances.apply_hold(state, PALLET, DEMOCRACY_ACCOUNT, ctx.sender, PROPOSAL_DEPOSIT, ctx.config.existential_deposit, "the proposal deposit")
    referendum = NEXT_REFERENDUM.get(state)
    REFERENDA.apply_set(
        state,
        Referendum(ctx.sender, call.changes, PROPOSAL_DEPOSIT, ctx.block.number, ends, ctx.config.gov_enactment_blocks),
        referendum,
    )
    NEXT_REFERENDUM.apply_set(state, referendum + 1)
    AGENDA.apply_add(state, referendum, ends)
    ctx.emit(PALLET, "Proposed", referendum=referendum, proposer=ctx.sender, ends=ends, deposit=PROPOSAL_DEPOSIT)


def compute_vote_reserve(config: RuntimeConfig) -> int:
    """The least a vote leaves free: the existential deposit, or, if more, the fee of the
    unlock that takes the lock back (balances.compute_reclaim_reserve). A vote of all but its
    fee left free 0, and the lock stayed in the pallet's account after the vote ended until
    someone else funded the voter."""
    return balances.compute_reclaim_reserve(config, _RECLAIMS)


def apply_vote(ctx: CallContext, call: calls.VoteConfig) -> None:
    state = ctx.state
    referendum = get_referendum(state, call.referendum)
    if referendum.status != "voting" or ctx.block.number >= referendum.ends:
        raise _fail(
            "VotingClosed", f"referendum {call.referendum} is {referendum.status}; voting ended at block {referendum.ends}"
        )
    if BALLOTS.get(state, call.referendum, ctx.sender) is not None:
        raise _fail("AlreadyVoted", f"{ctx.sender.hex()} already voted on referendum {call.referendum}")
    if call.amount == 0:
        raise _fail("ZeroAmount", "a vote locks at least 1 unit of POL")
    tally = (referendum.ayes if call.aye else referendum.nays) + call.amount
    if tally > 2**63 - 1:  # cannot happen while the issuance fits a balance; never wraps anyway
        raise _fail("Overflow", f"the tally would exceed 2^63-1 ({tally})")
    balances.verify_reclaimable(
        PALLET, "InsufficientFreeAfterVote", balances.get_account(state, ctx.sender).free, call.amount,
        compute_vote_reserve(ctx.config), "the vote", "the unlock",
    )
    balances.apply_hold(state, PALLET, DEMOCRACY_ACCOUNT, ctx.sender, call.amount, ctx.config.existential_deposit, "the vote")
    BALLOTS.apply_set(state, Ballot(call.aye, call.amount), call.referendum, ctx.sender)
    side = {"ayes": tally} if call.aye else {"nays": tally}
    REFERENDA.apply_set(state, msgspec.structs.replace(referendum, **side), call.referendum)
    ctx.emit(PALLET, "Voted", referendum=call.referendum, who=ctx.sender, aye=call.aye, amount=call.amount)


def apply_unlock(ctx: CallContext, call: calls.UnlockVote) -> None:
    state = ctx.state
    referendum = get_referendum(state, call.referendum)
    ballot = BALLOTS.get(state, call.referendum, ctx.sender)
    if ballot is None:
        raise _fail("NoLock", f"{ctx.sender.hex()} holds no lock on referendum {call.referendum} (never voted, or unlocked)")
    if referendum.status == "voting":
        raise _fail("StillVoting", f"referendum {call.referendum} locks its votes until block {referendum.ends}")
    BALLOTS.apply_delete(state, call.referendum, ctx.sender)
    balances.apply_release(state, PALLET, DEMOCRACY_ACCOUNT, ctx.sender, ballot.amount)
    ctx.emit(PALLET, "Unlocked", referendum=call.referendum, who=ctx.sender, amount=ballot.amount)


def apply_on_initialize(state: Any, number: int) -> None:
    """Tally the referenda whose vote ends at block ``number`` and enact those due, before the
    block's extrinsics. The outcome is each referendum's ``status`` (and ``note``)."""
    for referendum_id in (*AGENDA.apply_take(state, number), *ENACTMENTS.apply_take_due(state, number)):
        referendum = REFERENDA.get(state, referendum_id)
        if referendum is not None and referendum.status == "voting":
            _apply_tally(state, referendum_id, referendum, number)
        elif referendum is not None and referendum.status == "passed":
            _apply_enact(state, referendum_id, referendum, number)


def _apply_tally(state: Any, referendum_id: int, referendum: Referendum, number: int) -> None:
    issuance = balances.TOTAL_ISSUANCE.get(state)
    if compute_turnout_met(referendum, issuance):
        balances.apply_release(state, PALLET, DEMOCRACY_ACCOUNT, referendum.proposer, referendum.deposit)
    else:
        balances.apply_burn_held(state, PALLET, DEMOCRACY_ACCOUNT, referendum.deposit)
    if not compute_passes(referendum, issuance):
        REFERENDA.apply_set(state, msgspec.structs.replace(referendum, status="rejected"), referendum_id)
        return
    at = number + max(referendum.enactment_blocks, 1)
    ENACTMENTS.apply_add(state, referendum_id, at)
    REFERENDA.apply_set(state, msgspec.structs.replace(referendum, status="passed", enact_at=at), referendum_id)


def _apply_enact(state: Any, referendum_id: int, referendum: Referendum, number: int) -> None:
    try:
        current = get_config(state)
        config = compute_config(current, referendum.changes)
        issuance = balances.TOTAL_ISSUANCE.get(state)
        verify_recoverable(current, config, issuance)
        verify_inflation(current, config, issuance, number)
    except DispatchError as exc:
        failed = msgspec.structs.replace(referendum, status="failed", note=f"{exc.module}.{exc.error}: {exc}")
        REFERENDA.apply_set(state, failed, referendum_id)
        return
    _apply_remember(state, number, current)
    state.set(RUNTIME_CONFIG_KEY, encode_runtime_config(config))
    REFERENDA.apply_set(state, msgspec.structs.replace(referendum, status="enacted"), referendum_id)


def _apply_remember(state: Any, number: int, current: RuntimeConfig) -> None:
    """Keep the config block ``number`` runs with (once per block), and forget those of blocks
    out of the fraud-proof window: each enactment prunes what it can, so the work stays
    amortised O(1) and the list at most BLOCK_HASH_COUNT long."""
    at = REPLACED_AT.get(state)
    if at and at[-1] == number:
        return
    kept = tuple(e for e in at if e + system.BLOCK_HASH_COUNT >= number)
    for e in at[: len(at) - len(kept)]:
        REPLACED.apply_delete(state, e)
    REPLACED.apply_set(state, encode_runtime_config(current), number)
    REPLACED_AT.apply_set(state, (*kept, number))
