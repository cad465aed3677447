"""Helpers for consensus tests: the `local` chain (Alice, Bob, Charlie, Dave validate, in
that order, so slot s belongs to validator s mod 4) on real LevelDB, blocks sealed by the
slot's owner."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))

from chainkit import open_chain

from chain.block import Block
from chain.blockchain import Blockchain
from chain.crypto import Keypair, dev_keypair
from consensus.aura import Aura
from genesis.spec import load_chain_spec

ALICE, BOB, CHARLIE, DAVE, EVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))
VALIDATORS = (ALICE, BOB, CHARLIE, DAVE)


def slot_owner(slot: int) -> Keypair:
    return VALIDATORS[slot % 4]


def open_local(path: Path, aura: Aura | None = None) -> Blockchain:
    return open_chain(path, load_chain_spec("local"), aura)


def build(chain: Blockchain, slot: int, xts: list | None = None) -> Block:
    return chain.build_block(xts or [], slot_owner(slot), slot=slot).block


def train_on_dev(path: Path, lr: float = 0.5):
    """A dev chain with one block holding one TRAIN job (60 steps, 6 segments of 10) by Bob,
    and the job as an importer rebuilds it from the parent state: (chain, built, job)."""
    from chainkit import open_chain, sign, train_call

    from chain.pallets.training import compute_job_at

    author = open_chain(path)
    bob = dev_keypair("Bob")
    xt = sign(author, bob, train_call(steps=60, segment=10, lr=lr), 0)
    job, _, _ = compute_job_at(
        author.state.overlay(), author.config, xt.call, author.best_hash, xt.hash(), author.best_number + 1
    )
    built = author.build_block([xt], dev_keypair("Alice"), slot=1)
    return author, built, job
