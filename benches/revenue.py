"""Revenue distribution cost per payment to a shared model: 10 holders vs 10,000, side by side.

The revenue pallet pays holders with a reward-per-share accumulator (Batog, Boca and Johnson,
*Scalable Reward Distribution on the Ethereum Blockchain*, 2018; chain/pallets/revenue.py),
so a payment's cost must not depend on how many accounts hold shares. For each holder count,
on a real dev chain (LevelDB in a temporary directory):

1. setup: Alice shares model 0 into 10 x holders shares and gives 10 to each of holders - 1
   other accounts, as signed ``assets.transfer`` extrinsics in real blocks;
2. blocks of ``--payments`` signed ``models.pay_model`` extrinsics (Bob pays 1,000,001 planck
   each), built by the author path (signature checks, fees, dispatch, state root, commit):
   time per payment, best of ``--rounds`` blocks;
3. the pallet function alone (``models.apply_pay_model`` on an overlay): time per payment,
   and the storage reads and writes one payment makes (the flatness, counted exactly).

    python -m benches.revenue [--payments 500] [--rounds 3]

Prints a table and writes bench-results/revenue.json. Figures only, never assertions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benches.record import write_record
from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256, dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import assets, models
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import load_chain_spec

ALICE, BOB = dev_keypair("Alice"), dev_keypair("Bob")
PAYMENT = 1_000_001


class CountingState:
    """An overlay wrapper that counts storage reads and writes."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads, self.writes = inner, 0, 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get(key)  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        self.inner.set(key, value)

    def delete(self, key: bytes) -> None:
        self.writes += 1
        self.inner.delete(key)


def _sign(chain: Blockchain, key: Keypair, call: Any, nonce: int) -> Any:
    return sign_extrinsic(key, call, nonce=nonce, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version)


def _setup(chain: Blockchain, holders: int) -> None:
    shares = assets.compute_shares_asset(0)
    xts = [_sign(chain, ALICE, calls.ShareModel(0, 10 * holders), 0)]
    for i in range(holders - 1):
        dest = blake2_256(b"bench-revenue" + i.to_bytes(4, "little"))
        xts.append(_sign(chain, ALICE, calls.TransferAsset(shares, dest, 10), i + 1))
    built = chain.build_block(xts, ALICE, slot=1)
    failed = [r.error for r in built.receipts if not r.success]
    if failed or len(built.receipts) != len(xts):
        raise RuntimeError(f"setup failed: {len(built.receipts)} of {len(xts)} applied; {failed[:3]}")
    info = assets.get_asset(chain.state.overlay(), shares)
    if info.accounts != holders:
        raise RuntimeError(f"expected {holders} holders, found {info.accounts}")


def measure(holders: int, payments: int, rounds: int) -> dict[str, float]:
    spec = load_chain_spec("dev")
    with tempfile.TemporaryDirectory() as tmp:
        chain = Blockchain(Database(Path(tmp) / "db"), chain_id=spec.id, build_genesis=spec.apply_genesis,
                           rules=ConsensusRules(Aura(6000)))
        try:
            _setup(chain, holders)
            block_s = float("inf")
            for r in range(rounds):
                xts = [_sign(chain, BOB, calls.PayModel(0, PAYMENT), r * payments + n) for n in range(payments)]
                start = time.perf_counter()
                built = chain.build_block(xts, ALICE, slot=2 + r)
                block_s = min(block_s, time.perf_counter() - start)
                if not all(x.success for x in built.receipts) or len(built.receipts) != payments:
                    raise RuntimeError("a payment failed")
            best = float("inf")
            counted = CountingState(chain.state.overlay())
            models.apply_pay_model(counted, 0, BOB.public, PAYMENT, chain.config.existential_deposit)
            for _ in range(rounds):
                overlay = chain.state.overlay()
                start = time.perf_counter()
                for _ in range(payments):
                    models.apply_pay_model(overlay, 0, BOB.public, PAYMENT, chain.config.existential_deposit)
                best = min(best, time.perf_counter() - start)
        finally:
            chain.db.close()
    return {
        "block_us_per_payment": block_s / payments * 1e6,
        "pallet_us_per_payment": best / payments * 1e6,
        "reads_per_payment": counted.reads,
        "writes_per_payment": counted.writes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--payments", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/revenue.json"))
    args = parser.parse_args()
    results = {h: measure(h, args.payments, args.rounds) for h in args.holders}
    print(f"revenue distribution: {args.payments} payments to model 0 per block, best of {args.rounds}")
    print(f"{'holders':>8}  {'block µs/payment':>17}  {'pallet µs/payment':>18}  {'reads':>5}  {'writes':>6}")
    for h, r in results.items():
        print(f"{h:>8,}  {r['block_us_per_payment']:>17,.1f}  {r['pallet_us_per_payment']:>18,.1f}  "
              f"{r['reads_per_payment']:>5}  {r['writes_per_payment']:>6}")
    write_record(
        args.out, "revenue", payments=args.payments, rounds=args.rounds,
        results={str(h): {k: round(v, 2) for k, v in r.items()} for h, r in results.items()},
    )


if __name__ == "__main__":
    main()
