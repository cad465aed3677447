"""Every benchmark module imports, and a record carries its machine and command."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil

import pytest

import benches
from benches.record import check_out_folder, write_record


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(benches.__path__)))
def test_every_benchmark_imports(name: str) -> None:
    importlib.import_module(f"benches.{name}")


def test_a_record_names_its_machine_and_command(tmp_path) -> None:
    path = write_record(tmp_path / "out" / "x.json", "x", rows=[1, 2])
    record = json.loads(path.read_text())
    assert record["bench"] == "x" and record["rows"] == [1, 2]
    machine = record["machine"]
    assert machine["cpus"] >= 1 and machine["cpu"] and machine["libraries"]["numba"]
    assert record["command"].startswith("python ") and record["time"].endswith("Z")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_a_folder_this_user_cannot_write_in_is_named_before_measuring(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert check_out_folder(locked, ["x.json"]) == "cannot write in the folder: Permission denied"
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_an_out_folder_is_made_and_checked(tmp_path) -> None:
    assert check_out_folder(tmp_path / "a b" / "c", ["x.json"]) is None and (tmp_path / "a b" / "c").is_dir()
    assert list((tmp_path / "a b" / "c").iterdir()) == []  # the probe file is gone
    (tmp_path / "f").write_text("")
    assert check_out_folder(tmp_path / "f", ["x.json"]) == "cannot make the folder: File exists"


def test_the_pruning_bench_runs_small_and_records_both_variants(tmp_path) -> None:
    """benches.pruning at a tiny size: both variants end on one root (the bench exits
    otherwise), the pruned one ran live pruning while importing and keeps fewer trie nodes."""
    from benches import pruning

    out = tmp_path / "pruning.json"
    pruning.main(["--blocks", "14", "--per-block", "8", "--keep", "2", "--reps", "1", "--out", str(out)])
    record = json.loads(out.read_text())
    archive, pruned = record["summary"]["archive"], record["summary"]["pruned"]
    assert archive["runs"] == 0 and pruned["runs"] >= 2 and pruned["run_deleted"] > 0
    assert pruned["trie_nodes"] < archive["trie_nodes"] and len(record["ratios"]) == 1


def test_the_serving_bench_runs_small_and_gives_the_same_answer_both_ways(tmp_path) -> None:
    """benches.chain's serving section at a tiny size: the stored bytes and the re-encoded
    blocks give the same answer (the bench raises otherwise), and both rates are recorded."""
    import argparse

    from benches.chain import bench_serving

    results: dict = {}
    args = argparse.Namespace(senders=20, receivers=20, blocks=3, per_block=20, rounds=1)
    bench_serving(args, tmp_path, results)
    serving = results["serving"]
    assert serving["blocks"] == 3 and serving["answer_bytes"] > 3 * 20 * 100
    assert serving["decoded_cpu_ms_per_mb"] > 0 and serving["stored_cpu_ms_per_mb"] > 0 and serving["speedup"] > 0


def test_the_weights_bench_runs_the_scenarios_that_had_stopped_fitting(tmp_path) -> None:
    """benches.weights --quick, the scenarios the chain's later limits had broken: 10 calls of
    2^16 outputs passed the block's byte limit (their receipts), a data set of MAX_ROWS 16 KiB
    rows passed the 1 GiB cap, and two calls a block measured noise. Each builds its block
    whole (the bench raises otherwise) and records a cost per unit."""
    from benches import weights

    names = ["infer_wide_16", "append_rows_restart", "train_big"]
    weights.main(["--quick", "--reps", "1", "--no-hooks", "--only", *names, "--out", str(tmp_path)])
    calls = json.loads((tmp_path / "weights.json").read_text())["results"]["calls"]
    assert sorted(calls) == sorted(names) and all(calls[n]["ns_per_unit"] > 0 for n in names)
    assert calls["train_big"]["errors"] == ["training.DatasetMismatch"] and calls["infer_wide_16"]["errors"] == []


def test_the_p2p_bench_runs_small_through_every_limit_the_node_keeps() -> None:
    """benches.p2p at a tiny size: its configuration lifts every per-peer allowance it pushes
    against. When gossiped extrinsics got an allowance of their own (2 MiB/s after 8 MiB), its
    1 MiB transactions row waited for the ninth for good, and nothing ran it to notice."""
    import argparse
    import asyncio

    from benches import p2p

    args = argparse.Namespace(messages=300, size=128, connects=2, big=12, ranges=5, rounds=1)
    rows = asyncio.run(p2p.run(args))
    assert len(rows) == 5 and all(r["value"] > 0 for r in rows.values())
