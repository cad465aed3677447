"""Models as owned assets: a spec, an owner, and versions with lineage.

Version 0 holds the weights ml_runtime initialises from the registration seed; every TRAIN
call adds a version whose record names its parent version, the data set, the job's
arguments, the transcript root and loss curve, the block and the trainer. Weights are stored
under the state root as float32 little-endian bytes, so a light client can prove them.

Ownership is enforced: only the owner changes a model's training policy and allowlist, and
the policy decides who may train (:func:`verify_may_train`): ``owner`` (the default of a
registered model), ``allowlist``, ``anyone``, ``proposal`` (a shared model's holders choose
who trains it, by governance). A training run pays the model's licence,
``license_per_step`` x steps, to the model (:func:`apply_pay_model`).

Fractional ownership: ``share_model`` turns a model into N shares, an asset with id
``SHARES_BASE + model`` (chain.pallets.assets) all issued to the owner. From then on the model
is owned by its shareholders: owner-only calls fail with OwnedByShareholders (its holders
make those decisions by vote, chain.pallets.governance), "owner" training permission means
any account holding shares, and every payment to the model is split pro rata among the
holders by chain.pallets.revenue, less the share its governance sets aside for its treasury.
"""

from __future__ import annotations

import msgspec
import numpy as np

import ml_runtime
from chain.calls import (
    PPM,
    ClaimRevenue,
    PayModel,
    RegisterModel,
    SetTrainer,
    SetTrainingPolicy,
    ShareModel,
)
from chain.codec import U32, AccountId, Balance, BlockNumber, Hash32, Wire
from chain.errors import DispatchError
from chain.pallets import assets, datasets, revenue
from chain.pallets.balances import apply_move
from chain.pallets.context import AS_DECLARED, CallContext, PostDispatchInfo
from chain.pallets.items import StateAccess, StorageMap, StorageValue

PALLET = "models"


class ModelInfo(Wire, frozen=True):
    owner: AccountId
    name: str
    spec: bytes
    latest_version: U32
    created_at: BlockNumber
    permission: str = "owner"  # one of chain.calls.PERMISSIONS
    license_per_step: Balance = 0  # paid to the model by every training step run on it
    shares: Balance = 0  # 0: not shared; else the supply of asset SHARES_BASE + model
    inference_price: Balance = 0  # paid to the model per row of paid inference (chain.pallets.inference)
    released_version: U32 | None = None  # the version its shareholders adopted (gov.propose_release)


class GovParams(Wire, frozen=True):
    """A shared model's governance rules (chain.pallets.governance), changed by proposal.

    Set when the model is shared, with the periods the runtime config gives new models
    (``gov_voting_blocks``, ``gov_enactment_blocks``: the dev chain votes in 3 blocks, as
    Substrate's ``fast-runtime`` builds shorten their democracy periods).

    ``quorum``: votes cast, in ppm of all shares, for a vote to count; ``threshold``: ayes, in
    ppm of the votes cast, that a proposal must exceed; ``voting_blocks`` and
    ``enactment_blocks``: how long a vote lasts and how long a passed proposal waits;
    ``treasury``: the ppm of every payment to the model set aside for its treasury.
    """

    quorum: U32 = 200_000
    threshold: U32 = 500_000
    voting_blocks: U32 = 20
    enactment_blocks: U32 = 5
    treasury: U32 = 0


class TrainingRecord(Wire, frozen=True):
    """How a version was trained: enough to re-run the job from its parent."""

    extrinsic_hash: Hash32
    dataset: U32
    steps: U32
    batch_size: U32
    lr: U32
    l2: U32
    segment_len: U32
    seed: Hash32
    transcript_root: Hash32
    losses: tuple[U32, ...]
    fee: Balance
    license_paid: Balance


class ModelVersion(Wire, frozen=True):
    weights_hash: Hash32
    parent: U32 | None
    creator: AccountId
    block: BlockNumber
    training: TrainingRecord | None = None


NEXT_MODEL_ID = StorageValue("Models", "NextModelId", int, 0)
MODELS = StorageMap("Models", "Models", ModelInfo)
VERSIONS = StorageMap("Models", "Versions", ModelVersion)
WEIGHTS = StorageMap("Models", "Weights", bytes)
TRAINERS = StorageMap("Models", "Trainers", bool)
# TRAIN extrinsics of this chain whose result a fraud proof showed forged (pol.report_fraud,
# by extrinsic hash), so that what pays for a version can refuse one made by them
# (chain.pallets.bounties). Written only when the faulty block is this chain's own block of
# its number: the same extrinsic may sit in an honest block here and a forged one on a fork.
FORGED = StorageMap("Models", "ForgedTrainings", bool)
GOV_PARAMS = StorageMap("Models", "GovParams", GovParams)  # model -> its rules, once changed from the defaults  # (model, account) -> True: on the allowlist


