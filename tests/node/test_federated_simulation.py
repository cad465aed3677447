"""``polchain fl simulate``: each cheater is caught or excluded and the honest are paid; the
catch rate of a cheater faking every segment is 1."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from test_cli import polchain

from node import fl_simulation

SMALL = {"participants": 4, "samples": 2, "steps": 40, "batch": 16, "segment": 10, "lr": 0.5}


@pytest.mark.parametrize("cheat", ["fake-weights", "wrong-data", "silent"])
def test_the_cheater_is_excluded_and_the_honest_are_paid(cheat: str) -> None:
    report = fl_simulation.simulate(trials=1, seed=3, cheat=cheat, fake_segments=4, **SMALL)
    (trial,) = report["trials"]
    *honest, cheater = trial["participants"]
    assert report["caught"] == 1 and report["expectedCatchRate"] == 1.0
    assert cheater["status"] == "excluded" and cheater["reward"] == 0
    assert all(p["status"] == "accepted" for p in honest)
    # The pool and the forfeited bond, split by samples (floor) among the honest.
    paid = sum(p["reward"] for p in honest)
    assert trial["forfeited"] == 10**9 and 10**10 + 10**9 - len(honest) < paid <= 10**10 + 10**9
    assert len(trial["lineage"]) == len(honest)
    assert trial["accuracyNew"] > trial["accuracyBase"] + 0.3


def test_a_partial_faker_is_caught_at_the_rate_of_the_formula_over_trials() -> None:
    """Faking 2 of 4 segments with m = 2: caught with probability 1 - C(2,2)/C(4,2) = 5/6."""
    report = fl_simulation.simulate(trials=6, seed=0, cheat="fake-weights", fake_segments=2, **SMALL)
    assert report["expectedCatchRate"] == pytest.approx(5 / 6)
    for trial in report["trials"]:
        *_, cheater = trial["participants"]
        assert trial["cheaterCaught"] == (cheater["status"] == "excluded")
        assert cheater["status"] in ("excluded", "accepted")
    assert report["caught"] >= 3  # 6 trials at 5/6: fewer than 3 has probability < 0.01


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"cheat": "bribe"}, "--cheater must be one of"),
        ({"participants": 1}, "--participants must be in 2..5"),
        ({"trials": 0}, "--trials must be in 1..10000"),
        ({"fake_segments": 9}, "--fake-segments must be in 1..4"),
        ({"segment": 50}, "the round cannot open: federated.InvalidSegmentLength"),
    ],
)
def test_bad_parameters_are_refused(kw: dict, reason: str) -> None:
    args = {"trials": 1, "seed": 0, "cheat": "fake-weights", "fake_segments": 1, **SMALL} | kw
    with pytest.raises(fl_simulation.SimulationError, match=reason):
        fl_simulation.simulate(**args)


def test_the_command_prints_the_report() -> None:
    out = polchain("fl", "simulate", "--cheater", "silent", "--steps", "40", "--segment-len", "10", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["caught"] == 1 and report["trials"][0]["participants"][-1]["reason"].startswith("revealed 0 of 2")
    text = polchain("fl", "simulate", "--cheater", "none", "--steps", "40", "--segment-len", "10")
    assert text.returncode == 0 and "held-out accuracy: base" in text.stdout
    bad = polchain("fl", "simulate", "--participants", "9")
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: --participants must be in 2..5"


def test_a_run_that_would_take_hours_is_refused_before_the_first_trial() -> None:
    """10,000 trials of 5 participants training 100,000 steps each: 5e9 SGD steps, about 8 hours
    here (one such trial takes 3 s). Refused at once, naming the flags and the bound."""
    started = time.monotonic()
    try:
        out = polchain("fl", "simulate", "--trials", "10000", "--participants", "5", "--steps", "100000",
                       "--segment-len", "100", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("polchain fl simulate started 5e9 steps of training instead of refusing them")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == (
        "Error: --trials 10000 x --participants 5 x --steps 100000 = 5,000,000,000 local SGD steps: "
        f"at most {fl_simulation.MAX_TOTAL_STEPS:,}"
    )
    assert time.monotonic() - started < 10
    # the default run and the README's 200 trials stay well inside the bound
    assert fl_simulation.MAX_TOTAL_STEPS >= 200 * 4 * 200
