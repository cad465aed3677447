"""The node's JSON-RPC methods: Substrate's names and shapes, and the ``ml_`` namespace.

Numbers and bytes are 0x-hex as in Substrate (``"number": "0x1a"``), accounts SS58. Each
method reads the chain through the :class:`NodeApi` the node hands over; none changes state
except ``author_submit*``, which only adds to the pool. Chain errors become JSON-RPC errors
here: malformed input -32602, pool refusals Substrate's 1000-range codes with a ``data``
that says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import numpy as np

import ml_runtime
from chain import calls
from chain.blockchain import Blockchain
from chain.codec import encode
from chain.config import SPEC_NAME, SPEC_VERSION, TRANSACTION_VERSION
from chain.crypto import parse_account, ss58_encode
from chain.errors import ChainError, CodecError, InvalidTransaction, PoolError
from chain.extrinsic import decode_extrinsic
from chain.header import DigestItem, Header
from chain.pallets import balances, datasets, models, training
from chain.pallets.context import Event
from chain.pool import TransactionPool
from chain.storage import Column
from genesis.spec import ChainSpec
from rpc import errors
from rpc.methods import MethodTable, Params, Subscription, bind_params

NODE_VERSION = "0.1.0"
MAX_KEYS_PAGE = 1000
MAX_PREDICT_ROWS = 1024


class NodeApi(Protocol):
    """What the RPC methods need from a running node."""

    chain: Blockchain
    pool: TransactionPool
    spec: ChainSpec

    def submit(self, raw: bytes) -> bytes: ...
    def watch(self, raw: bytes) -> AsyncIterator[Any]: ...
    def heads(self, *, finalized: bool) -> AsyncIterator[Header]: ...


# --- JSON shapes -------------------------------------------------------------------------------
def hexb(value: bytes) -> str:
    return "0x" + value.hex()


def hexn(value: int) -> str:
    return hex(value)


def header_json(header: Header) -> dict[str, Any]:
    logs = [hexb(encode(item)) for item in header.digest]
    if header.seal:
        logs.append(hexb(encode(DigestItem(5, b"aura", header.seal))))  # Substrate's Seal item
    return {
        "parentHash": hexb(header.parent_hash),
        "number": hexn(header.number),
        "stateRoot": hexb(header.state_root),
        "extrinsicsRoot": hexb(header.extrinsics_root),
        "digest": {"logs": logs},
        "slot": hexn(header.slot),
        "author": ss58_encode(header.author),
    }


def event_json(event: Event) -> dict[str, Any]:
    return {"pallet": event.pallet, "name": event.name, "args": dict(event.args)}


def parse_hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise errors.InvalidParams(f"Invalid params: {what} must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise errors.InvalidParams(f"Invalid params: {what} is not valid hex") from None
    if size is not None and len(raw) != size:
        raise errors.InvalidParams(f"Invalid params: {what} must be {size} bytes, got {len(raw)}")
    return raw


def pool_error(exc: Exception) -> errors.RpcError:
    """Map a refusal to Substrate's author error codes, with the reason in ``data``."""
    if isinstance(exc, CodecError):
        return errors.BadFormat(str(exc))
    if isinstance(exc, PoolError):
        by_reason: dict[str, type[errors.AuthorError]] = {
            "already_imported": errors.AlreadyImported,
            "temporarily_banned": errors.TemporarilyBanned,
            "too_low_priority": errors.TooLowPriority,
        }
        return by_reason.get(exc.reason, errors.ImmediatelyDropped)(str(exc))
    if isinstance(exc, InvalidTransaction):
        return errors.InvalidTransaction(f"{exc.reason}: {exc}")
    return errors.VerificationError(str(exc))


