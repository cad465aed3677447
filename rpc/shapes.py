"""JSON shapes of chain objects as the RPC methods answer them.

Numbers and bytes are 0x-hex as in Substrate (``"number": "0x1a"``), accounts SS58
(`chain.crypto.ss58_encode`), in headers, records and events alike.
"""

from __future__ import annotations

from typing import Any, Final

import ml_runtime
from chain import calls
from chain.codec import encode
from chain.crypto import ss58_encode
from chain.header import DigestItem, Header
from chain.pallets import datasets, licenses, models
from chain.pallets.context import Event
from chain.pallets.items import StateAccess

__all__ = [
    "EVENT_ACCOUNT_ARGS",
    "dataset_json",
    "event_json",
    "header_json",
    "hexb",
    "hexn",
    "model_summary",
    "version_json",
]

# Event arguments that hold an account id (the pallets emit them as 0x-hex, see
# chain.pallets.context.CallContext.emit): shown in SS58 like every other account.
# tests/node/test_rpc_node.py checks the events of transfers and training.
EVENT_ACCOUNT_ARGS: Final = frozenset(
    {"sender", "src", "dest", "who", "owner", "provider", "proposer", "trainer", "participant", "offender", "reporter", "author"}
)


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


def _event_arg(name: str, value: Any) -> Any:
    if name in EVENT_ACCOUNT_ARGS and isinstance(value, str) and len(value) == 66 and value.startswith("0x"):
        return ss58_encode(bytes.fromhex(value[2:]))
    return value


def event_json(event: Event) -> dict[str, Any]:
    """``{"pallet", "name", "args"}``; account arguments in SS58, other bytes 0x-hex."""
    return {"pallet": event.pallet, "name": event.name, "args": {k: _event_arg(k, v) for k, v in event.args}}


def model_summary(model_id: int, info: models.ModelInfo) -> dict[str, Any]:
    spec = ml_runtime.ModelSpec.decode(info.spec)
    return {
        "id": model_id, "name": info.name, "owner": ss58_encode(info.owner),
        "spec": {"family": spec.family, "d": spec.d, "k": spec.k, "h": spec.h, "params": spec.param_count},
        "specHash": hexb(spec.hash()), "latestVersion": info.latest_version, "createdAt": info.created_at,
        "trainingPermission": info.permission, "licensePerStep": str(info.license_per_step), "shares": str(info.shares),
        "inferencePrice": str(info.inference_price),
    }


def version_json(version: int, record: models.ModelVersion) -> dict[str, Any]:
    """One version of a model; a trained one carries ``training``.

    ``training.lossCurve`` holds one float per segment of the job: entry i is the mean
    batch loss over segment i's ``segmentLen`` steps (0-based, in training order), so its
    length is ``steps / segmentLen`` rounded up and its last entry is the ``loss`` of the
    ``ModelTrained`` event. The transcript's entry 0, which commits to the starting weights
    and carries no loss (always 0.0), is not part of the curve.
    """
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
            "lossCurve": [calls.compute_f32_value(b) for b in t.losses[1:]],
            "fee": str(t.fee), "licensePaid": str(t.license_paid),
        }
    return out


def dataset_json(dataset_id: int, info: datasets.DatasetInfo) -> dict[str, Any]:
    return {
        "id": dataset_id, "name": info.name, "provider": ss58_encode(info.provider), "features": info.features,
        "kind": info.kind, "outputs": info.outputs, "rowCount": info.row_count, "uploadedRows": info.uploaded_rows,
        "complete": info.complete, "completedIn": info.completed_in,
        "rowsRoot": hexb(info.rows_root), "pricePerRow": str(info.price_per_row), "license": info.license,
    }


def license_json(state: StateAccess, dataset_id: int, info: datasets.DatasetInfo, block: int) -> dict[str, Any]:
    """The terms a job in ``block`` would train under, a pending change, and the usage index
    (each model that trained on the data set: jobs, rows used and amount paid, per currency)."""
    record = licenses.LICENSES.get(state, dataset_id)
    out: dict[str, Any] = {"terms": terms_json(licenses.get_terms(state, dataset_id, info, block))}
    if record is not None and record.next is not None and block < record.next_from:
        out["pendingTerms"] = {**terms_json(record.next), "appliesFrom": record.next_from}
    usage = []
    for model, currency in licenses.USAGE_INDEX.get(state, dataset_id) or ():
        u = licenses.USAGE.get(state, dataset_id, model, currency) or licenses.LicenseUsage()
        asset = None if currency == licenses.NATIVE else currency - 1
        usage.append({"model": model, "asset": asset, "jobs": u.jobs, "rows": str(u.rows), "paid": str(u.paid)})
    out["usage"] = usage
    return out


def terms_json(terms: calls.LicenseTerms) -> dict[str, Any]:
    return {
        "pricePerRow": str(terms.price_per_row), "asset": terms.asset, "allowed": terms.allowed,
        "accounts": [ss58_encode(a) for a in terms.accounts], "models": list(terms.models),
        "expiresAt": terms.expires_at, "maxRowsPerJob": terms.max_rows_per_job, "textHash": hexb(terms.text_hash),
    }
