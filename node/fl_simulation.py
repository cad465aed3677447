"""``polchain fl simulate``: federated rounds with a cheater, on an in-process dev chain.

Each trial builds a fresh dev chain (LevelDB in a temporary directory, //Alice authoring
every block) and runs one round of chain/pallets/federated.py on model 0 (softmax 64 -> 10)
through real blocks: the digits are shuffled by the trial's seed into a held-out set and one
private share per participant (//Bob, //Charlie, //Dave, ...); the last participant cheats:

- ``fake-weights``: trains honestly, then replaces its last ``fake_segments`` checkpoints
  (and so its submitted weights) with made-up ones under a consistent transcript. It is
  caught iff a challenged segment is one of those: probability 1 − C(S−f, m) / C(S, m).
- ``wrong-data``: commits to its rows but trains on them with shifted labels; any challenged
  segment exposes it (the revealed rows are not under its root, or re-run to other bits).
- ``silent``: commits an honest update and never reveals: excluded at the deadline.
- ``none``: everybody is honest.

A caught or excluded cheater forfeits its bond to the reward pool; the honest share the pool
in proportion to their samples. The report gives, per trial, each participant's status and
reward, the held-out accuracy of the base version and of the new version, and over all
trials the measured catch rate next to the formula.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

import ml_runtime
from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import Keypair, ss58_encode
from chain.extrinsic import sign_extrinsic
from chain.pallets import balances, federated, models
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import load_chain_spec

CHEATS = ("fake-weights", "wrong-data", "silent", "none")
NAMES = ("Bob", "Charlie", "Dave", "Eve", "Ferdie")
HELD_OUT = 297
#: The local SGD steps one run may train in all (trials x participants x steps). A trial of 5
#: participants x 100,000 steps takes about 3 s on the project's 2-core machine (170k steps/s with
#: the chain around it), so the flags' own ranges allowed 10,000 such trials: 8 hours. 10^7 steps
#: is about a minute of training; the README's 200 trials of the defaults are 160,000.
MAX_TOTAL_STEPS = 10_000_000


class SimulationError(Exception):
    """Parameters the simulation cannot run with."""


@dataclass
class _Member:
    key: Keypair
    x: np.ndarray
    y: np.ndarray
    cheat: str = "none"
    result: ml_runtime.JobResult | None = None
    leaves: list[bytes] = field(default_factory=list)


class _Chain:
    """A dev chain in a directory; one block per call, //Alice authoring."""

    def __init__(self, path: Path) -> None:
        spec = load_chain_spec("dev")
        self.chain = Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis, rules=ConsensusRules(Aura(6000)))
        self.alice = Keypair.from_uri("//Alice")
        self.slot = 0

    def block(self, xts: list[Any]) -> Any:
        self.slot += 1
        return self.chain.build_block(xts, self.alice, slot=self.slot)

    def apply(self, key: Keypair, call: Any) -> Any:
        nonce = balances.get_account(self.chain.state.overlay(), key.public).nonce
        xt = sign_extrinsic(key, call, nonce=nonce, genesis_hash=self.chain.genesis_hash, spec_version=self.chain.runtime.spec_version)
        (receipt,) = self.block([xt]).receipts
        return receipt

    def until(self, number: int) -> None:
        while self.chain.best_number < number:
            self.block([])


def _forge(result: ml_runtime.JobResult, fake: int) -> ml_runtime.JobResult:
    """The honest result with its last ``fake`` checkpoints scaled: a consistent transcript
    whose last ``fake`` segments no training produced."""
    checkpoints = list(result.checkpoints)
    for j in range(len(checkpoints) - fake, len(checkpoints)):
        checkpoints[j] = (checkpoints[j] * np.float32(0.999)).astype(np.float32)
    entries = [ml_runtime.TranscriptEntry(j, ml_runtime.hash_weights(w), e.loss)
               for j, (w, e) in enumerate(zip(checkpoints, result.transcript.entries, strict=True))]
    return ml_runtime.JobResult(checkpoints[-1], tuple(checkpoints), ml_runtime.Transcript.build(entries), True)


