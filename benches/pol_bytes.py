"""Bytes a TRAIN block carries, the fee its call pays, and what its author stores.

    python -m benches.pol_bytes

For a few TRAIN calls on the dev chain (model 0: softmax 64 -> 10, 650 parameters; and an
MLP 64 -> 3000 -> 10, 225,010 parameters, registered first), one block per call: the
block's encoded bytes, the call's fee, and the checkpoint bytes its author keeps outside the
block (the OPENING column, issue 9). Uses only ``Blockchain.build_block`` and the receipts, so
the same file measures a checkout from before issue 9 (where the body carried every
checkpoint) for comparison; ``stored`` is then None.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chain"))

from chainkit import ALICE, BOB, open_chain, sign

import ml_runtime
from benches.record import write_record
from chain import calls
from chain.crypto import Keypair

OUT = Path("bench-results") / "pol_bytes.json"
DAVE = Keypair.from_uri("//Dave")
BIG = ml_runtime.ModelSpec("mlp", 64, 10, 3000)
# (label, model, steps, batch, segment_len)
CASES = [
    ("softmax 650 params, 800 steps / 25 (S=32)", 0, 800, 32, 25),
    ("softmax 650 params, 64 steps / 1 (S=64, the dev chain's max_segments)", 0, 64, 1, 1),
    ("mlp 225,010 params, 4 steps / 1 (S=4)", 1, 4, 1, 1),
    ("mlp 225,010 params, 20 steps / 1 (S=20)", 1, 20, 1, 1),
]


def _stored_bytes(chain, block_hash: bytes) -> int | None:
    """Checkpoint bytes the author keeps for the block (None before issue 9: no such store)."""
    try:
        from chain.storage import Column

        column = Column.OPENING
    except (ImportError, AttributeError):
        return None
    return sum(len(v) for k, v in chain.db.iterate(column, prefix=block_hash))


def main(argv: list[str] | None = None) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chain = open_chain(Path(tmp) / "db")
        setup = [
            sign(chain, DAVE, calls.RegisterModel("big", BIG.encode(), bytes(32)), 0),
            sign(chain, DAVE, calls.SetTrainingPolicy(1, "anyone", 0), 1),
        ]
        chain.build_block(setup, ALICE, slot=1)
        for n, (label, model, steps, batch, segment) in enumerate(CASES):
            call = calls.Train(model, 0, steps, batch, calls.compute_f32_bits(0.1), 0, segment)
            xt = sign(chain, BOB, call, n)
            refused: list[str] = []
            built = chain.build_block([xt], ALICE, slot=2 + n, on_invalid=lambda _h, exc, out=refused: out.append(str(exc)))
            receipt = built.receipts[0] if built.receipts else None
            rows.append({
                "case": label, "xt_bytes": len(xt.encode()), "block_bytes": len(built.block.encode()),
                "fee": receipt.fee if receipt else None, "success": receipt.success if receipt else None,
                "error": (receipt.error if receipt else None) or (refused[0] if refused else None),
                "stored_bytes": _stored_bytes(chain, built.block.hash()),
                "max_block_length": chain.config.max_block_length,
            })
        chain.db.close()
    print(f"{'TRAIN call':46}{'xt':>6}{'block bytes':>14}{'fee (POL)':>12}{'author stores':>16}  outcome")
    for r in rows:
        fee = "-" if r["fee"] is None else f"{r['fee'] / 1e9:.4f}"
        stored = "-" if r["stored_bytes"] is None else f"{r['stored_bytes']:,}"
        outcome = "ok" if r["success"] else (r["error"] or "")[:60]
        print(f"{r['case']:46}{r['xt_bytes']:>6}{r['block_bytes']:>14,}{fee:>12}{stored:>16}  {outcome}")
    write_record(OUT, "pol_bytes", rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
