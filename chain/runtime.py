"""The runtime: the dispatch table and the executive that applies extrinsics and blocks.

Every call type maps to one row of :data:`DISPATCH`: its handler and what it declares before
it runs (:class:`DispatchInfo`: its weight, and the bytes it adds to the block besides its own
encoding). The call's stable index is its wire tag (``chain/calls.py``). Applying an
extrinsic is always the same sequence: check validity (signature, era, nonce, that the call's
bytes fit a block, fee), withdraw the fee on the declared weight and length and bump the
nonce, dispatch inside a storage transaction that is rolled back if the call fails, then
settle: the fee on min(declared, actual) weight and result bytes goes to the block author and
the rest back to the sender (Substrate's ``PostDispatchInfo`` correction). A failed extrinsic
changes nothing but its fee and nonce.

On import, :meth:`Runtime.apply_transfers` applies a block's runs of transfers that succeed
with the same outcome bit for bit and none of the generic steps; whatever it would not apply
the same way (any other outcome) goes through :meth:`Runtime.apply_extrinsic`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec

import ml_runtime
from chain import calls
from chain.block import BLOCK_OVERHEAD, MAX_TRAIN_CALLS
from chain.codec import MAX_BALANCE, encode_each
from chain.config import SPEC_VERSION, RuntimeConfig
from chain.crypto import blake2_256
from chain.errors import DispatchError, FutureTransaction, InvalidTransaction
from chain.extrinsic import MAX_EXTRINSIC_SIZE, Extrinsic
from chain.pallets import (
    assets,
    balances,
    bounties,
    datasets,
    democracy,
    federated,
    governance,
    inference,
    licenses,
    models,
    pol,
    rewards,
    staking,
    system,
    training,
)
from chain.pallets.context import AS_DECLARED, BlockInfo, CallContext, Event
from chain.pallets.items import BatchStateAccess, StateAccess
from chain.pallets.training import TRAIN_BASE_WEIGHT
from chain.proofs import compute_result_length, compute_transcript_bytes

Handler = Callable[[CallContext, Any], None]
#: A pool's check of a call (state, sender, call, the block it would be in, the config):
#: DispatchError for one that would fail at once in that block, before any work and paying
#: little for it. A pool rule (Substrate's ``validate_transaction`` checks of a call), not a
#: rule of import: a block holding such a call stays valid, and the call fails in it.
Admit = Callable[[StateAccess, bytes, Any, int, RuntimeConfig], None]
#: What a call may move out of its sender's free balance besides its fee (state, call, the
#: block it would be in) -> planck: a pool's count, not a rule of import. chain.pool adds it up
#: over a sender's pooled extrinsics, so that one balance cannot back extrinsics that only the
#: balance its earlier ones move away could pay (tester16's P1, round 12: a transfer of the
#: whole balance at nonce n, then n+1.. each tipping all of it). What the arguments name (a
#: transfer's value, a bond, a vote's lock, a bounty, a round's reward pool), a fixed deposit,
#: or what the state says the call pays now (a TRAIN's licences, an INFER's price, a federated
#: commit's bond and licence). A call without one moves nothing out of its sender's free
#: balance (an asset's units, a governance vote's locked shares, are not POL).
Spend = Callable[[StateAccess, Any, int], int]


@dataclass(frozen=True, slots=True)
class DispatchInfo:
    """What a call declares before it runs (Substrate's ``DispatchInfo``), from its arguments
    and the state: its weight in work units, and the bytes it adds to its block besides its
    own encoding and to the block's stored receipts besides a fixed part per extrinsic
    (``result_length``: a TRAIN call's training result, an INFER call's outputs), and the
    checkpoint bytes a TRAIN call makes its author store and serve (``transcript_bytes``: not
    in the block, kept by its author and, a sample of them, by each validator). All are upper
    bounds: the fee is withdrawn on them (a stored byte is a byte, in the block or beside it:
    ``byte_fee`` each), and what the call reports unused after dispatch is refunded. A block's
    result lengths together fit max_block_length and its transcripts together fit
    ``max_transcript_bytes``, when built and when imported (:meth:`Runtime.apply_extrinsic`:
    each call's declared amounts must fit beside what the calls before it used),
    so its receipts are at most that plus a fixed part per extrinsic (benches/receipts.py
    measures each call type's), and its author holds at most that many checkpoint bytes in
    memory and writes them in the block's one batch.

    ``stored_bytes`` are what a call writes into state for good beyond the bytes it carries
    (register_model's version 0, 4 bytes a parameter, made from a 32-byte seed): not in the
    block, so not counted against its length, but paid at ``byte_fee`` as a block byte is. A
    ~170-byte registration of max_model_params wrote 1 MiB of weights and paid 17 planck a
    stored byte where every other stored byte pays byte_fee (tester16's W1, round 12). A call
    that stores what its own bytes carry (an append's rows, a commit's update) or its result
    (a TRAIN's new weights) pays for them as those bytes already."""

    weight: int
    result_length: int = 0
    transcript_bytes: int = 0
    stored_bytes: int = 0


def _remark(ctx: CallContext, call: calls.Remark) -> None:
    ctx.emit("system", "Remarked", sender=ctx.sender, hash=blake2_256(call.data))


def _train_info(state: StateAccess, call: calls.Train) -> DispatchInfo:
    """The training weight and the result bound of the job the arguments describe: the base,
    reading the data set's rows (datasets.compute_read_weight: a job of one step reads them
    all), and the steps.

    An unknown model or undecodable spec fails at once in dispatch: only the base weight.
    Other arguments are taken as they are (a batch or segment length of 0 as 1): out-of-range
    ones fail in dispatch before any work and are refunded, or, if their result could not fit
    a block, are refused at validation.
    """
    model = models.MODELS.get(state, call.model)
    if model is None:
        return DispatchInfo(TRAIN_BASE_WEIGHT)
    try:
        spec = ml_runtime.ModelSpec.decode(model.spec)
        segments = -(-call.steps // max(call.segment_len, 1))
        work = ml_runtime.train_cost(spec, max(call.batch_size, 1), call.steps, segments)
    except ml_runtime.MLRuntimeError:
        return DispatchInfo(TRAIN_BASE_WEIGHT)
    return DispatchInfo(
        TRAIN_BASE_WEIGHT + training.compute_read_weight(state, call.dataset) + work,
        compute_result_length(spec.param_count, segments),
        compute_transcript_bytes(spec.param_count, segments),
    )


@dataclass(frozen=True, slots=True)
class CallRow:
    """One row of the dispatch table: the handler, what the call declares, what a pool checks
    of it before admitting it (``admit``, :meth:`Runtime.verify_admissible`) and what a pool
    counts it may spend of its sender's free balance (``spend``, :meth:`Runtime.compute_spend`)."""

    handler: Handler
    info: Callable[[StateAccess, Any], DispatchInfo]
    admit: Admit | None = None
    spend: Spend | None = None


def _fixed(units: int) -> Callable[[StateAccess, Any], DispatchInfo]:
    info = DispatchInfo(units)
    return lambda _state, _call: info


#: The least weight of any extrinsic (Substrate's ``ExtrinsicBaseWeight``): its signature check
#: (about 65 us, chain/signatures.py), the account's read and write and the executive's steps
#: around the call. No call declares less: the calls of a fixed weight are at or above it, the
#: others' formulas start at or above it (tests/chain/test_weight_pins.py), and remark, the one
#: below it, starts at it. An empty remark declared 10,000 units while its import took 74-75
#: us, 7.4 ns a unit against a transfer's 0.62-0.69, so length, not weight, bounded a block of
#: them: 45,587 a dev block, 3.5 s to import at 23% of the weight limit (tester16's W3, round
#: 12). At a transfer's 100,000 (whose import is the same work and the move), about 0.75 ns a
#: unit, within democracy.SLOWEST_NS_PER_UNIT.
EXTRINSIC_BASE_WEIGHT = 100_000
#: Remark's weight a byte of its data: hashing it (blake2b) and, in the signature check, the
#: extrinsic's longer message.
REMARK_BYTE_WEIGHT = 10


def _deposit(amount: int) -> Spend:
    return lambda _state, _call, _block: amount


#: An account's nonce is a u32 (balances.AccountInfo): an extrinsic at this nonce is refused,
#: since applying it would store the next one, 2^32, which no account record decodes.
LAST_NONCE = 2**32 - 1
TRANSFER_INFO = DispatchInfo(100_000)
# How many transfers' accounts Runtime.apply_transfers reads ahead: first, and at most.
_READ_AHEAD_FIRST = 16
_READ_AHEAD_MOST = 1024
_EXTRINSIC_HASHER = hashlib.blake2b(digest_size=32)  # copied per extrinsic, never updated itself
#: The most bytes (UTF-8) of a failed extrinsic's error text (compute_error_text).
MAX_ERROR_MESSAGE = 512
_CUT = "…".encode()

_GOV_DEPOSIT = _deposit(governance.PROPOSAL_DEPOSIT)

DISPATCH: dict[type, CallRow] = {
    calls.Remark: CallRow(_remark, lambda _s, c: DispatchInfo(EXTRINSIC_BASE_WEIGHT + REMARK_BYTE_WEIGHT * len(c.data))),
    calls.Transfer: CallRow(balances.apply_transfer, lambda _s, _c: TRANSFER_INFO, spend=lambda _s, c, _b: c.value),
    calls.RegisterModel: CallRow(
        models.apply_register_model,
        lambda _s, c: DispatchInfo(models.compute_register_weight(c), stored_bytes=models.compute_register_bytes(c)),
    ),
    calls.RegisterDataset: CallRow(datasets.apply_register_dataset, _fixed(200_000)),
    calls.AppendRows: CallRow(datasets.apply_append_rows, lambda s, c: DispatchInfo(datasets.compute_append_weight(s, c))),
    calls.Train: CallRow(training.apply_train, _train_info, training.verify_admissible, training.compute_spend),
    calls.Bond: CallRow(staking.apply_bond, _fixed(staking.BOND_WEIGHT), spend=lambda _s, c, _b: c.value),
    calls.Unbond: CallRow(staking.apply_unbond, _fixed(staking.UNBOND_WEIGHT)),
    calls.SetTrainingPolicy: CallRow(models.apply_set_training_policy, _fixed(100_000)),
    calls.SetTrainer: CallRow(models.apply_set_trainer, _fixed(100_000)),
    calls.ShareModel: CallRow(models.apply_share_model, _fixed(300_000)),
    calls.ClaimRevenue: CallRow(models.apply_claim_revenue, _fixed(150_000)),
    calls.PayModel: CallRow(models.apply_pay_model_call, _fixed(150_000), spend=lambda _s, c, _b: c.amount),
    calls.CreateAsset: CallRow(assets.apply_create, _fixed(200_000), spend=_deposit(assets.ASSET_DEPOSIT)),
    calls.SetAssetMetadata: CallRow(assets.apply_set_metadata, _fixed(100_000)),
    calls.MintAsset: CallRow(assets.apply_mint_call, _fixed(100_000)),
    calls.BurnAsset: CallRow(assets.apply_burn_call, _fixed(100_000)),
    calls.TransferAsset: CallRow(assets.apply_transfer, _fixed(150_000)),
    calls.ReportFraud: CallRow(pol.apply_report_fraud, lambda s, c: DispatchInfo(pol.compute_report_fraud_weight(s, c)), pol.verify_report_admissible),
    calls.ReportEquivocation: CallRow(pol.apply_report_equivocation, _fixed(pol.REPORT_BASE_WEIGHT), pol.verify_report_admissible),
    calls.ReportVoteEquivocation: CallRow(pol.apply_report_vote_equivocation, _fixed(pol.REPORT_BASE_WEIGHT), pol.verify_report_admissible),
    calls.WithdrawUnbonded: CallRow(staking.apply_withdraw_unbonded, _fixed(staking.WITHDRAW_WEIGHT)),
    calls.ProposePolicy: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.ProposeInferencePrice: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.ProposeRelease: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.ProposeSpend: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.ProposeTrainer: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.ProposeParams: CallRow(governance.apply_propose, _fixed(300_000), spend=_GOV_DEPOSIT),
    calls.Vote: CallRow(governance.apply_vote, _fixed(200_000)),
    calls.PostBounty: CallRow(bounties.apply_post_bounty, _fixed(bounties.BOUNTY_BASE_WEIGHT), spend=lambda _s, c, _b: c.amount),
    calls.ClaimBounty: CallRow(bounties.apply_claim_bounty, lambda s, c: DispatchInfo(bounties.compute_claim_weight(s, c))),
    calls.CancelBounty: CallRow(bounties.apply_cancel_bounty, _fixed(bounties.CANCEL_WEIGHT)),
    calls.SetDatasetLicense: CallRow(licenses.apply_set_license, _fixed(200_000)),
    calls.SetInferencePrice: CallRow(inference.apply_set_inference_price, _fixed(100_000)),
    calls.Infer: CallRow(
        inference.apply_infer, lambda s, c: DispatchInfo(*inference.compute_info(s, c)), spend=lambda s, c, _b: inference.compute_spend(s, c)
    ),
    calls.OpenRound: CallRow(
        federated.apply_open_round, lambda s, c: DispatchInfo(federated.compute_weight(s, c)), spend=lambda _s, c, _b: c.reward_pool
    ),
    calls.CommitUpdate: CallRow(
        federated.apply_commit_update, lambda s, c: DispatchInfo(federated.compute_weight(s, c)), spend=federated.compute_commit_spend
    ),
    calls.ChallengeRound: CallRow(federated.apply_challenge, lambda s, c: DispatchInfo(federated.compute_weight(s, c))),
    calls.RevealSegment: CallRow(
        federated.apply_reveal_segment, lambda s, c: DispatchInfo(federated.compute_weight(s, c)), federated.verify_reveal_admissible
    ),
    calls.CloseRound: CallRow(federated.apply_close_round, lambda s, c: DispatchInfo(federated.compute_weight(s, c))),
    calls.ProposeConfig: CallRow(democracy.apply_propose, _fixed(democracy.PROPOSE_WEIGHT), spend=_deposit(democracy.PROPOSAL_DEPOSIT)),
    calls.VoteConfig: CallRow(democracy.apply_vote, _fixed(democracy.VOTE_WEIGHT), spend=lambda _s, c, _b: c.amount),
    calls.UnlockVote: CallRow(democracy.apply_unlock, _fixed(democracy.UNLOCK_WEIGHT)),
    calls.NoteVotes: CallRow(rewards.apply_note_votes, lambda _s, c: DispatchInfo(rewards.compute_note_votes_weight(c))),
}


#: Calls that settle work an earlier block admitted: the report of a forged TRAIN (re-runs one
#: of its segments), a federated reveal (re-runs a challenged segment) and a round's close
#: (the FedAvg of its updates). A referendum may lower max_block_weight after that work was
#: admitted, and a call weighing more than a block is refused: a forger who forged under the
#: old limit could not be slashed, and a round's participants could not reveal and lost their
#: bonds (an outside tester's findings, round 7). Each declares at most a block's weight: the
#: work it checks was bounded by the limit of its own time (a fraud proof whose segment is
#: heavier than its block's limit is refused before any re-run: chain.fraud, "too_heavy"; a
#: round's reveals and close by the limit when it opened: chain.pallets.federated), and
#: democracy bounds how far that limit may have risen, so a block that holds one such call
#: alone is no heavier than blocks the chain ran already.
#: A challenge declares the close's weight (it may fail the round, paying its participants
#: out), and a bounty claim the evaluation a posting bounded by the limit of its time
#: (chain.pallets.bounties): left out, a lowered limit stranded them too (round 8).
SETTLING_CALLS = frozenset({
    calls.ReportFraud, calls.RevealSegment, calls.CloseRound, calls.ChallengeRound, calls.ClaimBounty,
})

#: Calls whose priority in a pool is not their tip alone (Substrate's ``DispatchClass::Operational``):
#: offence reports, and the settling calls, which a window of blocks bounds (a report's proof
#: window, a round's reveal phase, a bounty's expiry). By tip alone, a report declaring nearly a
#: block's weight fitted only a block with nothing else in it, and one transfer a block tipped 1
#: unit, from the forger itself, kept it out for good (an outside tester's finding, round 8).
#: Such a call's priority is its tip plus OPERATIONAL_FEE_MULTIPLIER times its fee (Substrate's
#: "virtual tip"; the multiplier is Polkadot's ``OperationalFeeMultiplier``): to keep it out,
#: others must tip more than five times its fee, every block, for as long as they keep it out.
#: A bounded boost, not a lane no tip can enter: a flood of reports that fail costs its sender
#: their fees and is outbid by any tip above five times theirs.
OPERATIONAL_CALLS = frozenset({calls.ReportEquivocation, calls.ReportVoteEquivocation, *SETTLING_CALLS})
OPERATIONAL_FEE_MULTIPLIER = 5


@dataclass(frozen=True, slots=True)
class CheckedExtrinsic:
    """What checking an extrinsic found: its priority, the sender's nonce, its declared fee
    (before any refund) and dispatch info, and the sender's free balance.

    The pool takes priority, nonce, fee and balance from it (as chain.pool.Validity); the block
    takes the fee.
    """

    priority: int
    account_nonce: int
    fee: int
    info: DispatchInfo
    free: int  # the sender's free balance before the fee


class Receipt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The outcome of one applied extrinsic, as stored with its block. Not tracked by the
    cyclic garbage collector, as chain.pallets.context.Event: it holds scalars and events only."""

    index: int
    hash: bytes
    success: bool
    fee: int
    weight: int
    error: str | None
    events: tuple[Event, ...]


class Runtime:
    """Validates and applies extrinsics with one chain's genesis hash and configuration: the
    config in the parent state of the block it runs (chain.blockchain picks it per block)."""

    def __init__(self, genesis_hash: bytes, config: RuntimeConfig) -> None:
        self.genesis_hash = genesis_hash
        self.config = config
        self.spec_version = SPEC_VERSION

    def compute_dispatch_info(self, state: StateAccess, xt: Extrinsic) -> DispatchInfo:
        """The call's dispatch info; for a call of SETTLING_CALLS at most a block's weight."""
        info = DISPATCH[type(xt.call)].info(state, xt.call)
        limit = self.config.max_block_weight
        if info.weight > limit and type(xt.call) in SETTLING_CALLS:
            return replace(info, weight=limit)
        return info

    def on_initialize(self, state: StateAccess, number: int, author: bytes, parent_hash: bytes) -> None:
        """What block ``number`` by ``author`` on ``parent_hash`` does before its first
        extrinsic, when built and when imported alike (Substrate's ``on_initialize``): it
        records its parent's hash (chain.pallets.system); at an era start, the era's rewards are
        paid and the queued validators leave the set (chain.pallets.rewards, staking); the
        block's reward is minted; model governance and runtime-config referenda tally and
        enact what is due (chain.pallets.governance, democracy). ``self.config`` is the
        parent state's: a config enacted here governs the next block on."""
        system.apply_on_initialize(state, number, parent_hash)
        rewards.on_initialize(state, self.config, number, author)
        staking.on_initialize(state, number, self.config)
        governance.apply_on_initialize(state, number, self.config.existential_deposit)
        democracy.apply_on_initialize(state, number)

    def compute_fee(self, info: DispatchInfo, length: int, tip: int) -> int:
        """The fee of an extrinsic of ``length`` bytes that declares ``info`` (before refunds)."""
        return self.config.compute_fee(length + info.result_length + info.transcript_bytes + info.stored_bytes, info.weight, tip)

    @property
    def max_extrinsic_length(self) -> int:
        """The bytes one extrinsic and its result may take: a block less its header and framing."""
        return self.config.max_block_length - BLOCK_OVERHEAD

    def verify_extrinsic(
        self, state: StateAccess, xt: Extrinsic, length: int, number: int,
        *, check_signature: bool = True, allow_future: bool = False,
    ) -> CheckedExtrinsic:
        """Raise InvalidTransaction unless ``xt`` could be included in block ``number`` now.

        With ``allow_future`` (the pool's view) a nonce ahead of the account's is accepted:
        the pool holds such an extrinsic until the nonces before it arrive.

        This is the pool's admission check (Substrate's ``validate_transaction``).
        """
        return self._verify_extrinsic(state, xt, length, number, check_signature, allow_future)[0]

    def compute_spend(self, state: StateAccess, xt: Extrinsic, number: int) -> int:
        """What ``xt``'s call may move out of its sender's free balance besides the fee, in block
        ``number`` (its row's ``spend``; 0 for a call without one): a pool's count (chain.pool,
        "overdraft"), an upper bound at the state's prices."""
        spend = DISPATCH[type(xt.call)].spend
        return 0 if spend is None else spend(state, xt.call, number)

    def verify_admissible(self, state: StateAccess, xt: Extrinsic, number: int) -> None:
        """InvalidTransaction("call") if ``xt``'s call would fail at once in block ``number``
        (its row's ``admit``): a pool's check, made before :meth:`verify_extrinsic`.

        Why a pool refuses what a block may hold: such a call pays little for failing (the
        base of its weight), yet is ordered by what it declares. A reveal by an account with
        no update in the round declared a whole segment's re-run, so its operational priority
        (OPERATIONAL_CALLS) outranked a transfer tipping 5 POL while it paid 0.0014 POL (an
        outside tester's finding, round 9); a TRAIN of arguments no state makes right (a
        segment length of 0) entered blocks and paid the base fee there (round 8)."""
        admit = DISPATCH[type(xt.call)].admit
        if admit is None:
            return
        try:
            admit(state, xt.signer, xt.call, number, self.config)
        except DispatchError as exc:
            raise InvalidTransaction("call", f"{exc.module}.{exc.error}: {exc}") from None

    def _verify_extrinsic(
        self, state: StateAccess, xt: Extrinsic, length: int, number: int, check_signature: bool, allow_future: bool,
    ) -> tuple[CheckedExtrinsic, balances.AccountInfo]:
        """:meth:`verify_extrinsic`, also returning the signer's account as it was read."""
        if length > MAX_EXTRINSIC_SIZE:
            # The pool's decode refuses it first; a block's body is decoded whole, so here is
            # where a block an author filled itself meets the same bound (an outside tester's
            # finding, round 5: a 2.24 MB reveal in an author's own block was imported).
            raise InvalidTransaction(
                "exhausts_resources", f"extrinsic is {length:,} bytes; the limit is {MAX_EXTRINSIC_SIZE:,}"
            )
        era = xt.era
        if not era.is_alive(number):
            if number < era.birth:
                # valid later, not outdated (Substrate's InvalidTransaction::Future, not Stale):
                # the pool refuses it without a ban, so the same bytes get in once the chain is there
                raise FutureTransaction(f"era {era.birth}+{era.period} starts at block {era.birth}, after block {number}")
            raise InvalidTransaction("stale", f"era {era.birth}+{era.period} does not cover block {number}")
        if check_signature:
            xt.verify_signature(self.genesis_hash, self.spec_version)
        account = balances.get_account(state, xt.signer)
        if xt.nonce < account.nonce:
            raise InvalidTransaction("stale", f"nonce {xt.nonce} is already used (account nonce is {account.nonce})")
        if xt.nonce >= LAST_NONCE:
            # Substrate's CheckNonce adds one without a check (``account.nonce += One::one()``);
            # here the account record holding 2^32 could never be decoded again.
            raise InvalidTransaction(
                "exhausts_resources",
                f"nonce {xt.nonce} is the last a u32 holds: the account's next nonce would not fit; "
                "this account can send no more extrinsics",
            )
        info = self.compute_dispatch_info(state, xt)
        if info.weight > self.config.max_block_weight:
            raise InvalidTransaction(
                "exhausts_resources", f"weight {info.weight} exceeds a block's limit of {self.config.max_block_weight}"
            )
        if info.transcript_bytes > self.config.max_transcript_bytes:
            raise InvalidTransaction(
                "exhausts_resources",
                f"the training job's transcript of {info.transcript_bytes:,} bytes exceeds max_transcript_bytes "
                f"({self.config.max_transcript_bytes:,}): no author stores and serves it",
            )
        if length + info.result_length > self.max_extrinsic_length:
            proof = f" and its training result of {info.result_length} bytes" if info.result_length else ""
            raise InvalidTransaction(
                "exhausts_resources",
                f"the extrinsic's {length} bytes{proof} cannot fit in a block of {self.config.max_block_length} "
                f"bytes ({self.max_extrinsic_length} after the header)",
            )
        fee = self.compute_fee(info, length, xt.tip)
        if fee > MAX_BALANCE:
            # Only the tip can get it there (RuntimeConfig.compute_problems bounds the rest):
            # no balance can pay it, so refused as unpayable, whoever sends it, rather than
            # saturated to 2^63-1, which an account holding every unit could pay.
            raise InvalidTransaction(
                "payment",
                f"tip {xt.tip}: the fee, {fee - xt.tip} plus the tip, exceeds the largest balance {MAX_BALANCE}",
            )
        if xt.nonce > account.nonce and not allow_future:
            raise FutureTransaction(f"nonce {xt.nonce} is ahead of the account nonce {account.nonce}")
        if account.free < fee:
            raise InvalidTransaction("payment", f"free balance {account.free} cannot pay the fee {fee}")
        priority = xt.tip + (OPERATIONAL_FEE_MULTIPLIER * (fee - xt.tip) if type(xt.call) in OPERATIONAL_CALLS else 0)
        return CheckedExtrinsic(priority=priority, account_nonce=account.nonce, fee=fee, info=info, free=account.free), account

    def apply_extrinsic(
        self, state: Any, block: BlockInfo, index: int, xt: Extrinsic, xt_hash: bytes, length: int,
        *, check_signature: bool = True,
    ) -> Receipt:
        """Apply one extrinsic to the overlay; InvalidTransaction means the block is invalid,
        also when the result lengths its extrinsics declare (DispatchInfo) would no longer fit
        together in a block: the builder keeps them within it with the extrinsics' own bytes,
        so only a byzantine block of calls each valid alone is refused for it (an INFER
        call's outputs are not in the block's encoding, which import checks first)."""
        checked, account = self._verify_extrinsic(state, xt, length, block.number, check_signature, False)
        results = block.result_length + checked.info.result_length
        if results > self.max_extrinsic_length:
            raise InvalidTransaction(
                "exhausts_resources",
                f"the block's extrinsics declare {results:,} bytes of results and outputs with this one; "
                f"a block of {self.config.max_block_length:,} bytes holds at most {self.max_extrinsic_length:,}",
            )
        transcripts = block.transcript_bytes + checked.info.transcript_bytes
        if transcripts > self.config.max_transcript_bytes:
            raise InvalidTransaction(
                "exhausts_resources",
                f"the block's TRAIN calls declare {transcripts:,} bytes of checkpoints with this one; "
                f"a block's author stores at most max_transcript_bytes ({self.config.max_transcript_bytes:,})",
            )
        if type(xt.call) is calls.Train:
            if block.train_calls >= MAX_TRAIN_CALLS:
                raise InvalidTransaction(
                    "exhausts_resources",
                    f"a block holds at most {MAX_TRAIN_CALLS} TRAIN calls: each costs every importer a request for its checkpoints",
                )
            block.train_calls += 1
        balances.apply_account(
            state, xt.signer, msgspec.structs.replace(account, nonce=account.nonce + 1, free=account.free - checked.fee)
        )
        ctx = CallContext(state, xt.signer, index, xt_hash, checked.fee, block, self.config, genesis_hash=self.genesis_hash)
        state.start_transaction()
        try:
            DISPATCH[type(xt.call)].handler(ctx, xt.call)
        except DispatchError as exc:
            state.rollback_transaction()
            fee, used = self.apply_fee(state, xt, length, checked, ctx, block.author)
            _count_used(block, used)
            text = compute_error_text(exc)
            message = text[len(exc.module) + len(exc.error) + 3 :]
            failed = Event("system", "ExtrinsicFailed", (("module", exc.module), ("error", exc.error), ("message", message)))
            return Receipt(index, xt_hash, False, fee, used.weight, text, (failed,))
        except BaseException:
            state.rollback_transaction()
            raise
        state.commit_transaction()
        fee, used = self.apply_fee(state, xt, length, checked, ctx, block.author)
        _count_used(block, used)
        done = Event("system", "ExtrinsicSucceeded", (("weight", used.weight),))
        return Receipt(index, xt_hash, True, fee, used.weight, None, (*ctx.events, done))

    def apply_transfers(
        self, state: BatchStateAccess, block: BlockInfo, extrinsics: Sequence[Extrinsic], raws: Sequence[bytes],
        start: int, receipts: list[Receipt],
    ) -> int:
        """Apply the run of transfers from ``extrinsics[start]`` on that succeed, appending
        their receipts; returns the index of the first extrinsic it did not apply (for
        :meth:`apply_extrinsic`), ``len(extrinsics)`` if none is left.

        The same state changes, receipts and events as :meth:`apply_extrinsic` would give
        each of them (tests/chain/test_transfer_run.py compares the two on the same blocks),
        for a fraction of the cost: in a block of transfers the executive's generic steps
        (dispatch info, call context, a storage transaction, a fee settlement that reads the
        accounts again) cost more than the transfer itself. Here each account of the run is
        read and decoded once, kept decoded while the run lasts and encoded and written once
        at its end, in the order in which :meth:`apply_extrinsic` first writes each; the
        author's fee is added up the same way. Only a transfer that passes every check of
        :meth:`_verify_extrinsic` and of ``balances.apply_move`` is applied here: anything
        else (another call, an era that has ended, a nonce not the account's, a fee or
        amount the sender cannot pay, a new account below the existential deposit, a
        transfer to oneself or of nothing) ends the run, its accounts written first, and
        goes to :meth:`apply_extrinsic`, which applies or refuses it with its own reasons.
        Call it with no one else using ``state`` meanwhile: its reads do not see the run's
        writes until the run ends.
        """
        config = self.config
        weight = TRANSFER_INFO.weight
        if weight > config.max_block_weight:  # never, with a valid config: left to apply_extrinsic's message
            return start
        number, author, ed = block.number, block.author, config.existential_deposit
        max_length, compute_fee = self.max_extrinsic_length, config.compute_fee
        empty, transfer, transferred = balances.EMPTY, calls.Transfer, balances.compute_transferred_event
        account_info, compute_keys, decode_many = balances.AccountInfo, balances.ACCOUNT.compute_keys, balances.ACCOUNT.decode_many
        hasher = _EXTRINSIC_HASHER
        succeeded = Event("system", "ExtrinsicSucceeded", (("weight", weight),))
        current: dict[bytes, balances.AccountInfo] = {}  # every account of the run as it is now
        keyed: dict[bytes, bytes] = {}  # their storage keys
        written: dict[bytes, None] = {}  # the accounts written, in order of first write
        # The fees paid to the author since current[author] last had them added: added when
        # the author's account is read (it sends or receives) and when the run ends.
        fees = 0
        count = len(extrinsics)
        # The accounts are read ahead in batches (Overlay.peek_many: one call for many reads),
        # each batch those of the next ``ahead`` transfers not read yet: the run's reads do not
        # see its writes, so reading an account early reads the same value, and one the run
        # never reaches is only read for nothing (a peek: not a base read of the block's). The
        # batch grows from a few transfers, so a run that ends at once (a transfer that fails,
        # then the next, ...) reads few ahead.
        fetched, ahead = start, _READ_AHEAD_FIRST
        try:
            for index in range(start, count):
                xt = extrinsics[index]
                call = xt.call
                if type(call) is not transfer:
                    break
                if index == fetched:
                    fetched = min(count, index + ahead)
                    ahead = min(ahead * 4, _READ_AHEAD_MOST)
                    wanted: dict[bytes, None] = {author: None}  # read once: those read are left out below
                    for upcoming in extrinsics[index:fetched]:
                        upcoming_call = upcoming.call
                        if type(upcoming_call) is not transfer:
                            break
                        wanted[upcoming.signer] = wanted[upcoming_call.dest] = None
                    fresh = [who for who in wanted if who not in current]
                    keys = compute_keys(fresh)
                    keyed.update(zip(fresh, keys, strict=True))
                    for who, account in zip(fresh, decode_many(state.peek_many(keys)), strict=True):
                        current[who] = account or empty
                era = xt.era
                if era.period and not era.birth <= number < era.birth + era.period:
                    break
                raw = raws[index]
                length = len(raw)
                signer, dest, value = xt.signer, call.dest, call.value
                if length > max_length or signer == dest or value == 0:
                    break
                if fees and (signer == author or dest == author):  # the author's account is read: settle its fees
                    paid = current[author]
                    current[author] = account_info(paid.nonce, paid.free + fees, paid.staked)
                    fees = 0
                sender = current[signer]
                fee = compute_fee(length, weight, xt.tip)
                free = sender.free - fee
                if xt.nonce != sender.nonce or free < value or xt.nonce == LAST_NONCE:  # also free < 0: the fee unpaid
                    break
                left = free - value
                if 0 < left < ed and sender.staked == 0:
                    break
                receiver = current[dest]
                if value < ed and receiver.free + receiver.staked == 0 and receiver.nonce == 0:
                    break
                current[signer] = account_info(sender.nonce + 1, left, sender.staked)
                current[dest] = account_info(receiver.nonce, receiver.free + value, receiver.staked)
                fees += fee
                written[signer] = written[dest] = written[author] = None
                digest = hasher.copy()  # blake2_256(raw), without the keyword constructor's cost
                digest.update(raw)
                receipts.append(
                    Receipt(index, digest.digest(), True, fee, weight, None, (transferred(signer, dest, value), succeeded))
                )
            else:
                index = count
        finally:
            if fees:
                paid = current[author]
                current[author] = account_info(paid.nonce, paid.free + fees, paid.staked)
            # balances.apply_account of each, in one call
            # (read=True: the accounts the run read, peeked above, become the block's base reads)
            keys = [keyed[who] for who in written]
            state.set_many(zip(keys, encode_each([current[who] for who in written]), strict=True), read=True)
        return index

    def apply_fee(
        self, state: StateAccess, xt: Extrinsic, length: int, checked: CheckedExtrinsic, ctx: CallContext, author: bytes
    ) -> tuple[int, DispatchInfo]:
        """Settle the fee withdrawn before dispatch: refund what the call did not use to the
        sender, pay the rest to the block author (less, for a training call, the validators'
        share, which goes to the era's voters' pot). Returns (fee paid, what the call used).

        The fee is recomputed on min(declared, actual) weight, result, transcript and stored bytes, so a handler
        can only lower it (Substrate's ``PostDispatchInfo::calc_actual_weight``).
        """
        declared, post = checked.info, ctx.post_info
        if post is AS_DECLARED:
            fee, used = checked.fee, declared
        else:
            used = DispatchInfo(
                declared.weight if post.actual_weight is None else min(declared.weight, post.actual_weight),
                declared.result_length if post.actual_result_length is None else min(declared.result_length, post.actual_result_length),
                declared.transcript_bytes if post.actual_transcript_bytes is None
                else min(declared.transcript_bytes, post.actual_transcript_bytes),
                declared.stored_bytes if post.actual_stored_bytes is None else min(declared.stored_bytes, post.actual_stored_bytes),
            )
            fee = self.compute_fee(used, length, xt.tip)
        if checked.fee > fee:
            balances.apply_account(state, xt.signer, _credit(balances.get_account(state, xt.signer), checked.fee - fee))
        share = rewards.compute_fee_share(self.config, fee) if isinstance(xt.call, calls.Train) else 0
        if share:
            rewards.apply_fee_share(state, share)
        balances.apply_account(state, author, _credit(balances.get_account(state, author), fee - share))
        return fee, used


def compute_error_text(exc: DispatchError) -> str:
    """A failed extrinsic's error as its receipt stores it, ``pallet.Error: message``, at most
    MAX_ERROR_MESSAGE bytes of UTF-8: a longer one is cut at the last whole character that
    leaves room for the mark ``…`` (3 bytes), which ends it. The receipt stores it twice (its
    ``error`` and the ExtrinsicFailed event's ``message``, the same text after ``Error: ``),
    and no node should store more for a message than a fixed bound, whatever a call's
    arguments put in it. The pallet and error names are short identifiers, never cut."""
    text = f"{exc.module}.{exc.error}: {exc}"
    raw = text.encode()
    if len(raw) <= MAX_ERROR_MESSAGE:
        return text
    return raw[: MAX_ERROR_MESSAGE - len(_CUT)].decode(errors="ignore") + "…"


def _count_used(block: BlockInfo, used: DispatchInfo) -> None:
    """Add what an applied extrinsic used, not what it declared, to its block's result and
    checkpoint bytes (its weight goes in its receipt): the declared amounts are checked to fit
    before dispatch, and what a call did not use is free for the calls after it, as
    Substrate's executive takes a call's unspent weight back. Counting the declared amounts,
    a call that declared a block's worth and failed at once kept everything else out for
    about 0.002 POL a block (an outside tester's finding: an equivocation report kept out
    until the offender had withdrawn its stake)."""
    block.result_length += used.result_length
    block.transcript_bytes += used.transcript_bytes


def _credit(account: balances.AccountInfo, amount: int) -> balances.AccountInfo:
    return msgspec.structs.replace(account, free=account.free + amount)
