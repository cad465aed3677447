"""Paid inference: a model's prediction computed inside a block, paid for per row.

``models.infer`` runs a stored version of a model on rows the caller sends with the same
bit-exact forward pass as training and the free ``ml_predict`` RPC (``ml_runtime.predict``),
puts the outputs in the receipt (the ``models.InferenceMade`` event: float32 little-endian, every NaN
the canonical 0x7fc00000 whatever the CPU,
row after row, ``k`` numbers a row), and pays the model ``inference_price`` x rows through
:func:`chain.pallets.models.apply_pay_model`: pro rata to its shareholders once it is shared,
to its owner before. The owner sets the price (``models.set_inference_price``; a shared model's
price is its shareholders' decision, through governance once that exists).

Why on chain when ``ml_predict`` is free: the receipt is a record anyone can check (which
version answered, what it answered, that the model was paid), and payment and answer are one
atomic step. The weight charged is the forward pass's work units (an upper bound: one SGD
step's cost at ``rows``, ml_runtime's cost model) plus a base for the reads, so the fee is
known before dispatch.

Dispatch order: the model and version, then the inputs (a whole number of rows of the
model's ``d`` numbers, 1..MAX_INFER_ROWS rows, every number finite; the codec has already
bounded their bytes), then the outputs' count (rows x k, at most MAX_INFER_OUTPUTS:
TooManyOutputs), then pay, then compute. The weight also counts the outputs (OUTPUT_WEIGHT
each): they are written into the receipt, and so are their bytes (:func:`compute_info`), which
a failed call is refunded. A failed call changes nothing but its fee and nonce.
"""

from __future__ import annotations

import msgspec
import numpy as np

import ml_runtime
from chain.calls import MAX_INFER_ROWS, Infer, SetInferencePrice
from chain.codec import MAX_BALANCE
from chain.errors import DispatchError
from chain.pallets import models
from chain.pallets.context import AS_DECLARED, CallContext, PostDispatchInfo
from chain.pallets.items import StateAccess

PALLET = "models"

# Work units of what every infer call does besides the forward pass: reading the model's
# spec and weights, paying, writing the event.
INFER_BASE_WEIGHT = 200_000
# The outputs (rows x k float32) go into the receipt as hex: per output number, its bytes, the
# hex and the receipt's encoding and write, about 50 ns (benches/weights.py). A call holds at
# most MAX_INFER_OUTPUTS of them (256 KiB, 512 KiB of hex): 1,024 rows into a model of 4,096
# outputs made 16 MiB of outputs for the forward pass's weight, and a block of such calls
# 4 GB of receipts and about 25 s to import.
OUTPUT_WEIGHT = 100
MAX_INFER_OUTPUTS = 1 << 16


def compute_info(state: StateAccess, call: Infer) -> tuple[int, int]:
    """What an infer call declares: its weight, and the bytes it adds to its receipt besides a
    fixed part. The weight is the base, plus the forward pass's upper bound and OUTPUT_WEIGHT a
    number when the model is known and the inputs divide into its rows (otherwise dispatch
    fails early, on the base alone, with no outputs).

    The bytes are its outputs as the event carries them: ``0x`` and two hex digits a byte, 4
    bytes a number. chain.runtime declares them as the call's result length, so they count
    against max_block_length and pay the byte fee, as a TRAIN call's result does: a block of
    the worst calls (16 rows into a model of one input and 4,096 outputs: 64 bytes of inputs,
    512 KiB of outputs each) stored 130 MB of receipts within its weight (benches/receipts.py).

    The weight counts reading the version's weights too (models.compute_weights_read_weight,
    as a federated round's opening does): without it, one-row calls into models of 2^18
    parameters, each read whole, imported at 1.1 ns a unit and were authored at 1.9, past the
    slowest call's 1 ns (an outside tester's W4, round 12; runtime version 7).
    """
    found = _compute_shape(state, call)
    if found is None:
        return INFER_BASE_WEIGHT, 0
    spec, rows = found
    outputs = rows * spec.k
    weight = INFER_BASE_WEIGHT + models.compute_weights_read_weight(spec) + ml_runtime.step_cost(spec, rows)
    return weight + OUTPUT_WEIGHT * outputs, 2 + 8 * outputs


