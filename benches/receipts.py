"""Receipt bytes a block can make: the worst case per call type.

    python -m benches.receipts [--out bench-results/receipts.json]

Receipts (chain.runtime.Receipt: the events with their named arguments, the error string)
are stored with every block on every node (the RECEIPT column) but are not part of the
block's encoding, which ``max_block_length`` bounds. For each call type below, with the
arguments an attacker would pick to make the most receipt bytes per byte and per unit of
weight of the block, this builds one real block of ``COPIES`` such extrinsics on a dev chain
(LevelDB in a temp dir, the author's path, ``Blockchain.build_block``), reads the receipts
stored for it, and scales to a full block: as many copies as fit both ``max_block_length``
(each counted with the bytes it declares besides its own, ``DispatchInfo.result_length``)
and ``max_block_weight``. Printed per case: the extrinsic's bytes and declared weight, the
stored receipt bytes per extrinsic, how many fit, and the receipt bytes of that full block
(and as a multiple of max_block_length).

Cases: a successful transfer; a remark (its data is only hashed into the event); the worst
``models.infer`` (16 rows into a model of d = 1 and k = 4,096 outputs: 64 bytes of inputs,
MAX_INFER_OUTPUTS = 65,536 outputs, 256 KiB in the receipt, as hex 512 KiB); a transfer that fails (an error string and
ExtrinsicFailed event); a runtime-config proposal that fails with the longest message a
caller can get from its arguments (``democracy.UnknownField`` with a 64-character field);
``assets.set_metadata`` with the longest name and symbol (echoed in its event).

On the dev config (5 MiB, 2e9 units), before the outputs of an infer call counted as its
result length: 247 worst infer calls fit a block's weight, 129,540,693 bytes of receipts
(24.7 x max_block_length); after, 9 fit its length, 4,720,106 bytes (0.9 x). The largest
left is a block of empty remarks, 2.3 x (a fixed ~250 bytes of receipt per 111-byte
extrinsic). Not built here: federated closes and noted votes (their events are per
participant or per vote, each paid by the call's weight or carried in its bytes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chain"))

from chainkit import ALICE, BOB, open_chain, sign

import ml_runtime
from benches.record import write_record
from chain import calls
from chain.crypto import Keypair
from chain.pallets import balances
from chain.storage import Column

OUT = Path("bench-results") / "receipts.json"
COPIES = 8
WIDE = ml_runtime.ModelSpec("softmax", 1, 4096)  # 8,192 parameters: one input, 4,096 outputs (MAX_DIM)
DAVE = Keypair.from_uri("//Dave")


def _cases(wide_model: int) -> list[tuple[str, object]]:
    return [
        ("balances.transfer (ok)", calls.Transfer(DAVE.public, 10**9)),
        ("system.remark, 0 bytes", calls.Remark(b"")),
        ("system.remark, 4096 bytes", calls.Remark(bytes(calls.MAX_REMARK))),
        ("models.infer, 16 rows -> 65,536 outputs", calls.Infer(wide_model, None, bytes(4 * 16))),
        ("balances.transfer (fails: InsufficientBalance)", calls.Transfer(DAVE.public, 2**62)),
        ("democracy.propose (fails: UnknownField, 64 chars)", calls.ProposeConfig((calls.ConfigChange("z" * 64, 1),))),
        ("assets.set_metadata (fails: name 64, symbol 16)", calls.SetAssetMetadata(7, "n" * 64, "S" * 16, 18)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches.receipts", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chain = open_chain(Path(tmp) / "db")
        slot = 1
        setup = chain.build_block([sign(chain, DAVE, calls.RegisterModel("wide", WIDE.encode(), bytes(32)), 0)], ALICE, slot=slot)
        (registered,) = setup.receipts
        assert registered.success, registered.error
        wide = dict(next(e for e in registered.events if e.name == "ModelRegistered").args)["model"]
        runtime = chain.runtime
        config = runtime.config
        for label, call in _cases(wide):
            nonce = balances.get_account(chain.state.overlay(), BOB.public).nonce
            xts = [sign(chain, BOB, call, nonce + i) for i in range(COPIES)]
            slot += 1
            built = chain.build_block(xts, ALICE, slot=slot)
            assert len(built.receipts) == COPIES, (label, len(built.receipts))
            stored = chain.db.get(Column.RECEIPT, built.block.header.hash())
            per_receipt = len(stored or b"") / COPIES
            raw = xts[0].encode()
            info = runtime.compute_dispatch_info(chain.state.overlay(), xts[0])
            fits = min(runtime.max_extrinsic_length // (len(raw) + info.result_length), config.max_block_weight // info.weight,
                       config.max_transcript_bytes // max(info.transcript_bytes, 1))
            full = int(per_receipt * fits)
            rows.append({
                "case": label, "success": built.receipts[0].success, "error": built.receipts[0].error,
                "extrinsic_bytes": len(raw), "result_length": info.result_length, "weight": info.weight,
                "receipt_bytes": round(per_receipt), "per_block": fits, "receipt_bytes_per_block": full,
                "multiple_of_max_block_length": round(full / config.max_block_length, 2),
            })
    print(f"{'case':52} {'xt B':>6} {'result B':>9} {'weight':>10} {'receipt B':>10} {'per block':>9} {'receipts/block':>15} {'x len':>6}")
    for r in rows:
        print(
            f"{r['case']:52} {r['extrinsic_bytes']:>6} {r['result_length']:>9} {r['weight']:>10,} {r['receipt_bytes']:>10,} "
            f"{r['per_block']:>9,} {r['receipt_bytes_per_block']:>15,} {r['multiple_of_max_block_length']:>6}"
        )
    write_record(args.out, "receipts", rows=rows, max_block_length=config.max_block_length, max_block_weight=config.max_block_weight)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
