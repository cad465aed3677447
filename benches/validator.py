"""A validator's import of blocks of training calls: sampled verification vs full re-execution.

    polchain bench validator [--quick] [--reps N] [--jobs J] [--segment L] [--out DIR]
    python -m benches.validator [same flags]

The issue 9 benchmark, per model family: an author (the dev chain's Alice) builds one block of
``J`` TRAIN calls on the digits (batch 32) for the softmax model 64 -> 10 (the dev genesis's
model 0) and for an MLP 64 -> 32 -> 10 (registered in a first block that every validator
imports untimed), each call of ``S = 32`` segments of ``L`` steps.
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
from chain import calls, signatures
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


class _NoVerification:
    """Benchmark only, never a node's: accepts every transcript unchecked. Importing with it
    measures the floor of a block's import (decode, execution, roots, the write batch) that
    no sample rate removes, and so the ceiling of any verifier's speed-up: full / floor."""

    def verify_block(self, block: Any, block_hash: bytes, claims: Sequence[Any], source: Any) -> list[tuple[int, Opening]]:
        return []


FLOOR = "floor (no verification)"


def _verifiers() -> dict[str, Any]:
    out: dict[str, Any] = {"full": FullReexecution()}
    for ratio in RATIOS:
        out[f"S/m={ratio}"] = SampledVerifier(b"bench-validator-secret-" + bytes([ratio]) * 9, SEGMENTS // ratio)
    out[FLOOR] = _NoVerification()
    return out


FAMILIES = {  # family -> (model spec on the digits, the model's id on the bench chain)
    "softmax 64-10": (ml_runtime.ModelSpec("softmax", 64, 10, 0), 0),  # the dev genesis's model 0
    "mlp 64-32-10": (ml_runtime.ModelSpec("mlp", 64, 10, 32), 1),  # registered in block 1
}


def measure(family: str, jobs: int, segment: int, reps: int, tmp: Path, advance: Any) -> dict[str, Any]:
    """One family: the author's blocks, then ``reps`` rounds of one import per verifier."""
    spec = load_chain_spec("dev")
    model_spec, model = FAMILIES[family]
    tmp = tmp / family.split()[0]
    tmp.mkdir()
    author = _open(tmp / "author", spec, FullReexecution())
    steps = SEGMENTS * segment
    alice = dev_keypair("Alice")
    try:
        setup = []  # block 1 (imported untimed by every validator): the MLP model, open to anyone
        if model != 0:
            register = [sign_extrinsic(alice, c, nonce=i, genesis_hash=author.genesis_hash,
                                       spec_version=author.runtime.spec_version)
                        for i, c in enumerate([calls.RegisterModel("bench-mlp", model_spec.encode(), b"\x07" * 32),
                                               calls.SetTrainingPolicy(model, "anyone", 0)])]
            first = author.build_block(register, alice, slot=1)
            if not all(r.success for r in first.receipts):
                raise RuntimeError(f"registering the {family} model failed: {[r.error for r in first.receipts]}")
            setup.append(first.block)
        call = calls.Train(model, 0, steps, 32, calls.compute_f32_bits(0.5 if model == 0 else 0.02),
                           calls.compute_f32_bits(0.0001), segment)
        keys = [dev_keypair(n) for n in SENDERS]
        xts = [sign_extrinsic(keys[i % len(keys)], call, nonce=i // len(keys), genesis_hash=author.genesis_hash,
                              spec_version=author.runtime.spec_version) for i in range(jobs)]
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
        if not results or len(results) != len(block.body.extrinsics):
            # the author leaves out what does not fit the block's weight and length limits
            raise RuntimeError(f"{family}: {len(results)} training results for {len(block.body.extrinsics)} "
                               f"TRAIN calls in the block ({jobs} offered)")
        if any(r.diverged_segment is not None for r in results):
            raise RuntimeError(f"{family}: a training job diverged; the benchmark needs finished jobs")
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
                    for earlier in setup:
                        node.import_block(earlier, source=source)
                    source.bytes = source.openings = 0
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
    floor = {
        "import_ms": summarize(ms[FLOOR]), "import_cpu_ms": summarize(cpu_ms[FLOOR]),
        "speedup_ceiling": summarize([f / s for f, s in zip(ms["full"], ms[FLOOR], strict=True)]),
        "speedup_ceiling_cpu": summarize([f / s for f, s in zip(cpu_ms["full"], cpu_ms[FLOOR], strict=True)]),
    }
    for name in names:
        if name == FLOOR:
            continue
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
        "family": family, "param_count": model_spec.param_count, "data": "digits (8x8, 10 classes), batch 32",
        "jobs": len(results), "jobs_offered": jobs, "segments_S": SEGMENTS, "segment_len": segment, "steps_per_job": steps,
        "block_training_steps": total_steps, "author_build_s": build_s, "block_bytes": block_bytes,
        "results_bytes": result_bytes, "old_format_block_bytes": old_block_bytes,
        "old_format_bytes_per_validator": old_block_bytes, "verifiers": rows, "floor": floor,
    }


