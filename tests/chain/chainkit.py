"""Helpers for chain tests: dev chains on real LevelDB in temp dirs, signed extrinsics."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.pallets import balances
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import ChainSpec, load_chain_spec

ALICE, BOB, CHARLIE, FERDIE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Ferdie"))


@lru_cache(maxsize=1)
def dev_spec() -> ChainSpec:
    return load_chain_spec("dev")


def open_chain(path: Path, spec: ChainSpec | None = None, aura: Aura | None = None, **options: Any) -> Blockchain:
    """A chain with the node's consensus rules: Aura (6 s slots on the wall clock unless
    ``aura`` says otherwise; tests use small slot numbers, far behind the clock) and the
    longest-chain fork choice. ``options`` go to Blockchain (``verifier``, ``trainer``)."""
    spec = spec or dev_spec()
    return Blockchain(
        Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis,
        rules=ConsensusRules(aura or Aura(6000)), **options,
    )


def apply_fee_only(chain: Blockchain, state, number: int, who: bytes, fee: int, author: bytes) -> None:
    """What block ``number`` with one failed extrinsic does to its parent's ``state``: what every
    block does before its extrinsics (on_initialize), then the sender pays ``fee`` to the
    author, nonce + 1."""
    chain.runtime.on_initialize(state, number, author, chain.get_hash(number - 1) or b"")
    account = balances.get_account(state, who)
    balances.apply_account(state, who, msgspec.structs.replace(account, nonce=account.nonce + 1, free=account.free - fee))
    receiver = balances.get_account(state, author)
    balances.apply_account(state, author, msgspec.structs.replace(receiver, free=receiver.free + fee))


def sign(chain: Blockchain, key, call, nonce: int, tip: int = 0, **kw) -> Extrinsic:
    return sign_extrinsic(
        key, call, nonce=nonce, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version, tip=tip, **kw
    )


def train_call(steps: int = 40, batch: int = 16, lr: float = 0.5, segment: int = 10, model: int = 0) -> calls.Train:
    return calls.Train(model, 0, steps, batch, calls.compute_f32_bits(lr), calls.compute_f32_bits(0.0001), segment)
