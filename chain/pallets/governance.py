"""A DAO per shared model: its shareholders propose and vote, weighted by shares.

What a proposal can do (one call each, ``gov.propose_*``): set the training permission and
licence per step, the inference price, the released version, a spend from the model's
treasury, an account on the training allowlist (the ``proposal`` permission trains only
those), and the governance parameters themselves (:class:`chain.pallets.models.GovParams`:
quorum, threshold, voting and enactment periods, treasury share).

Life of a proposal, all in blocks, with the parameters as they were when it was made:

1. Any holder of the model's shares proposes (at most :data:`MAX_ACTIVE` open per model, and
   :data:`MAX_ACTIVE_PER_PROPOSER` per proposer) and
   moves :data:`PROPOSAL_DEPOSIT` POL into the pallet's account. Voting runs for
   ``voting_blocks`` blocks. A malformed proposal is refused before anything moves.
2. ``gov.vote`` counts every share the voter holds, once per proposal (AlreadyVoted), and
   locks that many shares until the vote ends (chain.pallets.assets locks), so shares cannot
   vote twice by changing hands.
3. At the block where voting ends, :func:`apply_on_initialize` tallies it, before that
   block's extrinsics: it passes with turnout >= ``quorum`` ppm of all shares and ayes >
   ``threshold`` ppm of the votes cast. The deposit goes back to the proposer if the turnout
   reached the quorum (passed or not) and is burned if it did not (Substrate's referenda keep
   the submission deposit of a referendum that was not approved; here the holders' turnout is
   what shows a proposal was worth its slot). A passed proposal waits ``enactment_blocks`` and then
   executes, also at the start of a block. An action that can no longer run (a spend larger
   than the treasury) ends ``failed`` with its reason; nothing else changes.

Work per block is bounded by the pallet's agendas (chain.pallets.agenda: at most MAX_AGENDA
tallies and MAX_AGENDA enactments a block; a proposal whose end block is full is refused with
AgendaFull, and the enactments due are taken MAX_AGENDA a block from a queue of their own, the
earliest due first, the rest carried over: a flood of the attacker's own passing proposals
delays a passed one, and no longer fails it). This is Substrate's democracy/referenda shape (propose, vote with
conviction-less locks, tally at the end, enactment delay) reduced to one model's holders.

The tally agenda is shared by every model, so a slot on it must cost more than a fee: filling
the MAX_AGENDA slots of a block refuses every proposal on every model that would end there
(AgendaFull). With only the fee (weight 300,000, about 0.0014 POL) that cost 16 fees, 0.023
POL, a block. Each slot now holds a deposit until its tally: an attacker who cannot bring a
quorum of holders to vote burns 16 deposits, 1,600 POL, per block it blocks; one who holds
every share of models of its own, and votes on its own proposals to get the deposits back,
must keep 16 deposits a block in flight for as many blocks ahead as the honest proposal's
voting period (16 x 20 x 100 POL = 32,000 POL for the default 20 blocks) and pays a vote fee
on top of each proposal fee.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chain import calls
from chain.codec import U32, AccountId, Balance, BlockNumber, Wire
from chain.crypto import ss58_encode
from chain.errors import DispatchError
from chain.pallets import assets, balances, models, revenue
from chain.pallets.agenda import MAX_AGENDA, Agenda, Queue
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue

PALLET = "gov"
PPM = calls.PPM
MAX_ACTIVE = 8  # open proposals per model
# Open proposals per proposer of a model: with the model's bound alone, a holder of one share
# took all 8 slots and every other holder could not propose for a whole voting period (up to
# MAX_PERIOD blocks; its deposits came back when the others voted them down: an outside
# tester's finding, round 7). Filling the slots now takes four holders, each with a share.
MAX_ACTIVE_PER_PROPOSER = 2
MAX_PERIOD = 100_000  # blocks, for voting and enactment periods
# A model's vote may last 1 block (a referendum's may not: chain.pallets.democracy.MIN_GOVERNED_VOTING_BLOCKS).
# With 1, a holder of the quorum's shares can propose and vote in one block that nobody else
# can vote in, as a referendum could (an outside tester's finding, round 7a, on democracy).
# Left to the holders on purpose: only a vote of the model's own holders sets it, it binds
# only that model, and a small DAO may want quick votes; a new model's first period is the
# config's gov_voting_blocks, which a referendum may not lower below democracy's floor.
# The highest quorum a model's holders may set. Above half, a minority of shares that never
# vote (sent to a key nobody holds, a holder gone) stops every proposal for good, the one
# to lower the quorum included (an outside tester's finding, round 5: 1 share of 100 froze a
# model at a quorum of 100%). At half or below, only a majority that stays away can.
MAX_QUORUM = PPM // 2
# The highest threshold (ayes of the votes cast). Near all of them, one share voting nay
# vetoes every proposal for good (a reviewer's finding, round 5: 999,999 ppm passed, and a
# 1-share holder blocked lowering it). Two thirds is the super-majority most DAOs stop at.
MAX_THRESHOLD = 2 * PPM // 3
# The lowest threshold: a proposal needs more ayes than nays, whatever the holders set. Below
# half, a few shares voting aye passed any proposal against every other share voting nay (an
# outside tester's finding, round 7a: at a threshold of 0, 1 share of 100 spent the whole
# treasury to its holder against 59 shares voting nay, whose votes brought the turnout to
# the quorum); "0" reads like "no special threshold". Half is also the default (models.GovParams).
MIN_THRESHOLD = PPM // 2
# 100 POL (9 decimals), held from the proposal to its tally: returned if the turnout reached the
# quorum, burned if not (module docstring: the agenda is shared, and a slot must cost more than a fee).
PROPOSAL_DEPOSIT = 100 * 10**9
# The pallet's account holds every proposal's deposit until its tally.
GOV_ACCOUNT = revenue.compute_pallet_account(b"py/gvrnc")

Action = (
    calls.ProposePolicy | calls.ProposeInferencePrice | calls.ProposeRelease | calls.ProposeSpend
    | calls.ProposeTrainer | calls.ProposeParams
)


class Proposal(Wire, frozen=True):
    model: U32
    proposer: AccountId
    action: Action
    created: BlockNumber
    ends: BlockNumber
    enactment_blocks: U32
    quorum: U32
    threshold: U32
    ayes: Balance = 0
    nays: Balance = 0
    status: str = "voting"  # voting, passed, rejected, enacted, failed
    enact_at: BlockNumber | None = None
    note: str = ""
    deposit: Balance = 0  # held in GOV_ACCOUNT while voting (0: a proposal from before deposits)


class Ballot(Wire, frozen=True):
    aye: bool
    shares: Balance


NEXT_PROPOSAL = StorageValue("Gov", "NextProposal", int, 0)
PROPOSALS = StorageMap("Gov", "Proposals", Proposal)
BALLOTS = StorageMap("Gov", "Ballots", Ballot)  # (proposal, voter) -> ballot
ACTIVE = StorageMap("Gov", "Active", tuple[U32, ...])  # model -> open proposals (voting or passed)
AGENDA = Agenda("Gov")  # block -> proposals to tally or enact
ENACTMENTS = Queue("Gov", "Enactments")  # block -> passed proposals due then (chain.pallets.agenda: why apart)


def get_proposal(state: StateAccess, proposal_id: int) -> Proposal:
    proposal = PROPOSALS.get(state, proposal_id)
    if proposal is None:
        raise DispatchError(PALLET, "UnknownProposal", f"no proposal {proposal_id}")
    return proposal


def apply_propose(ctx: CallContext, action: Any) -> None:
    """Every ``gov.propose_*`` call: check the proposer and the action, open the vote."""
    state, model = ctx.state, action.model
    info = models.get_model(state, model)
    if not info.shares:
        raise DispatchError(PALLET, "NotShared", f"model {model} is not shared: its owner decides alone")
    if assets.get_balance(state, assets.compute_shares_asset(model), ctx.sender) == 0:
        raise DispatchError(PALLET, "NotShareholder", f"only holders of model {model}'s shares propose")
    _verify_action(state, info, action)
    active = ACTIVE.get(state, model) or ()
    if len(active) >= MAX_ACTIVE:
        raise DispatchError(PALLET, "TooManyProposals", f"model {model} has {len(active)} open proposals; at most {MAX_ACTIVE}")
    own = sum(1 for pid in active if get_proposal(state, pid).proposer == ctx.sender)
    if own >= MAX_ACTIVE_PER_PROPOSER:
        raise DispatchError(
            PALLET, "TooManyOwnProposals",
            f"{ss58_encode(ctx.sender)} has {own} open proposals on model {model}; at most {MAX_ACTIVE_PER_PROPOSER} a proposer",
        )
    params = models.get_gov_params(state, model)
    ends = ctx.block.number + params.voting_blocks
    if not AGENDA.has_room(state, ends):
        raise DispatchError(PALLET, "AgendaFull", f"block {ends} already ends {MAX_AGENDA} votes; propose in a later block")
    balances.apply_hold(state, PALLET, GOV_ACCOUNT, ctx.sender, PROPOSAL_DEPOSIT, ctx.config.existential_deposit, "the proposal deposit")
    proposal_id = NEXT_PROPOSAL.get(state)
    PROPOSALS.apply_set(
        state,
        Proposal(
            model, ctx.sender, action, ctx.block.number, ends, params.enactment_blocks, params.quorum, params.threshold,
            deposit=PROPOSAL_DEPOSIT,
        ),
        proposal_id,
    )
    NEXT_PROPOSAL.apply_set(state, proposal_id + 1)
    ACTIVE.apply_set(state, (*active, proposal_id), model)
    AGENDA.apply_add(state, proposal_id, ends)
    ctx.emit(PALLET, "Proposed", proposal=proposal_id, model=model, proposer=ctx.sender, ends=ends,
             action=calls.CALL_NAMES[type(action)][1], deposit=PROPOSAL_DEPOSIT)


def _verify_action(state: StateAccess, info: models.ModelInfo, action: Any) -> None:
    if isinstance(action, calls.ProposeRelease) and action.version > info.latest_version:
        raise DispatchError(PALLET, "UnknownVersion", f"the model has versions 0..{info.latest_version}, not {action.version}")
    if isinstance(action, calls.ProposeSpend) and action.amount == 0:
        raise DispatchError(PALLET, "ZeroAmount", "a spend is at least 1 unit")
    if isinstance(action, calls.ProposeParams):
        if not 1 <= action.voting_blocks <= MAX_PERIOD or action.enactment_blocks > MAX_PERIOD:
            raise DispatchError(
                PALLET, "InvalidParams", f"voting lasts 1..{MAX_PERIOD} blocks and enactment waits 0..{MAX_PERIOD}"
            )
        if action.threshold > MAX_THRESHOLD:
            raise DispatchError(
                PALLET, "InvalidParams",
                f"a threshold of {action.threshold:,} ppm is above {MAX_THRESHOLD:,} (two thirds of the votes cast): a few "
                "shares voting nay could then stop every proposal for good, the one to lower it included",
            )
        if action.threshold < MIN_THRESHOLD:
            raise DispatchError(
                PALLET, "InvalidParams",
                f"a threshold of {action.threshold:,} ppm is below {MIN_THRESHOLD:,} (half of the votes cast): a proposal "
                "must have more ayes than nays; below it, a few shares voting aye could pass any proposal against every "
                "other share voting nay",
            )
        if action.quorum > MAX_QUORUM:
            raise DispatchError(
                PALLET, "InvalidParams",
                f"a quorum of {action.quorum:,} ppm is above {MAX_QUORUM:,} (half of all shares): shares that never vote, "
                "held by a key nobody holds or a holder gone, could then stop every proposal for good, the one to lower it included",
            )


def apply_vote(ctx: CallContext, call: calls.Vote) -> None:
    state = ctx.state
    proposal = get_proposal(state, call.proposal)
    if proposal.status != "voting" or ctx.block.number >= proposal.ends:
        raise DispatchError(PALLET, "VotingClosed", f"proposal {call.proposal} is {proposal.status}; voting ended at block {proposal.ends}")
    if BALLOTS.get(state, call.proposal, ctx.sender) is not None:
        raise DispatchError(PALLET, "AlreadyVoted", f"{ctx.sender.hex()} already voted on proposal {call.proposal}")
    asset = assets.compute_shares_asset(proposal.model)
    shares = assets.get_balance(state, asset, ctx.sender)
    if shares == 0:
        raise DispatchError(PALLET, "NotShareholder", f"no shares of model {proposal.model} to vote with")
    assets.apply_lock(state, asset, ctx.sender, shares, proposal.ends, ctx.block.number)
    BALLOTS.apply_set(state, Ballot(call.aye, shares), call.proposal, ctx.sender)
    if call.aye:
        proposal = msgspec.structs.replace(proposal, ayes=proposal.ayes + shares)
    else:
        proposal = msgspec.structs.replace(proposal, nays=proposal.nays + shares)
    PROPOSALS.apply_set(state, proposal, call.proposal)
    ctx.emit(PALLET, "Voted", proposal=call.proposal, who=ctx.sender, aye=call.aye, shares=shares)


def compute_turnout_met(proposal: Proposal, total_shares: int) -> bool:
    """At least one vote, and turnout >= quorum ppm of all shares: the vote counts (and the
    proposer gets the deposit back)."""
    cast = proposal.ayes + proposal.nays
    return cast > 0 and cast * PPM >= proposal.quorum * total_shares


def compute_passes(proposal: Proposal, total_shares: int) -> bool:
    """Turnout >= quorum ppm of all shares, and ayes > threshold ppm of the votes cast."""
    cast = proposal.ayes + proposal.nays
    return compute_turnout_met(proposal, total_shares) and proposal.ayes * PPM > proposal.threshold * cast


def apply_on_initialize(state: Any, number: int, existential_deposit: int) -> None:
    """Tally the votes that end at block ``number`` and enact what is due, before the block's
    extrinsics. What happened is each proposal's ``status`` (and ``note`` when it failed):
    the chain keeps no block-level events, so ``gov_getProposal`` is where to read it."""
    for proposal_id in (*AGENDA.apply_take(state, number), *ENACTMENTS.apply_take_due(state, number)):
        proposal = PROPOSALS.get(state, proposal_id)
        if proposal is not None and proposal.status == "voting":
            _apply_tally(state, proposal_id, proposal, number)
        elif proposal is not None and proposal.status == "passed":
            _apply_enact(state, proposal_id, proposal, existential_deposit)


def _apply_tally(state: Any, proposal_id: int, proposal: Proposal, number: int) -> None:
    total = models.get_model(state, proposal.model).shares
    if compute_turnout_met(proposal, total):
        balances.apply_release(state, PALLET, GOV_ACCOUNT, proposal.proposer, proposal.deposit)
    else:
        balances.apply_burn_held(state, PALLET, GOV_ACCOUNT, proposal.deposit)
    if not compute_passes(proposal, total):
        _apply_close(state, proposal_id, msgspec.structs.replace(proposal, status="rejected"))
        return
    at = number + max(proposal.enactment_blocks, 1)
    ENACTMENTS.apply_add(state, proposal_id, at)
    PROPOSALS.apply_set(state, msgspec.structs.replace(proposal, status="passed", enact_at=at), proposal_id)


def _apply_enact(state: Any, proposal_id: int, proposal: Proposal, existential_deposit: int) -> None:
    state.start_transaction()
    try:
        _apply_action(state, proposal.model, proposal.action, existential_deposit)
    except DispatchError as exc:
        state.rollback_transaction()
        _apply_close(state, proposal_id, msgspec.structs.replace(proposal, status="failed", note=f"{exc.module}.{exc.error}: {exc}"))
        return
    state.commit_transaction()
    _apply_close(state, proposal_id, msgspec.structs.replace(proposal, status="enacted"))


def _apply_close(state: Any, proposal_id: int, proposal: Proposal) -> None:
    PROPOSALS.apply_set(state, proposal, proposal_id)
    active = ACTIVE.get(state, proposal.model) or ()
    ACTIVE.apply_set(state, tuple(p for p in active if p != proposal_id), proposal.model)


def _apply_action(state: Any, model: int, action: Any, existential_deposit: int) -> None:
    info = models.get_model(state, model)
    if isinstance(action, calls.ProposePolicy):
        info = msgspec.structs.replace(info, permission=action.permission, license_per_step=action.license_per_step)
    elif isinstance(action, calls.ProposeInferencePrice):
        info = msgspec.structs.replace(info, inference_price=action.price_per_row)
    elif isinstance(action, calls.ProposeRelease):
        info = msgspec.structs.replace(info, released_version=action.version)
    elif isinstance(action, calls.ProposeSpend):
        revenue.apply_spend(state, model, action.dest, action.amount, existential_deposit)
    elif isinstance(action, calls.ProposeTrainer):
        if action.allowed:
            models.TRAINERS.apply_set(state, True, model, action.who)
        else:
            models.TRAINERS.apply_delete(state, model, action.who)
    else:
        models.GOV_PARAMS.apply_set(
            state,
            models.GovParams(action.quorum, action.threshold, action.voting_blocks, action.enactment_blocks, action.treasury),
            model,
        )
    models.MODELS.apply_set(state, info, model)
