"""The TRAIN opcode: SGD on a model version with a data set, producing a new version.

Dispatch order: check that the model's training permission admits the sender
(NotAllowedToTrain, before any other work: only TRAIN_BASE_WEIGHT is charged; a failure
after it is charged the base and reading the data set, datasets.compute_read_weight); check the
arguments against the runtime's limits; load the model version and the data
set and check they fit each other; check the data set's licence terms and pay its provider
price x rows used (chain.pallets.licenses); pay the model's licence (license_per_step x
steps) pro rata to its shareholders, or to its owner while unshared; then either train (authoring: run the job with the block's trainer, put its
result in the block and its openings in the author's store) or take the author's result
(importing: check it cheaply, record a TrainingClaim that the chain's verifier checks once
the block's roots match its header); store the new version with its lineage record; emit
events. The fee, charged before dispatch by the executive, covers the work
(TRAIN_BASE_WEIGHT for the reads, reading the data set's rows, plus ml_runtime's cost model
x steps), the result's
bytes (chain.proofs.compute_result_length) and the transcript's, the checkpoints its author
stores (chain.proofs.compute_transcript_bytes; the executive refuses a call, and a block,
whose transcripts exceed ``max_transcript_bytes``, as it does for weight). A call that fails
before the job runs (an unknown data set, say) reports only TRAIN_BASE_WEIGHT (plus reading
the data set's rows once it passed the permission check, as above) and no result or transcript
bytes, and the executive refunds the rest; once the job has run (also if it
diverged), the whole.

The job seed is blake2_256(parent block hash || extrinsic hash): fixed for the block, yet
unknown to the sender when they sign, so nobody picks the batches.
"""

from __future__ import annotations

import msgspec
import numpy as np

import ml_runtime
from chain.calls import Train, compute_f32_value
from chain.codec import MAX_BALANCE
from chain.config import RuntimeConfig
from chain.crypto import blake2_256
from chain.errors import BlockError, DispatchError
from chain.pallets import datasets, licenses, models
from chain.pallets.context import AS_DECLARED, CallContext, PostDispatchInfo
from chain.pallets.items import StateAccess, StorageMap
from chain.proofs import (
    TrainingClaim,
    TrainingResult,
    compute_openings,
    compute_result,
)

PALLET = "training"


class TrainingReceipt(msgspec.Struct, frozen=True, array_like=True):
    """Where a TRAIN extrinsic's result lives: the model version it created."""

    model: int
    version: int
    block: int


RECEIPTS = StorageMap("Training", "Receipts", TrainingReceipt)


# Work units of what every TRAIN call does before its job runs: reading the model's weights
# and the data set's rows, checking the arguments.
TRAIN_BASE_WEIGHT = 1_000_000


def compute_job_seed(parent_hash: bytes, extrinsic_hash: bytes) -> bytes:
    return blake2_256(parent_hash + extrinsic_hash)


def verify_decay(pallet: str, lr: float, l2: float) -> None:
    """DecayTooLarge unless lr * l2 < 1 (exact: the product of two float32 fits a float64). A
    step scales the weights by 1 - lr * l2 before the gradient: at 1 or more it zeroes or
    flips them, which no training does, and lr 2^-100 with l2 2^101 turned every weight w into
    -w bit for bit, so two such steps copied any version's weights (an outside tester's
    bounty copier, round 4). Copying public weights approximately, by a gradient made up for
    them, no argument check can stop (chain.pallets.bounties)."""
    if lr * l2 >= 1:
        raise DispatchError(pallet, "DecayTooLarge", f"lr * l2 must be below 1 (the weights' decay per step), got {lr * l2}")


