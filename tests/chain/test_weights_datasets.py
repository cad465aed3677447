"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it). datasets.append_rows: the append that completed a data set
read back and hashed every row for the weight of its own rows; now each append hashes its
rows into the upload's frontier and declares them. Shared helpers of tests/chain/test_weights_*.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from chainkit import BOB, FERDIE, event_args, sign
from test_pallets import Driver

import ml_runtime
from chain import calls
from chain.pallets import datasets


class ReadLog:
    """A state that records the keys read through it (the overlay underneath does the work)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.keys = inner, []

    def get(self, key: bytes) -> bytes | None:
        self.keys.append(key)
        return self.inner.get(key)  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes) -> None:
        self.inner.set(key, value)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)

    def chunk_reads(self) -> int:
        return sum(key.startswith(datasets.CHUNKS.prefix) for key in self.keys)


def compute_rows(count: int, features: int, classes: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, features)).astype(np.float32)
    y = rng.integers(0, classes, count).astype(np.uint32)
    return datasets.compute_rows_bytes(x, y, "classification")


def compute_weight(chain, call) -> int:
    """The weight ``call`` declares, sent by Bob, in the best state."""
    return int(chain.runtime.compute_dispatch_info(chain.state.overlay(), sign(chain, BOB, call, 0)).weight)


# --- datasets.append_rows: the append that completes a data set hashed every row ----------------


def test_the_append_that_completes_a_data_set_reads_no_earlier_chunk(chain) -> None:
    """Before: the completing append read every chunk back and hashed every row (a MAX_ROWS
    data set of 8-byte rows: about 1 s) for the weight of its own rows; under a wrong root
    it failed, was rolled back, and could be sent again, block after block."""
    count, row_size = 1000, 8
    rows = compute_rows(count, 1, 2)
    state = chain.state.overlay()
    info = datasets.DatasetInfo(BOB.public, "d", 1, "classification", 2, count, datasets.compute_rows_root(rows, row_size), 0, "")
    dataset = datasets.apply_new_dataset(state, info)
    for first in range(0, count - 1, 333):
        datasets.apply_rows(state, dataset, first, rows[first * row_size : min(first + 333, count - 1) * row_size], 1)
    log = ReadLog(state)
    done = datasets.apply_rows(log, dataset, count - 1, rows[(count - 1) * row_size :], 1)
    assert done.complete and log.chunk_reads() == 0
    assert datasets.FRONTIER.get(state, dataset) is None  # an upload's frontier goes with it
    assert datasets.get_rows(state, dataset)[1].shape == (count, 1)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 64, 100, 257])
def test_the_incremental_rows_root_is_rfc6962s_for_any_chunking(count: int) -> None:
    rows = compute_rows(count, 1, 2, seed=count)
    expected = datasets.compute_rows_root(rows, 8)
    rng = np.random.default_rng(count)
    frontier: list[bytes] = []
    done = 0
    while done < count:
        take = int(rng.integers(1, count - done + 1))
        frontier = ml_runtime.compute_frontier(frontier, done, (rows[i : i + 8] for i in range(done * 8, (done + take) * 8, 8)))
        done += take
    assert ml_runtime.compute_frontier_root(frontier) == expected


def test_a_completing_append_under_a_wrong_root_fails_and_changes_only_the_fee(chain) -> None:
    d = Driver(chain)
    rows = compute_rows(300, 1, 2)
    receipt = d.apply(BOB, calls.RegisterDataset("d", 1, "classification", 2, 300, bytes(32), 0, ""))
    dataset = event_args(receipt, "DatasetRegistered")["dataset"]
    assert d.apply(BOB, calls.AppendRows(dataset, 0, rows[: 299 * 8])).success
    d.fails(BOB, calls.AppendRows(dataset, 299, rows[299 * 8 :]), "RootMismatch")
    d.fails(BOB, calls.AppendRows(dataset, 299, rows[299 * 8 :]), "RootMismatch")  # again: still only the fee
    assert datasets.get_dataset(chain.state.overlay(), dataset).uploaded_rows == 299


def test_an_append_declares_the_hashing_of_each_of_its_rows(chain) -> None:
    """Each append now hashes its rows into the frontier: its weight counts them, from the
    row size the state holds (8-byte rows: 131,072 leaves in one 1 MiB chunk)."""
    d = Driver(chain)
    receipt = d.apply(BOB, calls.RegisterDataset("d", 1, "classification", 2, 1 << 20, bytes(32), 0, ""))
    dataset = event_args(receipt, "DatasetRegistered")["dataset"]
    chunk = bytes(calls.MAX_ROWS_CHUNK)
    weight = compute_weight(chain, calls.AppendRows(dataset, 0, chunk))
    rows = len(chunk) // 8
    assert weight >= 1_000 * rows  # two blake2b of a row: about 1 us (benches/weights.py)
    merges = (1 << 20).bit_length()  # the most one row's append may merge, and the completing fold
    assert weight == (
        datasets.APPEND_BASE_WEIGHT + datasets.APPEND_BYTE_WEIGHT * len(chunk) + datasets.ROW_HASH_WEIGHT * (rows + merges)
    )


def test_an_append_to_a_complete_data_set_declares_no_rows(chain) -> None:
    """It fails at once (AlreadyComplete): no row is hashed and no chunk deleted."""
    rows = bytes(70_000)
    assert compute_weight(chain, calls.AppendRows(0, 0, rows)) == datasets.APPEND_BASE_WEIGHT + datasets.APPEND_BYTE_WEIGHT * len(rows)
    Driver(chain).fails(FERDIE, calls.AppendRows(0, 0, rows), "AlreadyComplete")  # Ferdie provides the digits


def test_a_restart_declares_the_bytes_it_deletes(chain) -> None:
    """A restart (an append at row 0) deletes every chunk uploaded so far, and the block's
    journal reads and stores each one: its weight counts their bytes, not only their number.
    By number alone, 1,000 one-row chunks of 16 KiB rows weighed 50M units and took 291 ms to
    import, 5x a transfer's time a unit (benches/weights.py append_rows_restart)."""
    d = Driver(chain)
    features = 2048  # and 2,048 regression targets: 16 KiB rows
    size = datasets.compute_row_size(features, "regression", features)
    receipt = d.apply(BOB, calls.RegisterDataset("wide", features, "regression", features, 64, bytes(32), 0, ""))
    dataset = event_args(receipt, "DatasetRegistered")["dataset"]
    row = np.ones(2 * features, dtype="<f4").tobytes()
    for first in range(3):
        assert d.apply(BOB, calls.AppendRows(dataset, first, row)).success
    append = datasets.APPEND_BASE_WEIGHT + datasets.APPEND_BYTE_WEIGHT * size + datasets.ROW_HASH_WEIGHT * (1 + (64).bit_length())
    assert compute_weight(chain, calls.AppendRows(dataset, 3, row)) == append  # no restart, nothing deleted
    deleted = 3 * size
    assert compute_weight(chain, calls.AppendRows(dataset, 0, row)) == (
        append + 3 * datasets.CHUNK_DELETE_WEIGHT + datasets.CHUNK_DELETE_BYTE_WEIGHT * deleted
    )
    assert datasets.CHUNK_DELETE_BYTE_WEIGHT * deleted > 3 * datasets.CHUNK_DELETE_WEIGHT  # the bytes dominate at this size
