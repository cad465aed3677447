"""``polchain bench``: every subcommand, run as the real CLI on --quick sizes, writes the JSON
record (its schema pinned here) and the PNG plot; bad arguments get specific usage errors.

The five benches run at once in one module fixture (real processes: the CLI, its devnet
nodes and RPC servers, all on 127.0.0.1) so that the file takes about as long as the
slowest of them; the figures of such a run are meaningless (they share two cores), only
their shape is checked. Each bench runs with ``--reps 2``, the smallest repetition count
the CLI takes (a median of one shot is refused).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from node.cli import build_parser, main
from node.cli_bench import compute_bench_command, resolve_args

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("kernels", "validator", "transfers", "rpc", "devnet")
EXTRA = {"devnet": ["--seconds", "4", "--validators", "2", "--clients", "1"], "validator": ["--jobs", "1"]}
COMMON_KEYS = {"bench", "quick", "reps", "table", "extra_tables", "results", "notes", "plot", "machine", "command", "time"}
STAT_KEYS = {"median", "min", "max", "q1", "q3", "n", "values"}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for name in BENCHES:
        log = (out / f"{name}.log").open("w")
        procs[name] = (subprocess.Popen(
            [sys.executable, "-m", "node.cli", "bench", name, "--quick", "--reps", "2", "--out", str(out),
             *EXTRA.get(name, [])],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        ), log)
    deadline = time.monotonic() + 240
    done = {}
    for name, (proc, log) in procs.items():
        try:
            code = proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
        done[name] = (code, (out / f"{name}.log").read_text(), out)
    return done


def _record(records: dict[str, tuple[int, str, Path]], name: str) -> dict[str, Any]:
    code, log, out = records[name]
    assert code == 0, f"polchain bench {name} exited {code}:\n{log[-3000:]}"
    record = json.loads((out / f"{name}.json").read_text())
    assert set(record) >= COMMON_KEYS, set(record) ^ COMMON_KEYS
    assert record["bench"] == name and record["quick"] is True and record["reps"] == 2
    assert record["command"].startswith(f"polchain bench {name} --quick --reps 2 --out ")
    machine = record["machine"]
    assert machine["cpu"] and machine["cpus"] >= 1 and machine["libraries"]["numpy"] and machine["libraries"]["matplotlib"]
    table = record["table"]
    assert table["title"] and table["columns"] and table["rows"]
    assert all(len(row) == len(table["columns"]) for row in table["rows"])
    assert record["plot"] == f"{name}.png"
    assert (out / record["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out / name}.json" in log  # the table went to stdout before it
    return record["results"]


def _is_stat(value: Any, n: int = 2) -> bool:
    return isinstance(value, dict) and set(value) >= STAT_KEYS and value["n"] == n and \
        value["min"] <= value["median"] <= value["max"] and len(value["values"]) == n


def test_kernels_schema(records) -> None:
    res = _record(records, "kernels")
    assert res["rounds"] == 2
    for group, names in (("benchmark_shapes", ("linear 64-10 B32", "softmax 64-10 B32", "mlp 64-10-32 B32")),
                         ("mnist_shapes", ("softmax 784-10 B64", "mlp 784-128-10 B64"))):
        assert set(res[group]) == set(names)
        for shape in res[group].values():
            for column in ("before", "strict", "fastmath", "blas"):
                assert 0 < shape[column]["min"] <= shape[column]["median"] <= shape[column]["max"]
            assert {"strict_over_before", "strict_over_fastmath"} <= set(shape["ratios"])
    par = res["parallel_verification"]
    for family in ("softmax", "mlp"):
        assert len(par[family]["speedup"]["all"]) == 2 and par[family]["steps_s_1t"]["median"] > 0
        # each round's own control, and the speed-up of the rounds in which it found both cores
        controls = par[family]["control_same_rounds"]["all"]
        assert len(controls) == 2 and all(c > 0 for c in controls)
        whole = par[family]["speedup_rounds_with_both_cores"]
        assert whole["rounds"] == sum(c >= 1.8 for c in controls)
        kept = [s for s, c in zip(par[family]["speedup"]["all"], controls, strict=True) if c >= 1.8]
        assert whole["median"] == (statistics.median(kept) if kept else None)
    assert len(par["control_nogil_integer_loop"]["all"]) == 2


def test_validator_schema(records) -> None:
    res = _record(records, "validator")
    assert res["size"] == "all"
    # the command names every size, defaults included (it left out --segment and --size)
    command = json.loads((records["validator"][2] / "validator.json").read_text())["command"]
    assert command.endswith(" --jobs 1 --segment 10 --size all")
    assert set(res["families"]) == {"softmax 64-10", "mlp 64-32-10", "softmax 784-10", "mlp 784-128-10"}
    for family, f in res["families"].items():
        assert f["jobs"] == 1 and f["segments_S"] == 32 and f["block_training_steps"] == 32 * f["segment_len"]
        assert f["batch"] == (64 if "784" in family else 32) and f["segment_len"] <= f["segment_len_asked"] == 10
        assert set(f["verifiers"]) == {"full", "full, 1 thread", "S/m=4", "S/m=8", "S/m=16", "S/m=32"}
        assert f["verifiers"]["full, 1 thread"]["rerun_threads"] == 1
        full = f["verifiers"]["full"]
        for name, v in f["verifiers"].items():
            for key in ("import_ms", "import_cpu_ms", "verified_steps_per_s", "speedup_vs_full", "speedup_vs_full_cpu"):
                assert _is_stat(v[key]), (family, name, key)
            assert v["samples_m"] == (32 if name.startswith("full") else 32 // int(name.split("=")[1]))
            assert v["bytes_per_validator"] == f["block_bytes"] + v["bytes_fetched"]["median"]
            assert isinstance(v["rerun_threads"], int) and v["rerun_threads"] >= 1
            assert _is_stat(v["speedup_vs_full_1_thread_cpu"]), (family, name)
            # one pool policy for both: the auditor re-runs on at least as many threads as a sample
            assert v["rerun_threads"] <= full["rerun_threads"]
            # every validator fetches every opening, S + 1 (consensus.pol: a request that
            # depended on the sample told the author whom to refuse)
            assert v["openings_fetched"]["median"] == full["openings_fetched"]["median"] == 33
        assert f["verifiers"]["S/m=32"]["escape_one_forged_segment"] == pytest.approx(1 - 1 / 32)
        for key in ("import_ms", "import_cpu_ms", "speedup_ceiling", "speedup_ceiling_cpu"):
            assert _is_stat(f["floor"][key]), (family, "floor", key)
        # the old format carried every checkpoint: 33 copies of the weights (float32)
        assert f["old_format_block_bytes"] > f["block_bytes"] + 32 * f["param_count"] * 4
    # the MNIST-sized MLP's 320 steps (32 x 10) exceed a block's weight (about 150 steps fit):
    # its segments are shortened so that one call fits, and the record says so
    mlp = res["families"]["mlp 784-128-10"]
    assert mlp["segment_len"] < 10 and mlp["fit"].startswith("one call of 32 x 10 steps exceeds the block's limits")
    assert res["families"]["softmax 784-10"]["fit"] == "as asked"
    assert res["parallel_verification"]["softmax"]["speedup"]["median"] > 0


def test_transfers_schema(records) -> None:
    res = _record(records, "transfers")
    assert res["transfers"] == res["blocks"] * res["per_block"] > 0 and len(res["state_root"]) == 64
    assert res["warm_blocks"] >= 1  # timed on a node that has imported blocks first, as a validator's is
    for key in ("imported_per_s_1_thread", "imported_per_s_2_threads", "pynacl_verify_per_s_1_thread",
                "pynacl_verify_per_s_2_threads", "ratio_1_core", "ratio_2_cores", "ratio_1_core_cpu",
                "imported_per_s_1_thread_cpu", "pynacl_verify_per_s_1_thread_cpu",
                "kernel_verify_per_s_1_thread", "kernel_verify_per_s_2_threads", "ratio_1_core_kernel",
                "ratio_2_cores_kernel", "imported_per_s_2_threads_importing_thread_cpu",
                "imported_per_s_2_threads_process_cpu"):
        assert _is_stat(res[key]), key
        assert res[key]["min"] > 0
    assert _is_stat(res["background_cpu_us_per_transfer_1_thread"])
    stages = res["breakdown_us_per_transfer"]
    assert {"signature checks", "execution (apply extrinsics)", "state commit + root", "DB write batch", "total"} <= set(stages)
    assert all(_is_stat(stat) for stat in stages.values())
    # The LevelDB write inside the DB write stage: its CPU and its wait for fsync, parts of it.
    write, cpu, wait = (stages[k]["median"] for k in (
        "DB write batch", "DB write batch: LevelDB write, CPU", "DB write batch: waiting for fsync"))
    assert 0 < cpu < write and 0 <= wait < write


def test_rpc_schema(records) -> None:
    res = _record(records, "rpc")
    assert set(res["methods"]) == {"system_health", "chain_getHeader", "state_getStorage", "ml_getModel"}
    assert {(r["method"], r["transport"]) for r in res["rows"]} == {
        (m, t) for m in res["methods"] for t in ("http", "ws")}
    for row in res["rows"]:
        assert _is_stat(row["polchain_rps"]) and _is_stat(row["bare_rps"]) and _is_stat(row["ratio"])
    # every cell ran for both servers in both rounds, and answered
    assert len(res["cells"]) == 4 * 2 * 2 * 2 and all(c["requests"] > 0 for c in res["cells"])


def test_devnet_schema(records) -> None:
    res = _record(records, "devnet")
    assert res["validators"] == 2 and res["clients"] == 1 and len(res["windows"]) == 2
    assert 0 < res["in_block"] <= res["submitted"] and 0 < res["finalized"] <= res["in_block"]  # a devnet that finalizes
    for window in res["windows"]:
        assert {"included_per_s", "in_block_p50_s", "in_block_p99_s", "finalized_p50_s", "finalized_p99_s"} <= set(window)
    assert _is_stat(res["summary"]["included_per_s"]) and res["summary"]["included_per_s"]["median"] > 0
    p50, p99 = res["overall"]["in_block_p50_s"], res["overall"]["in_block_p99_s"]
    assert 0 <= p50 <= p99


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "kernels", "--reps", "1"], "1 repetitions: between 2 and 50 (a median of one shot is no median)"),
        (["bench", "rpc", "--reps", "x"], "'x' is not an integer"),
        (["bench", "devnet", "--clients", "7"], "7 is out of range: 1..6"),
        (["bench", "validator", "--jobs", "0"], "0 is out of range: 1..64"),
        (["bench", "validator", "--size", "cifar"], "invalid choice: 'cifar' (choose from"),
        (["bench", "nothing"], "invalid choice: 'nothing'"),
    ],
)
def test_bad_arguments_are_usage_errors(argv, expected, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("name", BENCHES)
@pytest.mark.parametrize("reps", ["51", "1000", str(10**6)])
def test_repetitions_that_would_take_hours_are_refused_before_parsing_ends(name, reps, capsys) -> None:
    # 1000 repetitions of the default rpc bench are 1000 x 16 cells x 2 s: 9 hours of load.
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bench", name, "--reps", reps])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"Error: polchain bench {name}: argument --reps: {reps} repetitions: between 2 and 50 (")
    assert len(err.splitlines()) == 1


def test_an_out_folder_that_cannot_be_made_is_refused_before_measuring(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    started = time.monotonic()
    assert main(["bench", "transfers", "--quick", "--out", str(blocker / "sub")]) == 1
    assert f"Error: --out {blocker / 'sub'}: cannot make the folder: Not a directory" in capsys.readouterr().err
    assert time.monotonic() - started < 5  # refused at once, no transfers signed
    assert blocker.read_text() == "not a folder"


def test_an_out_folder_whose_record_cannot_be_written_is_refused_before_measuring(tmp_path, capsys) -> None:
    # --out exists but <out>/transfers.json is a folder: the bench used to measure for a minute,
    # print its table, then fail on the write and lose the figures
    (tmp_path / "transfers.json").mkdir()
    started = time.monotonic()
    assert main(["bench", "transfers", "--quick", "--reps", "2", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == \
        f"Error: --out {tmp_path}: {tmp_path / 'transfers.json'} is a folder, not a file"
    assert time.monotonic() - started < 5  # refused at once, no transfers signed
    assert [p.name for p in tmp_path.iterdir()] == ["transfers.json"]


def test_devnet_windows_shorter_than_two_blocks_are_refused_before_launching(tmp_path, capsys) -> None:
    # --quick loads for 9 s with 500 ms blocks: 50 windows were 0.18 s each, most with no block
    # in them, and their medians were reported as figures
    started = time.monotonic()
    assert main(["bench", "devnet", "--quick", "--reps", "50", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == (
        "Error: bench devnet: --seconds 9 in --reps 50 windows of 0.18 s: a window must hold 2 blocks "
        "(2 x 500 ms): at most 9 repetitions, or more --seconds")
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "validator", "--jobs", "1_0"], "argument --jobs: '1_0' is not an integer"),
        (["bench", "validator", "--segment", "\u0663"], "argument --segment: '\u0663' is not an integer"),  # Arabic-Indic 3
        (["bench", "kernels", "--reps", " 3"], "argument --reps: ' 3' is not an integer"),
        (["bench", "devnet", "--seconds", "6\n"], "argument --seconds: '6\\n' is not an integer"),
        (["devnet", "--validators", "1_0"], "argument --validators/-n: '1_0' is not an integer"),
        (["devnet", "--auditors", "\u0663"], "argument --auditors: '\u0663' is not an integer"),
        (["devnet", "--interval", "1_0"], "argument --interval: '1_0' is not a number of seconds"),
        (["devnet", "--stop-timeout", " 5"], "argument --stop-timeout: ' 5' is not a number of seconds"),
        (["simulate", "--slot-ms", "1_000"], "argument --slot-ms: '1_000' is not a number"),
        (["simulate", "--byzantine", " 0.1"], "argument --byzantine: ' 0.1' is not a number"),
    ],
)
def test_numbers_are_ascii_digits_as_elsewhere_in_the_cli(argv, expected, capsys) -> None:
    # int() and float() also take "1_0", surrounding spaces and non-ASCII digits; the rest of the
    # CLI (node/cli.py, node/simulate.py) refuses them, and these flags now do too
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "command"), [
    (["bench", "validator", "--quick", "--jobs", "1"],
     "polchain bench validator --quick --reps 3 --out bench-results --jobs 1 --segment 10 --size all"),
    (["bench", "validator", "--size", "mnist"],
     "polchain bench validator --reps 5 --out bench-results --jobs 4 --segment 25 --size mnist"),
    (["bench", "devnet", "--out", "a b"], "polchain bench devnet --reps 5 --out 'a b' --validators 4 --clients 4 --seconds 60"),
    (["bench", "devnet", "--quick", "--clients", "1"],
     "polchain bench devnet --quick --reps 3 --out bench-results --validators 2 --clients 1 --seconds 9"),
    (["bench", "rpc"], "polchain bench rpc --reps 5 --out bench-results"),
])
def test_the_recorded_command_names_every_size_the_run_uses(argv, command) -> None:
    # a record said "polchain bench validator --quick --reps 3 --out bench-results": run again
    # after the defaults change, it would measure other sizes than the record's
    args = build_parser().parse_args(argv)
    resolve_args(args)
    assert compute_bench_command(args) == command


def test_the_devnet_help_says_seconds_are_the_whole_load(capsys) -> None:
    # it said "seconds of load per repetition": --seconds 60 --reps 5 is 60 s of load in 5 windows
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "devnet", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "seconds of load in all, cut into --reps windows of at least 2 blocks (default 60, --quick 9)" in help_text
