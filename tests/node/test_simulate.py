"""``polchain simulate``: the simulator's invariants on small sizes (node/simulate.py).

Every run here builds real blocks with real training and runs the real sampling and
verification code; sizes are small so that each test takes seconds."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benches.record import describe_machine
from node.cli import main
from node.simulate import (
    FAULTS,
    MAX_SGD_STEPS,
    Params,
    SimulationError,
    compute_detection_rate,
    compute_sgd_steps,
    simulate,
)


def _small(**kw: object) -> Params:
    base: dict[str, object] = {"validators": 10, "byzantine": 0.2, "blocks": 40, "segments": 8, "samples": 2,
                               "forged_segments": 1, "probes": 1, "seed": 7, "windows": (0, 1, 4, 8)}
    base.update(kw)
    return Params(**base)  # type: ignore[arg-type]


def test_same_seed_same_simulation_and_another_seed_another(tmp_path: Path) -> None:
    argv = ["simulate", "--validators", "10", "--byzantine", "0.2", "--blocks", "15", "--segments", "8",
            "--fault", "mixed", "--seed", "3", "--probes", "1"]
    records = []
    for _ in range(2):
        assert main([*argv, "--out", str(tmp_path)]) == 0
        records.append(json.loads((tmp_path / "simulate.json").read_text()))
    for r in records:
        del r["measured"]  # wall and CPU times, the machine's load: the only part that may differ
    assert records[0] == records[1]
    assert records[0]["simulation"]["forged_produced"] + records[0]["simulation"]["withheld_produced"] > 0
    other = simulate(Params(10, 0.2, "mixed", 15, segments=8, probes=1, seed=4, windows=(0,)))
    assert other["simulation"]["per_block"] != records[0]["simulation"]["per_block"]


def test_a_long_enough_window_finalizes_no_forged_block() -> None:
    # k = m = 4 of S = 8: a job escapes one validator with 1/70, all 8 honest ones with ~1e-15.
    record = simulate(_small(samples=4, forged_segments=4, challenge_blocks=8))
    s = record["simulation"]
    assert s["forged_produced"] >= 5 and s["forged_detected"] == s["forged_produced"]
    assert s["forged_finalized"] == 0
    # each first detection's real proof passed verify_fraud_proof (the tail's forged blocks too)
    assert s["real_fraud_proofs_verified"] >= s["forged_detected"]
    assert s["honest_finalized"] > 0 and s["finality_ms_p50"] > 8 * 1000  # the window's price: W slots
    assert s["min_window_no_forged_finalized"] is not None and s["min_window_no_forged_finalized"] <= 8


def test_without_a_window_forged_blocks_are_finalized() -> None:
    # W = 0: validators vote as soon as they import, before the detector's proof reaches them.
    record = simulate(_small(samples=1, challenge_blocks=0))
    s = record["simulation"]
    assert s["forged_finalized"] > 0
    w0 = s["windows"][0]
    assert w0["window_blocks"] == 0 and w0["forged_finalized_detected"] > 0  # caught, and final all the same
    w4 = next(r for r in s["windows"] if r["window_blocks"] == 4)
    assert w4["forged_finalized_detected"] == 0  # a window of 4 slots lets every proof arrive first


@pytest.mark.parametrize(("segments", "samples", "forged", "closed_form"), [
    (16, 2, 1, 1 - (14 / 16) ** 7),  # C(15, 2) / C(16, 2) = 14/16
    (8, 1, 2, 1 - (6 / 8) ** 7),  # C(6, 1) / C(8, 1)
])
def test_detection_rate_matches_the_analytic_rate(segments: int, samples: int, forged: int, closed_form: float) -> None:
    p = Params(validators=10, byzantine=0.3, blocks=240, segments=segments, samples=samples, forged_segments=forged,
               probes=0, seed=11, windows=(0,))
    a = simulate(p)["simulation"]["analytic"]
    expected = compute_detection_rate(segments, forged, samples, 7)
    assert a["honest_validators"] == 7 and a["expected_detection_rate"] == pytest.approx(expected)
    assert expected == pytest.approx(closed_form)
    n = a["forged_eligible"]
    assert n >= 50
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs(a["measured_detection_rate"] - expected) <= 4 * sigma, (a, sigma)
    # Per sampling validator: hundreds of trials, so a simulator sampling m - 1 segments
    # (expected 0.0625 for S = 16, m = 2, against 0.125) is 4 sigma off, where the block rate
    # above could not tell them apart (a reviewer's mutant, 2026-11-30).
    one = 1 - math.comb(segments - forged, samples) / math.comb(segments, samples)
    trials = a["sampler_trials"]
    assert a["expected_sampler_detection_rate"] == pytest.approx(one) and trials >= 5 * n
    assert abs(a["measured_sampler_detection_rate"] - one) <= 3 * math.sqrt(one * (1 - one) / trials), a


def test_withheld_blocks_are_never_imported_nor_finalized_and_the_chain_goes_on() -> None:
    s = simulate(_small(fault="withhold", blocks=30))["simulation"]
    assert s["withheld_produced"] > 0 and s["forged_produced"] == 0
    assert s["real_withheld_checked"] >= s["withheld_produced"]  # the real verifier raised CheckpointsUnavailable
    withheld = [b for b in s["per_block"] if b[4] == "withheld"]
    assert withheld and all(b[7] == 0 for b in withheld)  # no honest validator sampled (imported) one
    assert all(b[2] not in {w[0] for w in withheld} for b in s["per_block"] if b[4] == "honest")  # nor built on one
    assert s["honest_finalized"] >= s["honest_produced"] - 2


def test_json_schema_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--quick", "--blocks", "12", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "simulate.json").read_text())
    assert set(record) == {"params", "simulation", "measured", "command", "plot"}
    assert record["plot"] == "simulate.png" and (tmp_path / "simulate.png").stat().st_size > 1000
    assert record["params"]["validators"] == 20 and record["params"]["blocks"] == 12
    assert record["command"].startswith("polchain simulate --validators 20 ")
    s = record["simulation"]
    for key in ("forged_produced", "forged_detected", "forged_finalized", "withheld_produced", "detection_ms_p50",
                "detection_ms_p99", "finality_ms_p50", "finality_ms_p99", "bytes_per_block_per_validator", "analytic",
                "windows", "min_window_no_forged_finalized", "per_block", "per_block_columns"):
        assert key in s, key
    assert set(s["bytes_per_block_per_validator"]) == {"block", "openings", "fraud_proofs", "total"}
    assert [r["window_blocks"] for r in s["windows"]] == [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert set(s["windows"][0]) == {"window_blocks", "forged_finalized", "forged_finalized_detected",
                                    "honest_finalized", "finality_ms_p50", "finality_ms_p99"}
    cpu = record["measured"]["validator_cpu_ms_per_block"]
    assert cpu["n"] > 0 and cpu["p50"] > 0 and "real consensus.pol.SampledVerifier" in cpu["how"]
    assert "forged blocks:" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "reason"), [
    (["--validators", "5"], "argument --validators: 5 is out of range: 10..1000"),
    (["--validators", "1001"], "argument --validators: 1001 is out of range"),
    (["--byzantine", "0.6"], "argument --byzantine: 0.6 is out of range"),
    (["--byzantine", "nan"], "argument --byzantine: nan is out of range"),
    (["--fault", "lie"], "argument --fault: invalid choice: 'lie'"),
    (["--blocks", "ten"], "argument --blocks: 'ten' is not an integer"),
    (["--samples", "0"], "argument --samples/-m: 0 is out of range"),
    (["--samples", "9", "--segments", "8"], "--samples 9 is more than --segments 8"),
    (["--forged-segments", "9", "--segments", "8"], "--forged-segments 9 is more than --segments 8"),
    (["--challenge-blocks", "-1"], "argument --challenge-blocks/-W: -1 is out of range"),
    (["--latency-ms", "inf"], "argument --latency-ms: inf is out of range"),
    (["--bandwidth-mbps", "0"], "argument --bandwidth-mbps: 0 is out of range"),
])
def test_bad_arguments_get_one_error_line(args: list[str], reason: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["simulate", *args, "--out", str(tmp_path / "out")])
    except SystemExit as exc:  # argparse's usage error
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and reason in lines[0], err
    assert not (tmp_path / "out" / "simulate.json").exists()


def test_out_that_is_a_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["simulate", "--quick", "--out", str(blocker / "sub")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: --out {blocker / 'sub'}: cannot make the folder")


@pytest.mark.parametrize("target", ["simulate.json", "simulate.png"])
def test_an_out_folder_whose_outputs_cannot_be_written_is_refused_before_simulating(
        target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --out exists, but the file the run would end by writing cannot be: refused before the run
    # (it used to simulate, print its tables, then fail on the write and lose the results)
    (tmp_path / target).mkdir()
    assert main(["simulate", "--quick", "--blocks", "1", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert err.strip() == f"Error: --out {tmp_path}: {tmp_path / target} is a folder, not a file"
    assert "forged blocks:" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [target]


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(validators=st.integers(10, 14), byzantine=st.sampled_from([0.1, 0.2, 0.3]), fault=st.sampled_from(FAULTS),
       segments=st.integers(2, 8), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_invariants_over_random_small_configurations(validators: int, byzantine: float, fault: str, segments: int,
                                                      data: st.DataObject, seed: int) -> None:
    """Over random small configurations (slots 10 mean latencies long, as the README's runs):
    the same seed gives the same simulation; a longer window never finalizes more forged blocks
    nor finalizes honest ones sooner; from W = 1 on, no detected forged block is finalized
    (detection and the proof take a few latencies, a vote needs a block one slot later); and a
    forged block nobody detected and every honest validator sampled escaped all of them."""
    samples = data.draw(st.integers(1, segments), label="samples")
    forged = data.draw(st.integers(1, segments), label="forged_segments")
    p = Params(validators, byzantine, fault, 12, samples=samples, segments=segments, forged_segments=forged,
               probes=0, seed=seed, windows=(0, 1, 2, 4))
    first, again = simulate(p)["simulation"], simulate(p)["simulation"]
    assert first == again
    rows = first["windows"]
    assert [r["window_blocks"] for r in rows] == [0, 1, 2, 4]
    for shorter, longer in itertools.pairwise(rows):
        assert longer["forged_finalized"] <= shorter["forged_finalized"], rows
        assert longer["forged_finalized_detected"] <= shorter["forged_finalized_detected"], rows
        if shorter["finality_ms_p50"] is not None and longer["finality_ms_p50"] is not None:
            assert longer["finality_ms_p50"] >= shorter["finality_ms_p50"], rows
    assert all(r["forged_finalized_detected"] == 0 for r in rows if r["window_blocks"] >= 1), rows
    assert first["forged_detected"] <= first["forged_produced"]
    per = [dict(zip(first["per_block_columns"], b, strict=True)) for b in first["per_block"]]
    assert sum(b["kind"] == "forged" for b in per) == first["forged_produced"]
    assert sum(b["kind"] == "forged" and b["detected_ms"] is not None for b in per) == first["forged_detected"]
    for b in per:  # a detection is after the block, and only of a forged block
        assert b["detected_ms"] is None or (b["kind"] == "forged" and b["detected_ms"] > b["produced_ms"])
    if segments == forged or samples + forged > segments:  # every sample hits a forged segment
        honest = first["analytic"]["honest_validators"]
        assert all(b["detected_ms"] is not None for b in per if b["kind"] == "forged" and b["honest_samplers"] > 0), per
        assert first["analytic"]["expected_detection_rate"] == 1.0 and honest > 0


def test_the_record_names_the_machine_as_the_benches_do(tmp_path: Path) -> None:
    # It recorded platform.processor() as the CPU ("x86_64" here, "" on many Linux builds) and
    # numpy's version alone: not the CPU model, nor numba, msgspec or the others the runs time.
    assert main(["simulate", "--validators", "10", "--blocks", "1", "--probes", "0", "--out", str(tmp_path)]) == 0
    machine = json.loads((tmp_path / "simulate.json").read_text())["measured"]["machine"]
    expected = describe_machine()
    assert machine["cpu"] == expected["cpu"] and machine["cpus"] == expected["cpus"]
    assert machine["libraries"] == expected["libraries"] and machine["libraries"]["numba"]
    assert machine["python"] == expected["python"] and len(machine["load_average"]) == 3


def test_the_byzantine_fraction_is_never_exceeded_nor_silently_zero(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # round(0.5 x 11) = 6: 6 of 11 validators (0.55) were byzantine under a flag bounded to 0.5
    assert Params(11, 0.5).byzantine_count() == 5
    assert [Params(v, b).byzantine_count() for v, b in ((10, 0.1), (100, 0.1), (1000, 0.1), (100, 0.29), (10, 0.3))] == \
        [1, 10, 100, 29, 3]
    # 0.04 of 10 validators was round(0.4) = 0: a run without a byzantine validator, reported as one with
    code = main(["simulate", "--validators", "10", "--byzantine", "0.04", "--out", str(tmp_path / "out")])
    assert code == 1 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip() == \
        "Error: --byzantine 0.04 of --validators 10 is no validator (0.4): at least 0.1, or 0"


def test_a_run_that_would_train_for_hours_is_refused_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each flag in its range, together: 5,040 slots of a 25,600-step job trained, re-run and
    # re-run again by 16 probes sampling all 256 segments: 2.3e9 SGD steps, 2 to 3 hours here
    # (5 blocks of it took 16 s).
    argv = ["--validators", "1000", "--blocks", "5000", "--segments", "256", "--samples", "256", "--segment-steps", "100",
            "--probes", "16"]
    p = Params(1000, blocks=5000, segments=256, samples=256, segment_steps=100, probes=16)
    with pytest.raises(SimulationError) as exc:
        p.check()
    message = ("--blocks 5000 (and 40 slots after) x --segment-steps 100 x (2 x --segments 256 + --probes 16 x --samples 256) "
               "= 2,322,432,000 SGD steps to train and re-run: at most 300,000,000")
    assert str(exc.value) == message
    assert main(["simulate", *argv, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == f"Error: {message}"
    assert not (tmp_path / "out").exists()
    # the README's runs are far inside: V = 1000, 500 blocks, m up to 4
    assert compute_sgd_steps(Params(1000, blocks=500, samples=4)) < MAX_SGD_STEPS / 1000
