"""Helpers for chain tests: dev chains on real LevelDB in temp dirs, signed extrinsics."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
import pytest

from chain import calls
from chain.block import Block, Body
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.errors import BlockError
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.header import Header
from chain.pallets import balances
from chain.runtime import Runtime
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules
from genesis.spec import ChainSpec, load_chain_spec, parse_chain_spec

ALICE, BOB, CHARLIE, FERDIE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Ferdie"))


@lru_cache(maxsize=1)
def dev_spec() -> ChainSpec:
    return load_chain_spec("dev")


def compute_funded_spec(chain_id: str, funds: dict[bytes, int], validator: bytes) -> ChainSpec:
    """The dev spec under ``chain_id`` with ``funds`` (account -> balance) at genesis and
    ``validator`` one more validator, bonded with the minimum."""
    obj = copy.deepcopy(dev_spec().to_json())  # to_json shares the cached spec's lists
    obj["id"] = chain_id
    genesis = obj["genesis"]["runtimeGenesisConfig"]
    genesis["balances"] += [["0x" + who.hex(), amount] for who, amount in funds.items()]
    genesis["balances"].append(["0x" + validator.hex(), dev_spec().runtime_config.min_validator_bond])
    genesis["validators"].append("0x" + validator.hex())
    return parse_chain_spec(obj, "test spec")


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


def event_args(receipt: Any, name: str) -> dict[str, Any]:
    """The arguments of the first event ``name`` in ``receipt`` (StopIteration if none)."""
    return dict(next(e for e in receipt.events if e.name == name).args)


def sign(chain: Blockchain, key, call, nonce: int, tip: int = 0, **kw) -> Extrinsic:
    return sign_extrinsic(
        key, call, nonce=nonce, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version, tip=tip, **kw
    )


def train_call(steps: int = 40, batch: int = 16, lr: float = 0.5, segment: int = 10, model: int = 0, l2: float = 0.0001) -> calls.Train:
    return calls.Train(model, 0, steps, batch, calls.compute_f32_bits(lr), calls.compute_f32_bits(l2), segment)


def apply_both_ways(chain: Blockchain, xts: list[Extrinsic], author: bytes) -> Any:
    """``xts`` executed as block best + 1 on the best state as import executes it (runs of
    transfers in bulk, ``Runtime.apply_transfers``) and one by one (``apply_extrinsic`` only,
    as the author builds); asserts both give the same bits and returns the bulk outcome:
    (receipts' bytes, changes in order, base reads, root, indexes applied one by one), or
    the BlockError's message, which must be the same too."""
    bulk = _execute_body(chain, xts, author, bulk=True)
    general = _execute_body(chain, xts, author, bulk=False)
    if isinstance(general, str):
        assert bulk == general
    else:
        assert not isinstance(bulk, str), bulk
        assert general[4] == list(range(len(xts)))
        assert bulk[:4] == general[:4]
    return bulk


def _execute_body(chain: Blockchain, xts: list[Extrinsic], author: bytes, *, bulk: bool) -> Any:
    header = Header(chain.best_hash, chain.best_number + 1, bytes(32), bytes(32), 1, author, ())
    block = Block(header, Body(tuple(xts)))
    one_by_one: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        general = Runtime.apply_extrinsic

        def spy(self: Runtime, state: Any, info: Any, index: int, *rest: Any, **kw: Any) -> Any:
            one_by_one.append(index)
            return general(self, state, info, index, *rest, **kw)

        patch.setattr(Runtime, "apply_extrinsic", spy)
        if not bulk:
            patch.setattr(Runtime, "apply_transfers", lambda self, state, info, extrinsics, raws, start, receipts: start)
        try:
            overlay, _info, receipts = chain.execute_body(block, [xt.encode() for xt in xts], check_signatures=False)
        except BlockError as exc:
            return str(exc)
    root = chain.state.compute_commit(overlay).root
    return msgspec.msgpack.encode(receipts), list(overlay.changes().items()), overlay.base_values(), root, one_by_one