def _accuracy(spec: ml_runtime.ModelSpec, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float((ml_runtime.predict(spec, w, x).argmax(axis=1) == y).mean())


def run_trial(workdir: Path, seed: int, *, participants: int, cheat: str, fake_segments: int, samples: int,
              steps: int, batch: int, segment: int, lr: float) -> dict[str, Any]:
    """One round on a fresh chain under ``workdir``; the last participant cheats as ``cheat``."""
    sim = _Chain(workdir)
    try:
        return _trial(sim, seed, participants, cheat, fake_segments, samples, steps, batch, segment, lr)
    finally:
        sim.chain.db.close()


def _trial(sim: _Chain, seed: int, participants: int, cheat: str, fake: int, m: int,
           steps: int, batch: int, segment: int, lr: float) -> dict[str, Any]:
    x, y = ml_runtime.load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    test, rest = order[:HELD_OUT], order[HELD_OUT:]
    members = [_Member(Keypair.from_uri(f"//{NAMES[i]}"), x[idx], y[idx]) for i, idx in enumerate(np.array_split(rest, participants))]
    members[-1].cheat = cheat
    bond, pool = 10**9, 10**10
    commit_deadline = participants + 2
    opened = sim.apply(sim.alice, calls.OpenRound(
        0, 0, (), steps, batch, calls.compute_f32_bits(lr), calls.compute_f32_bits(0.0), segment, m, 1, len(NAMES),
        bond, pool, commit_deadline, commit_deadline + 4 * m * participants + 4,
    ))
    if not opened.success:
        raise SimulationError(f"the round cannot open: {opened.error}")
    state = sim.chain.state.overlay()
    info = federated.get_round(state, 0)
    spec = federated.get_spec(state, info)
    base = models.get_weights(state, 0, 0)
    if cheat == "fake-weights" and not 1 <= fake <= info.segments:
        raise SimulationError(f"--fake-segments must be in 1..{info.segments} (the job's segments)")
    for p in members:
        p.leaves = federated.compute_row_leaves(spec, p.x, p.y)
        trained_y = (p.y + 1) % spec.k if p.cheat == "wrong-data" else p.y
        p.result = ml_runtime.run_job(federated.compute_job(info, spec, base, p.key.public, p.x, trained_y, 0))
        if not p.result.finite:
            raise SimulationError("local training diverged: lower --lr")
        if p.cheat == "fake-weights":
            p.result = _forge(p.result, fake)
        commit = federated.compute_commit(0, ml_runtime.compute_merkle_root(p.leaves), len(p.leaves), len(p.leaves), p.result)
        receipt = sim.apply(p.key, commit)
        if not receipt.success:
            raise SimulationError(f"{p.key.address} could not commit: {receipt.error}")
    sim.until(commit_deadline)
    sim.apply(sim.alice, calls.ChallengeRound(0))
    info = federated.get_round(sim.chain.state.overlay(), 0)
    for p in members:
        if p.cheat == "silent":
            continue
        assert p.result is not None
        for j in federated.compute_challenged(info, p.key.public):
            reveal = federated.compute_reveal(0, info, j, p.result, p.leaves, p.key.public)
            sim.apply(p.key, reveal)  # a refused or failing reveal leaves the update unaccepted
    sim.until(info.reveal_deadline)
    sim.apply(sim.alice, calls.CloseRound(0))
    state = sim.chain.state.overlay()
    info = federated.get_round(state, 0)
    rows = []
    for p in members:
        u = federated.UPDATES.get(state, 0, p.key.public)
        assert u is not None
        rows.append({"participant": ss58_encode(p.key.public), "cheat": p.cheat, "samples": u.sample_count,
                     "status": u.status, "reward": u.reward, "reason": u.reason or None})
    out: dict[str, Any] = {
        "seed": seed, "segments": info.segments, "samples": m, "status": info.status, "participants": rows,
        "forfeited": info.forfeited, "accuracyBase": _accuracy(spec, base, x[test], y[test]),
        "cheaterCaught": members[-1].cheat != "none" and rows[-1]["status"] == federated.EXCLUDED,
    }
    if info.new_version is not None:
        out["accuracyNew"] = _accuracy(spec, models.get_weights(state, 0, info.new_version), x[test], y[test])
        lineage = federated.LINEAGE.get(state, 0, info.new_version)
        out["lineage"] = [ss58_encode(e.participant) for e in lineage.entries] if lineage else []
    return out


def simulate(*, trials: int, seed: int, participants: int, cheat: str, fake_segments: int, samples: int,
             steps: int, batch: int, segment: int, lr: float) -> dict[str, Any]:
    """``trials`` rounds (seeds ``seed``, ``seed + 1``, ...) and the catch rate over them."""
    if cheat not in CHEATS:
        raise SimulationError(f"--cheater must be one of {', '.join(CHEATS)}")
    if not 2 <= participants <= len(NAMES):
        raise SimulationError(f"--participants must be in 2..{len(NAMES)}")
    if not 1 <= trials <= 10_000:
        raise SimulationError("--trials must be in 1..10000")
    total = trials * participants * steps
    if total > MAX_TOTAL_STEPS:
        raise SimulationError(f"--trials {trials} x --participants {participants} x --steps {steps} = {total:,} local SGD "
                              f"steps: at most {MAX_TOTAL_STEPS:,}")
    results = []
    with tempfile.TemporaryDirectory(prefix="polchain-fl-sim-") as tmp:
        for t in range(trials):
            results.append(run_trial(Path(tmp) / f"trial{t}", seed + t, participants=participants, cheat=cheat,
                                     fake_segments=fake_segments, samples=samples, steps=steps, batch=batch,
                                     segment=segment, lr=lr))
    segments = results[0]["segments"]
    m = min(samples, segments)
    if cheat == "fake-weights":
        expected: float | None = 1 - math.comb(segments - fake_segments, m) / math.comb(segments, m)
    else:
        expected = None if cheat == "none" else 1.0
    caught = sum(r["cheaterCaught"] for r in results)
    return {"trials": results, "caught": caught, "catchRate": caught / trials, "expectedCatchRate": expected}


def compute_summary_lines(report: dict[str, Any]) -> list[str]:
    """The text form: one line per participant of the first trial, then the rates."""
    first = report["trials"][0]
    lines = [f"round: {first['segments']} segments, m = {first['samples']}, status {first['status']}"]
    for r in first["participants"]:
        lines.append(f"  {r['participant'][:12]}… {r['cheat']:>12} {r['samples']:>5} samples  {r['status']:>9}  reward {r['reward']}"
                     + (f"  ({r['reason']})" if r["reason"] else ""))
    if "accuracyNew" in first:
        lines.append(f"held-out accuracy: base {first['accuracyBase']:.3f} -> new version {first['accuracyNew']:.3f}")
    if report["expectedCatchRate"] is not None:
        lines.append(f"cheater caught in {report['caught']} of {len(report['trials'])} trials "
                     f"({report['catchRate']:.3f}; formula {report['expectedCatchRate']:.3f})")
    return lines


def compute_json(report: dict[str, Any]) -> bytes:
    return msgspec.json.encode(report)
