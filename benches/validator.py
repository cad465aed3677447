"""A validator's import of blocks of training calls: sampled verification vs full re-execution.

    polchain bench validator [--quick] [--reps N] [--jobs J] [--segment L] [--out DIR]
    python -m benches.validator [same flags]

The issue 9 benchmark. An author (the dev chain's Alice) builds one block of ``J`` TRAIN calls
on the digits softmax model (64 -> 10, batch 32), each of ``S = 32`` segments of ``L`` steps.
The block carries one ``TrainingResult`` per call (transcript root, loss curve, new weights);
the intermediate checkpoints stay in the author's ``TranscriptStore``. Fresh validators (each
its own LevelDB with the same genesis) import the block with ``Blockchain.import_block``:

* ``full``: ``chain.proofs.FullReexecution``, the auditor (``--pol full``): every checkpoint
  fetched, every segment re-run;
* ``S/m = 4, 8, 16, 32``: ``consensus.pol.SampledVerifier`` with ``m = S / (S/m)`` segments a job.

The openings come from an in-process source over the author's store that counts the bytes
of every opening it hands out (their canonical encoding: what a peer would send) — the bytes
a validator fetches on top of the block. Every repetition imports once per verifier, in
turn, so that other load on the machine hits all of them alike; the speed-up is taken
within a repetition, then summarised (median, min–max) over the repetitions.

Figures per verifier: ms to import the block (wall clock, and the CPU time of the process:
the machine is shared, and CPU time leaves the other programs out); training steps verified per second (the
steps the block claims over the import time: the rate at which a validator accepts other
people's training); speed-up over full; bytes fetched; and the chance that one forged
segment of a job escapes one validator, C(S-1, m) / C(S, m) = 1 - m/S.

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
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

import msgspec

import ml_runtime
from benches.runner import Context, Report, errorbars, fmt, summarize
from chain import calls
from chain.blockchain import Blockchain
from chain.codec import Wire, encode
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.proofs import CheckpointSource, FullReexecution, Opening, TrainingResult
from chain.storage import Database
from chain.transcripts import LocalSource
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from consensus.pol import SampledVerifier
from genesis.spec import ChainSpec, load_chain_spec

SEGMENTS = 32  # S, segments per job
RATIOS = (4, 8, 16, 32)  # S/m
SENDERS = ("Bob", "Charlie", "Dave", "Eve", "Ferdie", "Alice")


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
    weights only where they were asked for) and counts their encoded bytes."""

    def __init__(self, inner: CheckpointSource) -> None:
        self.inner = inner
        self.bytes = 0
        self.openings = 0

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        got = self.inner.fetch(block_hash, result, wanted)
        need = dict(wanted)
        sent = {j: o if need.get(j) else msgspec.structs.replace(o, weights=None) for j, o in got.items()}
        self.openings += len(sent)
        self.bytes += sum(len(encode(o)) for o in sent.values())
        return sent


def _open(path: Path, spec: ChainSpec, verifier: Any) -> Blockchain:
    return Blockchain(
        Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis,
        rules=ConsensusRules(Aura(6000)), verifier=verifier,
    )