def verify_arguments(call: Train, max_steps: int, max_batch: int, max_segments: int) -> None:
    """Raise DispatchError for arguments outside the runtime's limits (before any work)."""
    lr, l2 = compute_f32_value(call.lr), compute_f32_value(call.l2)
    if not 1 <= call.steps <= max_steps:
        raise DispatchError(PALLET, "InvalidSteps", f"steps must be in 1..{max_steps}, got {call.steps}")
    if not 1 <= call.batch_size <= max_batch:
        raise DispatchError(PALLET, "InvalidBatchSize", f"batch_size must be in 1..{max_batch}, got {call.batch_size}")
    if not (np.isfinite(lr) and lr > 0):
        raise DispatchError(PALLET, "InvalidLearningRate", f"lr must be a finite float32 > 0, got {lr}")
    if not (np.isfinite(l2) and l2 >= 0):
        raise DispatchError(PALLET, "InvalidDecay", f"l2 must be a finite float32 >= 0, got {l2}")
    verify_decay(PALLET, lr, l2)
    if not 1 <= call.segment_len <= call.steps:
        raise DispatchError(PALLET, "InvalidSegmentLength", f"segment_len must be in 1..steps ({call.steps}), got {call.segment_len}")
    segments = -(-call.steps // call.segment_len)
    if segments > max_segments:
        raise DispatchError(
            PALLET, "TooManySegments", f"{segments} segments (steps / segment_len); the limit is {max_segments}"
        )


def verify_admissible(_state: StateAccess, _sender: bytes, call: Train, _number: int, config: RuntimeConfig) -> None:
    """A pool's check of a TRAIN call (chain.runtime.CallRow.admit): its arguments, which no
    state makes right."""
    verify_arguments(call, config.max_train_steps, config.max_train_batch, config.max_segments)


def compute_job_at(
    state: StateAccess, config: RuntimeConfig, call: Train, parent_hash: bytes, extrinsic_hash: bytes, number: int,
    *, read_weights: bool = True,
) -> tuple[ml_runtime.TrainingJob, int, datasets.DatasetInfo]:
    """The job a TRAIN call describes in block #``number`` (whose parent is ``parent_hash``),
    read from ``state`` (the state of the block's parent), with its parent version and data
    set; DispatchError as the dispatch would raise it.

    Usable outside a dispatch: a fraud-proof check rebuilds the job with it from any state
    that holds the model version and the data set (both are immutable once written); a call
    naming no version trains the latest made before block #``number``
    (models.compute_latest_before), which a later state still tells. ``read_weights=False``:
    the job starts from zeros and its version is not read, for a check that re-runs segments
    from opened checkpoints only (every fraud proof's but a start fault's): the version may be
    one made earlier in the block itself, which the parent state does not hold, and a forgery
    in such a job was proven to the sampler that caught it and to no other node (an outside
    tester's M1, round 12).
    """
    spec, parent, weights, info = verify_job_inputs(state, config, call, number, read_weights=read_weights)
    return _compute_job(state, call, spec, weights, parent_hash, extrinsic_hash), parent, info


def verify_job_inputs(
    state: StateAccess, config: RuntimeConfig, call: Train, number: int, *, read_weights: bool = True
) -> tuple[ml_runtime.ModelSpec, int, np.ndarray, datasets.DatasetInfo]:
    """Every check of a TRAIN call's job in block #``number`` that reads no row of its data
    set: the arguments, the model and the version it starts from (:func:`compute_parent`), and
    the data set complete, of the model's kind and shape, and with a batch's rows. Returns the
    model's spec, that version and its weights, and the data set's record."""
    verify_arguments(call, config.max_train_steps, config.max_train_batch, config.max_segments)
    model = models.get_model(state, call.model)
    first = models.VERSIONS.get(state, call.model, 0)
    if first is not None and first.block >= number:
        # The job must be one its block's parent state describes: a model registered in the
        # block itself is not there, so no node could check a fraud proof of such a job at the
        # parent state, and the runtime refused one on chain too (version 0 made in the block):
        # a forged segment was caught by the samplers that drew it, who refused the block,
        # while the rest kept it and its author went unpunished (an outside retest, round 12).
        raise DispatchError(
            PALLET, "ModelTooNew",
            f"model {call.model} was registered in block #{first.block}: train it from a later block",
        )
    spec = models.decode_spec(model.spec)
    parent = compute_parent(state, model, call, number)
    _verify_made_before(state, call.model, parent, number)
    weights = models.get_weights(state, call.model, parent) if read_weights else np.zeros(spec.param_count, dtype=np.float32)
    info = datasets.get_complete_dataset(state, call.dataset)
    if info.completed_in >= number:
        # As a model registered in the block (above): the parent state holds the data set
        # incomplete, so a fraud proof of a job on it could be judged by no node there.
        raise DispatchError(
            PALLET, "DatasetTooNew",
            f"data set {call.dataset} was completed in block #{info.completed_in}: train on it from a later block",
        )
    wanted = "regression" if spec.family == "linear" else "classification"
    if info.kind != wanted or info.features != spec.d or info.outputs != spec.k:
        raise DispatchError(
            PALLET, "DatasetMismatch",
            f"model {call.model} ({spec.family}, d={spec.d}, k={spec.k}) cannot train on data set {call.dataset} "
            f"({info.kind}, {info.features} features, {info.outputs} outputs)",
        )
    if call.batch_size > info.row_count:
        raise DispatchError(PALLET, "InvalidBatchSize", f"batch_size {call.batch_size} exceeds the data set's {info.row_count} rows")
    return spec, parent, weights, info


def _verify_made_before(state: StateAccess, model: int, version: int, number: int) -> None:
    """The version a TRAIN trains must have been made before its block #``number``, as its model
    and data set must (above). The latest before the block, which a call naming none trains
    (models.compute_latest_before), always is; a named one must be too, so that the job is the
    one the block's parent state describes, on every fork that shares that parent. A call naming a version an earlier call of its block
    made trained other weights on each fork that made a version of that number: a block that
    lost a fork race, with such a pair of calls, was judged on the winning chain against that
    chain's version, and a start-fault report built from the honest block's own opening slashed
    its author (an outside tester's P1, round 14). A fraud proof's job is rebuilt through this
    check too (chain.fraud), so a version the reporting chain made at or after the block's
    height is refused there ("unknown_job"), whatever the block did."""
    made = models.VERSIONS.get(state, model, version)
    if made is None:
        raise DispatchError(models.PALLET, "UnknownVersion", f"model {model} has no version {version}")
    if made.block >= number:
        raise DispatchError(
            PALLET, "VersionTooNew", f"version {version} of model {model} was made in block #{made.block}: train it from a later block"
        )


def compute_parent(state: StateAccess, model: models.ModelInfo, call: Train, number: int) -> int:
    """The version a TRAIN call in block #``number`` trains: the one it names, else the model's
    latest made before the block (models.compute_latest_before: not one an earlier call of the
    same block made, so the job is the one the block's parent state describes)."""
    return models.compute_latest_before(state, call.model, model, number) if call.from_version is None else call.from_version


def _compute_job(
    state: StateAccess, call: Train, spec: ml_runtime.ModelSpec, weights: np.ndarray, parent_hash: bytes, extrinsic_hash: bytes
) -> ml_runtime.TrainingJob:
    """:func:`compute_job_at` once :func:`verify_job_inputs` has passed: the rows read."""
    _, x, y = datasets.get_rows(state, call.dataset)
    try:
        return ml_runtime.TrainingJob(
            spec, weights, x, y, call.steps, call.batch_size,
            compute_f32_value(call.lr), compute_f32_value(call.l2),
            compute_job_seed(parent_hash, extrinsic_hash), call.segment_len,
        )
    except ml_runtime.MLRuntimeError as exc:
        raise DispatchError(PALLET, "InvalidJob", str(exc)) from None


def compute_segment_weight(state: StateAccess, call: Train) -> int | None:
    """What re-running one segment of ``call`` costs, its data set's read included: what a
    fraud report makes every node do (pol.compute_report_fraud_weight, chain.fraud's
    "too_heavy"); None if the call names no known model or its arguments price nothing (it
    fails before any work)."""
    spec = models.find_spec(state, call.model)
    if spec is None:
        return None
    try:
        work = ml_runtime.train_cost(spec, max(call.batch_size, 1), min(call.segment_len, call.steps), 1)
    except ml_runtime.MLRuntimeError:
        return None
    return compute_read_weight(state, call.dataset) + work


def compute_check_weight(state: StateAccess, call: Train) -> int | None:
    """What checking a start or an end fault of ``call`` costs, which re-runs no segment: the
    job rebuilt (its data set read) and one checkpoint's weights read and compared
    (models.compute_weights_read_weight); None as :func:`compute_segment_weight`."""
    spec = models.find_spec(state, call.model)
    if spec is None:
        return None
    return compute_read_weight(state, call.dataset) + models.compute_weights_read_weight(spec)


def compute_read_weight(state: StateAccess, dataset_id: int) -> int:
    """What reading a TRAIN call's data set costs (datasets.compute_read_weight); 0 for an
    unknown data set (the call fails before reading anything)."""
    info = datasets.DATASETS.get(state, dataset_id)
    return 0 if info is None else datasets.compute_read_weight(info)


def apply_train(ctx: CallContext, call: Train) -> None:
    ctx.post_info = PostDispatchInfo(actual_weight=TRAIN_BASE_WEIGHT, actual_result_length=0, actual_transcript_bytes=0)
    model = models.verify_may_train(ctx.state, call.model, ctx.sender)
    base_id = compute_parent(ctx.state, model, call, ctx.block.number)
    if models.is_version_forged(ctx.state, call.model, base_id):
        # Its weights are a forger's (pol.report_fraud proved it): building on them by default,
        # as the model's latest before the block, would carry the forgery on (a reviewer's
        # suspicion, round 5).
        raise DispatchError(
            PALLET, "ForgedVersion",
            f"version {base_id} of model {call.model} was made by a TRAIN proven forged; train from another (from_version)",
        )
    model_license = model.license_per_step * call.steps
    if model_license > MAX_BALANCE:
        raise DispatchError(PALLET, "Overflow", f"the model's licence {model_license} exceeds 2^63-1")
    _check_limit("the model's licence", model_license, call.max_model_license)
    # Every check that reads no row, and both licences' payments, come before the rows are
    # read: a TRAIN refused by its data set's schema or licence pays no read (it did, until
    # runtime version 6: an outside tester's S1, round 8). A failure from here on undoes the
    # payments (the dispatch's storage transaction), not the fee.
    spec, parent, weights, info = verify_job_inputs(ctx.state, ctx.config, call, ctx.block.number)
    license_paid, terms = licenses.apply_license(
        ctx.state, call.dataset, info, ctx.sender, call.model, call.steps * call.batch_size, ctx.block.number,
        ctx.config.existential_deposit,
    )
    breach = licenses.compute_limit_breach(license_paid, terms, "the call", call.max_data_license, call.data_license_asset)
    if breach is not None:
        raise DispatchError(PALLET, *breach)
    dust = models.apply_pay_model(ctx.state, call.model, ctx.sender, model_license, ctx.config.existential_deposit)
    ctx.post_info = PostDispatchInfo(
        actual_weight=TRAIN_BASE_WEIGHT + datasets.compute_read_weight(info), actual_result_length=0, actual_transcript_bytes=0
    )
    job = _compute_job(ctx.state, call, spec, weights, ctx.block.parent_hash, ctx.extrinsic_hash)
    result = _train_or_take(ctx, job, call.model, parent)
    ctx.post_info = AS_DECLARED  # the job ran and its result is in the block: all is due
    if result.diverged_segment is not None:
        raise DispatchError(
            PALLET, "NonFiniteWeights", f"training diverged in segment {result.diverged_segment}: a loss or weight became NaN or infinite"
        )
    final = result.get_weights()
    record = models.TrainingRecord(
        ctx.extrinsic_hash, call.dataset, call.steps, call.batch_size, call.lr, call.l2, call.segment_len,
        job.seed, result.transcript_root, result.losses, ctx.fee, license_paid,
    )
    version = models.apply_new_version(ctx.state, call.model, parent, final, ctx.sender, ctx.block.number, record)
    RECEIPTS.apply_set(ctx.state, TrainingReceipt(call.model, version, ctx.block.number), ctx.extrinsic_hash)
    ctx.block.training_steps += call.steps
    ctx.block.work_units += ml_runtime.step_cost(job.spec, call.batch_size) * call.steps
    ctx.emit(PALLET, "LicensePaid", dataset=call.dataset, provider=info.provider, amount=license_paid, asset=terms.asset)
    if model_license:
        ctx.emit(PALLET, "ModelLicensePaid", model=call.model, amount=model_license, dust=dust)
    ctx.emit(
        PALLET, "ModelTrained", model=call.model, version=version, parent=parent, steps=call.steps,
        loss=float(np.uint32(result.losses[-1]).view(np.float32)), transcript_root=result.transcript_root,
    )


def compute_spend(state: StateAccess, call: Train, block: int) -> int:
    """What a TRAIN may move out of its sender's free balance besides its fee: the model's
    licence at its cap (``max_model_license``: over it, dispatch refuses the call before
    paying), or with none anything (MAX_BALANCE), whatever it is now: its owner may raise it in
    the call's own block, at once (models.apply_set_training_policy), as an INFER's price
    (inference.compute_spend); and the data set's in POL (rows x its price at the state), at
    most its cap: a change to it waits licenses.LICENSE_NOTICE_BLOCKS. A pool's count
    (chain.runtime, ``spend``); a few reads, no row."""
    model = models.MODELS.get(state, call.model)
    if model is None:
        model_license = 0
    else:
        model_license = MAX_BALANCE if call.max_model_license is None else min(call.max_model_license, MAX_BALANCE)
    data_license = licenses.compute_native_price(state, call.dataset, call.steps * call.batch_size, block)
    if call.max_model_license is not None:
        model_license = min(model_license, call.max_model_license)
    if call.max_data_license is not None:
        data_license = min(data_license, call.max_data_license)
    return model_license + data_license


def _check_limit(what: str, price: int, limit: int | None) -> None:
    if limit is not None and price > limit:
        raise DispatchError(PALLET, "LicenseAboveLimit", f"{what} is {price}; the call pays at most {limit}")


def _train_or_take(ctx: CallContext, job: ml_runtime.TrainingJob, model: int, parent: int) -> TrainingResult:
    """Authoring: run the job, keep its result and openings. Importing: the block's result for
    this call, after the checks every importer makes without the checkpoints (BlockError)."""
    block = ctx.block
    index = ctx.extrinsic_index
    if block.authoring:
        outcome = block.trainer(job)
        result = compute_result(index, outcome)
        # The author makes the importers' checks on its own result: one it would fail is a bug
        # (an infinite mean loss committed as finite split every honest node from the author:
        # an outside tester's finding, round 12), and the BlockError leaves the call out of the
        # block (Blockchain._apply_candidate: "runtime_error", the pool drops it), not the
        # author's block out of the chain.
        verify_result_shape(job, result)
        block.results[index] = result
        block.openings[index] = compute_openings(outcome)
        return result
    claimed = block.results.get(index)
    if claimed is None:
        raise BlockError(f"extrinsic #{index} trains but the block carries no result for it")
    verify_result_shape(job, claimed)
    block.claims.append(TrainingClaim(index, job, claimed, model, parent))
    return claimed


def verify_result_shape(job: ml_runtime.TrainingJob, result: TrainingResult) -> None:
    """The checks every importer makes on a result before it believes anything of it.

    The diverged segment is one of the job's; there is one loss per entry (S + 1, or d + 1 if
    it diverged in segment d); entry 0's loss is +0.0 (no step has run: ml_runtime.run_job);
    every loss is finite (a diverged segment leaves no entry); the weights are 4 bytes per
    parameter, all finite. What they do not show (that the segments re-run to the entries)
    is the verifier's part.
    """
    where = f"training result #{result.extrinsic_index}"
    d = result.diverged_segment
    if d is not None and d >= job.num_segments:
        raise BlockError(f"{where}: diverged segment {d} of {job.num_segments}")
    count = job.num_segments + 1 if d is None else d + 1
    if len(result.losses) != count:
        raise BlockError(f"{where}: {len(result.losses)} losses, expected {count}")
    if result.losses[0] != 0:
        raise BlockError(f"{where}: entry 0's loss bits are {result.losses[0]:#010x}, expected 0 (no step has run)")
    losses = np.asarray(result.losses, dtype=np.uint32).view(np.float32)
    if not np.isfinite(losses).all():
        raise BlockError(f"{where}: a loss is not finite")
    size = job.spec.param_count * 4
    if len(result.weights) != size:
        raise BlockError(f"{where}: weights are {len(result.weights)} bytes, expected {size}")
    if not np.isfinite(result.get_weights()).all():
        raise BlockError(f"{where}: the weights are not all finite")
