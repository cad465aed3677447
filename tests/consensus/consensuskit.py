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
