"""``polchain simulate``: V validators checking proof-of-learning blocks, in virtual time.

An in-process discrete-event simulation (one heap of timed events, no threads, no sleeping)
of V validators under Aura round-robin authorship, with a byzantine fraction of authors whose
blocks forge ``k`` of a job's ``S`` segments or withhold the checkpoints. It answers the
design's open question (README, "Proof-of-learning consensus") with data: for a given V and
``m`` samples per validator, how many blocks must a validator wait (the challenge window W)
before it votes, so that no forged block is finalized, and what that wait costs in finality
latency.

What is real (the product's code decides these outcomes)
--------------------------------------------------------
* Every simulated block is a real sealed block of a real dev chain (chain.blockchain in a
  temporary LevelDB, //Alice sealing) with one real TRAIN call (softmax 64 -> 10 on the
  digits, ``S`` segments of ``--segment-steps`` steps, batch 8): real training by
  ml_runtime, a real :class:`~chain.proofs.TrainingResult` in the body, real
  :class:`~chain.proofs.Opening` s in the author's :class:`~chain.transcripts.TranscriptStore`.
  A forging author's trainer skips the ``k`` forged segments (their checkpoints are made
  up, training goes on honestly from them) and commits the result consistently (roots,
  seal): only re-running a forged segment shows it (tests/forgery.py's idea).
* Each validator's sample is ``consensus.pol.compute_sample`` with its own 32-byte secret,
  bound to the real block hash: the exact segments the product's verifier would re-run.
* Whether a sampled segment is faulty is decided by re-running it for real
  (``chain.fraud.compute_rerun`` and ``compute_segment_fault`` from the author's openings),
  once per distinct (block, segment) and cached: V validators re-run the same bits.
* On ``--probes`` validators a block (default 2) the real ``consensus.pol.SampledVerifier``
  runs in full (fetch from the author's store, verify the openings, re-run the sample): its
  wall time and the process's CPU time over the call (every thread: the re-runs run on the
  verifier's pool; the simulation does nothing else meanwhile) are the reported validator
  CPU per block (measured, not modelled), and its verdict must agree with the
  cached one (a disagreement stops the run). The first detection of each forged block runs
  the real verifier with the detector's secret: its ``FraudFound`` proof must pass
  ``chain.fraud.verify_fraud_proof`` against the real parent state, and its encoded size is
  the bytes gossiped. Every withheld block is checked once with the real verifier over a
  source that refuses: it must raise ``CheckpointsUnavailable``.
* Bytes: the block's real encoding, and per validator the real encoded openings its sample
  asks for (entries 0 and n-1, entry j with weights and j + 1 without per sampled j).

What is modelled
----------------
* The network: a block reaches validator v after a latency drawn per (block, v) from a
  gamma distribution (shape 4) with mean ``--latency-ms``, plus its bytes over
  ``--bandwidth-mbps``; a fraud proof likewise, from its detector. Verification takes one
  mean latency (the checkpoint request) plus the openings' bytes over the bandwidth; the CPU
  time of re-running is measured but not added to virtual time (it is milliseconds; adding
  measured time would make a run depend on the machine and break reproducibility).
* Authorship and forks: slot s goes to validator s mod V. An author builds on the highest
  block it holds that it does not know to be invalid (honest: imported, i.e. verified;
  byzantine: received, including a colluder's withheld block). The real chain under the
  simulation is linear (it provides block material); the simulated tree is the model's.
* Validators: an honest validator imports a block once its parent is imported, samples it
  and either imports it or broadcasts a fraud proof; it drops any block it knows descends
  from a proven-invalid one; it never obtains a withheld block's checkpoints, so neither
  imports nor votes for it or its descendants. Byzantine validators neither sample nor
  report, and vote for every block but a withheld one when it is made (the worst case for
  safety). An author imports its own block at once.
* Finality (Casper FFG's threshold, simplified): an honest validator's best block is the
  highest it has imported (ties: the first), or, once a proof invalidates it, the highest
  valid one; it votes for block b once its best block is b's descendant W or more blocks
  deeper, unless it has seen a fraud proof for b or an ancestor by then (so it votes along
  one chain: a block a fork orphans gets no honest vote). A vote counts for b's ancestors
  too. b is finalized when more than 2/3 of all validators have voted for it (votes are
  counted when cast: their propagation is not modelled). Votes change nothing else (the
  block tree and the proofs do not depend on W), so one run evaluates every W of the table.
  A finalized forged block is the safety failure. After the ``--blocks`` counted, slots go
  on for the largest W evaluated plus 8, so that every counted block can gather its votes.

The expected detection rate of a forged job sampled by H honest validators is
1 - (C(S-k, m) / C(S, m))^H (README); the report prints it beside the measured one.
Runs are reproducible: the same arguments give the same ``simulation`` in the JSON (only
``measured``, the wall and CPU times and the machine, differ).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

import ml_runtime
from benches.record import check_out_folder, describe_machine
from chain import calls
from chain.block import Block
from chain.blockchain import Blockchain
from chain.codec import encode
from chain.crypto import Keypair, blake2_256
from chain.errors import CheckpointsUnavailable, FraudFound, InvalidFraudProof
from chain.extrinsic import sign_extrinsic
from chain.fraud import compute_rerun, compute_segment_fault, verify_fraud_proof
from chain.proofs import Opening, TrainingClaim, TrainingResult, compute_wanted
from chain.storage import Database
from chain.transcripts import LocalSource
from consensus.pol import SampledVerifier, compute_largest_update, compute_sample
from genesis.spec import load_chain_spec
from node.cli import int_in

FAULTS = ("forge", "withhold", "mixed")
WINDOWS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # W evaluated in the table (with --challenge-blocks)
DEFAULT_OUT = Path("bench-results")
BATCH = 8
LR = 0.1


class SimulationError(Exception):
    """Arguments the simulation cannot run with, or a disagreement between model and real code."""


@dataclass(frozen=True)
class Params:
    validators: int = 100
    byzantine: float = 0.1
    fault: str = "forge"
    blocks: int = 500
    slot_ms: float = 1000.0
    latency_ms: float = 100.0
    bandwidth_mbps: float = 100.0
    samples: int = 2
    segments: int = 16
    forged_segments: int = 1
    challenge_blocks: int = 4
    segment_steps: int = 2
    probes: int = 2
    seed: int = 0
    windows: tuple[int, ...] = WINDOWS  # the table's W (with challenge_blocks); the CLI keeps them all

    def check(self) -> None:
        """SimulationError naming the first argument out of its range (argparse checked each
        flag's own range; these are the ones that depend on another)."""
        if self.samples > self.segments:
            raise SimulationError(f"--samples {self.samples} is more than --segments {self.segments}")
        if self.forged_segments > self.segments:
            raise SimulationError(f"--forged-segments {self.forged_segments} is more than --segments {self.segments}")
        if self.byzantine_count() >= self.validators:
            raise SimulationError(f"--byzantine {self.byzantine} leaves no honest validator among {self.validators}")
        steps = compute_sgd_steps(self)
        if steps > MAX_SGD_STEPS:
            raise SimulationError(
                f"--blocks {self.blocks} (and {compute_tail(self)} slots after) x --segment-steps {self.segment_steps} x "
                f"(2 x --segments {self.segments} + --probes {self.probes} x --samples {self.samples}) = {steps:,} SGD steps "
                f"to train and re-run: at most {MAX_SGD_STEPS:,}")
        if self.byzantine > 0 and self.byzantine_count() == 0:
            raise SimulationError(f"--byzantine {self.byzantine:g} of --validators {self.validators} is no validator "
                                  f"({self.byzantine * self.validators:.2g}): at least {1 / self.validators:g}, or 0")

    def byzantine_count(self) -> int:
        """The byzantine validators: the fraction of V rounded down, so that it never exceeds the
        fraction asked for (round(0.5 x 11) was 6); the 1e-9 absorbs 0.29 x 100 = 28.999..."""
        return math.floor(self.byzantine * self.validators + 1e-9)


@dataclass
class SimBlock:
    """One simulated block: its place in the model's tree and its real material."""

    index: int
    height: int
    parent: int  # -1: genesis
    author: int
    kind: str  # honest | forged | withheld
    produced: float
    block: Block
    block_hash: bytes
    size: int
    claim: TrainingClaim
    forged: frozenset[int]
    counted: bool
    bad_ancestors: tuple[int, ...]  # forged blocks among itself and its ancestors
    imported: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))  # per validator, inf if never
    headed: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))  # when it became v's best block
    proof_at: np.ndarray | None = field(repr=False, default=None)  # per validator: a proof for it reached v
    detected_at: float | None = None
    proof_bytes: int = 0  # the encoded fraud proof gossiped about it
    detectors: int = 0
    samplers: int = 0
    children: list[int] = field(default_factory=list)
    fault_cache: dict[int, bool] = field(default_factory=dict)
    opening_bytes: dict[tuple[int, bool], int] = field(default_factory=dict)  # (entry, with weights) -> encoded
    openings: dict[int, Opening] = field(default_factory=dict)  # every entry, with weights, from the author
    largest: int | None = None  # the job's largest update (Simulation._checked)


