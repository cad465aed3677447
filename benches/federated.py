"""What verifying a federated round costs a validator, and what a participant reveals.

    python -m benches.federated [--family softmax|mlp] [--hidden 64] [--steps 400] [--batch 16]
                                [--segment 20] [--samples 1 2 4]

Three participants each hold a private third of the digits (1,500 rows, 297 held out) and
run a round on a 64 -> 10 model (dev model 0, softmax, or an MLP registered for the run)
through real blocks: an author chain builds every block, a follower chain imports it. For
each m in --samples a fresh round is run.

- "import": the follower's import time of one participant's reveal blocks (the m challenged
  segments re-run inside the reveal's dispatch, the Merkle checks, and the block's own
  overhead: signatures, state writes, the trie).
- "work": the verification work alone, timed apart: the row paths and the m segment re-runs.
- "re-run all": what a validator would spend without sampling: every segment of that
  participant's job (ml_runtime.run_job over its rows; it would also need all the rows).
- "revealed": the encoded bytes of the participant's reveal calls, the distinct rows they
  open and those rows' share of the participant's data (row bytes revealed / n x row size).
  The expected distinct rows of m·L·B draws with replacement from n is
  n·(1 − (1 − 1/n)^(m·L·B)) (segments are disjoint runs of the same with-replacement batch
  PRF, so their union is m·L·B independent draws).
- "P(catch 1 fake)": a participant who fakes one of S segments is caught with probability
  m / S (1 − C(S−1, m)/C(S, m)); faking f segments, 1 − C(S−f, m)/C(S, m).

The close (FedAvg of the three updates and the payouts) is timed as an import too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chain"))

import numpy as np
from chainkit import ALICE, open_chain
from fedkit import BOB, CHARLIE, DAVE, EVE, Driver, Participant, accuracy, open_call, split_digits

import ml_runtime
from benches.record import write_record
from chain import calls
from chain.codec import encode
from chain.pallets import federated, models

OUT = Path("bench-results") / "federated.json"


class TimedDriver(Driver):
    """The test driver, also timing the follower's import of each block."""

    def __init__(self, chain, follower) -> None:
        super().__init__(chain, follower)
        self.last_import = 0.0

    def block(self, xts=()):
        self.slot += 1
        built = self.chain.build_block(list(xts), ALICE, slot=self.slot)
        started = time.perf_counter()
        self.follower.import_block(built.block)
        self.last_import = time.perf_counter() - started
        return built


def verify_work(p: Participant, info: federated.RoundInfo, spec: ml_runtime.ModelSpec, base: np.ndarray,
                reveal: calls.RevealSegment) -> float:
    """Seconds of what a reveal's dispatch computes: the row paths and the segment's re-run."""
    started = time.perf_counter()
    n, size = len(p.leaves), len(p.leaves[0])
    root = ml_runtime.compute_merkle_root(p.leaves)
    wanted = federated.compute_segment_rows(federated.compute_batch_seed(0, p.key.public), info, reveal.segment, n)
    for pos, (r, path) in enumerate(zip(wanted.tolist(), reveal.row_paths, strict=True)):
        assert federated.verify_leaf_path(root, reveal.rows[pos * size : (pos + 1) * size], path, r, n)
    paths = time.perf_counter() - started
    x = np.zeros_like(p.x)
    x[wanted] = p.x[wanted]
    job = federated.compute_job(info, spec, base, p.key.public, x, p.y, 0)
    assert p.result is not None
    t = p.result.transcript
    started = time.perf_counter()
    ml_runtime.verify_segment(job, reveal.segment, p.result.checkpoints[reveal.segment], t.entries[reveal.segment + 1], t.entries[reveal.segment])
    return paths + time.perf_counter() - started


