"""Helpers for the federated tests: participants holding private rows, and a block driver."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np
from chainkit import ALICE, apply_fee_only, sign

import ml_runtime
from chain import calls
from chain.crypto import Keypair
from chain.pallets import balances, federated, models

BOB, CHARLIE, DAVE, EVE, FERDIE = (Keypair.from_uri(f"//{n}") for n in ("Bob", "Charlie", "Dave", "Eve", "Ferdie"))


def split_digits(parts: int, seed: int, held_out: int = 297) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """The digits, shuffled by ``seed``: ``parts`` private shares and a held-out test set."""
    x, y = ml_runtime.load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    test, rest = order[:held_out], order[held_out:]
    shares = [(x[idx], y[idx]) for idx in np.array_split(rest, parts)]
    return shares, (x[test], y[test])


def accuracy(spec: ml_runtime.ModelSpec, weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float((ml_runtime.predict(spec, weights, x).argmax(axis=1) == y).mean())


@dataclass
class Participant:
    """A data holder: its key and private rows; trains locally and answers challenges."""

    key: Keypair
    x: np.ndarray
    y: np.ndarray
    result: ml_runtime.JobResult | None = None
    leaves: list[bytes] = field(default_factory=list)

    def train(self, chain, round_id: int) -> calls.CommitUpdate:
        state = chain.state.overlay()
        info = federated.get_round(state, round_id)
        spec = federated.get_spec(state, info)
        base = models.get_weights(state, info.model, info.base_version)
        job = federated.compute_job(info, spec, base, self.key.public, self.x, self.y, round_id)
        self.result = ml_runtime.run_job(job)
        assert self.result.finite
        self.leaves = federated.compute_row_leaves(spec, self.x, self.y)
        root = ml_runtime.compute_merkle_root(self.leaves)
        return federated.compute_commit(round_id, root, len(self.leaves), len(self.leaves), self.result)

    def reveals(self, chain, round_id: int) -> list[calls.RevealSegment]:
        info = federated.get_round(chain.state.overlay(), round_id)
        assert self.result is not None
        return [
            federated.compute_reveal(round_id, info, j, self.result, self.leaves, self.key.public)
            for j in federated.compute_challenged(info, self.key.public)
        ]


class Driver:
    """Builds one block per call (Alice authors) and, for a failed call, checks that the
    block changed nothing but the fee. ``follower`` (another chain) imports every block."""

    def __init__(self, chain, follower=None) -> None:
        self.chain = chain
        self.follower = follower
        self.slot = 0

    def block(self, xts=()):
        self.slot += 1
        built = self.chain.build_block(list(xts), ALICE, slot=self.slot)
        if self.follower is not None:
            self.follower.import_block(built.block)
            assert self.follower.state.root() == self.chain.state.root()
        return built

    def until(self, number: int) -> None:
        """Build empty blocks until the best block is ``number``."""
        while self.chain.best_number < number:
            self.block()

    def apply(self, key, call):
        chain = self.chain
        nonce = balances.get_account(chain.state.overlay(), key.public).nonce
        xt = sign(chain, key, call, nonce)
        parent_root = chain.state.root()
        (receipt,) = self.block([xt]).receipts
        if not receipt.success:
            expected = chain.state.overlay(at=parent_root)
            apply_fee_only(chain, expected, chain.best_number, key.public, receipt.fee, ALICE.public)
            assert chain.state.root() == chain.state.compute_commit(expected).root, "a failed call changed more than its fee"
        return receipt

    def ok(self, key, call):
        receipt = self.apply(key, call)
        assert receipt.success, receipt.error
        return receipt

    def fails(self, key, call, error: str) -> str:
        receipt = self.apply(key, call)
        assert not receipt.success, f"expected {error}"
        qualified = error if "." in error else f"federated.{error}"
        assert receipt.error is not None and receipt.error.startswith(f"{qualified}:"), receipt.error
        return receipt.error


def open_call(**kw) -> calls.OpenRound:
    args = dict(
        model=0, base_version=0, allowlist=(), local_steps=40, batch_size=16, lr=calls.compute_f32_bits(0.5),
        l2=calls.compute_f32_bits(0.0001), segment_len=5, samples=2, min_updates=2, max_updates=8,
        bond=10**9, reward_pool=9 * 10**9, commit_deadline=5, reveal_deadline=20,
    )
    args.update(kw)
    return calls.OpenRound(**args)


def replace(call, **kw):
    return msgspec.structs.replace(call, **kw)