def build_method_table(node: NodeApi, *, node_name: str = "polchain-node") -> MethodTable:
    """Every method the node serves, bound to ``node``."""
    table = MethodTable()
    chain = node.chain
    spec = node.spec

    def block_hash_at(at: str | None) -> bytes:
        if at is None:
            return chain.best_hash
        block_hash = parse_hex(at, "block hash", 32)
        try:
            chain.get_header(block_hash)
        except ChainError:
            raise errors.InvalidParams(f"Invalid params: unknown block {at}") from None
        return block_hash

    def state_root_at(at: str | None) -> bytes | None:
        return None if at is None else chain.get_header(block_hash_at(at)).state_root

    def reader(at: str | None) -> Any:
        root = state_root_at(at)
        return _AtState(chain, root)

    # --- system ----------------------------------------------------------------------------------
    @bind_params
    async def system_name() -> str:
        return node_name

    @bind_params
    async def system_version() -> str:
        return NODE_VERSION

    @bind_params
    async def system_chain() -> str:
        return spec.name

    @bind_params
    async def system_chainType() -> str:
        return spec.chain_type

    @bind_params
    async def system_properties() -> dict[str, Any]:
        return spec.properties

    # The p2p service, when the node runs one (node/network); a node alone has none.
    network = getattr(node, "network", None)
    link = getattr(node, "link", None)

    @bind_params
    async def system_health() -> dict[str, Any]:
        if network is None:
            return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
        return {
            "peers": len(network.peers()),
            "isSyncing": bool(link is not None and link.is_syncing),
            "shouldHavePeers": spec.chain_type != "Development",
        }

    @bind_params
    async def system_peers() -> list[Any]:
        if network is None:
            return []
        return [
            {"peerId": str(p.peer_id), "roles": p.role_name, "bestHash": hexb(p.best_hash), "bestNumber": p.best_number}
            for p in network.peers()
        ]

    @bind_params
    async def system_localPeerId() -> str | None:
        return None if network is None else str(network.local_peer_id)

    @bind_params
    async def system_localListenAddresses() -> list[str]:
        return [] if network is None else [str(a) for a in network.listen_addresses]

    @bind_params
    async def system_accountNextIndex(account: str) -> int:
        who = _account(account)
        nonce = balances.get_account(chain.state.overlay(), who).nonce
        pending = sorted(xt.nonce for xt in node.pool.pending() if xt.signer == who)
        for n in pending:  # the next nonce after the ones already waiting in the pool
            if n == nonce:
                nonce += 1
        return nonce

    # --- chain -----------------------------------------------------------------------------------
    def known_block(at: str | None) -> bytes | None:
        """The block ``at`` names (None: the best); None if unknown; -32602 if malformed."""
        block_hash = chain.best_hash if at is None else parse_hex(at, "block hash", 32)
        return block_hash if chain.db.get(Column.HEADER, block_hash) is not None else None

    @bind_params
    async def chain_getHeader(hash: str | None = None) -> dict[str, Any] | None:
        block_hash = known_block(hash)
        return None if block_hash is None else header_json(chain.get_header(block_hash))

    @bind_params
    async def chain_getBlock(hash: str | None = None) -> dict[str, Any] | None:
        block_hash = known_block(hash)
        if block_hash is None:
            return None
        block = chain.get_block(block_hash)
        return {
            "block": {
                "header": header_json(block.header),
                "extrinsics": [hexb(xt.encode()) for xt in block.body.extrinsics],
                "trainingProofs": [
                    {"extrinsicIndex": p.extrinsic_index, "transcriptRoot": hexb(p.transcript_root), "checkpoints": len(p.checkpoints)}
                    for p in block.body.proofs
                ],
            },
            "justifications": None,
        }

    async def chain_getBlockHash(params: Params) -> Any:
        if isinstance(params, dict):
            params = [params.get("number")] if params else []
        if len(params) > 1:
            raise errors.InvalidParams("Invalid params: expected at most 1 (number)")
        arg = params[0] if params else None
        if arg is None:
            return hexb(chain.best_hash)
        if isinstance(arg, list):
            return [_block_hash(chain, n) for n in arg]
        return _block_hash(chain, arg)

    @bind_params
    async def chain_getFinalizedHead() -> str:
        return hexb(chain.finalized_hash)

    async def subscribe_heads(finalized: bool, sink: Subscription) -> None:
        async for header in node.heads(finalized=finalized):
            if not await sink.send(header_json(header)):
                return

    async def chain_subscribeNewHeads(params: Params, sink: Subscription) -> None:
        await subscribe_heads(False, sink)

    async def chain_subscribeFinalizedHeads(params: Params, sink: Subscription) -> None:
        await subscribe_heads(True, sink)

    # --- state -----------------------------------------------------------------------------------
    @bind_params
    async def state_getStorage(key: str, at: str | None = None) -> str | None:
        value = chain.state.get(parse_hex(key, "key"), at=state_root_at(at))
        return None if value is None else hexb(value)

    @bind_params
    async def state_getKeysPaged(prefix: str | None, count: int, start_key: str | None = None, at: str | None = None) -> list[str]:
        if not 1 <= count <= MAX_KEYS_PAGE:
            raise errors.InvalidParams(f"Invalid params: count must be in 1..{MAX_KEYS_PAGE}")
        keys = chain.state.keys_paged(
            parse_hex(prefix or "0x", "prefix"), count,
            None if start_key is None else parse_hex(start_key, "start_key"), at=state_root_at(at),
        )
        return [hexb(k) for k in keys]

    @bind_params
    async def state_getReadProof(keys: list, at: str | None = None) -> dict[str, Any]:
        block_hash = block_hash_at(at)
        raw_keys = [parse_hex(k, f"keys[{i}]") for i, k in enumerate(keys)]
        proof = chain.state.prove(raw_keys, at=chain.get_header(block_hash).state_root)
        return {"at": hexb(block_hash), "proof": [hexb(node) for node in proof]}

    @bind_params
    async def state_getRuntimeVersion(at: str | None = None) -> dict[str, Any]:
        return {
            "specName": SPEC_NAME, "implName": "polchain-node", "authoringVersion": 1,
            "specVersion": SPEC_VERSION, "implVersion": 1, "apis": [],
            "transactionVersion": TRANSACTION_VERSION, "stateVersion": 1,
        }

    # --- author ----------------------------------------------------------------------------------
    @bind_params
    async def author_submitExtrinsic(extrinsic: str) -> str:
        raw = parse_hex(extrinsic, "extrinsic")
        try:
            return hexb(node.submit(raw))
        except (ChainError, ml_runtime.MLRuntimeError) as exc:
            raise pool_error(exc) from None

    def check_submit(params: Params) -> None:
        values = params if isinstance(params, list) else [params.get("extrinsic")]
        if len(values) != 1:
            raise errors.InvalidParams("Invalid params: expected 1 (extrinsic)")
        try:
            decode_extrinsic(parse_hex(values[0], "extrinsic"))
        except ChainError as exc:
            raise pool_error(exc) from None

    async def author_submitAndWatchExtrinsic(params: Params, sink: Subscription) -> None:
        raw = parse_hex(params[0] if isinstance(params, list) else params["extrinsic"], "extrinsic")
        try:
            async for status in node.watch(raw):
                if not await sink.send(status):
                    return
        except (ChainError, ml_runtime.MLRuntimeError) as exc:
            sink.send_error(pool_error(exc))
        sink.close()

    @bind_params
    async def author_pendingExtrinsics() -> list[str]:
        return [hexb(xt.encode()) for xt in node.pool.pending()]

    # --- payment ---------------------------------------------------------------------------------
    @bind_params
    async def payment_queryInfo(extrinsic: str, at: str | None = None) -> dict[str, Any]:
        raw = parse_hex(extrinsic, "extrinsic")
        try:
            xt = decode_extrinsic(raw)
        except ChainError as exc:
            raise errors.InvalidParams(f"Invalid params: extrinsic: {exc}") from None
        state = reader(at)
        weight = chain.runtime.compute_weight(state, xt)
        fee = chain.config.compute_fee(len(raw), weight, 0)
        return {"weight": {"refTime": weight, "proofSize": 0}, "class": "normal", "partialFee": str(fee)}

    # --- ml ----------------------------------------------------------------------------------------
    @bind_params
    async def ml_listModels(at: str | None = None) -> list[dict[str, Any]]:
        state = reader(at)
        out = []
        for model_id in range(models.NEXT_MODEL_ID.get(state)):
            info = models.MODELS.get(state, model_id)
            if info is not None:
                out.append(_model_summary(model_id, info))
        return out

    @bind_params
    async def ml_getModel(model: int, at: str | None = None) -> dict[str, Any] | None:
        state = reader(at)
        info = models.MODELS.get(state, model)
        if info is None:
            return None
        lineage = []
        for v in range(info.latest_version + 1):
            record = models.VERSIONS.get(state, model, v)
            if record is not None:
                lineage.append(_version_json(v, record))
        return {**_model_summary(model, info), "weightsHash": lineage[-1]["weightsHash"], "lineage": lineage}

    @bind_params
    async def ml_getWeights(model: int, version: int | None = None, at: str | None = None) -> dict[str, Any] | None:
        state = reader(at)
        info = models.MODELS.get(state, model)
        if info is None:
            return None
        v = info.latest_version if version is None else version
        raw = models.WEIGHTS.get(state, model, v)
        if raw is None:
            return None
        return {"model": model, "version": v, "dtype": "float32-le", "weights": hexb(raw), "weightsHash": hexb(ml_runtime.hash_weights(np.frombuffer(raw, "<f4")))}

    @bind_params
    async def ml_predict(model: int, inputs: list, version: int | None = None, at: str | None = None) -> dict[str, Any]:
        state = reader(at)
        info = models.MODELS.get(state, model)
        if info is None:
            raise errors.InvalidParams(f"Invalid params: no model {model}")
        v = info.latest_version if version is None else version
        raw = models.WEIGHTS.get(state, model, v)
        if raw is None:
            raise errors.InvalidParams(f"Invalid params: model {model} has no version {v}")
        spec_ = ml_runtime.ModelSpec.decode(info.spec)
        if not 1 <= len(inputs) <= MAX_PREDICT_ROWS:
            raise errors.InvalidParams(f"Invalid params: inputs must hold 1..{MAX_PREDICT_ROWS} rows")
        try:
            x = np.asarray(inputs, dtype=np.float32)
        except (TypeError, ValueError):
            raise errors.InvalidParams("Invalid params: inputs must be a list of rows of numbers") from None
        if x.ndim != 2 or x.shape[1] != spec_.d or not np.isfinite(x).all():
            raise errors.InvalidParams(f"Invalid params: inputs must be finite rows of {spec_.d} numbers")
        try:
            out = ml_runtime.predict(spec_, np.frombuffer(raw, "<f4").astype(np.float32), x)
        except ml_runtime.MLRuntimeError as exc:
            raise errors.InvalidParams(f"Invalid params: {exc}") from None
        result: dict[str, Any] = {"model": model, "version": v, "outputs": out.tolist()}
        if spec_.family != "linear":
            result["classes"] = [int(c) for c in np.argmax(out, axis=1)]
        return result

    @bind_params
    async def ml_getTrainingReceipt(hash: str) -> dict[str, Any] | None:
        xt_hash = parse_hex(hash, "hash", 32)
        location = chain.get_extrinsic_location(xt_hash)
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
        state = _AtState(chain, header.state_root)
        found = training.RECEIPTS.get(state, xt_hash)
        if found is not None:
            version = models.VERSIONS.get(state, found.model, found.version)
            out.update({"model": found.model, "version": found.version})
            if version is not None and version.training is not None:
                out.update(_version_json(found.version, version)["training"])
        return out

    @bind_params
    async def ml_listDatasets(at: str | None = None) -> list[dict[str, Any]]:
        state = reader(at)
        return [
            _dataset_json(i, info)
            for i in range(datasets.NEXT_DATASET_ID.get(state))
            if (info := datasets.DATASETS.get(state, i)) is not None
        ]

    @bind_params
    async def ml_getDataset(dataset: int, at: str | None = None) -> dict[str, Any] | None:
        info = datasets.DATASETS.get(reader(at), dataset)
        return None if info is None else _dataset_json(dataset, info)

    for fn in (
        system_name, system_version, system_chain, system_chainType, system_properties, system_health,
        system_peers, system_localPeerId, system_localListenAddresses, system_accountNextIndex, chain_getHeader, chain_getBlock, chain_getBlockHash,
        chain_getFinalizedHead, state_getStorage, state_getKeysPaged, state_getReadProof,
        state_getRuntimeVersion, author_submitExtrinsic, author_pendingExtrinsics, payment_queryInfo,
        ml_listModels, ml_getModel, ml_getWeights, ml_predict, ml_getTrainingReceipt, ml_listDatasets,
        ml_getDataset,
    ):
        table.register(fn.__name__, fn)
    table.register("chain_getHead", chain_getBlockHash)
    table.register_subscription("chain_subscribeNewHeads", "chain_newHead", "chain_unsubscribeNewHeads", chain_subscribeNewHeads)
    table.register_subscription(
        "chain_subscribeFinalizedHeads", "chain_finalizedHead", "chain_unsubscribeFinalizedHeads", chain_subscribeFinalizedHeads
    )
    table.register_subscription(
        "author_submitAndWatchExtrinsic", "author_extrinsicUpdate", "author_unwatchExtrinsic",
        author_submitAndWatchExtrinsic, check_params=check_submit,
    )
    return table