class _Trainer:
    """The author's trainer (``Blockchain(trainer=...)``): honest, or skipping ``forged`` segments.

    A forged segment's output checkpoint is made up (one weight of the input moved by 0.001, the
    previous loss repeated) and training continues honestly from it, so exactly the forged
    segments fail to re-run, and the transcript, result and every root stay consistent. The
    step is smaller than any honest one, so the job's largest update, which every validator
    also re-runs (consensus.pol.compute_largest_update), is an honest segment: the forger that
    check cannot see (an outside retest's R1, round 14), whom only the random samples catch."""

    def __init__(self) -> None:
        self.forged: frozenset[int] = frozenset()

    def __call__(self, job: ml_runtime.TrainingJob) -> ml_runtime.JobResult:
        if not self.forged:
            return ml_runtime.run_job(job)
        w = np.array(job.weights, dtype=np.float32, copy=True)
        checkpoints = [w.copy()]
        entries = [ml_runtime.TranscriptEntry(0, ml_runtime.hash_weights(w), 0.0)]
        for j in range(job.num_segments):
            if j in self.forged:
                w = w.copy()
                w[len(w) // 2] += np.float32(0.001)
                entry = ml_runtime.TranscriptEntry(j + 1, ml_runtime.hash_weights(w), entries[-1].loss)
            else:
                entry, w = ml_runtime.recompute_segment(job, j, w)
            checkpoints.append(w.copy())
            entries.append(entry)
        return ml_runtime.JobResult(w, tuple(checkpoints), ml_runtime.Transcript.build(entries), True)


class _Refusing:
    """A CheckpointSource for a withheld block: the author serves nothing."""

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        raise CheckpointsUnavailable(f"block {block_hash.hex()}: the author withholds its checkpoints")


class _Material:
    """The real dev chain that makes each simulated block: one TRAIN call a block."""

    def __init__(self, path: Path, p: Params) -> None:
        spec = load_chain_spec("dev")
        self.trainer = _Trainer()
        self.chain = Blockchain(Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis, trainer=self.trainer)
        self.alice = Keypair.from_uri("//Alice")
        steps = p.segments * p.segment_steps
        self.call = calls.Train(0, 0, steps, BATCH, calls.compute_f32_bits(LR), calls.compute_f32_bits(0.0), p.segment_steps)
        self.source = LocalSource(self.chain.transcripts)
        self.count = 0

    def build(self, forged: frozenset[int]) -> tuple[Block, TrainingClaim]:
        self.trainer.forged = forged
        xt = sign_extrinsic(self.alice, self.call, nonce=self.count, genesis_hash=self.chain.genesis_hash,
                            spec_version=self.chain.runtime.spec_version)
        self.count += 1
        built = self.chain.build_block([xt], self.alice, slot=self.count)
        if not (built.receipts and built.receipts[0].success):
            raise SimulationError(f"the TRAIN call of block {self.count} failed: {built.receipts}")
        block = built.block
        _, info, _ = self.chain.execute_body(block, [x.encode() for x in block.body.extrinsics])
        (claim,) = info.claims
        return block, claim

    def close(self) -> None:
        self.chain.db.close()


class Simulation:
    """The event loop and its state (module docstring)."""

    ARRIVE, VERIFIED, DETECT, SLOT = 0, 1, 2, 3

    def __init__(self, p: Params, material: _Material) -> None:
        self.p = p
        self.mat = material
        self.rng = np.random.default_rng(p.seed)
        V = p.validators
        order = self.rng.permutation(V)
        self.byzantine = np.zeros(V, dtype=bool)
        self.byzantine[order[: p.byzantine_count()]] = True
        self.honest = np.flatnonzero(~self.byzantine)
        self.secrets = [blake2_256(b"polchain/simulate/secret" + p.seed.to_bytes(8, "little") + v.to_bytes(4, "little"))
                        for v in range(V)]
        self.blocks: list[SimBlock] = []
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.pending: dict[tuple[int, int], list[int]] = {}
        self.heads = [-1] * V  # each validator's best block (-1: genesis)
        self.slots = p.blocks + compute_tail(p)
        self.bytes_per_bit_ms = 1.0 / (p.bandwidth_mbps * 1e3)  # ms per bit
        self.fetch_bytes: list[int] = []  # openings per (validator, block) verified
        self.proof_bytes: list[int] = []
        self.cpu_ms: list[float] = []
        self.cpu_process_ms: list[float] = []  # CPU of every thread (the re-runs run on a pool)
        self.real_proofs_verified = 0
        self.real_withheld_checked = 0
        self.events = 0
        self._subtree_headed: dict[int, np.ndarray] | None = None

    # --- the loop --------------------------------------------------------------------------------
    def push(self, t: float, kind: int, a: int, b: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def run(self, advance: Callable[[], None] | None = None) -> None:
        for s in range(self.slots):
            self.push(s * self.p.slot_ms, self.SLOT, s, 0)
        while self.heap:
            t, _, kind, a, b = heapq.heappop(self.heap)
            self.events += 1
            if kind == self.SLOT:
                self.on_slot(t, a)
                if advance is not None:
                    advance()
            elif kind == self.ARRIVE:
                self.on_arrive(t, a, b)
            elif kind == self.VERIFIED:
                self.on_verified(t, a, b)
            else:
                self.on_detect(t, a, b)

    def latencies(self) -> np.ndarray:
        """One latency a validator (ms): gamma, shape 4, mean ``--latency-ms``."""
        return self.rng.gamma(4.0, self.p.latency_ms / 4.0, self.p.validators)

    def known_invalid(self, v: int, b: SimBlock, t: float) -> bool:
        for x in b.bad_ancestors:
            proof = self.blocks[x].proof_at
            if proof is not None and proof[v] <= t:
                return True
        return False

    def head(self, v: int, t: float) -> int:
        """The block author ``v`` builds on at ``t`` (-1: genesis)."""
        best, best_height = -1, 0
        for b in self.blocks:
            if b.height > best_height and b.imported[v] <= t and not self.known_invalid(v, b, t):
                best, best_height = b.index, b.height
        return best

    def on_slot(self, t: float, slot: int) -> None:
        p = self.p
        author = slot % p.validators
        kind = "honest"
        if self.byzantine[author]:
            kind = p.fault if p.fault != "mixed" else ("forge", "withhold")[int(self.rng.integers(2))]
            kind = {"forge": "forged", "withhold": "withheld"}[kind]
        forged = frozenset(int(j) for j in self.rng.choice(p.segments, p.forged_segments, replace=False)) \
            if kind == "forged" else frozenset()
        parent = self.head(author, t)
        block, claim = self.mat.build(forged)
        index = len(self.blocks)
        bad = (self.blocks[parent].bad_ancestors if parent >= 0 else ()) + ((index,) if kind == "forged" else ())
        b = SimBlock(index, (self.blocks[parent].height if parent >= 0 else 0) + 1, parent, author, kind, t, block,
                     block.hash(), len(block.encode()), claim, forged, slot < p.blocks, bad)
        b.imported = np.full(p.validators, math.inf)
        b.imported[author] = t
        b.headed = np.full(p.validators, math.inf)
        b.headed[author] = t
        self.heads[author] = index
        self.blocks.append(b)
        if parent >= 0:
            self.blocks[parent].children.append(index)
        self._measure_openings(b)
        if kind == "withheld":
            self._check_withheld(b)
        arrive = t + self.latencies() + b.size * 8 * self.bytes_per_bit_ms
        for v in range(p.validators):
            if v != author:
                self.push(float(arrive[v]), self.ARRIVE, v, index)
        self._probe(b)

    def on_arrive(self, t: float, v: int, index: int) -> None:
        b = self.blocks[index]
        if self.byzantine[v]:
            b.imported[v] = t  # received: colluders neither check nor report
            return
        if b.kind == "withheld" or self.known_invalid(v, b, t):
            return
        if b.parent >= 0 and self.blocks[b.parent].imported[v] > t:
            self.pending.setdefault((v, b.parent), []).append(index)
            return
        b.samplers += 1
        sample = self._checked(b, v)
        fetched = sum(b.opening_bytes[w] for w in compute_wanted(self.p.segments + 1, False).items())
        self.fetch_bytes.append(fetched)
        done = t + self.p.latency_ms + fetched * 8 * self.bytes_per_bit_ms
        faulty = any(self._fault(b, j) for j in sample)
        self.push(done, self.DETECT if faulty else self.VERIFIED, v, index)

    def on_verified(self, t: float, v: int, index: int) -> None:
        b = self.blocks[index]
        if self.known_invalid(v, b, t):
            return
        b.imported[v] = t
        self._move_head(t, v, b)
        for child in self.pending.pop((v, index), ()):
            self.on_arrive(t, v, child)

    def _move_head(self, t: float, v: int, b: SimBlock) -> None:
        """v's best block after importing b: b if higher than the current one (ties: the first
        imported stays); if the current one is known invalid, the highest valid imported block."""
        h = self.heads[v]
        current = self.blocks[h] if h >= 0 else None
        if current is not None and self.known_invalid(v, current, t):
            h = self.head(v, t)
        elif b.height > (current.height if current is not None else 0):
            h = b.index
        if h != self.heads[v] and h >= 0:
            self.heads[v] = h
            head = self.blocks[h]
            head.headed[v] = min(head.headed[v], t)

    def on_detect(self, t: float, v: int, index: int) -> None:
        b = self.blocks[index]
        b.detectors += 1
        if b.proof_at is not None and b.proof_at[v] <= t:
            return  # it already holds (and relayed) a proof for this block
        if b.detected_at is None:
            b.detected_at = t
            self._real_fraud_proof(b, v)
        reach = t + self.latencies() + b.proof_bytes * 8 * self.bytes_per_bit_ms
        reach[v] = t
        b.proof_at = reach if b.proof_at is None else np.minimum(b.proof_at, reach)

    # --- the real code -----------------------------------------------------------------------------
    def _measure_openings(self, b: SimBlock) -> None:
        result = b.claim.result
        n = len(result.losses)
        got = self.mat.source.fetch(b.block_hash, result, [(j, True) for j in range(n)])
        for j, o in got.items():
            b.opening_bytes[(j, True)] = len(encode(o))
            b.opening_bytes[(j, False)] = len(encode(Opening(o.index, o.weights_hash, o.loss, o.path, None)))
        b.openings = got

    def _checked(self, b: SimBlock, v: int) -> tuple[int, ...]:
        """The segments validator v re-runs of b: its sample and the job's largest update, as
        consensus.pol's SampledVerifier chooses them (the latter once per block, from the
        author's openings)."""
        sample = compute_sample(self.secrets[v], b.block_hash, b.claim.extrinsic_index, self.p.segments, self.p.samples)
        if len(sample) == self.p.segments:
            return sample
        if b.largest is None:
            b.largest = compute_largest_update(b.openings, b.claim.result, self.p.segments + 1)
        return (*sample, b.largest)

    def _fault(self, b: SimBlock, j: int) -> bool:
        """Whether segment j of b fails to re-run: the real re-execution, once per (block, segment)."""
        cached = b.fault_cache.get(j)
        if cached is None:
            got = b.openings
            rerun = compute_rerun(b.claim.job, j, got[j].get_weights())
            cached = compute_segment_fault(j, rerun, got[j + 1]) is not None
            if cached != (j in b.forged):
                raise SimulationError(f"block {b.index} segment {j}: re-run says faulty={cached}, the forger {sorted(b.forged)}")
            b.fault_cache[j] = cached
        return cached

    def _probe(self, b: SimBlock) -> None:
        """The real SampledVerifier on ``--probes`` honest validators: timed, and its verdict
        compared with the cached re-runs'."""
        if b.kind == "withheld":
            return
        for i in range(min(self.p.probes, len(self.honest))):
            v = int(self.honest[(b.index + i) % len(self.honest)])
            verifier = SampledVerifier(self.secrets[v], self.p.samples)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                verifier.verify_block(b.block, b.block_hash, [b.claim], self.mat.source)
                real = False
            except FraudFound:
                real = True
            self.cpu_ms.append((time.perf_counter() - wall) * 1e3)
            self.cpu_process_ms.append((time.process_time() - cpu) * 1e3)
            if real != any(self._fault(b, j) for j in self._checked(b, v)):
                raise SimulationError(f"block {b.index}: the real verifier of validator {v} says fraud={real}, the model not")

    def _real_fraud_proof(self, b: SimBlock, v: int) -> None:
        try:
            SampledVerifier(self.secrets[v], self.p.samples).verify_block(b.block, b.block_hash, [b.claim], self.mat.source)
        except FraudFound as exc:
            chain = self.mat.chain
            try:
                verify_fraud_proof(chain.genesis_hash, chain.state_at(b.block.header.parent_hash), chain.config_at(b.block.header.parent_hash), exc.proof)
            except InvalidFraudProof as bad:
                raise SimulationError(f"block {b.index}: the detector's fraud proof does not verify: {bad}") from None
            b.proof_bytes = len(exc.proof.encode())
            self.proof_bytes.append(b.proof_bytes)
            self.real_proofs_verified += 1
            return
        raise SimulationError(f"block {b.index}: validator {v} detected a fault the real verifier does not find")

    def _check_withheld(self, b: SimBlock) -> None:
        v = int(self.honest[b.index % len(self.honest)])
        try:
            SampledVerifier(self.secrets[v], self.p.samples).verify_block(b.block, b.block_hash, [b.claim], _Refusing())
        except CheckpointsUnavailable:
            self.real_withheld_checked += 1
            return
        raise SimulationError(f"block {b.index}: a withheld block passed the real verifier")

    # --- finality, for every W ---------------------------------------------------------------------
    def finality(self, window: int) -> dict[int, float]:
        """Block index -> the time it is finalized with challenge window ``window`` (absent if never)."""
        V = self.p.validators
        need = 2 * V // 3 + 1
        if self._subtree_headed is None:  # per block: when each validator's best block was first in its subtree
            self._subtree_headed = {}
            for b in reversed(self.blocks):
                m = b.headed.copy()
                for c in b.children:
                    np.minimum(m, self._subtree_headed[c], out=m)
                self._subtree_headed[b.index] = m
        sub = self._subtree_headed
        out: dict[int, float] = {}
        for b in self.blocks:
            if b.kind == "withheld":
                continue
            level = [b.index]
            for _ in range(window):
                level = [c for x in level for c in self.blocks[x].children]
            votes = np.full(V, math.inf)
            for d in level:  # v votes once its best block is W or more below b, on b's branch
                np.minimum(votes, sub[d], out=votes)
            invalid = np.full(V, math.inf)
            for x in b.bad_ancestors:
                proof = self.blocks[x].proof_at
                if proof is not None:
                    invalid = np.minimum(invalid, proof)
            votes[votes >= invalid] = math.inf
            votes[self.byzantine] = b.produced  # colluders vote for everything at once
            t = float(np.partition(votes, need - 1)[need - 1])
            if math.isfinite(t):
                out[b.index] = t
        return out


#: The real training a run may do (:func:`compute_sgd_steps`). It ran at about 290k steps/s here
#: (softmax 64 -> 10, batch 8, with the chain around it), so this is about 17 minutes; each flag
#: within its own range allowed 2.3e9 steps together (2 to 3 hours). The README's runs (V up to
#: 1000, 500 blocks, m up to 4) train 43,200.
MAX_SGD_STEPS = 300_000_000


def compute_sgd_steps(p: Params) -> int:
    """An upper bound of the SGD steps a run trains and re-runs: every slot's block trains S
    segments, its distinct sampled segments are re-run once (at most S), and ``--probes``
    validators re-run ``m`` segments each with the real verifier."""
    return (p.blocks + compute_tail(p)) * p.segment_steps * (2 * p.segments + p.probes * p.samples)


def compute_tail(p: Params) -> int:
    """Slots run after the counted blocks: the largest W evaluated, and a margin for forks."""
    return max(*p.windows, p.challenge_blocks) + 8


def _eligible(sim: Simulation, b: SimBlock) -> bool:
    """Whether every honest validator would sample b: no ancestor withheld or proven invalid."""
    x = b.parent
    while x >= 0:
        a = sim.blocks[x]
        if a.kind == "withheld" or a.detected_at is not None:
            return False
        x = a.parent
    return True


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def _rounded(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def compute_detection_rate(segments: int, forged: int, samples: int, honest: int) -> float:
    """1 - (C(S-k, m) / C(S, m))^H: a forged job escapes each of H independent samples."""
    return 1.0 - (comb(segments - forged, samples) / comb(segments, samples)) ** honest


def simulate(p: Params, *, workdir: Path | None = None, progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one simulation; its ``simulation`` part is a function of ``p`` alone."""
    p.check()
    ml_runtime.warm_up()
    started, cpu0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="polchain-simulate-", dir=workdir) as tmp:
        material = _Material(Path(tmp) / "chain", p)
        try:
            sim = Simulation(p, material)
            sim.run(progress)
        finally:
            material.close()
    wall = time.perf_counter() - started
    counted = [b for b in sim.blocks if b.counted]
    forged = [b for b in counted if b.kind == "forged"]
    detected = [b for b in forged if b.detected_at is not None]
    honest_count = len(sim.honest)
    eligible = [b for b in forged if _eligible(sim, b)]
    windows = sorted({*p.windows, p.challenge_blocks})
    table = []
    for w in windows:
        fin = sim.finality(w)
        honest_lat = [fin[b.index] - b.produced for b in counted if b.kind == "honest" and b.index in fin]
        table.append({
            "window_blocks": w,
            "forged_finalized": sum(1 for b in forged if b.index in fin),
            "forged_finalized_detected": sum(1 for b in detected if b.index in fin),
            "honest_finalized": len(honest_lat),
            "finality_ms_p50": _rounded(_pct(honest_lat, 50)),
            "finality_ms_p99": _rounded(_pct(honest_lat, 99)),
        })
    chosen = next(r for r in table if r["window_blocks"] == p.challenge_blocks)
    caught_only = [r["window_blocks"] for r in table if r["forged_finalized_detected"] == 0]
    safe = [r["window_blocks"] for r in table if r["forged_finalized"] == 0]
    detect_ms = [b.detected_at - b.produced for b in detected if b.detected_at is not None]
    know_ms = [float(np.partition(b.proof_at, 2 * p.validators // 3)[2 * p.validators // 3]) - b.produced
               for b in detected if b.proof_at is not None]
    verified = len(sim.fetch_bytes)
    block_bytes = float(np.mean([b.size for b in counted])) if counted else 0.0
    proof_total = sum(b.proof_bytes for b in detected) * p.validators  # each validator receives each proof once
    escape = comb(p.segments - p.forged_segments, p.samples) / comb(p.segments, p.samples)
    trials = sum(b.samplers for b in eligible)
    simulation = {
        "forged_produced": len(forged),
        "forged_detected": len(detected),
        "forged_finalized": chosen["forged_finalized"],
        "withheld_produced": sum(1 for b in counted if b.kind == "withheld"),
        "honest_produced": sum(1 for b in counted if b.kind == "honest"),
        "honest_finalized": chosen["honest_finalized"],
        "blocks_simulated": len(sim.blocks),
        "events": sim.events,
        "detection_ms_p50": _rounded(_pct(detect_ms, 50)), "detection_ms_p99": _rounded(_pct(detect_ms, 99)),
        "proof_reaches_two_thirds_ms_p50": _rounded(_pct(know_ms, 50)),
        "proof_reaches_two_thirds_ms_p99": _rounded(_pct(know_ms, 99)),
        "finality_ms_p50": chosen["finality_ms_p50"], "finality_ms_p99": chosen["finality_ms_p99"],
        "detectors_per_detected_block_mean": _rounded(float(np.mean([b.detectors for b in detected])), 2) if detected else None,
        "bytes_per_block_per_validator": {
            "block": round(block_bytes, 1),
            "openings": round(sum(sim.fetch_bytes) / verified, 1) if verified else 0.0,
            "fraud_proofs": round(proof_total / max(1, len(counted)) / p.validators, 1),
            "total": round(block_bytes + (sum(sim.fetch_bytes) / verified if verified else 0.0)
                           + proof_total / max(1, len(counted)) / p.validators, 1),
        },
        "fraud_proof_bytes": sim.proof_bytes[0] if sim.proof_bytes else None,
        "real_fraud_proofs_verified": sim.real_proofs_verified,
        "real_withheld_checked": sim.real_withheld_checked,
        "analytic": {
            "escape_one_validator": escape,
            "honest_validators": honest_count,
            "expected_detection_rate": compute_detection_rate(p.segments, p.forged_segments, p.samples, honest_count),
            "forged_eligible": len(eligible),
            "measured_detection_rate": (sum(1 for b in eligible if b.detected_at is not None) / len(eligible))
            if eligible else None,
            # Per honest validator that sampled an eligible forged block (one trial each, its
            # sample independent of whether it sampled): 1 - escape_one_validator. Many more
            # trials than blocks, so it tells m from m - 1 where the block rate cannot.
            "sampler_trials": trials,
            "expected_sampler_detection_rate": 1 - escape,
            "measured_sampler_detection_rate": sum(b.detectors for b in eligible) / trials if trials else None,
        },
        "windows": table,
        "min_window_no_forged_finalized": safe[0] if safe else None,
        "min_window_no_detected_forged_finalized": caught_only[0] if caught_only else None,
        "per_block_columns": ["index", "height", "parent", "author", "kind", "produced_ms", "detected_ms",
                              "honest_samplers"],
        "per_block": [[b.index, b.height, b.parent, b.author, b.kind, round(b.produced, 3),
                       None if b.detected_at is None else round(b.detected_at, 3), b.samplers] for b in counted],
    }
    measured = {
        "wall_s": round(wall, 2), "process_cpu_s": round(time.process_time() - cpu0, 2),
        "validator_cpu_ms_per_block": {
            "how": f"wall time of the real consensus.pol.SampledVerifier.verify_block (fetch from the author's store, "
                   f"verify the openings, re-run {p.samples} segments) on {p.probes} honest validators a block",
            "n": len(sim.cpu_ms), "p50": _rounded(_pct(sim.cpu_ms, 50), 3), "p99": _rounded(_pct(sim.cpu_ms, 99), 3),
            "process_cpu_p50": _rounded(_pct(sim.cpu_process_ms, 50), 3),
            "process_cpu_p99": _rounded(_pct(sim.cpu_process_ms, 99), 3),
        },
        "machine": describe_machine(),  # the benches' block: CPU model, cores, load, library versions
    }
    return {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(p).items()}, "simulation": simulation, "measured": measured}


# --- the command line ---------------------------------------------------------------------------------


def _float(low: float, high: float, *, open_low: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            if not text.isascii() or "_" in text or text != text.strip():  # float() takes these too
                raise ValueError(text)
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range: {'(' if open_low else '['}{low:g}, {high:g}]")
        return value

    return parse


QUICK = {"validators": 20, "blocks": 60}
FULL = {"validators": Params.validators, "blocks": Params.blocks}


def add_subcommand(sub: Any) -> None:
    """Add ``simulate`` to the CLI's subparsers."""
    what = "V validators checking proof-of-learning blocks, in virtual time"
    s = sub.add_parser("simulate", help=what, description=f"{what} (README: Simulator).")
    s.add_argument("--validators", type=int_in(10, 1000), default=None, help="V, 10..1000 (default 100, --quick 20)")
    s.add_argument("--byzantine", type=_float(0.0, 0.5), default=Params.byzantine,
                   help="fraction of validators whose blocks are faulty, 0..0.5 (default 0.1)")
    s.add_argument("--fault", choices=FAULTS, default=Params.fault, help="what a byzantine author's block does")
    s.add_argument("--blocks", type=int_in(1, 5000), default=None, help="blocks counted (default 500, --quick 60)")
    s.add_argument("--slot-ms", type=_float(1.0, 600_000.0), default=Params.slot_ms)
    s.add_argument("--latency-ms", type=_float(0.0, 60_000.0), default=Params.latency_ms, help="mean one-way latency")
    s.add_argument("--bandwidth-mbps", type=_float(0.001, 1e6), default=Params.bandwidth_mbps)
    s.add_argument("--samples", "-m", type=int_in(1, 256), default=Params.samples, help="m, segments a validator re-runs")
    s.add_argument("--segments", "-S", type=int_in(1, 256), default=Params.segments, help="S, segments a job")
    s.add_argument("--segment-steps", type=int_in(1, 100), default=Params.segment_steps, help="SGD steps a segment")
    s.add_argument("--forged-segments", "-k", type=int_in(1, 256), default=Params.forged_segments,
                   help="k, segments a forged job makes up")
    s.add_argument("--challenge-blocks", "-W", type=int_in(0, 256), default=Params.challenge_blocks,
                   help="W, blocks a validator waits before voting")
    s.add_argument("--probes", type=int_in(0, 16), default=Params.probes,
                   help="validators a block on which the real verifier runs in full and is timed")
    s.add_argument("--seed", type=int_in(0, 2**32 - 1), default=Params.seed)
    s.add_argument("--quick", action="store_true", help="small sizes (V=20, 60 blocks) unless given")
    s.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="where simulate.json and simulate.png go")
    s.set_defaults(run=run_simulate)


def compute_command(args: argparse.Namespace) -> str:
    words = ["polchain", "simulate"]
    for name in ("validators", "byzantine", "fault", "blocks", "slot_ms", "latency_ms", "bandwidth_mbps", "samples",
                 "segments", "segment_steps", "forged_segments", "challenge_blocks", "probes", "seed"):
        words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join([*words, "--out", str(args.out)])


def run_simulate(args: argparse.Namespace) -> int:
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    p = Params(args.validators, args.byzantine, args.fault, args.blocks, args.slot_ms, args.latency_ms,
               args.bandwidth_mbps, args.samples, args.segments, args.forged_segments, args.challenge_blocks,
               args.segment_steps, args.probes, args.seed)
    try:
        p.check()
    except SimulationError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    problem = check_out_folder(args.out, ["simulate.json", "simulate.png"])
    if problem is not None:  # before the run, not after it
        print(f"Error: --out {args.out}: {problem}", file=sys.stderr)
        return 1
    from rich.progress import Progress  # the CLI starts without it

    with Progress(transient=True) as bar:
        task = bar.add_task("slots", total=p.blocks + compute_tail(p))
        try:
            record = simulate(p, progress=lambda: bar.advance(task))
        except SimulationError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    record["command"] = compute_command(args)
    write_outputs(record, args.out)
    return 0


def render_tables(record: dict[str, Any]) -> list[str]:
    """The report as plain lines (also what the rich table shows)."""
    p, s, m = record["params"], record["simulation"], record["measured"]
    lines = [
        f"V={p['validators']} ({s['analytic']['honest_validators']} honest), byzantine {p['byzantine']} ({p['fault']}), "
        f"S={p['segments']} m={p['samples']} k={p['forged_segments']} W={p['challenge_blocks']}, "
        f"slot {p['slot_ms']:g} ms, latency {p['latency_ms']:g} ms, {p['bandwidth_mbps']:g} Mbit/s, seed {p['seed']}",
        f"forged blocks: {s['forged_produced']} produced, {s['forged_detected']} detected, "
        f"{s['forged_finalized']} finalized (W={p['challenge_blocks']}); withheld: {s['withheld_produced']}",
        f"detection: p50 {s['detection_ms_p50']} ms, p99 {s['detection_ms_p99']} ms after the block; "
        f"proof at 2/3 of validators p50 {s['proof_reaches_two_thirds_ms_p50']} ms",
        f"finality latency (honest blocks, W={p['challenge_blocks']}): p50 {s['finality_ms_p50']} ms, "
        f"p99 {s['finality_ms_p99']} ms",
        f"validator CPU per block for its sampled check (measured, real verifier; not the whole import): p50 {m['validator_cpu_ms_per_block']['p50']} ms, "
        f"p99 {m['validator_cpu_ms_per_block']['p99']} ms wall; CPU time p50 "
        f"{m['validator_cpu_ms_per_block']['process_cpu_p50']} ms (n={m['validator_cpu_ms_per_block']['n']})",
        f"bytes per block per validator: {s['bytes_per_block_per_validator']}",
        f"detection rate: measured {s['analytic']['measured_detection_rate']} over "
        f"{s['analytic']['forged_eligible']} forged blocks (no ancestor withheld or proven invalid), expected "
        f"{s['analytic']['expected_detection_rate']:.4f} = 1 - ({s['analytic']['escape_one_validator']:.4f})^"
        f"{s['analytic']['honest_validators']}",
        "",
        "W (blocks) | forged finalized | of them detected | honest finalized | finality p50 ms | p99 ms",
    ]
    for r in s["windows"]:
        lines.append(f"{r['window_blocks']:>10} | {r['forged_finalized']:>16} | {r['forged_finalized_detected']:>16} | "
                     f"{r['honest_finalized']:>16} | {r['finality_ms_p50']!s:>15} | {r['finality_ms_p99']!s:>6}")
    lines.append(f"smallest W with no forged block finalized: {s['min_window_no_forged_finalized']}; "
                 f"with no detected forged block finalized: {s['min_window_no_detected_forged_finalized']}")
    lines.append(f"wall {m['wall_s']} s, {s['events']} events")
    return lines


def write_outputs(record: dict[str, Any], out: Path) -> None:
    for line in render_tables(record):
        print(line)
    png = out / "simulate.png"
    record["plot"] = png.name if _plot(record, png) else None
    path = out / "simulate.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}" + (f" and {png}" if record["plot"] else ""))


def _plot(record: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        return False
    s = record["simulation"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    try:
        ws = [r["window_blocks"] for r in s["windows"]]
        ax.plot(ws, [r["forged_finalized"] for r in s["windows"]], "o-", color="C3", label="forged finalized")
        ax.plot(ws, [r["forged_finalized_detected"] for r in s["windows"]], "x--", color="C1",
                label="... of them detected")
        ax.set_ylim(bottom=0, top=max(1, *(r["forged_finalized"] for r in s["windows"])) * 1.1)
        ax.set_xlabel("challenge window W (blocks)")
        ax.set_ylabel("forged blocks finalized")
        twin = ax.twinx()
        twin.plot(ws, [(r["finality_ms_p50"] or 0) / 1e3 for r in s["windows"]], "s:", color="C0", label="finality p50")
        twin.set_ylabel("honest finality latency p50 (s)")
        ax.legend(loc="upper center", fontsize=7)
        p = record["params"]
        ax.set_title(f"V={p['validators']} m={p['samples']} S={p['segments']} k={p['forged_segments']}", fontsize=9)
        per = [r for r in s["per_block"] if r[4] == "forged" and r[6] is not None]
        if per:
            ax2.hist([(r[6] - r[5]) / 1e3 for r in per], bins=20, color="C2")
        ax2.set_xlabel("time to detection (s)")
        ax2.set_ylabel("forged blocks")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return True