def _verifiers() -> dict[str, Any]:
    out: dict[str, Any] = {"full": FullReexecution()}
    for ratio in RATIOS:
        out[f"S/m={ratio}"] = SampledVerifier(b"bench-validator-secret-" + bytes([ratio]) * 9, SEGMENTS // ratio)
    return out


def measure(jobs: int, segment: int, reps: int, tmp: Path, advance: Any) -> dict[str, Any]:
    spec = load_chain_spec("dev")
    author = _open(tmp / "author", spec, FullReexecution())
    steps = SEGMENTS * segment
    try:
        call = calls.Train(0, 0, steps, 32, calls.compute_f32_bits(0.5), calls.compute_f32_bits(0.0001), segment)
        keys = [dev_keypair(n) for n in SENDERS]
        xts = [sign_extrinsic(keys[i % len(keys)], call, nonce=i // len(keys), genesis_hash=author.genesis_hash,
                              spec_version=author.runtime.spec_version) for i in range(jobs)]
        ml_runtime.warm_up()
        started = time.perf_counter()
        built = author.build_block(xts, dev_keypair("Alice"), slot=1)
        build_s = time.perf_counter() - started
        failed = [r.error for r in built.receipts if not r.success]
        if failed:
            raise RuntimeError(f"the author's TRAIN calls failed: {failed}")
        block = built.block
        block_hash = block.hash()
        results = list(block.body.results)
        if len(results) != jobs:
            raise RuntimeError(f"{len(results)} training results in a block of {jobs} TRAIN calls")
        block_bytes = len(block.encode())
        old_proof_bytes = 0
        for r in results:
            n = len(r.losses)
            cps = []
            for j in range(n):
                opening = author.transcripts.get(block_hash, r.extrinsic_index, j)
                if opening is None or opening.weights is None:
                    raise RuntimeError(f"the author does not hold entry {j} of job #{r.extrinsic_index}")
                cps.append(opening.weights)
            old_proof_bytes += len(encode(_OldTrainingProof(
                r.extrinsic_index, tuple(cps), tuple(r.losses), r.transcript_root, r.diverged_segment)))
        result_bytes = sum(len(encode(r)) for r in results)
        old_block_bytes = block_bytes - result_bytes + old_proof_bytes
        advance(1)

        names = list(_verifiers())
        ms: dict[str, list[float]] = {n: [] for n in names}
        cpu_ms: dict[str, list[float]] = {n: [] for n in names}
        fetched: dict[str, list[int]] = {n: [] for n in names}
        openings: dict[str, list[int]] = {n: [] for n in names}
        for rep in range(reps):
            for name, verifier in _verifiers().items():
                node = _open(tmp / f"v{rep}-{name.replace('/', '_')}", spec, verifier)
                source = CountingSource(LocalSource(author.transcripts))
                try:
                    started, cpu = time.perf_counter(), time.process_time()
                    node.import_block(block, source=source)
                    ms[name].append((time.perf_counter() - started) * 1e3)
                    cpu_ms[name].append((time.process_time() - cpu) * 1e3)
                finally:
                    node.db.close()
                fetched[name].append(source.bytes)
                openings[name].append(source.openings)
            advance(1)
    finally:
        author.db.close()
    total_steps = built.training_steps
    rows: dict[str, Any] = {}
    for name in names:
        m = SEGMENTS if name == "full" else SEGMENTS // int(name.split("=")[1])
        speedups = [f / s for f, s in zip(ms["full"], ms[name], strict=True)]
        speedups_cpu = [f / s for f, s in zip(cpu_ms["full"], cpu_ms[name], strict=True)]
        rows[name] = {
            "samples_m": m, "ratio_s_over_m": SEGMENTS / m,
            "import_ms": summarize(ms[name]),
            "verified_steps_per_s": summarize([total_steps / (t / 1e3) for t in ms[name]]),
            "speedup_vs_full": summarize(speedups),
            "import_cpu_ms": summarize(cpu_ms[name]), "speedup_vs_full_cpu": summarize(speedups_cpu),
            "bytes_fetched": summarize(fetched[name]), "openings_fetched": summarize(openings[name]),
            "bytes_per_validator": block_bytes + int(summarize(fetched[name])["median"]),
            "escape_one_forged_segment": comb(SEGMENTS - 1, m) / comb(SEGMENTS, m),
        }
    return {
        "family": "softmax 64->10 (digits), batch 32", "jobs": jobs, "segments_S": SEGMENTS,
        "segment_len": segment, "steps_per_job": steps, "block_training_steps": total_steps,
        "author_build_s": build_s, "block_bytes": block_bytes, "results_bytes": result_bytes,
        "old_format_block_bytes": old_block_bytes, "old_format_bytes_per_validator": old_block_bytes,
        "verifiers": rows,
    }


def _parallel(quick: bool, reps: int) -> dict[str, Any]:
    from benches import kernels

    return {"softmax": kernels._bench_parallel("softmax", reps, quick),
            "control_nogil_integer_loop": kernels._bench_control(reps)}


def run(ctx: Context) -> Report:
    jobs = int(ctx.options.get("jobs", 2 if ctx.quick else 4))
    segment = int(ctx.options.get("segment", 10 if ctx.quick else 25))
    with tempfile.TemporaryDirectory(prefix="polchain-bench-validator-") as tmpdir, \
            ctx.progress(ctx.reps + 2, f"validator: {jobs} jobs x {SEGMENTS} segments of {segment}") as advance:
        res = measure(jobs, segment, ctx.reps, Path(tmpdir), advance)
        res["parallel_verification"] = _parallel(ctx.quick, ctx.reps)
        advance(1)
    v = res["verifiers"]
    rows = [[name, str(r["samples_m"]), fmt(r["import_ms"], 1), fmt(r["verified_steps_per_s"]),
             "1.00x" if name == "full" else fmt(r["speedup_vs_full"], 1, "x"), fmt(r["import_cpu_ms"], 1),
             "1.00x" if name == "full" else fmt(r["speedup_vs_full_cpu"], 1, "x"),
             f"{r['bytes_fetched']['median']:,.0f}", f"{r['bytes_per_validator']:,}",
             f"{r['escape_one_forged_segment']:.3f}"] for name, r in v.items()]
    rows.append(["old format (all checkpoints in the block)", "-", "-", "-", "-", "-", "-", "0",
                 f"{res['old_format_block_bytes']:,}", "-"])
    par = res["parallel_verification"]
    notes = [
        f"block: {jobs} TRAIN calls x {res['steps_per_job']} steps = {res['block_training_steps']:,} steps; "
        f"{res['block_bytes']:,} bytes (old format: {res['old_format_block_bytes']:,}); author trained and built "
        f"it in {res['author_build_s']:.2f} s",
        "ideal speed-up at S/m = r is r (the block's own execution, links and hashing are not sampled); "
        "ms and steps/s in wall clock; CPU ms = CPU time of the whole process during the import (all its "
        "threads, LevelDB's too; not what other programs on the machine take)",
        f"re-running sampled segments, 1 -> 2 threads: {fmt(par['softmax']['speedup'], 2, 'x')} "
        f"(GIL-free control in the same run: {fmt(par['control_nogil_integer_loop'], 2, 'x')})",
    ]

    def plot(fig: Any) -> None:
        names = list(v)
        ax = fig.add_subplot(1, 2, 1)
        xs = [v[n]["ratio_s_over_m"] for n in names]
        med, err = errorbars([v[n]["verified_steps_per_s"] for n in names])
        ax.errorbar(xs, med, yerr=err, fmt="o-", capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("S/m (1 = full re-execution)")
        ax.set_ylabel("training steps verified / s")
        ax.set_title("validator throughput vs sample rate")
        ax2 = fig.add_subplot(1, 2, 2)
        med, err = errorbars([v[n]["speedup_vs_full"] for n in names])
        ax2.errorbar(xs, med, yerr=err, fmt="o-", capsize=3, label="measured")
        ax2.plot(xs, xs, "--", label="ideal (S/m)")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log", base=2)
        ax2.set_xlabel("S/m")
        ax2.set_ylabel("import speed-up over full")
        ax2.legend(fontsize=7)

    return Report(
        title=f"A validator importing a block of {jobs} TRAIN calls (softmax 64->10, S={SEGMENTS} segments of "
              f"{segment} steps): median (min–max) of {ctx.reps} repetitions",
        columns=["verifier", "m", "import ms", "steps verified/s", "speed-up", "CPU ms", "speed-up (CPU)", "bytes fetched",
                 "bytes per validator", "P(escape 1 forged seg.)"],
        rows=rows, results=res, plot=plot, notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    from benches.record import compute_command
    from benches.runner import finish

    parser = argparse.ArgumentParser(prog="python -m benches.validator", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--segment", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 5)
    ctx = Context("validator", args.quick, args.reps, args.out, compute_command(),
                  options={k: getattr(args, k) for k in ("jobs", "segment") if getattr(args, k) is not None})
    finish(ctx, run(ctx))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
