"""Data sets whose providers are paid for every row the chain trains on.

A provider registers a data set (schema, row count, Merkle root of its rows, price per row
used, license text), then uploads its rows in order in chunks (AppendRows), each at most one
extrinsic's worth. When the last row arrives the rows must hash to the registered root, or
that chunk fails; until then the provider may restart the upload from row 0. Only a complete
data set can be trained on, and a complete data set is immutable: models' lineage records
name it, and training on it must mean the same rows for ever (any append is AlreadyComplete).

A row's canonical bytes: the features as float32 LE, then a classification label as u32 LE
or a regression target vector as float32 LE. The rows root is the RFC 6962 Merkle root over
the rows' canonical bytes, so one row (and what a provider was paid for) can be proven.

Each append hashes its own rows into the upload's frontier (:data:`FRONTIER`: the roots of
the perfect subtrees of the rows so far, as Certificate Transparency's compact Merkle trees
keep them), so the append that completes a data set folds at most 20 hashes instead of
reading back and hashing every row: that append cost about a second for a MAX_ROWS data set
of 8-byte rows at the weight of its own one row, and under a wrong root it failed, was rolled
back and could be sent again in every block (benches/weights.py). An append's weight counts
its bytes and its rows (:func:`compute_append_weight`), and a restart the chunks it deletes.
Reading a complete data set's rows costs :func:`compute_read_weight`, which every call that
reads them (training.train, models.claim_bounty, pol.report_fraud) declares.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec
import numpy as np

import ml_runtime
from chain.calls import MAX_ROWS_CHUNK, AppendRows, RegisterDataset
from chain.codec import U32, AccountId, Balance, Hash32, Wire
from chain.errors import DispatchError
from chain.pallets.context import CallContext
from chain.pallets.items import StateAccess, StorageMap, StorageValue

PALLET = "datasets"
MAX_FEATURES = 4096
MAX_OUTPUTS = 4096
MAX_ROWS = ml_runtime.MAX_ROWS  # a data set can have no more rows than a job trains on

# Work units (about 1 ns each: a transfer, 100,000 units, imports in about 90 us), measured by
# benches/weights.py and rounded up about twofold.
# Reading and writing the record and the frontier, checking the rows (a few NumPy calls): an
# append of the last of 2^20 8-byte rows, repeatable under a wrong root (RootMismatch), imported
# at 2.0x a transfer's time a unit with 100,000, and 1.1-1.5x with 180,000 and the per-bit term
# below (benches/weights.py's append_rows_last scenario in a scratch script: 400 calls a block,
# 400 transfers a block in the same run, 2026-11-30, on a loaded machine).
APPEND_BASE_WEIGHT = 250_000
APPEND_BYTE_WEIGHT = 20  # per byte: decoding, the finiteness check, the chunk's write
# Per row: its leaf hash and, amortised, one node hash (about 0.9 us); and per bit of the row
# count, once a call: a row may carry as many merges as the count has bits (the last of 2^20
# rows, 20), and the completing append folds the frontier as many times.
ROW_HASH_WEIGHT = 2_000
CHUNK_DELETE_WEIGHT = 50_000  # per chunk a restart deletes
# Per byte of rows a restart deletes: the block's journal reads each deleted value and stores
# it (chain.blockchain's UNDO, so a reorg can put it back). Counted by chunk alone, a restart of
# 1,000 one-row chunks of 16 KiB rows weighed 50M units and took 291 ms to import, 5x a
# transfer's time a unit (benches/weights.py append_rows_restart); the rows' size let a call
# delete up to 64 MiB (2,064 chunks of 32 KiB rows) for 103M units.
CHUNK_DELETE_BYTE_WEIGHT = 20
# Per byte of a complete data set's rows read cold (get_rows): 2.8-2.9 ns a byte on 2026-11-30
# for 256 MB (a loaded machine; the LevelDB reads and one gather and one copy a byte), rounded
# up. It was 1, from a measure of the reads alone, while get_rows copied every byte three times
# (3.4-6.4 ns): one TRAIN read a 2 GB data set in a block of 2e9 units, 7-13 s on every node
# (an outside tester's finding, round 7).
READ_BYTE_WEIGHT = 4
# The most a data set's rows may take (row_count x row_size): every node holds them in memory,
# twice over while it reads them (get_rows), to train, prove or evaluate on them. MAX_ROWS rows
# of MAX_FEATURES features allowed 17 GB.
MAX_DATASET_BYTES = 1 << 30


class DatasetInfo(Wire, frozen=True):
    provider: AccountId
    name: str
    features: U32
    kind: str
    outputs: U32
    row_count: U32
    rows_root: Hash32
    price_per_row: Balance
    license: str
    uploaded_rows: U32 = 0
    chunks: tuple[U32, ...] = ()  # first row of each stored chunk
    # The block whose upload made the data set complete; 0 until then, and for genesis's. A
    # TRAIN on the data set in that block is refused (training.verify_job_inputs, "DatasetTooNew").
    completed_in: U32 = 0

    @property
    def row_size(self) -> int:
        return compute_row_size(self.features, self.kind, self.outputs)

    @property
    def complete(self) -> bool:
        return self.uploaded_rows == self.row_count


def compute_row_size(features: int, kind: str, outputs: int) -> int:
    """Bytes of a stored row: the features, and a label (u32) or ``outputs`` targets (f32)."""
    return 4 * features + (4 if kind == "classification" else 4 * outputs)


NEXT_DATASET_ID = StorageValue("Datasets", "NextDatasetId", int, 0)
DATASETS = StorageMap("Datasets", "Datasets", DatasetInfo)
CHUNKS = StorageMap("Datasets", "Chunks", bytes)
# data set -> the rows root's frontier while its upload is incomplete (ml_runtime.compute_frontier)
FRONTIER = StorageMap("Datasets", "Frontier", tuple[Hash32, ...])

def compute_append_weight(state: StateAccess, call: AppendRows) -> int:
    """An append's weight: the base and its bytes; with the data set's record, its rows (each
    hashed into the frontier) and, for a restart (``first_row`` 0), the chunks it deletes and
    their bytes (every row uploaded so far). An unknown or complete data set fails at once
    (UnknownDataset, AlreadyComplete): the base and bytes only."""
    weight = APPEND_BASE_WEIGHT + APPEND_BYTE_WEIGHT * len(call.rows)
    info = DATASETS.get(state, call.dataset)
    if info is None or info.complete:
        return weight
    weight += ROW_HASH_WEIGHT * (len(call.rows) // info.row_size + info.row_count.bit_length())
    if call.first_row != 0:
        return weight
    return weight + CHUNK_DELETE_WEIGHT * len(info.chunks) + CHUNK_DELETE_BYTE_WEIGHT * info.uploaded_rows * info.row_size


def compute_read_weight(info: DatasetInfo) -> int:
    """What reading a complete data set's rows costs (:func:`get_rows`, cold: an attacker
    rotates more data sets than the cache holds): READ_BYTE_WEIGHT per byte."""
    return READ_BYTE_WEIGHT * info.row_count * info.row_size


def compute_row_dtype(info: DatasetInfo) -> np.dtype:
    if info.kind == "classification":
        return np.dtype([("x", "<f4", (info.features,)), ("y", "<u4")])
    return np.dtype([("x", "<f4", (info.features,)), ("y", "<f4", (info.outputs,))])


def compute_rows_bytes(x: np.ndarray, y: np.ndarray, kind: str) -> bytes:
    """Canonical bytes of rows (x: (n, d) float32; y: (n,) labels or (n, k) targets)."""
    n, d = x.shape
    if kind == "classification":
        dtype = np.dtype([("x", "<f4", (d,)), ("y", "<u4")])
    else:
        dtype = np.dtype([("x", "<f4", (d,)), ("y", "<f4", (y.shape[1],))])
    rows = np.empty(n, dtype=dtype)
    rows["x"] = x
    rows["y"] = y
    return rows.tobytes()


def compute_rows_root(rows: bytes, row_size: int) -> bytes:
    return ml_runtime.compute_merkle_root([rows[i : i + row_size] for i in range(0, len(rows), row_size)])


def get_dataset(state: StateAccess, dataset_id: int) -> DatasetInfo:
    info = DATASETS.get(state, dataset_id)
    if info is None:
        raise DispatchError(PALLET, "UnknownDataset", f"no data set with id {dataset_id}")
    return info


def get_uploaded_rows(state: StateAccess, dataset_id: int, info: DatasetInfo) -> bytes:
    """The canonical bytes of the rows uploaded so far, in order."""
    return b"".join(CHUNKS.get(state, dataset_id, first) or b"" for first in info.chunks)


# Complete data sets never change, so their decoded rows are cached by content: the rows root
# with the schema that decodes the rows. The root alone is not enough: it commits to the
# rows' bytes, which other schemas read as other arrays (260 bytes are 64 features and a label,
# or 63 features and 2 targets), and a cache is per node, so a hit that served another data
# set's arrays made warm and cold nodes execute one block differently. The cache is bounded in
# bytes, not entries: eight entries of any size let an attacker who rotated large data sets
# keep 16 GB resident on every node (an outside tester's finding, round 7); a data set larger
# than the whole bound is not cached (its every read is weighed cold, compute_read_weight).
_ROWS_CACHE: OrderedDict[tuple[bytes, str, int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_ROWS_CACHE_BYTES = 512 << 20


def _frozen(buffer: bytearray, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """``buffer``'s values as an array over a ``bytes`` object (one plain copy): read-only for
    good (numpy will not make it writeable again), so every training job of the data set
    shares it uncopied (ml_runtime.TrainingJob keeps such arrays as they are)."""
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape)


def get_complete_dataset(state: StateAccess, dataset_id: int) -> DatasetInfo:
    """The record of a data set whose rows are all uploaded; DispatchError otherwise."""
    info = get_dataset(state, dataset_id)
    if not info.complete:
        raise DispatchError(
            PALLET, "Incomplete", f"data set {dataset_id} has {info.uploaded_rows} of {info.row_count} rows uploaded"
        )
    return info


def get_rows(state: StateAccess, dataset_id: int) -> tuple[DatasetInfo, np.ndarray, np.ndarray]:
    """A complete data set's rows as (x float32 (n, d), y int32 (n,) or float32 (n, k)).

    Each stored chunk is decoded straight into two buffers, each then copied once into the
    ``bytes`` the arrays are frozen over: at most twice the rows' size and a chunk in memory.
    (It joined every chunk, then copied x and y out and each again into a ``bytes``: 3.4-6.4 ns
    a byte cold and a 6.1 GB peak for a 1 GB data set, against the 1 unit a byte it was
    weighed at: an outside tester's finding, round 7.)"""
    info = get_complete_dataset(state, dataset_id)
    key = (info.rows_root, info.kind, info.features, info.outputs)
    cached = _ROWS_CACHE.get(key)
    if cached is not None:
        _ROWS_CACHE.move_to_end(key)
        return info, cached[0], cached[1]
    n, d = info.row_count, info.features
    classification = info.kind == "classification"
    y_shape = (n,) if classification else (n, info.outputs)
    x_bytes, y_bytes = bytearray(4 * n * d), bytearray(4 * n * (1 if classification else info.outputs))
    x_fill, y_fill = np.frombuffer(x_bytes, np.float32).reshape(n, d), np.frombuffer(y_bytes, np.uint32 if classification else np.float32).reshape(y_shape)
    dtype, row = compute_row_dtype(info), 0
    for first in info.chunks:
        rows = np.frombuffer(CHUNKS.get(state, dataset_id, first) or b"", dtype=dtype)
        end = row + len(rows)
        if end > n:
            row = end
            break
        x_fill[row:end] = rows["x"]
        y_fill[row:end] = rows["y"]
        row = end
    if row != n:  # the chunks hold exactly the uploaded rows (apply_append_rows): a broken invariant
        raise DispatchError(PALLET, "BrokenChunks", f"data set {dataset_id}'s chunks do not hold exactly its {n:,} rows")
    size = len(x_bytes) + len(y_bytes)
    x = _frozen(x_bytes, np.float32, (n, d))
    del x_fill, x_bytes
    y = _frozen(y_bytes, np.int32 if classification else np.float32, y_shape)  # labels < 4,096: the same bits
    if size <= _ROWS_CACHE_BYTES:
        _ROWS_CACHE[key] = (x, y)
        while sum(a.nbytes + b.nbytes for a, b in _ROWS_CACHE.values()) > _ROWS_CACHE_BYTES:
            _ROWS_CACHE.popitem(last=False)
    return info, x, y


def apply_register_dataset(ctx: CallContext, call: RegisterDataset) -> None:
    if not 1 <= call.features <= MAX_FEATURES:
        raise DispatchError(PALLET, "InvalidSchema", f"features must be in 1..{MAX_FEATURES}, got {call.features}")
    if not 1 <= call.outputs <= MAX_OUTPUTS:
        raise DispatchError(PALLET, "InvalidSchema", f"outputs must be in 1..{MAX_OUTPUTS}, got {call.outputs}")
    if call.kind == "classification" and call.outputs < 2:
        raise DispatchError(PALLET, "InvalidSchema", "a classification data set has at least 2 classes")
    if not 1 <= call.row_count <= MAX_ROWS:
        raise DispatchError(PALLET, "InvalidSchema", f"row_count must be in 1..{MAX_ROWS}, got {call.row_count}")
    size = call.row_count * compute_row_size(call.features, call.kind, call.outputs)
    if size > MAX_DATASET_BYTES:
        raise DispatchError(
            PALLET, "TooLarge",
            f"{call.row_count:,} rows of this schema take {size:,} bytes; a data set takes at most {MAX_DATASET_BYTES:,} "
            "(every node holds its rows in memory to train on them)",
        )
    dataset_id = apply_new_dataset(
        ctx.state,
        DatasetInfo(
            ctx.sender, call.name, call.features, call.kind, call.outputs, call.row_count,
            call.rows_root, call.price_per_row, call.license,
        ),
    )
    ctx.emit(PALLET, "DatasetRegistered", dataset=dataset_id, provider=ctx.sender, rows=call.row_count)


def apply_new_dataset(state: StateAccess, info: DatasetInfo) -> int:
    dataset_id = NEXT_DATASET_ID.get(state)
    DATASETS.apply_set(state, info, dataset_id)
    NEXT_DATASET_ID.apply_set(state, dataset_id + 1)
    return dataset_id


def compute_chunk_rows(row_size: int) -> int:
    """Rows of ``row_size`` bytes in a full chunk: as many as one AppendRows carries
    (``MAX_ROWS_CHUNK`` bytes), at least one."""
    return max(1, MAX_ROWS_CHUNK // row_size)


def compute_max_chunks(info: DatasetInfo) -> int:
    """How many chunks an upload of ``info``'s rows may take: twice what full chunks (as many
    rows as fit in one AppendRows, ``MAX_ROWS_CHUNK`` bytes) need, plus 16.

    The record lists every chunk's first row, and each append reads and writes it whole for a
    weight that counts only the call's own rows: an upload one row at a time made the record
    of a million-row data set megabytes long, each append dearer than the last (quadratic in
    the rows), and a block of such appends ran for minutes. With the bound an upload's chunks
    carry, on average, at least half a full chunk's rows, so the record is read and written at
    most about twice per MiB of rows; the slack of 16 leaves small data sets free to upload in
    small pieces.
    """
    return 2 * -(-info.row_count // compute_chunk_rows(info.row_size)) + 16


def apply_rows(state: StateAccess, dataset_id: int, first_row: int, rows: bytes, number: int) -> DatasetInfo:
    """Store one chunk of rows in block #``number``; on the last one, check the rows root and
    record the block (``completed_in``). Returns the new info."""
    info = get_dataset(state, dataset_id)
    if info.complete:
        raise DispatchError(PALLET, "AlreadyComplete", f"data set {dataset_id} is complete; a complete data set never changes")
    if first_row == 0 and info.chunks:
        for first in info.chunks:  # restart an incomplete upload
            CHUNKS.apply_delete(state, dataset_id, first)
        FRONTIER.apply_delete(state, dataset_id)
        info = msgspec.structs.replace(info, uploaded_rows=0, chunks=())
    if first_row != info.uploaded_rows:
        raise DispatchError(
            PALLET, "OutOfOrder", f"data set {dataset_id} expects row {info.uploaded_rows} next, got {first_row} (or 0 to restart)"
        )
    if not rows or len(rows) % info.row_size:
        raise DispatchError(PALLET, "MalformedRows", f"{len(rows)} bytes is not a whole number of {info.row_size}-byte rows")
    count = len(rows) // info.row_size
    if first_row + count > info.row_count:
        raise DispatchError(PALLET, "TooManyRows", f"rows {first_row}..{first_row + count} exceed the {info.row_count} registered")
    limit = compute_max_chunks(info)
    if len(info.chunks) >= limit:
        raise DispatchError(
            PALLET, "TooManyChunks",
            f"data set {dataset_id} is uploaded in at most {limit} chunks (twice what 1 MiB chunks "
            "need, plus 16); restart from row 0 with larger chunks",
        )
    decoded = np.frombuffer(rows, dtype=compute_row_dtype(info))
    if not np.isfinite(decoded["x"]).all() or (info.kind == "regression" and not np.isfinite(decoded["y"]).all()):
        raise DispatchError(PALLET, "MalformedRows", "rows hold a NaN or infinite value")
    if info.kind == "classification" and (decoded["y"] >= info.outputs).any():
        raise DispatchError(PALLET, "MalformedRows", f"a label is outside 0..{info.outputs - 1}")
    CHUNKS.apply_set(state, rows, dataset_id, first_row)
    stored = FRONTIER.get(state, dataset_id) if info.chunks else None
    frontier = ml_runtime.compute_frontier(
        stored or (), first_row, (rows[i : i + info.row_size] for i in range(0, len(rows), info.row_size))
    )
    info = msgspec.structs.replace(info, uploaded_rows=first_row + count, chunks=(*info.chunks, first_row))
    if info.complete:
        root = ml_runtime.compute_frontier_root(frontier)
        if root != info.rows_root:
            raise DispatchError(
                PALLET, "RootMismatch", f"the rows hash to {root.hex()}, registered {info.rows_root.hex()}; restart from row 0"
            )
        if stored is not None:
            FRONTIER.apply_delete(state, dataset_id)
        info = msgspec.structs.replace(info, completed_in=number)
    else:
        FRONTIER.apply_set(state, tuple(frontier), dataset_id)
    DATASETS.apply_set(state, info, dataset_id)
    return info


def apply_append_rows(ctx: CallContext, call: AppendRows) -> None:
    info = get_dataset(ctx.state, call.dataset)
    if info.provider != ctx.sender:
        raise DispatchError(PALLET, "NotProvider", f"only the provider may upload rows of data set {call.dataset}")
    info = apply_rows(ctx.state, call.dataset, call.first_row, call.rows, ctx.block.number)
    ctx.emit(PALLET, "RowsAppended", dataset=call.dataset, uploaded=info.uploaded_rows, complete=info.complete)