def _parallel(quick: bool, reps: int) -> dict[str, Any]:
    from benches import kernels

    return {"softmax": kernels._bench_parallel("softmax", reps, quick),
            "control_nogil_integer_loop": kernels._bench_control(reps)}


def run(ctx: Context) -> Report:
    jobs = int(ctx.options.get("jobs", 2 if ctx.quick else 4))
    segment = int(ctx.options.get("segment", 10 if ctx.quick else 25))
    res: dict[str, Any] = {"families": {}}
    with tempfile.TemporaryDirectory(prefix="polchain-bench-validator-") as tmpdir, \
            ctx.progress(len(FAMILIES) * ctx.reps + 1,
                         f"validator: {jobs} jobs x {SEGMENTS} segments of {segment}") as advance:
        for family in FAMILIES:
            res["families"][family] = measure(family, jobs, segment, ctx.reps, Path(tmpdir), advance)
        res["parallel_verification"] = _parallel(ctx.quick, ctx.reps)
        advance(1)
    rows = []
    for family, f in res["families"].items():
        for name, r in f["verifiers"].items():
            rows.append([family, name, str(r["samples_m"]), fmt(r["import_ms"], 1), fmt(r["verified_steps_per_s"]),
                         "1.00x" if name == "full" else fmt(r["speedup_vs_full"], 1, "x"), fmt(r["import_cpu_ms"], 1),
                         "1.00x" if name == "full" else fmt(r["speedup_vs_full_cpu"], 1, "x"),
                         f"{r['bytes_fetched']['median']:,.0f}", f"{r['bytes_per_validator']:,}",
                         f"{r['escape_one_forged_segment']:.3f}"])
        fl = f["floor"]
        rows.append([family, FLOOR, "0", fmt(fl["import_ms"], 1), "-", fmt(fl["speedup_ceiling"], 1, "x"),
                     fmt(fl["import_cpu_ms"], 1), fmt(fl["speedup_ceiling_cpu"], 1, "x"), "0", f"{f['block_bytes']:,}",
                     "1.000"])
        rows.append([family, "old format: every checkpoint in the block", "-", "-", "-", "-", "-", "-", "0",
                     f"{f['old_format_block_bytes']:,}", "-"])
    par = res["parallel_verification"]
    notes = [
        *(f"{family}: block of {f['jobs']} of {f['jobs_offered']} TRAIN calls offered (the block's weight limit) x {f['steps_per_job']} steps = {f['block_training_steps']:,} "
          f"steps, {f['block_bytes']:,} bytes (old format {f['old_format_block_bytes']:,}); the author trained and "
          f"built it in {f['author_build_s']:.2f} s" for family, f in res["families"].items()),
        f"'{FLOOR}': the same import with a benchmark-only verifier that checks nothing: what no sample rate "
        "removes (decode, execution, roots, the write); its speed-up is the ceiling of every verifier's",
        "ideal speed-up at S/m = r is r (the block's own execution, links and hashing are not sampled); "
        "ms and steps/s in wall clock; CPU ms = CPU time of the whole process during the import (all its "
        "threads, LevelDB's too; not what other programs on the machine take)",
        f"re-running sampled segments, 1 -> 2 threads: {fmt(par['softmax']['speedup'], 2, 'x')} "
        f"(GIL-free control in the same run: {fmt(par['control_nogil_integer_loop'], 2, 'x')})",
    ]

    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax2 = fig.add_subplot(1, 2, 2)
        for i, (family, f) in enumerate(res["families"].items()):
            v, color = f["verifiers"], f"C{i}"
            xs = [v[n]["ratio_s_over_m"] for n in v]
            med, err = errorbars([v[n]["verified_steps_per_s"] for n in v])
            ax.errorbar(xs, med, yerr=err, fmt="o-", capsize=3, label=family, color=color)
            med, err = errorbars([v[n]["speedup_vs_full"] for n in v])
            ax2.errorbar(xs, med, yerr=err, fmt="o-", capsize=3, label=f"{family} (wall)", color=color)
            ax2.plot(xs, [v[n]["speedup_vs_full_cpu"]["median"] for n in v], "x:", label=f"{family} (CPU)",
                     color=color)
        ax.set_xscale("log", base=2)
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
        title=f"A validator importing a block of {jobs} TRAIN calls (digits, batch 32, S={SEGMENTS} segments of "
              f"{segment} steps), sampled vs full: median (min–max) of {ctx.reps} repetitions",
        columns=["family", "verifier", "m", "import ms", "steps verified/s", "speed-up", "CPU ms", "speed-up (CPU)",
                 "bytes fetched", "bytes per validator", "P(escape 1 forged seg.)"],
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
