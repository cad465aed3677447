"""How much training work a validator verifies per second: full re-execution vs sampling.

    python -m benches.pol [--jobs 4] [--steps 400] [--segment 25] [--samples 2]

An author builds one block of TRAIN calls on the dev chain (digits, softmax 64 -> 10,
batch 32); fresh validators import it with FullReexecution and with SampledVerifier(m). The
"verified steps/s" figure is the training steps a block claims divided by the import time:
the rate at which a validator can accept other people's training. The detection line
compares how often sampling catches one forged checkpoint with the formula: a forged
checkpoint j+1 is the output of segment j and the input of segment j+1, so sampling either
exposes it, and one validator catches it with probability 1 - C(S-2, m) / C(S, m).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chain"))

from chainkit import ALICE, open_chain, sign, train_call

import ml_runtime
from benches.record import write_record
from chain.block import Block
from chain.crypto import Keypair
from chain.errors import FraudFound
from chain.proofs import (
    FullReexecution,
    Opening,
    TrainingClaim,
    TrainingResult,
    compute_openings,
    compute_result,
)
from chain.transcripts import LocalSource
from consensus.pol import SampledVerifier
from tests.forgery import forge_outcome

OUT = Path("bench-results") / "pol.json"


class _Openings:
    """A CheckpointSource over one job's openings in memory."""

    def __init__(self, openings: tuple[Opening, ...]) -> None:
        self.openings = openings

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted) -> dict[int, Opening]:
        return {j: self.openings[j] for j, _ in wanted}


def _import(block: Block, source: LocalSource, verifier: object, tmp: Path, name: str) -> float:
    chain = open_chain(tmp / name)
    chain.verifier = verifier  # type: ignore[assignment]
    started = time.perf_counter()
    chain.import_block(block, source)
    elapsed = time.perf_counter() - started
    chain.db.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches.pol", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--segment", type=int, default=25)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2000, help="validators drawn for the detection rate")
    args = parser.parse_args(argv)
    ml_runtime.warm_up()
    senders = [Keypair.from_uri(f"//{n}") for n in ("Bob", "Charlie", "Dave", "Eve", "Ferdie", "Alice")]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        author = open_chain(tmp / "author")
        xts = [
            sign(author, senders[i % len(senders)], train_call(args.steps, 32, 0.5, args.segment), i // len(senders))
            for i in range(args.jobs)
        ]
        started = time.perf_counter()
        built = author.build_block(xts, ALICE, slot=1)
        build_s = time.perf_counter() - started
        assert all(r.success for r in built.receipts), [r.error for r in built.receipts]
        steps = built.training_steps
        segments = -(-args.steps // args.segment)
        source = LocalSource(author.transcripts)
        full_s = _import(built.block, source, FullReexecution(), tmp, "full")
        sampled_s = _import(built.block, source, SampledVerifier(b"s" * 32, args.samples), tmp, "sampled")
        author.db.close()

        # A forgery of one checkpoint in job 0, with a consistent transcript root.
        validator = open_chain(tmp / "detect")
        from chain.pallets.training import compute_job_at

        job, parent, _ = compute_job_at(
            validator.state.overlay(), validator.config, xts[0].call, validator.best_hash, xts[0].hash(),
            validator.best_number + 1,
        )
        outcome = forge_outcome(ml_runtime.run_job(job), "segment", segments // 2 + 1)
        claim = TrainingClaim(0, job, compute_result(0, outcome), 0, parent)
        forged = _Openings(compute_openings(outcome))
        caught = 0
        for t in range(args.trials):
            try:
                SampledVerifier(t.to_bytes(4, "little") * 8, args.samples).verify_block(built.block, built.block.hash(), [claim], forged)
            except FraudFound:
                caught += 1
        validator.db.close()
    expected = 1 - comb(segments - 2, args.samples) / comb(segments, args.samples)
    result = {
        "jobs": args.jobs, "steps_per_job": args.steps, "segments_per_job": segments, "samples": args.samples,
        "author_build_s": build_s, "import_full_s": full_s, "import_sampled_s": sampled_s,
        "verified_steps_per_s_full": steps / full_s, "verified_steps_per_s_sampled": steps / sampled_s,
        "speedup_sampled_vs_full": full_s / sampled_s, "ideal_speedup": segments / args.samples,
        "detection_measured": caught / args.trials, "detection_formula": expected, "trials": args.trials,
    }
    print(f"Block of {args.jobs} TRAIN calls x {args.steps} steps (batch 32, softmax 64->10 on digits), S={segments} segments each")
    print(f"{'':34}{'seconds':>10}{'steps/s':>14}")
    print(f"{'author: train + build':34}{build_s:>10.3f}{steps / build_s:>14,.0f}")
    print(f"{'validator: full re-execution':34}{full_s:>10.3f}{steps / full_s:>14,.0f}")
    print(f"{f'validator: sampled (m={args.samples} per job)':34}{sampled_s:>10.3f}{steps / sampled_s:>14,.0f}")
    print(f"sampled vs full: {full_s / sampled_s:.1f}x faster (ideal S/m = {segments / args.samples:.1f}x; links and hashing are not sampled)")
    print(
        f"one forged checkpoint caught by {caught}/{args.trials} validators = {caught / args.trials:.3f} "
        f"(formula 1 - C(S-2,m)/C(S,m) = {expected:.3f})"
    )
    write_record(OUT, "pol", **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