def get_model(state: StateAccess, model_id: int) -> ModelInfo:
    info = MODELS.get(state, model_id)
    if info is None:
        raise DispatchError(PALLET, "UnknownModel", f"no model with id {model_id}")
    return info


def is_forged(state: StateAccess, version: ModelVersion) -> bool:
    """Whether ``version`` came from a TRAIN whose result was proven forged (:data:`FORGED`)."""
    return version.training is not None and FORGED.get(state, version.training.extrinsic_hash) is not None


def is_version_forged(state: StateAccess, model_id: int, version: int) -> bool:
    """:func:`is_forged` of ``model_id``'s ``version``; False for an unknown version. A TRAIN
    (training.ForgedVersion) and a federated round (federated.ForgedVersion) refuse to start
    from such a version: building on its weights would carry the forgery on."""
    made = VERSIONS.get(state, model_id, version)
    return made is not None and is_forged(state, made)


def compute_default_version(info: ModelInfo) -> int:
    """The version a read or an INFER that names none gets: the one the model's holders
    released (gov.propose_release), else the latest. Any one holder of a shared model may add a
    version, so the latest alone let a 1-share holder override the holders' vote (an outside
    tester's finding, round 5)."""
    return info.latest_version if info.released_version is None else info.released_version


def compute_latest_before(state: StateAccess, model_id: int, info: ModelInfo, number: int) -> int:
    """The version a TRAIN call naming none trains in block #``number``: the model's latest
    version made before that block, or version 0 if the model was registered in it (a TRAIN of
    such a model is refused: training.verify_job_inputs, "ModelTooNew").

    Not the latest when the call runs: a version an earlier call made in the same block made
    which version a call trained depend on its place in the block, which no state shows, and a
    fraud proof naming the version before the block framed the honest author of such a block
    (tester17's H1, round 12). So every TRAIN's job is fixed by its block's parent state alone,
    as validators and fraud-proof checkers rebuild it (consensus/pol.py, chain/fraud.py).
    Versions are made in block order (``ModelVersion.block``), so the walk down from
    ``info.latest_version`` stops at the first version made before block #``number``. In a
    dispatch it reads one version per version made in the block so far, at most its TRAIN
    calls (chain.block.MAX_TRAIN_CALLS) and round closes; on a later state (a job rebuilt
    off-dispatch, training.compute_job_at) it also skips the versions made after the block.
    """
    version = info.latest_version
    while version > 0:
        made = VERSIONS.get(state, model_id, version)
        if made is None or made.block < number:
            break
        version -= 1
    return version


def get_weights(state: StateAccess, model_id: int, version: int) -> np.ndarray:
    raw = WEIGHTS.get(state, model_id, version)
    if raw is None:
        raise DispatchError(PALLET, "UnknownVersion", f"model {model_id} has no version {version}")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def apply_new_model(
    state: StateAccess, owner: bytes, name: str, spec: ml_runtime.ModelSpec, seed: bytes, block: int, max_params: int,
    permission: str = "owner",
) -> int:
    """Register a model and its version 0; returns the new id."""
    if spec.param_count > max_params:
        raise DispatchError(PALLET, "ModelTooLarge", f"{spec.param_count} parameters, the limit is {max_params}")
    model_id = NEXT_MODEL_ID.get(state)
    weights = ml_runtime.init_weights(spec, seed)
    if model_id >= assets.SHARES_BASE:
        raise DispatchError(PALLET, "TooManyModels", f"model ids end at {assets.SHARES_BASE - 1} (share asset ids follow)")
    MODELS.apply_set(state, ModelInfo(owner, name, spec.encode(), 0, block, permission), model_id)
    VERSIONS.apply_set(state, ModelVersion(ml_runtime.hash_weights(weights), None, owner, block), model_id, 0)
    WEIGHTS.apply_set(state, np.asarray(weights, dtype="<f4").tobytes(), model_id, 0)
    NEXT_MODEL_ID.apply_set(state, model_id + 1)
    return model_id


def apply_new_version(
    state: StateAccess, model_id: int, parent: int, weights: np.ndarray, creator: bytes, block: int, record: TrainingRecord | None
) -> int:
    """Store trained weights as the model's next version; returns its number. ``record`` is None
    for a version not made by one TRAIN call (a federated round's aggregate: its lineage is in
    chain.pallets.federated.LINEAGE)."""
    info = get_model(state, model_id)
    version = info.latest_version + 1
    VERSIONS.apply_set(state, ModelVersion(ml_runtime.hash_weights(weights), parent, creator, block, record), model_id, version)
    WEIGHTS.apply_set(state, np.asarray(weights, dtype="<f4").tobytes(), model_id, version)
    MODELS.apply_set(state, msgspec.structs.replace(info, latest_version=version), model_id)
    return version