def _compute_shape(state: StateAccess, call: Infer) -> tuple[ml_runtime.ModelSpec, int] | None:
    """The model's spec and the inputs' whole rows, unless dispatch refuses the call before
    any work: an unknown model, not 1..MAX_INFER_ROWS rows, too many outputs."""
    spec = models.find_spec(state, call.model)
    if spec is None:
        return None
    rows = len(call.inputs) // (4 * spec.d)
    if not 1 <= rows <= MAX_INFER_ROWS or rows * spec.k > MAX_INFER_OUTPUTS:
        return None
    return spec, rows


def compute_spend(state: StateAccess, call: Infer) -> int:
    """What an INFER may pay its model besides its fee: its ``max_price`` (over it, dispatch
    refuses it before paying), or with none anything (MAX_BALANCE), whatever the price is now:
    the owner may raise it in the call's own block, at once (:func:`apply_set_inference_price`),
    and did, draining 32 senders whose later pooled transfers were then never paid, pool after
    pool (an outside retest, round 12). 0 where
    dispatch refuses it before paying (an unknown model, inputs of no whole row). A pool's count
    (chain.runtime, ``spend``); ``polchain tx infer`` signs the price it reads as the limit."""
    found = _compute_shape(state, call)
    model = models.MODELS.get(state, call.model)
    if found is None or model is None:
        return 0
    return MAX_BALANCE if call.max_price is None else min(call.max_price, MAX_BALANCE)


def apply_set_inference_price(ctx: CallContext, call: SetInferencePrice) -> None:
    info = models.verify_owner(ctx.state, call.model, ctx.sender)
    models.MODELS.apply_set(ctx.state, msgspec.structs.replace(info, inference_price=call.price_per_row), call.model)
    ctx.emit(PALLET, "InferencePriceSet", model=call.model, price_per_row=call.price_per_row)


def apply_infer(ctx: CallContext, call: Infer) -> None:
    ctx.post_info = PostDispatchInfo(actual_result_length=0)  # no outputs until it computes them
    info = models.get_model(ctx.state, call.model)
    spec = models.decode_spec(info.spec)
    version = models.compute_default_version(info) if call.version is None else call.version
    weights = models.get_weights(ctx.state, call.model, version)
    x = _decode_rows(call.inputs, spec.d)
    outputs = x.shape[0] * spec.k
    if outputs > MAX_INFER_OUTPUTS:
        raise DispatchError(
            PALLET, "TooManyOutputs",
            f"{x.shape[0]} rows x {spec.k} outputs = {outputs} numbers; a call's outputs hold at most {MAX_INFER_OUTPUTS}",
        )
    price = info.inference_price * x.shape[0]
    if price > MAX_BALANCE:
        raise DispatchError(PALLET, "Overflow", f"{x.shape[0]} rows at {info.inference_price} a row exceed 2^63-1")
    if call.max_price is not None and price > call.max_price:
        raise DispatchError(PALLET, "PriceAboveLimit", f"{x.shape[0]} rows at {info.inference_price} a row cost {price}; the call pays at most {call.max_price}")
    dust = models.apply_pay_model(ctx.state, call.model, ctx.sender, price, ctx.config.existential_deposit)
    try:
        out = ml_runtime.predict(spec, weights, x)
    except ml_runtime.MLRuntimeError as exc:  # unreachable after the checks above; kept specific
        raise DispatchError(PALLET, "InvalidInputs", str(exc)) from None
    ctx.post_info = AS_DECLARED
    ctx.emit(
        PALLET, "InferenceMade", model=call.model, version=version, rows=int(x.shape[0]), paid=price, dust=dust,
        outputs=np.ascontiguousarray(out, dtype="<f4").tobytes(),
    )


def _decode_rows(data: bytes, d: int) -> np.ndarray:
    """The call's inputs as an (n, d) float32 array; DispatchError naming the rule broken."""
    row_bytes = 4 * d
    if not data or len(data) % row_bytes:
        raise DispatchError(
            PALLET, "InvalidInputs", f"inputs are {len(data)} bytes, not a whole number (>= 1) of rows of {d} float32s ({row_bytes} bytes)"
        )
    rows = len(data) // row_bytes
    if rows > MAX_INFER_ROWS:
        raise DispatchError(PALLET, "InvalidInputs", f"{rows} rows; at most {MAX_INFER_ROWS}")
    x = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(rows, d)
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DispatchError(PALLET, "InvalidInputs", f"row {bad} has a NaN or infinite number")
    return x
