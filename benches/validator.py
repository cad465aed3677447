"""A validator's import of blocks of training calls: sampled verification vs full re-execution.

    polchain bench validator [--quick] [--reps N] [--jobs J] [--segment L] [--size all|digits|mnist] [--out DIR]
    python -m benches.validator [same flags]

The issue 9 benchmark, per model family and size: an author (the dev chain's Alice) builds one
block of ``J`` TRAIN calls, each of ``S = 32`` segments of ``L`` steps, for

* the digits (64 features, batch 32): the softmax model 64 -> 10 (the dev genesis's model 0)
  and an MLP 64 -> 32 -> 10;
* MNIST-sized data (784 features, 10 classes, batch 64; the shapes of benches/kernels.py): a
  softmax 784 -> 10 and an MLP 784 -> 128 -> 10, on a synthetic classification data set (rows
  from a fixed seed: the bench measures verification, not accuracy).

What a family needs beyond genesis (its model, the MNIST-sized data set: RegisterDataset and
AppendRows in 1 MiB chunks) goes into setup blocks that every validator imports untimed.

The block respects the dev chain's runtime limits (``max_block_weight``, ``max_block_length``,
``max_transcript_bytes``), as the runtime declares them for the calls
(``Runtime.compute_dispatch_info``): if ``J`` calls of ``L`` steps a segment do not fit one
block, the block takes as many calls as fit; if not even one does, ``L`` shrinks to the
longest segment with which one call fits (``S`` stays 32, so S/m keeps its meaning). At the
MNIST MLP the weight limit allows 150 steps a block: one call of 32 segments of 4 steps. What
was chosen is printed and recorded (``jobs``, ``jobs_offered``, ``segment_len``,
``segment_len_asked``, ``fit``).
The block carries one ``TrainingResult`` per call (transcript root, loss curve, new weights);
the intermediate checkpoints stay in the author's ``TranscriptStore``. Fresh validators (each
its own LevelDB with the same genesis) import the block with ``Blockchain.import_block``:

* ``full``: the node's auditor (``--pol full``: ``consensus.pol.SampledVerifier`` with every
  segment in its sample, ``EVERY_SEGMENT``; before 2026-11-30 ``chain.proofs.FullReexecution``,
  the same fetches and re-runs): every checkpoint fetched, every segment re-run;
* ``S/m = 4, 8, 16, 32``: ``consensus.pol.SampledVerifier`` with ``m = S / (S/m)`` segments a job.

Both re-run a block's segments under one pool policy (``chain.proofs.compute_rerun_threads``):
on one thread a core when the segments they re-run weigh ``POOL_MIN_UNITS`` work units or
more, on the importing thread below that. So a wall-clock speed-up compares like with like
(full re-execution gets the cores a sampled import gets), and wall time can be under CPU time
for either. The threads each verifier's re-runs got are printed and recorded (``rerun_threads``).
``full, 1 thread`` is the auditor with its re-runs forced inline (``FullReexecution(threads=1)``,
how every auditor ran before it shared the pool): what the pool gives full re-execution in the
same run, and the sampled import's speed-up over it is the one earlier versions of this bench
reported.

The openings come from an in-process source over the author's store that counts the bytes
of every opening it hands out (their canonical encoding: what a peer would send) — the bytes
a validator fetches on top of the block. They are encoded for counting after the timed
import, not inside it: encoding is the sender's work, not the validator's. Every repetition imports once per verifier, in
turn, so that other load on the machine hits all of them alike; the speed-up is taken
within a repetition, then summarised (median, min–max) over the repetitions.

Figures per verifier: ms to import the block (wall clock, and the CPU time of the process:
the machine is shared, and CPU time leaves the other programs out); training steps verified per second (the
steps the block claims over the import time: the rate at which a validator accepts other
people's training); speed-up over full; bytes fetched; and the chance that one forged
segment of a job escapes one validator, C(S-1, m) / C(S, m) = 1 - m/S, when it is not the
job's largest update (that one every validator re-runs besides its sample: consensus.pol).

Against the old format (issue 9: every checkpoint in the body), the same block's size is
computed exactly: each TrainingResult swapped for the proof the body used to carry (the
same fields and encoding: extrinsic index, S+1 checkpoints, losses, root, divergence) — and
under the old format every validator fetched the whole block.

Verification on every core: ``ml_runtime.recompute_segments`` with 1 and 2 threads on the
same segments (benches/kernels.py's measurement), beside a GIL-free control that shows what
the second core gave in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

import ml_runtime
from benches.runner import Context, Report, errorbars, fmt, summarize
from chain import calls, signatures
from chain.block import MAX_TRAIN_CALLS
from chain.blockchain import Blockchain
from chain.codec import Wire, encode
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import datasets, models
from chain.proofs import (
    CheckpointSource,
    FullReexecution,
    Opening,
    TrainingClaim,
    TrainingResult,
    compute_rerun_threads,
)
from chain.storage import Database
from chain.transcripts import LocalSource
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from consensus.pol import EVERY_SEGMENT, SampledVerifier, compute_sample
from genesis.spec import ChainSpec, load_chain_spec

SEGMENTS = 32  # S, segments per job
RATIOS = (4, 8, 16, 32)  # S/m
SENDERS = ("Bob", "Charlie", "Dave", "Eve", "Ferdie")  # Alice authors (and registers the MLP)


class _OldTrainingProof(Wire, frozen=True):
    """The body's training proof before issue 9 (chain/proofs.py's TrainingProof, now deleted):
    the same fields in the same order and encoding, used here only to size the old format."""

    extrinsic_index: int
    checkpoints: tuple[bytes, ...]
    losses: tuple[int, ...]
    transcript_root: bytes
    diverged_segment: int | None = None


class CountingSource:
    """A CheckpointSource that hands out another's openings as a peer would send them (the
    weights only where they were asked for) and keeps them, so that :meth:`count` can give
    their encoded bytes after the timed import (encoding them is the sender's work)."""

    def __init__(self, inner: CheckpointSource) -> None:
        self.inner = inner
        self.sent: list[Opening] = []

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        got = self.inner.fetch(block_hash, result, wanted)
        need = dict(wanted)
        sent = {j: o if need.get(j) else msgspec.structs.replace(o, weights=None) for j, o in got.items()}
        self.sent.extend(sent.values())
        return sent

    def count(self) -> tuple[int, int]:
        """(openings handed out, their encoded bytes) since the last :meth:`reset`."""
        return len(self.sent), sum(len(encode(o)) for o in self.sent)

    def reset(self) -> None:
        self.sent = []


def _open(path: Path, spec: ChainSpec, verifier: Any) -> Blockchain:
    return Blockchain(
        Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis,
        rules=ConsensusRules(Aura(6000)), verifier=verifier,
    )


class _NoVerification:
    """Benchmark only, never a node's: accepts every transcript unchecked. Importing with it
    measures the floor of a block's import (decode, execution, roots, the write batch) that
    no sample rate removes, and so the ceiling of any verifier's speed-up: full / floor."""

    def verify_block(self, block: Any, block_hash: bytes, claims: Sequence[Any], source: Any) -> list[tuple[int, Opening]]:
        return []


FLOOR = "floor (no verification)"
FULL_SERIAL = "full, 1 thread"


class _Recording:
    """Benchmark only: hands the block to ``inner`` and keeps the claims it was given, so that
    the re-run threads the pool policy chose can be reported after the timed import."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.claims: tuple[TrainingClaim, ...] = ()

    def verify_block(self, block: Any, block_hash: bytes, claims: Sequence[TrainingClaim], source: Any) -> list[tuple[int, Opening]]:
        self.claims = tuple(claims)
        result: list[tuple[int, Opening]] = self.inner.verify_block(block, block_hash, claims, source)
        return result


def _rerun_threads(verifier: Any, block_hash: bytes, claims: Sequence[TrainingClaim]) -> int:
    """The threads ``verifier``'s re-runs of ``claims`` got (chain.proofs.compute_rerun_threads
    over the segments it re-runs: a sampled verifier's sample, or every segment)."""
    if isinstance(verifier, FullReexecution) and verifier.threads is not None:
        return verifier.threads
    if isinstance(verifier, SampledVerifier):
        segments = [(c.job, j) for c in claims for j in compute_sample(
            verifier.secret, block_hash, c.extrinsic_index, c.job.num_segments, verifier.samples)]
    else:
        segments = [(c.job, j) for c in claims for j in range(c.job.num_segments)]
    return compute_rerun_threads(segments)


def _verifiers() -> dict[str, Any]:
    # "full" is the node's auditor (--pol full: the sampled verifier with every segment in its
    # sample, consensus.pol.EVERY_SEGMENT); the one-thread reference is the chain layer's check.
    out: dict[str, Any] = {
        "full": SampledVerifier(b"bench-validator-auditor-secret!!", EVERY_SEGMENT), FULL_SERIAL: FullReexecution(threads=1),
    }
    for ratio in RATIOS:
        out[f"S/m={ratio}"] = SampledVerifier(b"bench-validator-secret-" + bytes([ratio]) * 9, SEGMENTS // ratio)
    out[FLOOR] = _NoVerification()
    return out


@dataclass(frozen=True)
class Family:
    """A model family at one size, and the data it trains on in the bench."""

    spec: ml_runtime.ModelSpec
    data: str  # "digits" (the dev genesis's data set 0) or "mnist" (synthetic, registered in setup)
    batch: int
    lr: float
    genesis_model: int | None = None  # the dev genesis's model id, or None: registered in setup


FAMILIES = {
    "softmax 64-10": Family(ml_runtime.ModelSpec("softmax", 64, 10, 0), "digits", 32, 0.5, genesis_model=0),
    "mlp 64-32-10": Family(ml_runtime.ModelSpec("mlp", 64, 10, 32), "digits", 32, 0.02),
    "softmax 784-10": Family(ml_runtime.ModelSpec("softmax", 784, 10, 0), "mnist", 64, 0.005),
    "mlp 784-128-10": Family(ml_runtime.ModelSpec("mlp", 784, 10, 128), "mnist", 64, 0.01),
}
SIZES = {"all": tuple(FAMILIES), "digits": ("softmax 64-10", "mlp 64-32-10"),
         "mnist": ("softmax 784-10", "mlp 784-128-10")}
DATA = {"digits": "digits (8x8, 10 classes; the dev genesis's data set 0)",
        "mnist": "synthetic MNIST-sized rows (784 features in [0, 1), 10 classes, fixed seed)"}
MNIST_FEATURES, MNIST_CLASSES, MNIST_SEED = 784, 10, 784


def compute_mnist_rows(n: int) -> bytes:
    """``n`` MNIST-sized classification rows in their canonical bytes: features uniform in
    [0, 1) (pixel intensities' range) and the label a fixed random linear teacher's argmax, so
    that the data can be learnt; from a fixed seed, the same bytes on every run."""
    rng = np.random.default_rng(MNIST_SEED)
    x = rng.random((n, MNIST_FEATURES), dtype=np.float32)
    teacher = rng.standard_normal((MNIST_FEATURES, MNIST_CLASSES)).astype(np.float32)
    y = np.argmax((x - 0.5) @ teacher, axis=1).astype(np.uint32)
    return datasets.compute_rows_bytes(x, y, "classification")


def _build_all(author: Blockchain, xts: list[Any], alice: Any, what: str) -> list[Any]:
    """Blocks by Alice on the author's best block until every one of ``xts`` is in one (the
    builder leaves what does not fit for a later block); each must succeed."""
    blocks, left = [], list(xts)
    while left:
        built = author.build_block(left, alice, slot=author.best_header.number + 1)
        if not built.block.body.extrinsics:
            raise RuntimeError(f"{what}: the author could not include any of the {len(left)} setup calls left")
        failed = [r.error for r in built.receipts if not r.success]
        if failed:
            raise RuntimeError(f"{what}: a setup call failed: {failed}")
        taken = {x.encode() for x in built.block.body.extrinsics}
        left = [x for x in left if x.encode() not in taken]
        blocks.append(built.block)
    return blocks


def _setup(author: Blockchain, family: Family, rows: int) -> tuple[list[Any], int, int]:
    """The untimed setup blocks for ``family`` (its model, and for MNIST sizes the data set);
    returns them, the model's id and the data set's id."""
    alice = dev_keypair("Alice")
    state = author.state.overlay()  # reads only
    todo: list[Any] = []
    dataset = 0
    if family.data == "mnist":
        raw = compute_mnist_rows(rows)
        row_size = 4 * MNIST_FEATURES + 4
        dataset = datasets.NEXT_DATASET_ID.get(state)
        todo.append(calls.RegisterDataset("bench-mnist-sized", MNIST_FEATURES, "classification", MNIST_CLASSES, rows,
                                          datasets.compute_rows_root(raw, row_size), 0, "synthetic (benchmark only)"))
        per_chunk = datasets.compute_chunk_rows(row_size)
        todo += [calls.AppendRows(dataset, first, raw[first * row_size:(first + per_chunk) * row_size])
                 for first in range(0, rows, per_chunk)]
    model = family.genesis_model
    if model is None:
        model = models.NEXT_MODEL_ID.get(state)
        todo += [calls.RegisterModel(f"bench-{family.spec.family}-{family.spec.d}", family.spec.encode(), b"\x07" * 32),
                 calls.SetTrainingPolicy(model, "anyone", 0)]
    xts = [sign_extrinsic(alice, c, nonce=i, genesis_hash=author.genesis_hash, spec_version=author.runtime.spec_version)
           for i, c in enumerate(todo)]
    return _build_all(author, xts, alice, f"setting up {family.spec.family} {family.spec.d}"), model, dataset


def _fit(author: Blockchain, train: Callable[[int], calls.Train], jobs: int, segment: int) -> tuple[int, int, str]:
    """(calls, segment length, why) for a block of ``jobs`` TRAIN calls of ``SEGMENTS``
    segments of ``segment`` steps within the runtime's limits, as the runtime declares the
    calls' weight and bytes: fewer calls if they do not all fit, shorter segments if not even
    one does."""
    runtime, state = author.runtime, author.state.overlay()
    config = runtime.config
    bob = dev_keypair("Bob")

    def per_call(length: int) -> tuple[int, int, int]:
        xt = sign_extrinsic(bob, train(length), nonce=0, genesis_hash=author.genesis_hash, spec_version=runtime.spec_version)
        info = runtime.compute_dispatch_info(state, xt)
        return info.weight, len(xt.encode()) + info.result_length, info.transcript_bytes

    def fits(length: int) -> int:
        weight, size, transcript = per_call(length)
        if transcript > config.max_transcript_bytes:
            return 0
        return min(config.max_block_weight // weight, runtime.max_extrinsic_length // size,
                   config.max_transcript_bytes // max(transcript, 1), MAX_TRAIN_CALLS)

    if fits(segment) >= 1:
        n = min(jobs, fits(segment))
        why = "as asked" if n == jobs else f"{n} of {jobs} calls fit the block's weight/length/transcript/call-count limits"
        return n, segment, why
    length = segment
    while length > 1 and fits(length) < 1:
        length -= 1
    if fits(length) < 1:
        raise RuntimeError(f"not even one TRAIN call of {SEGMENTS} one-step segments fits a block")
    return 1, length, (f"one call of {SEGMENTS} x {segment} steps exceeds the block's limits "
                       f"(max_block_weight {config.max_block_weight:,}): 1 call of {SEGMENTS} x {length} steps")


def measure(name: str, jobs: int, segment: int, reps: int, rows: int, tmp: Path, advance: Any) -> dict[str, Any]:
    """One family: the author's blocks, then ``reps`` rounds of one import per verifier."""
    spec = load_chain_spec("dev")
    family = FAMILIES[name]
    model_spec = family.spec
    tmp = tmp / name.replace(" ", "_")
    tmp.mkdir()
    author = _open(tmp / "author", spec, FullReexecution())
    alice = dev_keypair("Alice")
    try:
        setup, model, dataset = _setup(author, family, rows)

        def train(length: int) -> calls.Train:
            return calls.Train(model, dataset, SEGMENTS * length, family.batch, calls.compute_f32_bits(family.lr),
                               calls.compute_f32_bits(0.0001), length)

        jobs_fit, segment_len, fit = _fit(author, train, jobs, segment)
        steps = SEGMENTS * segment_len
        keys = [dev_keypair(n) for n in SENDERS]
        xts = [sign_extrinsic(keys[i % len(keys)], train(segment_len), nonce=i // len(keys),
                              genesis_hash=author.genesis_hash, spec_version=author.runtime.spec_version)
               for i in range(jobs_fit)]
        ml_runtime.warm_up()
        signatures.warm_up()
        started = time.perf_counter()
        built = author.build_block(xts, alice, slot=len(setup) + 1)
        build_s = time.perf_counter() - started
        failed = [r.error for r in built.receipts if not r.success]
        if failed:
            raise RuntimeError(f"the author's TRAIN calls failed: {failed}")
        block = built.block
        block_hash = block.hash()
        results = list(block.body.results)
        if len(results) != jobs_fit or len(results) != len(block.body.extrinsics):
            # the author leaves out what does not fit the block's weight and length limits
            raise RuntimeError(f"{name}: {len(results)} training results for {len(block.body.extrinsics)} "
                               f"TRAIN calls in the block ({jobs_fit} offered)")
        if any(r.diverged_segment is not None for r in results):
            raise RuntimeError(f"{name}: a training job diverged; the benchmark needs finished jobs")
        block_bytes = len(block.encode())
        old_proof_bytes = 0
        for r in results:
            cps = []
            for j in range(len(r.losses)):
                opening = author.transcripts.get(block_hash, r.extrinsic_index, j)
                if opening is None or opening.weights is None:
                    raise RuntimeError(f"the author does not hold entry {j} of job #{r.extrinsic_index}")
                cps.append(opening.weights)
            old_proof_bytes += len(encode(_OldTrainingProof(
                r.extrinsic_index, tuple(cps), tuple(r.losses), r.transcript_root, r.diverged_segment)))
        result_bytes = sum(len(encode(r)) for r in results)
        old_block_bytes = block_bytes - result_bytes + old_proof_bytes
        losses = [calls.compute_f32_value(bits) for bits in results[0].losses[1:]]  # entry 0 has no loss

        names = list(_verifiers())
        ms: dict[str, list[float]] = {n: [] for n in names}
        cpu_ms: dict[str, list[float]] = {n: [] for n in names}
        fetched: dict[str, list[int]] = {n: [] for n in names}
        openings: dict[str, list[int]] = {n: [] for n in names}
        claims: tuple[TrainingClaim, ...] = ()
        for rep in range(reps):
            for vname, verifier in _verifiers().items():
                recording = _Recording(verifier)
                node = _open(tmp / f"v{rep}-{vname.replace('/', '_')}", spec, recording)
                source = CountingSource(LocalSource(author.transcripts))
                try:
                    for earlier in setup:
                        node.import_block(earlier, source=source)
                    source.reset()
                    started, cpu = time.perf_counter(), time.process_time()
                    node.import_block(block, source=source)
                    ms[vname].append((time.perf_counter() - started) * 1e3)
                    cpu_ms[vname].append((time.process_time() - cpu) * 1e3)
                finally:
                    node.db.close()
                claims = recording.claims or claims
                count, size = source.count()
                fetched[vname].append(size)
                openings[vname].append(count)
            advance(1)
    finally:
        author.db.close()
    total_steps = built.training_steps
    threads = {vname: _rerun_threads(verifier, block_hash, claims) for vname, verifier in _verifiers().items()
               if vname != FLOOR}
    rows_out: dict[str, Any] = {}
    floor = {
        "import_ms": summarize(ms[FLOOR]), "import_cpu_ms": summarize(cpu_ms[FLOOR]),
        "speedup_ceiling": summarize([f / s for f, s in zip(ms["full"], ms[FLOOR], strict=True)]),
        "speedup_ceiling_cpu": summarize([f / s for f, s in zip(cpu_ms["full"], cpu_ms[FLOOR], strict=True)]),
    }
    for vname in names:
        if vname == FLOOR:
            continue
        m = SEGMENTS if vname in ("full", FULL_SERIAL) else SEGMENTS // int(vname.split("=")[1])
        speedups = [f / s for f, s in zip(ms["full"], ms[vname], strict=True)]
        speedups_cpu = [f / s for f, s in zip(cpu_ms["full"], cpu_ms[vname], strict=True)]
        rows_out[vname] = {
            "samples_m": m, "ratio_s_over_m": SEGMENTS / m, "rerun_threads": threads[vname],
            "import_ms": summarize(ms[vname]),
            "verified_steps_per_s": summarize([total_steps / (t / 1e3) for t in ms[vname]]),
            "speedup_vs_full": summarize(speedups),
            "import_cpu_ms": summarize(cpu_ms[vname]), "speedup_vs_full_cpu": summarize(speedups_cpu),
            "speedup_vs_full_1_thread_cpu": summarize(
                [f / s for f, s in zip(cpu_ms[FULL_SERIAL], cpu_ms[vname], strict=True)]),
            "bytes_fetched": summarize(fetched[vname]), "openings_fetched": summarize(openings[vname]),
            "bytes_per_validator": block_bytes + int(summarize(fetched[vname])["median"]),
            "escape_one_forged_segment": comb(SEGMENTS - 1, m) / comb(SEGMENTS, m),
        }
    return {
        "family": name, "size": family.data, "param_count": model_spec.param_count,
        "data": f"{DATA[family.data]}, batch {family.batch}", "batch": family.batch,
        "dataset_rows": rows if family.data == "mnist" else None,
        "jobs": len(results), "jobs_offered": jobs, "segments_S": SEGMENTS, "segment_len": segment_len,
        "segment_len_asked": segment, "fit": fit, "steps_per_job": steps,
        "block_training_steps": total_steps, "author_build_s": build_s, "block_bytes": block_bytes,
        "results_bytes": result_bytes, "old_format_block_bytes": old_block_bytes,
        "old_format_bytes_per_validator": old_block_bytes, "job0_loss_first_last_segment": [losses[0], losses[-1]],
        "verifiers": rows_out, "floor": floor,
    }


def _parallel(quick: bool, reps: int) -> dict[str, Any]:
    from benches import kernels

    return {"softmax": kernels._bench_parallel("softmax", reps, quick),
            "control_nogil_integer_loop": kernels._bench_control(reps)}


def resolve_options(quick: bool, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the defaults of the sizes it leaves out (``polchain bench`` records them all)."""
    return {"jobs": 2 if quick else 4, "segment": 10 if quick else 25, "size": "all", **options}


def run(ctx: Context) -> Report:
    options = resolve_options(ctx.quick, ctx.options)
    jobs, segment, size = int(options["jobs"]), int(options["segment"]), str(options["size"])
    if size not in SIZES:
        raise RuntimeError(f"--size {size!r}: one of {', '.join(SIZES)}")
    rows = 256 if ctx.quick else 1024  # MNIST-sized rows: the batches' PRF draws from them
    families = SIZES[size]
    res: dict[str, Any] = {"families": {}, "size": size}
    with tempfile.TemporaryDirectory(prefix="polchain-bench-validator-") as tmpdir, \
            ctx.progress(len(families) * ctx.reps + 1,
                         f"validator: {jobs} jobs x {SEGMENTS} segments of {segment}") as advance:
        for family in families:
            res["families"][family] = measure(family, jobs, segment, ctx.reps, rows, Path(tmpdir), advance)
        res["parallel_verification"] = _parallel(ctx.quick, ctx.reps)
        advance(1)
    rows_table = []
    for family, f in res["families"].items():
        for name, r in f["verifiers"].items():
            rows_table.append([family, name, str(r["samples_m"]), str(r["rerun_threads"]), fmt(r["import_ms"], 1),
                               fmt(r["verified_steps_per_s"]),
                               "1.00x" if name == "full" else fmt(r["speedup_vs_full"], 1, "x"), fmt(r["import_cpu_ms"], 1),
                               "1.00x" if name == "full" else fmt(r["speedup_vs_full_cpu"], 1, "x"),
                               f"{r['bytes_fetched']['median']:,.0f}", f"{r['bytes_per_validator']:,}",
                               f"{r['escape_one_forged_segment']:.3f}"])
        fl = f["floor"]
        rows_table.append([family, FLOOR, "0", "-", fmt(fl["import_ms"], 1), "-", fmt(fl["speedup_ceiling"], 1, "x"),
                           fmt(fl["import_cpu_ms"], 1), fmt(fl["speedup_ceiling_cpu"], 1, "x"), "0",
                           f"{f['block_bytes']:,}", "1.000"])
        rows_table.append([family, "old format: every checkpoint in the block", "-", "-", "-", "-", "-", "-", "-", "0",
                           f"{f['old_format_block_bytes']:,}", "-"])
    par = res["parallel_verification"]
    notes = [
        *(f"{family} ({f['data']}): block of {f['jobs']} TRAIN calls x {SEGMENTS} segments of {f['segment_len']} "
          f"steps = {f['block_training_steps']:,} steps ({f['fit']}), {f['block_bytes']:,} bytes (old format "
          f"{f['old_format_block_bytes']:,}); the author trained and built it in {f['author_build_s']:.2f} s"
          for family, f in res["families"].items()),
        f"'{FLOOR}': the same import with a benchmark-only verifier that checks nothing: what no sample rate "
        "removes (decode, execution, roots, the write); its speed-up is the ceiling of every verifier's",
        "ideal speed-up at S/m = r is r m / (m + 1): a validator re-runs m segments and the job's largest update "
        "(consensus.pol.compute_largest_update), and the block's own execution, links and hashing are not sampled; "
        "ms and steps/s in wall clock; CPU ms = CPU time of the whole process during the import (all its "
        "threads, LevelDB's too; not what other programs on the machine take)",
        "threads: what the shared pool policy (chain.proofs.compute_rerun_threads) gave each verifier's "
        "re-runs, full re-execution included: one a core at POOL_MIN_UNITS work units or more, else 1 (inline)",
        f"full on a pool can take more CPU time than '{FULL_SERIAL}' (on this kind of machine two vCPUs slow "
        "each other's vector work; the pool's hand-offs), so a CPU speed-up over full flatters a sampled "
        "import; over the one-thread auditor (speedup_vs_full_1_thread_cpu) it does not: "
        + "; ".join(f"{family}: full's CPU time {fmt(f['verifiers'][FULL_SERIAL]['speedup_vs_full_cpu'], 2, 'x')} "
                    f"the one-thread auditor's, S/m=16 "
                    f"{fmt(f['verifiers']['S/m=16']['speedup_vs_full_1_thread_cpu'], 1, 'x')} faster in CPU than it"
                    for family, f in res["families"].items()),
        f"re-running sampled segments, 1 -> 2 threads: {fmt(par['softmax']['speedup'], 2, 'x')} "
        f"(GIL-free control in the same run: {fmt(par['control_nogil_integer_loop'], 2, 'x')})",
    ]

    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax2 = fig.add_subplot(1, 2, 2)
        for i, (family, f) in enumerate(res["families"].items()):
            v, color = {n: r for n, r in f["verifiers"].items() if n != FULL_SERIAL}, f"C{i}"
            xs = [v[n]["ratio_s_over_m"] for n in v]
            med, err = errorbars([v[n]["verified_steps_per_s"] for n in v])
            ax.errorbar(xs, med, yerr=err, fmt="o-", capsize=3, label=family, color=color)
            med, err = errorbars([v[n]["speedup_vs_full"] for n in v])
            ax2.errorbar(xs, med, yerr=err, fmt="o-", capsize=3, label=f"{family} (wall)", color=color)
            ax2.plot(xs, [v[n]["speedup_vs_full_cpu"]["median"] for n in v], "x:", label=f"{family} (CPU)",
                     color=color)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")  # the sizes' rates differ 20-fold
        ax.set_xlabel("S/m (1 = full re-execution)")
        ax.set_ylabel("training steps verified / s")
        ax.set_title("validator throughput vs sample rate", fontsize=9)
        ax.legend(fontsize=7)
        ax2.plot([1, 32], [1, 32], "--", color="grey", label="ideal (S/m)")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log", base=2)
        ax2.set_xlabel("S/m")
        ax2.set_ylabel("import speed-up over full")
        ax2.legend(fontsize=7)

    return Report(
        title=f"A validator importing a block of up to {jobs} TRAIN calls (S={SEGMENTS} segments of up to {segment} "
              f"steps; per family below), sampled vs full: median (min–max) of {ctx.reps} repetitions",
        columns=["family", "verifier", "m", "threads", "import ms", "steps verified/s", "speed-up", "CPU ms", "speed-up (CPU)",
                 "bytes fetched", "bytes per validator", "P(escape: 1 forged seg., not the largest)"],
        rows=rows_table, results=res, plot=plot, notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    from benches.record import compute_command
    from benches.runner import finish

    parser = argparse.ArgumentParser(prog="python -m benches.validator", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--segment", type=int, default=None)
    parser.add_argument("--size", choices=tuple(SIZES), default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 5)
    ctx = Context("validator", args.quick, args.reps, args.out, compute_command(),
                  options={k: getattr(args, k) for k in ("jobs", "segment", "size") if getattr(args, k) is not None})
    finish(ctx, run(ctx))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
