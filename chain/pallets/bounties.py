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
wins; a trainer claims as soon as their version exists (``polchain tx claim-bounty``). And a
version is paid only if it is the first of its lineage to meet the target: every ancestor
trained after the bounty was posted, and the nearest one before, is evaluated too (nearest
first), and one below the target refuses the claim (AncestorMeetsTarget). Checking the parent
alone let a copier take the bounty with a detour: two one-step TRAINs at lr 2^-100 and l2
2^101 negate the weights twice, so the copy has the qualifying version's weights bit for bit
while its parent is far above the target (an outside tester's finding, round 4). Any detour
from a qualifying version keeps it in the copy's lineage. The walk takes at most
:data:`MAX_CLAIM_LINEAGE` (8) versions trained after the posting (LineageTooLong beyond: a
copier must not be able to outrun the check; a trainer reaches the target in at most eight
TRAINs of its lineage, each up to max_train_steps), and the claim's weight pays one forward
pass for each version evaluated. A bounty is refused at posting when such a claim would not
fit a block (ValidationTooCostly): an unbounded walk let two TRAINs on a mid-size model
make an honest claim heavier than any block (a reviewer's finding). The negating step
itself is refused too (training.verify_decay: lr * l2 < 1), so a twin of a version that met
the target before the posting cannot be kept ready either. What no rule of this kind stops:
the qualifying weights are public once their version exists, so someone could distil them
approximately into another lineage of the model, by a gradient made up for them (a data set
of its own and a large learning rate). A trainer narrows that window by sending the claim right after
the TRAIN (the next nonce), so it lands in the same block.

"Measures": a TRAIN's result is checked by validators that each re-run a sample of its
segments (consensus.pol), so a block author can forge one segment of a sybil's TRAIN, put the
sybil's claim in the same block, and pass every validator that did not sample it (each
catches one forged segment of S with probability pol_samples / S, and the sender picks S). A
fraud proof after the block is in (pol.report_fraud) slashes the author, which a bounty may
far exceed (an outside tester's finding, round 5: 1,000 POL against a 0.5 POL slash). So a
qualifying claim is not paid at once: it is held for :data:`ESCROW_BLOCKS` (status
``claimed``), time for anyone, the poster first, to re-run the lineage's training in full
(an auditor, ``polchain node --pol full``, does it for every block and gossips what it finds). A
fraud proven meanwhile in a block of this chain marks the TRAIN forged (models.FORGED; also
when its author was slashed already or has left the set, and for each forged TRAIN of a
block, so a second forgery is not free), and the claim is voided: the bounty is open again
(BountyClaimVoided). What is checked is the TRAINs of the claim's lineage since the posting
(recorded with the claim, ``trainings``): a version from before it is where a lineage may
start. A claim is settled by sending claim_bounty again, naming the same version (anyone
may): voided if one of those TRAINs is forged, at any time; else paid from ``release_at`` on
(Escrowed before). A claim
comes within :func:`compute_claim_window` blocks of its version's block (ClaimTooLate), so
that its fraud stays provable through the escrow; a qualifying version not claimed in time
shuts its own descendants out (AncestorMeetsTarget), and the bounty goes to another branch.
Versions of the lineage older than the fraud-proof window (4,095 blocks) are past proving: a
forger who made one just above the target and waited that long before the honest last step
would be paid; an auditor that re-runs each block as it comes closes that too. A trainer
should check the version it trains from: a forgery in it proven during the hold voids the
claim. A TRAIN from a version proven forged is refused (training.ForgedVersion).
The validation data set holds at most ``ml_runtime.MAX_BATCH`` rows (the evaluation is one
batch), and must fit the model (family, features, outputs) as training data would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

import ml_runtime
from chain.calls import CancelBounty, ClaimBounty, PostBounty, compute_f32_value
from chain.codec import U32, AccountId, Balance, BlockNumber, Hash32, Wire
from chain.errors import DispatchError
from chain.pallets import balances, datasets, models, revenue, system
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
#: The most versions trained after a bounty was posted that a claim's lineage may hold (module
#: docstring); a bounty is refused at posting if a claim evaluating that many, and the claimed
#: version and the nearest one from before the posting, would not fit a block (ValidationTooCostly).
MAX_CLAIM_LINEAGE = 8
#: Reading one version record of a claim's lineage (a state read of a few hundred bytes, about 5 us).
LINEAGE_READ_WEIGHT = 60_000
#: Blocks a claimed bounty is held before it is paid (2 hours of 6 s slots): time for anyone,
#: the poster first, to re-run the claimed lineage's training in full and prove a forged
#: segment (pol.report_fraud), which voids the claim (module docstring).
ESCROW_BLOCKS = 1_200
#: Settling a held claim: the bounty, and whether each TRAIN it rests on was proven forged
#: (a state read each). Below config.MIN_BLOCK_WEIGHT, so that no referendum can leave a held
#: claim unsettled (a reviewer's finding: it read each version's record again, 1.5 M units).
SETTLE_WEIGHT = BOUNTY_BASE_WEIGHT + (MAX_CLAIM_LINEAGE + 1) * LINEAGE_READ_WEIGHT


def compute_claim_window() -> int:
    """How many blocks after its version's block a claim may come: a fraud proof reaches back
    system.BLOCK_HASH_COUNT - 1 blocks (pol: the faulty block's parent must be one this state
    names), and the claimed version's must stay provable through the escrow."""
    return system.BLOCK_HASH_COUNT - 1 - ESCROW_BLOCKS


class Bounty(Wire, frozen=True):
    poster: AccountId
    model: U32
    dataset: U32
    target_loss: U32  # float32 bits
    amount: Balance
    posted_at: BlockNumber
    expires_at: BlockNumber
    status: str = "open"  # open, claimed (held until release_at), paid, cancelled
    paid_to: AccountId | None = None
    version: U32 | None = None
    release_at: BlockNumber | None = None
    # A held claim's TRAINs since the posting (extrinsic hashes, the claimed version's first):
    # a fraud proven in any of them voids it (models.FORGED).
    trainings: tuple[Hash32, ...] = ()


NEXT_BOUNTY = StorageValue("Models", "NextBounty", int, 0)
BOUNTIES = StorageMap("Models", "Bounties", Bounty)


def get_bounty(state: StateAccess, bounty_id: int) -> Bounty:
    bounty = BOUNTIES.get(state, bounty_id)
    if bounty is None:
        raise DispatchError(PALLET, "UnknownBounty", f"no bounty {bounty_id}")
    return bounty


def compute_claim_weight(state: StateAccess, call: ClaimBounty) -> int:
    """The base, plus reading the validation rows (datasets.compute_read_weight), plus for the
    claimed version and each ancestor :func:`apply_claim_bounty` evaluates (at most
    MAX_CLAIM_LINEAGE + 1 of them) reading its record and weights and one forward pass over the
    rows."""
    bounty = BOUNTIES.get(state, call.bounty)
    if bounty is None:
        return BOUNTY_BASE_WEIGHT
    if bounty.status == "claimed":
        return SETTLE_WEIGHT
    info = models.MODELS.get(state, bounty.model)
    data = datasets.DATASETS.get(state, bounty.dataset)
    version = models.VERSIONS.get(state, bounty.model, call.version)
    if info is None or data is None or version is None:
        return BOUNTY_BASE_WEIGHT
    try:
        spec = ml_runtime.ModelSpec.decode(info.spec)
    except ml_runtime.MLRuntimeError:
        return BOUNTY_BASE_WEIGHT
    return compute_claim_cost(spec, data, 1 + len(compute_lineage(state, bounty, version)[0]))


def compute_claim_cost(spec: ml_runtime.ModelSpec, data: datasets.DatasetInfo, versions: int) -> int:
    """The weight of a claim that evaluates ``versions`` versions of a ``spec`` model on ``data``:
    the base, reading the rows, and for each version its record and weights read and a
    forward pass over the rows."""
    rows = max(1, min(data.row_count, ml_runtime.MAX_BATCH))
    per_version = LINEAGE_READ_WEIGHT + models.compute_weights_read_weight(spec) + ml_runtime.step_cost(spec, rows)
    return BOUNTY_BASE_WEIGHT + datasets.compute_read_weight(data) + versions * per_version


def compute_lineage(state: StateAccess, bounty: Bounty, version: models.ModelVersion) -> tuple[list[int], bool]:
    """The ancestors of ``version`` a claim evaluates, nearest first: those trained after the
    bounty was posted and the nearest one before (if any); and whether there are more than
    MAX_CLAIM_LINEAGE of the former (the claim is refused; the walk stops at the one too many)."""
    ancestors: list[int] = []
    parent = version.parent
    while parent is not None:
        record = models.VERSIONS.get(state, bounty.model, parent)
        if record is None:  # never: a version's parent exists
            break
        if record.block > bounty.posted_at and len(ancestors) == MAX_CLAIM_LINEAGE:
            return ancestors, True
        ancestors.append(parent)
        if record.block <= bounty.posted_at:
            break
        parent = record.parent
    return ancestors, False


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
    spec = _verify_validation(ctx.state, call.model, call.dataset)
    longest = compute_claim_cost(spec, datasets.get_dataset(ctx.state, call.dataset), MAX_CLAIM_LINEAGE + 2)
    if longest > ctx.config.max_block_weight:
        raise DispatchError(
            PALLET, "ValidationTooCostly",
            f"a claim may evaluate {MAX_CLAIM_LINEAGE + 2} versions of model {call.model} on data set {call.dataset}: "
            f"{longest:,} units, more than a block's {ctx.config.max_block_weight:,}; use fewer rows",
        )
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
    if bounty.status == "claimed":
        _apply_settle(ctx, call, bounty)
        return
    if bounty.status != "open":
        raise DispatchError(PALLET, "BountyClosed", f"bounty {call.bounty} is {bounty.status}")
    version = models.VERSIONS.get(ctx.state, bounty.model, call.version)
    if version is None:
        raise DispatchError(PALLET, "UnknownVersion", f"model {bounty.model} has no version {call.version}")
    if version.training is None or version.block <= bounty.posted_at:
        raise DispatchError(
            PALLET, "NotEligible", f"version {call.version} was not trained after the bounty was posted (block {bounty.posted_at})"
        )
    if version.block + compute_claim_window() < ctx.block.number:
        raise DispatchError(
            PALLET, "ClaimTooLate",
            f"version {call.version} was made in block {version.block}; a claim comes within {compute_claim_window():,} "
            f"blocks of it, so that a forgery of its training can still be proven while the bounty is held",
        )
    ancestors, too_long = compute_lineage(ctx.state, bounty, version)
    if too_long:
        raise DispatchError(
            PALLET, "LineageTooLong",
            f"version {call.version} has more than {MAX_CLAIM_LINEAGE} ancestors trained after the bounty was posted: "
            "a claim checks each of them",
        )
    trainings = _compute_trainings(ctx.state, bounty, (call.version, *ancestors))
    forged = _find_forged(ctx.state, trainings)
    if forged is not None:
        raise DispatchError(
            PALLET, "ForgedLineage",
            f"version {call.version}'s lineage since the posting holds a TRAIN proven forged (extrinsic 0x{forged.hex()})",
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
    # The bounty is the first qualifying version's, in its lineage (module docstring): a copy
    # of a version below the target, one step at lr 1e-30 from it or a detour of any length,
    # claimed it before the version's own trainer did (outside testers' findings, rounds 3 and 4).
    for ancestor in ancestors:
        ancestor_loss = ml_runtime.compute_loss(spec, models.get_weights(ctx.state, bounty.model, ancestor), x, y)
        if ancestor_loss is not None and float(ancestor_loss) < target:
            raise DispatchError(
                PALLET, "AncestorMeetsTarget",
                f"version {call.version}'s ancestor, version {ancestor}, is below {target} already ({ancestor_loss}): "
                "the bounty is for the first version of a lineage that meets it",
            )
    release_at = ctx.block.number + ESCROW_BLOCKS
    BOUNTIES.apply_set(
        ctx.state,
        msgspec.structs.replace(
            bounty, status="claimed", paid_to=version.creator, version=call.version, release_at=release_at, trainings=trainings
        ),
        call.bounty,
    )
    ctx.emit(
        PALLET, "BountyClaimed", bounty=call.bounty, version=call.version, trainer=version.creator, loss=float(loss),
        amount=bounty.amount, release_at=release_at,
    )


def _compute_trainings(state: StateAccess, bounty: Bounty, versions: tuple[int, ...]) -> tuple[bytes, ...]:
    """The TRAIN extrinsics that made those of ``versions`` trained in the posting block or
    after it. A version from before the posting is where a lineage may start, whatever made
    it: checking it too let a forger who made one prove it at the last block of an honest
    trainer's hold, voiding the claim of a version honestly trained from it (a reviewer's
    finding, round 5). The posting block's own are checked: its author orders the block and
    sees the target, and a TRAIN forged there just above it, then trained on honestly, was
    paid though proven forged (the next reviewer's finding)."""
    out = []
    for v in versions:
        record = models.VERSIONS.get(state, bounty.model, v)
        if record is not None and record.training is not None and record.block >= bounty.posted_at:
            out.append(record.training.extrinsic_hash)
    return tuple(out)


def _find_forged(state: StateAccess, trainings: tuple[bytes, ...]) -> bytes | None:
    """The first of ``trainings`` proven forged (models.FORGED), or None."""
    return next((h for h in trainings if models.FORGED.get(state, h) is not None), None)


def _apply_settle(ctx: CallContext, call: ClaimBounty, bounty: Bounty) -> None:
    """A held claim, settled by a second claim_bounty naming the same version, from anyone:
    voided (the bounty open again) if a version its lineage stands on was proven forged
    meanwhile, at any time; else paid to the trainer from ``release_at`` on (Escrowed before)."""
    assert bounty.version is not None and bounty.paid_to is not None and bounty.release_at is not None
    if call.version != bounty.version:
        raise DispatchError(PALLET, "BountyClosed", f"bounty {call.bounty} is claimed by version {bounty.version}")
    forged = _find_forged(ctx.state, bounty.trainings)
    if forged is not None:
        BOUNTIES.apply_set(
            ctx.state,
            msgspec.structs.replace(bounty, status="open", paid_to=None, version=None, release_at=None, trainings=()),
            call.bounty,
        )
        ctx.emit(PALLET, "BountyClaimVoided", bounty=call.bounty, version=bounty.version, forged_training=forged)
        return
    if ctx.block.number < bounty.release_at:
        raise DispatchError(
            PALLET, "Escrowed",
            f"bounty {call.bounty} is held for version {bounty.version} until block {bounty.release_at}: time for a fraud "
            "proof of its training",
        )
    revenue.apply_debit(ctx.state, BOUNTY_ACCOUNT, bounty.amount, 0)
    revenue.apply_credit(ctx.state, bounty.paid_to, bounty.amount)
    BOUNTIES.apply_set(ctx.state, msgspec.structs.replace(bounty, status="paid"), call.bounty)
    ctx.emit(PALLET, "BountyPaid", bounty=call.bounty, version=bounty.version, trainer=bounty.paid_to, amount=bounty.amount)


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
