"""``ml_*``: models, their weights and lineage, training receipts, data sets, inference.

Ids and versions are u32 (0..4294967295): an id no model or data set has answers
``null`` (``ml_getModel``, ``ml_getWeights``, ``ml_getDataset``, ``ml_getTrainingReceipt``);
``ml_predict`` on a missing model or version is -32602. ``ml_predict`` takes 1..1024 rows
of the model's ``d`` numbers (at most 2^18 in all), each finite in float32, and runs the
same float32 forward pass as training (read-only; nothing is stored), on the RPC read
threads. What one call may cost is bounded before the model's weights are read or anything
is computed: at most MAX_PREDICT_OUTPUTS outputs (rows x the model's k) and MAX_PREDICT_WORK
multiply-adds (rows x its parameters), else -32602 naming the limit and the rows that fit
(`rpc.params`); and an answer whose bound (`predict_answer_bound`: 24 bytes an output) passes
the server's response cap is -32008. A call whose client has gone is cancelled, queued or
computing (rpc.server: aiohttp's handler cancellation): its answer is dropped, never queued.

A trained version's ``lossCurve`` has one entry per segment: entry i is the mean batch
loss over segment i (see `rpc.shapes.version_json`).

``ml_getModel(model, at?, start?)`` holds at most MAX_LIST versions of the lineage, from
version ``start`` (default: the newest MAX_LIST): anyone may train a model whose permission
is "anyone", so its versions grow by a fee each. ``ml_listModels(start?, at?)`` and ``ml_listDatasets(start?, at?)`` answer at most
:data:`MAX_LIST` summaries with ids from ``start`` (default: the newest MAX_LIST), lowest
id first, as ``fl_listRounds`` does: registering costs only a fee, and one answer with every
model would grow without bound (3,000 models: 0.1 s on the event loop and 1.2 MB a call;
about 40,000 pass the response cap, so every call would fail after holding the node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

import ml_runtime
from chain.pallets import datasets, models, training
from rpc import errors
from rpc.methods import MethodTable, bind_params
from rpc.params import (
    MAX_PREDICT_OUTPUTS,
    MAX_PREDICT_ROWS,
    MAX_PREDICT_WORK,
    At,
    Hash,
    Id,
    InputRows,
    OptionalId,
)
from rpc.reads import ReadOnlyState, run_read, state_at
from rpc.server import DEFAULT_MAX_RESPONSE_SIZE
from rpc.shapes import dataset_json, event_json, hexb, license_json, model_summary, version_json

if TYPE_CHECKING:
    from rpc.api import NodeApi

MAX_LIST = 100  # a page of ml_listModels, ml_listDatasets and a lineage (as fl_listRounds' in rpc.namespaces.fl)
# The longest JSON a float32 output takes as the answer writes it (a float64's shortest
# repr: 17 significant digits, a sign, a point and an exponent, "-1.2345678901234567e-38"),
# plus its comma; a class index is at most 10 digits and a comma; the rest of the answer
# (keys, brackets, the model and version) well under 200 bytes.
_OUTPUT_BYTES = 24
_CLASS_BYTES = 11
_ANSWER_OVERHEAD = 200


def predict_answer_bound(rows: int, k: int) -> int:
    """An upper bound on the length of ``ml_predict``'s answer for ``rows`` rows of ``k``
    outputs, known before computing it (1,024 rows of 1,024: 25.2 MB, over the 15 MiB cap)."""
    return _ANSWER_OVERHEAD + rows * (k * _OUTPUT_BYTES + 2 + _CLASS_BYTES)


def max_predict_rows(spec: ml_runtime.ModelSpec, max_response_size: int) -> int:
    """The most rows one ``ml_predict`` of a ``spec`` model may take: within MAX_PREDICT_ROWS,
    MAX_PREDICT_OUTPUTS, MAX_PREDICT_WORK and an answer's bound under ``max_response_size``."""
    answer = (max_response_size - _ANSWER_OVERHEAD) // (spec.k * _OUTPUT_BYTES + 2 + _CLASS_BYTES)
    return max(0, min(MAX_PREDICT_ROWS, MAX_PREDICT_OUTPUTS // spec.k, MAX_PREDICT_WORK // spec.param_count, answer))


def check_predict_cost(model: int, spec: ml_runtime.ModelSpec, rows: int, max_response_size: int) -> None:
    """Refuse ``rows`` rows through model ``model`` if they pass a limit of one ``ml_predict``:
    -32602 for MAX_PREDICT_OUTPUTS and MAX_PREDICT_WORK (rules of the method, as the rows' own
    bounds are), -32008 for the server's response cap; each says how many rows fit."""
    fit = max_predict_rows(spec, max_response_size)
    outputs, work = rows * spec.k, rows * spec.param_count
    if outputs > MAX_PREDICT_OUTPUTS:
        raise errors.InvalidParams(
            f"Invalid params: param 1 'inputs' must make at most {MAX_PREDICT_OUTPUTS} outputs (MAX_PREDICT_OUTPUTS), got "
            f"{outputs}: {rows} rows of model {model}'s {spec.k}; ask for at most {fit} rows"
        )
    if work > MAX_PREDICT_WORK:
        raise errors.InvalidParams(
            f"Invalid params: param 1 'inputs' must cost at most {MAX_PREDICT_WORK} multiply-adds (MAX_PREDICT_WORK: rows x "
            f"parameters), got {work}: {rows} rows through model {model}'s {spec.param_count}; ask for at most {fit} rows"
        )
    bound = predict_answer_bound(rows, spec.k)
    if bound > max_response_size:
        raise errors.OversizedResponse(
            data=f"{rows} rows of {spec.k} outputs could take {bound} bytes, over the limit of "
            f"{max_response_size} bytes: ask for at most {fit} rows"
        )


def build(node: NodeApi, *, max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> MethodTable:
    """``max_response_size``: the server's cap (`rpc.server.RpcServer`), which ``ml_predict``
    checks its answer's bound against before computing it."""
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def ml_listModels(start: OptionalId = None, at: At = None) -> list[dict[str, Any]]:
        state = state_at(chain, at)
        return [
            model_summary(i, info)
            for i in _page(start, models.NEXT_MODEL_ID.get(state))
            if (info := models.MODELS.get(state, i)) is not None
        ]

    @bind_params
    async def ml_getModel(model: Id, at: At = None, start: OptionalId = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = models.MODELS.get(state, model)
        if info is None:
            return None
        lineage = [
            version_json(v, record)
            for v in _page(start, info.latest_version + 1)
            if (record := models.VERSIONS.get(state, model, v)) is not None
        ]
        latest = models.VERSIONS.get(state, model, info.latest_version)
        weights_hash = None if latest is None else hexb(latest.weights_hash)
        return {**model_summary(model, info), "weightsHash": weights_hash, "lineage": lineage}

    @bind_params
    async def ml_getWeights(model: Id, version: OptionalId = None, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = models.MODELS.get(state, model)
        if info is None:
            return None
        v = models.compute_default_version(info) if version is None else version
        raw = models.WEIGHTS.get(state, model, v)
        if raw is None:
            return None
        weights_hash = ml_runtime.hash_weights(np.frombuffer(raw, "<f4"))
        return {"model": model, "version": v, "dtype": "float32-le", "weights": hexb(raw), "weightsHash": hexb(weights_hash)}

    def predict(model: int, inputs: np.ndarray, version: int | None, at: bytes | None) -> dict[str, Any]:
        state = state_at(chain, at)
        info = models.MODELS.get(state, model)
        if info is None:
            raise errors.InvalidParams(f"Invalid params: param 0 'model': no model {model}")
        spec = ml_runtime.ModelSpec.decode(info.spec)
        if inputs.shape[1] != spec.d:
            raise errors.InvalidParams(
                f"Invalid params: param 1 'inputs' must be rows of {spec.d} numbers (model {model}'s d), got rows of {inputs.shape[1]}"
            )
        check_predict_cost(model, spec, len(inputs), max_response_size)  # before the weights (up to 16 MB) are read
        v = models.compute_default_version(info) if version is None else version
        raw = models.WEIGHTS.get(state, model, v)
        if raw is None:
            raise errors.InvalidParams(f"Invalid params: param 2 'version': model {model} has no version {v}")
        try:
            out = ml_runtime.predict(spec, np.frombuffer(raw, "<f4").astype(np.float32), inputs)
        except ml_runtime.MLRuntimeError as exc:
            raise errors.InvalidParams(f"Invalid params: {exc}") from None
        result: dict[str, Any] = {"model": model, "version": v, "outputs": out.tolist()}
        if spec.family != "linear":
            result["classes"] = [int(c) for c in np.argmax(out, axis=1)]
        return result

    @bind_params
    async def ml_predict(model: Id, inputs: InputRows, version: OptionalId = None, at: At = None) -> dict[str, Any]:
        """On the RPC read threads (rpc.reads.run_read), like the other heavy reads: 1,024 rows
        through a softmax of 262,144 parameters held the event loop 0.23 s. A call over a
        limit of one (`check_predict_cost`) is refused before anything is computed."""
        return await run_read(predict, model, inputs, version, at)

    @bind_params
    async def ml_getTrainingReceipt(hash: Hash) -> dict[str, Any] | None:
        """Any extrinsic's receipt by its hash; for a TRAIN call also the version it made. Served
        whether or not the state of the receipt's block is still held (below)."""
        location = chain.get_extrinsic_location(hash)
        if location is None:
            return None
        block_hash, index = location
        receipt = chain.get_receipts(block_hash)[index]
        header = chain.get_header(block_hash)
        out: dict[str, Any] = {
            "blockHash": hexb(block_hash), "blockNumber": header.number, "index": index,
            "success": receipt.success, "error": receipt.error, "fee": str(receipt.fee),
            "events": [event_json(e) for e in receipt.events],
        }
        # The receipt above is stored with its block and never pruned; only the training record
        # is in the state. Both items it reads (Training.Receipts by this hash, Models.Versions)
        # are written once and never changed or removed, and a block whose state is pruned is
        # below the finalized one (chain.pruning) and so an ancestor of the best block, whose
        # state holds the same records: read there when the block's is gone, or goes while
        # it is read (tester18's F2: every receipt older than the pruning window was -32602).
        try:
            out.update(_training_part(state_at(chain, block_hash), hash))
        except errors.InvalidParams:  # (state_at: pruned; ReadOnlyState: pruned while read)
            if chain.has_state(block_hash):
                raise
            out.update(_training_part(state_at(chain, None), hash))
        return out

    @bind_params
    async def ml_listDatasets(start: OptionalId = None, at: At = None) -> list[dict[str, Any]]:
        state = state_at(chain, at)
        return [
            dataset_json(i, info)
            for i in _page(start, datasets.NEXT_DATASET_ID.get(state))
            if (info := datasets.DATASETS.get(state, i)) is not None
        ]

    @bind_params
    async def ml_getDataset(dataset: Id, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = datasets.DATASETS.get(state, dataset)
        if info is None:
            return None
        out = dataset_json(dataset, info)
        out.update(license_json(state, dataset, info, chain.best_number + 1 if at is None else chain.get_header(at).number + 1))
        return out

    for fn in (
        ml_listModels, ml_getModel, ml_getWeights, ml_predict, ml_getTrainingReceipt, ml_listDatasets, ml_getDataset,
    ):
        table.register(fn.__name__, fn)
    return table


def _training_part(state: ReadOnlyState, xt_hash: bytes) -> dict[str, Any]:
    """What ``ml_getTrainingReceipt`` adds for a TRAIN extrinsic: the model and version it made
    and its training record (steps, transcript root, loss curve...); nothing for other calls."""
    found = training.RECEIPTS.get(state, xt_hash)
    if found is None:
        return {}
    out: dict[str, Any] = {"model": found.model, "version": found.version}
    version = models.VERSIONS.get(state, found.model, found.version)
    if version is not None and version.training is not None:
        out.update(version_json(found.version, version)["training"])
    return out


def _page(start: int | None, end: int) -> range:
    """Ids (or versions) from ``start``, at most MAX_LIST of them, below ``end`` (the next
    one); the newest MAX_LIST if ``start`` is None."""
    first = max(0, end - MAX_LIST) if start is None else start
    return range(first, min(end, first + MAX_LIST))