# Work units of register_model (about 1 ns each, as a transfer's 100,000): the record and
# version 0's, then per parameter initialising it, hashing its 4 bytes and writing them under
# the state root: about 94 ns a parameter (benches/weights.py, 2^18 parameters in 25 ms). At a
# fixed 1,000,000 units one block registered 2,000 models of max_model_params: 2 GiB of
# weights written and about 50 s to import; now about 38 such models a block (38 MiB).
REGISTER_BASE_WEIGHT = 1_000_000
PARAM_WEIGHT = 200


def compute_register_weight(call: RegisterModel) -> int:
    """The base, plus PARAM_WEIGHT per parameter of the spec (base only for a spec that does
    not decode: the call fails before any work)."""
    try:
        spec = ml_runtime.ModelSpec.decode(call.spec)
    except ml_runtime.MLRuntimeError:
        return REGISTER_BASE_WEIGHT
    return REGISTER_BASE_WEIGHT + PARAM_WEIGHT * spec.param_count


def compute_register_bytes(call: RegisterModel) -> int:
    """The bytes a registration stores for good beyond its own: version 0's weights, 4 a
    parameter of the spec (none for a spec that does not decode: the call fails before any
    work). Paid at byte_fee (chain.runtime.DispatchInfo.stored_bytes), as a TRAIN pays for the
    new weights in its result."""
    try:
        spec = ml_runtime.ModelSpec.decode(call.spec)
    except ml_runtime.MLRuntimeError:
        return 0
    return 4 * spec.param_count


def compute_weights_read_weight(spec: ml_runtime.ModelSpec) -> int:
    """What reading one version's weights costs (:func:`get_weights`: 4 bytes a parameter),
    at datasets.READ_BYTE_WEIGHT a byte, as reading a data set's rows."""
    return datasets.READ_BYTE_WEIGHT * 4 * spec.param_count


def find_spec(state: StateAccess, model_id: int) -> ml_runtime.ModelSpec | None:
    """Model ``model_id``'s spec, for pricing a call before dispatch; None for an unknown model
    or a spec that does not decode (the call fails at once)."""
    model = MODELS.get(state, model_id)
    if model is None:
        return None
    try:
        return ml_runtime.ModelSpec.decode(model.spec)
    except ml_runtime.MLRuntimeError:
        return None


def decode_spec(raw: bytes) -> ml_runtime.ModelSpec:
    try:
        return ml_runtime.ModelSpec.decode(raw)
    except ml_runtime.MLRuntimeError as exc:
        raise DispatchError(PALLET, "InvalidSpec", f"model spec: {exc}") from None


def apply_register_model(ctx: CallContext, call: RegisterModel) -> None:
    ctx.post_info = PostDispatchInfo(actual_weight=REGISTER_BASE_WEIGHT, actual_stored_bytes=0)  # refused before any parameter is made
    spec = decode_spec(call.spec)
    model_id = apply_new_model(
        ctx.state, ctx.sender, call.name, spec, call.init_seed, ctx.block.number, ctx.config.max_model_params
    )
    ctx.post_info = AS_DECLARED
    ctx.emit(PALLET, "ModelRegistered", model=model_id, owner=ctx.sender, spec_hash=spec.hash())


def verify_owner(state: StateAccess, model_id: int, who: bytes) -> ModelInfo:
    """The model, if ``who`` may act as its owner: the registrant, while it is not shared."""
    info = get_model(state, model_id)
    if info.shares:
        raise DispatchError(
            PALLET, "OwnedByShareholders", f"model {model_id} is owned by its shareholders; its owner no longer decides alone"
        )
    if info.owner != who:
        raise DispatchError(PALLET, "NotOwner", f"only the owner of model {model_id} may do this")
    return info


def verify_may_train(state: StateAccess, model_id: int, who: bytes) -> ModelInfo:
    """The model, if its training permission lets ``who`` train it; else NotAllowedToTrain."""
    info = get_model(state, model_id)
    if info.permission == "anyone":
        return info
    if info.shares:
        is_owner = assets.get_balance(state, assets.compute_shares_asset(model_id), who) > 0
    else:
        is_owner = info.owner == who
    listed = TRAINERS.get(state, model_id, who)
    if info.permission == "proposal":  # only whom adopted proposals allow, holders included
        if listed:
            return info
    elif is_owner or (info.permission == "allowlist" and listed):
        return info
    who_may = {"owner": "its owner", "allowlist": "its owner and allowlist", "proposal": "accounts adopted proposals allow"}
    raise DispatchError(
        PALLET, "NotAllowedToTrain", f"model {model_id}'s training permission is {info.permission!r}: only {who_may[info.permission]} may train it"
    )