class _AtState:
    """Read-only state access at a given root (None: the best state) for storage items."""

    def __init__(self, chain: Blockchain, root: bytes | None) -> None:
        self.chain, self.root = chain, root

    def get(self, key: bytes) -> bytes | None:
        return self.chain.state.get(key, at=self.root)

    def set(self, key: bytes, value: bytes) -> None:
        raise errors.InternalError("read-only state")

    def delete(self, key: bytes) -> None:
        raise errors.InternalError("read-only state")


def _account(text: str) -> bytes:
    try:
        return parse_account(text)
    except ChainError as exc:
        raise errors.InvalidParams(f"Invalid params: account: {exc}") from None


def _block_hash(chain: Blockchain, number: Any) -> str | None:
    if isinstance(number, str):
        try:
            number = int(number, 16) if number.startswith("0x") else int(number)
        except ValueError:
            raise errors.InvalidParams(f"Invalid params: {number!r} is not a block number") from None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**32:
        raise errors.InvalidParams("Invalid params: a block number is an integer in 0..2^32-1")
    found = chain.get_hash(number)
    return None if found is None else hexb(found)


def _model_summary(model_id: int, info: models.ModelInfo) -> dict[str, Any]:
    spec = ml_runtime.ModelSpec.decode(info.spec)
    return {
        "id": model_id, "name": info.name, "owner": ss58_encode(info.owner),
        "spec": {"family": spec.family, "d": spec.d, "k": spec.k, "h": spec.h, "params": spec.param_count},
        "specHash": hexb(spec.hash()), "latestVersion": info.latest_version, "createdAt": info.created_at,
    }


