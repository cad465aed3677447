"""Models as owned assets: a spec, an owner, and versions with lineage.

Version 0 holds the weights ml_runtime initialises from the registration seed; every TRAIN
call adds a version whose record names its parent version, the data set, the job's
arguments, the transcript root and loss curve, the block and the trainer. Weights are stored
under the state root as float32 little-endian bytes, so a light client can prove them.
"""

from __future__ import annotations

import numpy as np

import ml_runtime
from chain.calls import RegisterModel
from chain.codec import U32, AccountId, Balance, BlockNumber, Hash32, Wire
from chain.errors import DispatchError
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue

PALLET = "models"


class ModelInfo(Wire, frozen=True):
    owner: AccountId
    name: str
    spec: bytes
    latest_version: U32
    created_at: BlockNumber


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


def get_model(state: StateAccess, model_id: int) -> ModelInfo:
    info = MODELS.get(state, model_id)
    if info is None:
        raise DispatchError(PALLET, "UnknownModel", f"no model with id {model_id}")
    return info


def get_weights(state: StateAccess, model_id: int, version: int) -> np.ndarray:
    raw = WEIGHTS.get(state, model_id, version)
    if raw is None:
        raise DispatchError(PALLET, "UnknownVersion", f"model {model_id} has no version {version}")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def apply_new_model(
    state: StateAccess, owner: bytes, name: str, spec: ml_runtime.ModelSpec, seed: bytes, block: int, max_params: int
) -> int:
    """Register a model and its version 0; returns the new id."""
    if spec.param_count > max_params:
        raise DispatchError(PALLET, "ModelTooLarge", f"{spec.param_count} parameters, the limit is {max_params}")
    model_id = NEXT_MODEL_ID.get(state)
    weights = ml_runtime.init_weights(spec, seed)
    MODELS.apply_set(state, ModelInfo(owner, name, spec.encode(), 0, block), model_id)
    VERSIONS.apply_set(state, ModelVersion(ml_runtime.hash_weights(weights), None, owner, block), model_id, 0)
    WEIGHTS.apply_set(state, np.asarray(weights, dtype="<f4").tobytes(), model_id, 0)
    NEXT_MODEL_ID.apply_set(state, model_id + 1)
    return model_id


def apply_new_version(
    state: StateAccess, model_id: int, parent: int, weights: np.ndarray, creator: bytes, block: int, record: TrainingRecord
) -> int:
    """Store trained weights as the model's next version; returns its number."""
    info = get_model(state, model_id)
    version = info.latest_version + 1
    VERSIONS.apply_set(state, ModelVersion(ml_runtime.hash_weights(weights), parent, creator, block, record), model_id, version)
    WEIGHTS.apply_set(state, np.asarray(weights, dtype="<f4").tobytes(), model_id, version)
    MODELS.apply_set(state, ModelInfo(info.owner, info.name, info.spec, version, info.created_at), model_id)
    return version


def decode_spec(raw: bytes) -> ml_runtime.ModelSpec:
    try:
        return ml_runtime.ModelSpec.decode(raw)
    except ml_runtime.MLRuntimeError as exc:
        raise DispatchError(PALLET, "InvalidSpec", f"model spec: {exc}") from None


def apply_register_model(ctx: CallContext, call: RegisterModel) -> None:
    spec = decode_spec(call.spec)
    model_id = apply_new_model(
        ctx.state, ctx.sender, call.name, spec, call.init_seed, ctx.block.number, ctx.config.max_model_params
    )
    ctx.emit(PALLET, "ModelRegistered", model=model_id, owner=ctx.sender, spec_hash=spec.hash())
