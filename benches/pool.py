"""Transaction pool throughput: submits/s and ready() iteration/s.

10,000 signed transfers from 100 senders (100 nonces each, random tips). Submission is
measured with a validator that checks the ed25519 signature (what the node does) and with one
that trusts it (the pool's own bookkeeping: decode, hash, filing), against the bare cost of
decoding and hashing. Each figure is the best of a few rounds on a fresh pool.

    python -m benches.pool [--senders 100] [--per-sender 100] [--rounds 3]

Prints a table and writes bench-results/pool.json. Figures only, never assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path

from benches.record import write_record
from chain.calls import Transfer
from chain.crypto import Keypair, blake2_256
from chain.errors import PoolError
from chain.extrinsic import Extrinsic, decode_extrinsic, sign_extrinsic
from chain.pool import TransactionPool, Validity

GENESIS = bytes(32)
SPEC = 1


def compute_transfers(senders: int, per_sender: int, seed: int = 1) -> list[bytes]:
    """Signed transfers, interleaved across senders, each sender in nonce order."""
    rng = random.Random(seed)
    keys = [
        Keypair.from_seed(blake2_256(b"bench-pool" + i.to_bytes(4, "little")))
        for i in range(senders)
    ]
    dest = keys[0].public
    by_sender = [
        [
            sign_extrinsic(
                key,
                Transfer(dest, 1),
                nonce=n,
                genesis_hash=GENESIS,
                spec_version=SPEC,
                tip=rng.randrange(1000),
            ).encode()
            for n in range(per_sender)
        ]
        for key in keys
    ]
    return [by_sender[s][n] for n in range(per_sender) for s in range(senders)]


def make_validator(check_signature: bool) -> Callable[[Extrinsic], Validity]:
    nonces: dict[bytes, int] = {}

    def validate(ext: Extrinsic) -> Validity:
        if check_signature:
            ext.verify_signature(GENESIS, SPEC)
        return Validity(priority=ext.tip, account_nonce=nonces.get(ext.signer, 0), longevity=64)

    return validate


def compute_best_rate(count: int, rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def compute_results(senders: int, per_sender: int, rounds: int) -> dict[str, float]:
    txs = compute_transfers(senders, per_sender)
    n = len(txs)
    max_count = max(8192, n)
    results: dict[str, float] = {}

    def decode_only() -> None:
        for data in txs:
            decode_extrinsic(data)
            blake2_256(data)

    results["decode+hash /s"] = compute_best_rate(n, rounds, decode_only)

    for label, check in (
        ("submit, signature checked /s", True),
        ("submit, trusted validator /s", False),
    ):

        def submit_all(check: bool = check) -> None:
            pool = TransactionPool(make_validator(check), max_count=max_count)
            for data in txs:
                pool.submit(data)

        results[label] = compute_best_rate(n, rounds, submit_all)

    def submit_reversed() -> None:
        # Every sender's nonces arrive last-first: all future, then one promotion chain each.
        pool = TransactionPool(
            make_validator(False), max_count=max_count, max_future_per_sender=per_sender,
            max_future_count=n,
        )
        for data in reversed(txs):
            pool.submit(data)

    results["submit reversed (future, promote) /s"] = compute_best_rate(n, rounds, submit_reversed)

    full = TransactionPool(make_validator(False), max_count=max_count)
    for data in txs:
        full.submit(data)

    def iterate_ready() -> None:
        for _ in full.ready():
            pass

    results["ready() iteration /s"] = compute_best_rate(n, rounds, iterate_ready)

    def evict_all() -> None:
        # Half the transfers fill the pool; each of the other half evicts a lower-tip chain
        # tail of another sender or is refused (both count as attempts).
        pool = TransactionPool(make_validator(False), max_count=n // 2)
        for data in txs[: n // 2]:
            pool.submit(data)
        for data in txs[n // 2 :]:
            with contextlib.suppress(PoolError):
                pool.submit(data)

    results["submit into full pool (evicting) /s"] = compute_best_rate(
        n - n // 2, rounds, evict_all
    )

    checked = TransactionPool(make_validator(True), max_count=max_count)
    for data in txs:
        checked.submit(data)
    results["revalidate, signature checked /s"] = compute_best_rate(n, rounds, checked.revalidate)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--per-sender", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/pool.json"))
    args = parser.parse_args()
    results = compute_results(args.senders, args.per_sender, args.rounds)
    total = args.senders * args.per_sender
    print(f"transaction pool: {total} transfers from {args.senders} senders, best of {args.rounds}")
    width = max(len(k) for k in results)
    print(f"{'measure':<{width}}  {'ops/s':>12}")
    for key, value in results.items():
        print(f"{key:<{width}}  {value:>12,.0f}")
    write_record(
        args.out, "pool", transactions=total, senders=args.senders, rounds=args.rounds,
        results_per_second={k: round(v, 1) for k, v in results.items()},
    )


if __name__ == "__main__":
    main()