def _version_json(version: int, record: models.ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": version, "weightsHash": hexb(record.weights_hash), "parent": record.parent,
        "creator": ss58_encode(record.creator), "block": record.block,
    }
    t = record.training
    if t is not None:
        out["training"] = {
            "extrinsicHash": hexb(t.extrinsic_hash), "dataset": t.dataset, "steps": t.steps,
            "batchSize": t.batch_size, "lr": calls.compute_f32_value(t.lr), "l2": calls.compute_f32_value(t.l2),
            "segmentLen": t.segment_len, "seed": hexb(t.seed), "transcriptRoot": hexb(t.transcript_root),
            "lossCurve": [calls.compute_f32_value(b) for b in t.losses],
            "fee": str(t.fee), "licensePaid": str(t.license_paid),
        }
    return out


def _dataset_json(dataset_id: int, info: datasets.DatasetInfo) -> dict[str, Any]:
    return {
        "id": dataset_id, "name": info.name, "provider": ss58_encode(info.provider), "features": info.features,
        "kind": info.kind, "outputs": info.outputs, "rowCount": info.row_count, "uploadedRows": info.uploaded_rows,
        "complete": info.complete, "rowsRoot": hexb(info.rows_root), "pricePerRow": str(info.price_per_row),
        "license": info.license,
    }