def run_round(tmp: Path, family: str, hidden: int, steps: int, batch: int, segment: int, m: int) -> dict:
    chain, follower = open_chain(tmp / f"a{m}"), open_chain(tmp / f"b{m}")
    d = TimedDriver(chain, follower)
    shares, (x_test, y_test) = split_digits(3, seed=11)
    people = [Participant(k, x, y) for k, (x, y) in zip((BOB, CHARLIE, DAVE), shares, strict=True)]
    model = 0
    if family == "mlp":
        spec = ml_runtime.ModelSpec("mlp", 64, 10, hidden)
        d.ok(ALICE, calls.RegisterModel("fl-bench-mlp", spec.encode(), bytes(32)))
        model = 1
    d.ok(ALICE, open_call(model=model, local_steps=steps, batch_size=batch, segment_len=segment, samples=m,
                          min_updates=3, commit_deadline=6, reveal_deadline=40))
    state = chain.state.overlay()
    spec = models.decode_spec(models.get_model(state, model).spec)
    base = models.get_weights(state, model, 0)
    rerun = {}
    for p in people:
        started = time.perf_counter()
        commit = p.train(chain, 0)
        rerun[p.key.public] = time.perf_counter() - started
        d.ok(p.key, commit)
    d.until(6)
    d.ok(EVE, calls.ChallengeRound(0))
    rows = []
    info = federated.get_round(chain.state.overlay(), 0)
    for p in people:
        verify = work = 0.0
        reveal_bytes = 0
        distinct = set()
        for reveal in p.reveals(chain, 0):
            d.ok(p.key, reveal)
            verify += d.last_import
            work += verify_work(p, info, spec, base, reveal)
            reveal_bytes += len(encode(reveal))
            distinct.update(federated.compute_segment_rows(federated.compute_batch_seed(0, p.key.public), info, reveal.segment, len(p.leaves)).tolist())
        n, size = len(p.leaves), len(p.leaves[0])
        draws = m * segment * batch
        rows.append({
            "participant": p.key.address, "m": m, "segments": info.segments, "rows": n, "data_bytes": n * size,
            "verify_import_s": verify, "verify_work_s": work, "rerun_all_s": rerun[p.key.public],
            "reveal_bytes": reveal_bytes, "rows_revealed": len(distinct),
            "rows_revealed_expected": n * (1 - (1 - 1 / n) ** draws),
            "row_bytes_fraction": len(distinct) * size / (n * size),
            "p_catch_one_fake": 1 - comb(info.segments - 1, m) / comb(info.segments, m),
        })
    d.ok(EVE, calls.CloseRound(0))
    close_s = d.last_import
    aggregate = models.get_weights(chain.state.overlay(), model, 1)
    acc = (accuracy(spec, base, x_test, y_test), accuracy(spec, aggregate, x_test, y_test))
    chain.db.close()
    follower.db.close()
    return {"rows": rows, "close_import_s": close_s, "accuracy_base": acc[0], "accuracy_aggregate": acc[1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches.federated", description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=("softmax", "mlp"), default="softmax")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--segment", type=int, default=20)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    ml_runtime.warm_up()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.samples:
            results.append(run_round(Path(tmp), args.family, args.hidden, args.steps, args.batch, args.segment, m))
    print(f"federated round ({args.family}): 3 participants, {args.steps} local steps, batch {args.batch}, segment {args.segment}")
    head = (f"{'m':>3} {'who':>10} {'rows':>5} {'import ms':>10} {'work ms':>8} {'re-run ms':>10} {'work/re-run':>11} "
            f"{'reveal B':>9} {'data B':>8} {'rows rev':>8} {'expect':>7} {'frac':>6} {'P(1 fake)':>9}")
    print(head)
    for res in results:
        for r in res["rows"]:
            print(f"{r['m']:>3} {r['participant'][:10]:>10} {r['rows']:>5} {1000 * r['verify_import_s']:>10.1f} "
                  f"{1000 * r['verify_work_s']:>8.1f} {1000 * r['rerun_all_s']:>10.1f} "
                  f"{r['verify_work_s'] / r['rerun_all_s']:>11.2f} {r['reveal_bytes']:>9} "
                  f"{r['data_bytes']:>8} {r['rows_revealed']:>8} {r['rows_revealed_expected']:>7.1f} "
                  f"{r['row_bytes_fraction']:>6.3f} {r['p_catch_one_fake']:>9.3f}")
        print(f"    close (FedAvg + payouts) import {1000 * res['close_import_s']:.1f} ms; held-out accuracy "
              f"{res['accuracy_base']:.3f} -> {res['accuracy_aggregate']:.3f}")
    write_record(args.out, "federated", args=vars(args) | {"out": str(args.out)}, results=results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
