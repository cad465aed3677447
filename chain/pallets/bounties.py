"""Training bounties: paid only for improvement the chain itself measures.

Anyone posts a bounty on a model (``models.post_bounty``): an amount, held by the bounties
pallet account, a validation data set and a target loss. The first ``models.claim_bounty``
that names a version of the model trained after the bounty was posted and whose loss on
every row of the data set is below the target pays the whole amount to that version's
trainer (its ``creator``). The loss is ``ml_runtime.compute_loss``: the training kernel's own
mean loss over the rows in order, bit-exact on every node, so a claim is settled by
re-computation, not by anyone's word. A claim that falls short fails (NotBelowTarget) and
its sender pays the fee for the evaluation it asked for: the weight covers one forward and
backward pass over the data set. After ``expires_at`` the poster may cancel an unclaimed
bounty and get the amount back; so a bounty leaves the poster at least
:func:`compute_post_reserve` free (InsufficientFreeAfterBounty), the cancel's fee.

"First": claims are settled in block order, so if two versions qualify, the first claimed
wins; a trainer claims as soon as their version exists (``polchain tx claim-bounty``).
The validation data set holds at most ``ml_runtime.MAX_BATCH`` rows (the evaluation is one
batch), and must fit the model (family, features, outputs) as training data would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

import ml_runtime
from chain.calls import CancelBounty, ClaimBounty, PostBounty, compute_f32_value
from chain.codec import U32, AccountId, Balance, BlockNumber, Wire
from chain.errors import DispatchError
from chain.pallets import balances, datasets, models, revenue
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue

if TYPE_CHECKING:
    from chain.config import RuntimeConfig

PALLET = "models"
BOUNTY_ACCOUNT = revenue.compute_pallet_account(b"py/bunty")
BOUNTY_BASE_WEIGHT = 300_000
#: The weight models.cancel_bounty declares (chain.runtime.DISPATCH).
CANCEL_WEIGHT = 100_000
#: What a poster sends to take an unclaimed bounty back (compute_post_reserve): the longest cancel.
_RECLAIMS = ((CancelBounty(2**32 - 1), CANCEL_WEIGHT),)


class Bounty(Wire, frozen=True):
    poster: AccountId
    model: U32
    dataset: U32
    target_loss: U32  # float32 bits
    amount: Balance
    posted_at: BlockNumber
    expires_at: BlockNumber
    status: str = "open"  # open, paid, cancelled
    paid_to: AccountId | None = None
    version: U32 | None = None


NEXT_BOUNTY = StorageValue("Models", "NextBounty", int, 0)
BOUNTIES = StorageMap("Models", "Bounties", Bounty)


def get_bounty(state: StateAccess, bounty_id: int) -> Bounty:
    bounty = BOUNTIES.get(state, bounty_id)
    if bounty is None:
        raise DispatchError(PALLET, "UnknownBounty", f"no bounty {bounty_id}")
    return bounty


def compute_claim_weight(state: StateAccess, call: ClaimBounty) -> int:
    """The base, plus two forward passes over the whole validation set (the claimed version
    and its parent, :func:`apply_claim_bounty`), plus reading its rows (datasets.compute_read_weight)."""
    bounty = BOUNTIES.get(state, call.bounty)
    info = None if bounty is None else models.MODELS.get(state, bounty.model)
    data = None if bounty is None else datasets.DATASETS.get(state, bounty.dataset)
    if info is None or data is None:
        return BOUNTY_BASE_WEIGHT
    try:
        spec = ml_runtime.ModelSpec.decode(info.spec)
    except ml_runtime.MLRuntimeError:
        return BOUNTY_BASE_WEIGHT
    rows = max(1, min(data.row_count, ml_runtime.MAX_BATCH))
    return BOUNTY_BASE_WEIGHT + 2 * ml_runtime.step_cost(spec, rows) + datasets.compute_read_weight(data)


def _verify_validation(state: StateAccess, model: int, dataset: int) -> ml_runtime.ModelSpec:
    """The model's spec, if the data set can validate it: complete, of the model's kind and
    shape, and at most MAX_BATCH rows. From the records alone: posting a bounty reads no row
    (it read every row of the data set named, for a fixed weight, before refusing one too
    large to validate), and a complete data set never changes, so the claim finds the same."""
    spec = models.decode_spec(models.get_model(state, model).spec)
    info = datasets.get_dataset(state, dataset)
    if not info.complete:
        raise DispatchError(
            datasets.PALLET, "Incomplete", f"data set {dataset} has {info.uploaded_rows} of {info.row_count} rows uploaded"
        )
    wanted = "regression" if spec.family == "linear" else "classification"
    if info.kind != wanted or info.features != spec.d or info.outputs != spec.k:
        raise DispatchError(PALLET, "DatasetMismatch", f"data set {dataset} does not fit model {model} ({spec.family}, d={spec.d}, k={spec.k})")
    if info.row_count > ml_runtime.MAX_BATCH:
        raise DispatchError(PALLET, "ValidationTooLarge", f"data set {dataset} has {info.row_count} rows; a validation set has at most {ml_runtime.MAX_BATCH}")
    return spec


def compute_post_reserve(config: RuntimeConfig) -> int:
    """The least a posted bounty leaves free: the existential deposit, or, if more, the fee of
    the cancel that takes it back unclaimed (balances.compute_reclaim_reserve)."""
    return balances.compute_reclaim_reserve(config, _RECLAIMS)


def apply_post_bounty(ctx: CallContext, call: PostBounty) -> None:
    if call.amount == 0:
        raise DispatchError(PALLET, "ZeroAmount", "a bounty is at least 1 unit")
    target = compute_f32_value(call.target_loss)
    if not (target == target and abs(target) != float("inf") and target > 0):
        raise DispatchError(PALLET, "InvalidTarget", f"the target loss must be a finite float32 > 0, got {target}")
    if call.expires_at <= ctx.block.number:
        raise DispatchError(PALLET, "InvalidExpiry", f"expires_at {call.expires_at} is not after this block ({ctx.block.number})")
    _verify_validation(ctx.state, call.model, call.dataset)
    balances.verify_reclaimable(
        PALLET, "InsufficientFreeAfterBounty", balances.get_account(ctx.state, ctx.sender).free, call.amount,
        compute_post_reserve(ctx.config), "the bounty", "the cancel_bounty",
    )
    revenue.apply_debit(ctx.state, ctx.sender, call.amount, ctx.config.existential_deposit)
    revenue.apply_credit(ctx.state, BOUNTY_ACCOUNT, call.amount)
    bounty_id = NEXT_BOUNTY.get(ctx.state)
    BOUNTIES.apply_set(
        ctx.state,
        Bounty(ctx.sender, call.model, call.dataset, call.target_loss, call.amount, ctx.block.number, call.expires_at),
        bounty_id,
    )
    NEXT_BOUNTY.apply_set(ctx.state, bounty_id + 1)
    ctx.emit(PALLET, "BountyPosted", bounty=bounty_id, model=call.model, dataset=call.dataset, target_loss=target, amount=call.amount)


def apply_claim_bounty(ctx: CallContext, call: ClaimBounty) -> None:
    bounty = get_bounty(ctx.state, call.bounty)
    if bounty.status != "open":
        raise DispatchError(PALLET, "BountyClosed", f"bounty {call.bounty} is {bounty.status}")
    version = models.VERSIONS.get(ctx.state, bounty.model, call.version)
    if version is None:
        raise DispatchError(PALLET, "UnknownVersion", f"model {bounty.model} has no version {call.version}")
    if version.training is None or version.block <= bounty.posted_at:
        raise DispatchError(
            PALLET, "NotEligible", f"version {call.version} was not trained after the bounty was posted (block {bounty.posted_at})"
        )
    spec = _verify_validation(ctx.state, bounty.model, bounty.dataset)
    _, x, y = datasets.get_rows(ctx.state, bounty.dataset)
    weights = models.get_weights(ctx.state, bounty.model, call.version)
    loss = ml_runtime.compute_loss(spec, weights, x, y)
    target = compute_f32_value(bounty.target_loss)
    if loss is None or not float(loss) < target:
        raise DispatchError(
            PALLET, "NotBelowTarget", f"version {call.version}'s loss on data set {bounty.dataset} is {loss}, not below {target}"
        )
    # The bounty is the first qualifying version's: a child of one that already meets the
    # target (one step at lr 1e-30 gives the same weights) claimed it before the version's
    # own trainer did (an outside tester's finding). Each version's parent is checked, so only
    # the first version of a lineage below the target can claim.
    if version.parent is not None:
        parent_loss = ml_runtime.compute_loss(spec, models.get_weights(ctx.state, bounty.model, version.parent), x, y)
        if parent_loss is not None and float(parent_loss) < target:
            raise DispatchError(
                PALLET, "ParentMeetsTarget",
                f"version {call.version}'s parent, version {version.parent}, is below {target} already ({parent_loss}): "
                "the bounty is for the first version that meets it",
            )
    revenue.apply_debit(ctx.state, BOUNTY_ACCOUNT, bounty.amount, 0)
    revenue.apply_credit(ctx.state, version.creator, bounty.amount)
    BOUNTIES.apply_set(
        ctx.state, msgspec.structs.replace(bounty, status="paid", paid_to=version.creator, version=call.version), call.bounty
    )
    ctx.emit(PALLET, "BountyPaid", bounty=call.bounty, version=call.version, trainer=version.creator, loss=float(loss), amount=bounty.amount)


def apply_cancel_bounty(ctx: CallContext, call: CancelBounty) -> None:
    bounty = get_bounty(ctx.state, call.bounty)
    if bounty.poster != ctx.sender:
        raise DispatchError(PALLET, "NotPoster", f"only the poster cancels bounty {call.bounty}")
    if bounty.status != "open":
        raise DispatchError(PALLET, "BountyClosed", f"bounty {call.bounty} is {bounty.status}")
    if ctx.block.number <= bounty.expires_at:
        raise DispatchError(PALLET, "NotExpired", f"bounty {call.bounty} runs until block {bounty.expires_at}")
    revenue.apply_debit(ctx.state, BOUNTY_ACCOUNT, bounty.amount, 0)
    revenue.apply_credit(ctx.state, ctx.sender, bounty.amount)
    BOUNTIES.apply_set(ctx.state, msgspec.structs.replace(bounty, status="cancelled"), call.bounty)
    ctx.emit(PALLET, "BountyCancelled", bounty=call.bounty, amount=bounty.amount)