def apply_pay_model(state: StateAccess, model_id: int, payer: bytes, amount: int, existential_deposit: int) -> int:
    """Pay ``amount`` to a model: pro rata to its shareholders (O(1), chain.pallets.revenue),
    or to its owner while unshared. Returns the rounding dust moved to the dust account."""
    info = get_model(state, model_id)
    if amount == 0:
        return 0
    if not info.shares:
        apply_move(state, payer, info.owner, amount, existential_deposit)
        return 0
    set_aside = amount * get_gov_params(state, model_id).treasury // PPM
    if set_aside:
        revenue.apply_set_aside(state, model_id, payer, set_aside, existential_deposit)
    if amount == set_aside:
        return 0
    return revenue.apply_pay(state, model_id, payer, amount - set_aside, existential_deposit)


def get_gov_params(state: StateAccess, model_id: int) -> GovParams:
    return GOV_PARAMS.get(state, model_id) or GovParams()


def apply_set_training_policy(ctx: CallContext, call: SetTrainingPolicy) -> None:
    info = verify_owner(ctx.state, call.model, ctx.sender)
    if call.permission == "proposal":
        raise DispatchError(
            PALLET, "PermissionNotSupported", "training 'by proposal' is for shared models: their holders adopt it with gov.propose_policy"
        )
    MODELS.apply_set(ctx.state, msgspec.structs.replace(info, permission=call.permission, license_per_step=call.license_per_step), call.model)
    ctx.emit(PALLET, "TrainingPolicySet", model=call.model, permission=call.permission, license_per_step=call.license_per_step)


def apply_set_trainer(ctx: CallContext, call: SetTrainer) -> None:
    verify_owner(ctx.state, call.model, ctx.sender)
    if call.allowed:
        TRAINERS.apply_set(ctx.state, True, call.model, call.who)
    else:
        TRAINERS.apply_delete(ctx.state, call.model, call.who)
    ctx.emit(PALLET, "TrainerSet", model=call.model, who=call.who, allowed=call.allowed)


def apply_share_model(ctx: CallContext, call: ShareModel) -> None:
    info = verify_owner(ctx.state, call.model, ctx.sender)
    if call.shares < 1:
        raise DispatchError(PALLET, "InvalidShares", "a model is shared into at least 1 share")
    asset = assets.compute_shares_asset(call.model)
    assets.apply_new_asset(ctx.state, asset, assets.MODELS_ACCOUNT, assets.MODELS_ACCOUNT, 1, 0)
    assets.apply_metadata(ctx.state, asset, f"{info.name} shares"[:64], f"M{call.model}"[:16], 0)
    revenue.apply_open_pool(ctx.state, call.model, call.shares)
    cfg = ctx.config
    GOV_PARAMS.apply_set(ctx.state, GovParams(voting_blocks=cfg.gov_voting_blocks, enactment_blocks=cfg.gov_enactment_blocks), call.model)
    revenue.apply_settle(ctx.state, call.model, ctx.sender, 0)  # the owner's debt starts at acc = 0
    assets.apply_mint(ctx.state, asset, ctx.sender, call.shares)
    MODELS.apply_set(ctx.state, msgspec.structs.replace(info, shares=call.shares), call.model)
    ctx.emit(PALLET, "ModelShared", model=call.model, owner=ctx.sender, asset=asset, shares=call.shares)


def apply_claim_revenue(ctx: CallContext, call: ClaimRevenue) -> None:
    info = get_model(ctx.state, call.model)
    if not info.shares:
        raise DispatchError(PALLET, "NotShared", f"model {call.model} has not been shared")
    shares = assets.get_balance(ctx.state, assets.compute_shares_asset(call.model), ctx.sender)
    amount = revenue.apply_claim(ctx.state, call.model, ctx.sender, shares)
    ctx.emit(PALLET, "RevenueClaimed", model=call.model, who=ctx.sender, amount=amount)


def apply_pay_model_call(ctx: CallContext, call: PayModel) -> None:
    if call.amount == 0:
        raise DispatchError(PALLET, "ZeroAmount", "a payment is at least 1 unit")
    dust = apply_pay_model(ctx.state, call.model, ctx.sender, call.amount, ctx.config.existential_deposit)
    ctx.emit(PALLET, "ModelPaid", model=call.model, who=ctx.sender, amount=call.amount, dust=dust)
