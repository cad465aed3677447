"""Random blocks, applied as import applies them (Runtime.apply_transfers for runs of
transfers) and one by one (Runtime.apply_extrinsic, as the author builds them), on the same
parent state, give the same bits: receipts (their bytes, so events, fees and weights), the
state changes in the same order, the base reads, the state root, or the same BlockError
message for an invalid block. Then the author builds a block from the same extrinsics
(Blockchain.build_block drops what is invalid) and a validator imports it through the bulk
path: it must accept it with the author's receipts and root, so the chains move on and the
next block runs over the state's value cache (chain/state.py), as a node's blocks do.

Each generated block mixes transfers with adversarial parameters (nothing, one unit, dust,
exactly the existential deposit, the whole free balance, more, the balance less the fee or
less the fee and dust, to oneself, to the author, to a new account, to an account with only
stake; a nonce right, stale, ahead or repeated; tips, some more than the sender has; eras
alive, ended, not begun; authors with and without an account) with remarks, bonds, unbonds
and withdrawals from the same accounts. Half the examples run on a chain whose blocks hold
ten transfers' weight, so the weight limit falls inside runs. (A check of the bulk path that
is stricter than the general one only hands more extrinsics to apply_extrinsic and is
invisible here by design; one that is looser is what this test finds.)

``POLCHAIN_PROPERTY_EXAMPLES`` raises the number of examples for a long local run.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from chainkit import ALICE, apply_both_ways, compute_funded_spec, sign
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256
from chain.errors import InvalidTransaction
from chain.extrinsic import IMMORTAL, Era, Extrinsic
from chain.pallets import balances
from chain.pallets.context import BlockInfo
from chain.runtime import TRANSFER_INFO
from chain.state import Overlay
from chain.storage import Database
from genesis.spec import ChainSpec

EXAMPLES = int(os.environ.get("POLCHAIN_PROPERTY_EXAMPLES", "150"))
ED = 1_000_000  # the dev chain's existential deposit (checked in _spec)
FEE = 2_000_000  # above any transfer's fee on the dev chain with a small tip (checked in _spec)


def _key(name: str) -> Keypair:
    return Keypair.from_seed(blake2_256(b"transfer-run-property-" + name.encode()))


RICH = [_key(f"rich{i}") for i in range(3)]
POOR = _key("poor")  # a few fees and a little more
DUSTY = _key("dusty")  # a few fees and the ED
BROKE = _key("broke")  # the ED: cannot pay a fee
VALIDATOR = _key("validator")  # a genesis validator that bonded all it had: free 0, stake only
NEW = [_key(f"new{i}") for i in range(3)]  # no account at genesis
AUTHORS = [ALICE, RICH[0], POOR, NEW[2]]  # the author also sends and receives; NEW[2] starts with no account

FUNDS = {
    **{k.public: 10**15 for k in RICH},
    POOR.public: 6 * FEE + 2 * ED,
    DUSTY.public: 4 * FEE + ED,
    BROKE.public: ED,
}
# Who signs (weighted: a sender with little fails more) and who receives.
SENDERS = [*RICH, *RICH, ALICE, POOR, POOR, DUSTY, DUSTY, *NEW, BROKE, VALIDATOR]
DESTS = [*RICH, ALICE, POOR, DUSTY, BROKE, VALIDATOR, *NEW]

AMOUNTS = (
    "zero", "one", "dust", "ed", "ed+1", "all", "all+1", "all-fee", "all-fee+1", "all-fee-dust", "all-fee-ed", "half",
)
Op = tuple[str, int, int, Any, str, int, str]  # kind, sender, dest, amount, nonce, tip, era

_op = st.tuples(
    st.sampled_from(["transfer"] * 12 + ["remark", "bond", "unbond", "withdraw"]),
    st.integers(0, len(SENDERS) - 1),
    st.integers(0, len(DESTS) - 1),
    st.one_of(st.sampled_from(AMOUNTS), st.integers(0, 2 * 10**15)),
    st.sampled_from(["right"] * 8 + ["stale", "future", "repeat"]),
    st.sampled_from([0, 0, 0, 1, 7, 1000, 10**9]),  # 10**9: more than the poor can pay
    st.sampled_from(["immortal"] * 8 + ["alive", "alive", "ended", "unborn"]),
)
# Per block: its author; which one of the extrinsics that make it invalid it keeps, if any
# (the others are left out as they are found, as a builder would: most blocks are valid, and
# an invalid one is refused for one reason, of any kind, at any place); its ops, after a
# number of plain transfers that brings the ten-transfer weight limit near or past.
FILLER: Op = ("transfer", 0, 1, 10**9, "right", 0, "immortal")  # RICH[0] to RICH[1]
_blocks = st.lists(
    st.tuples(
        st.integers(0, len(AUTHORS) - 1),
        st.sampled_from([None, None, 0, 1, 2]),
        st.sampled_from([0, 0, 0, 5, 8, 9, 10, 11]),
        st.lists(_op, min_size=1, max_size=24),
    ),
    min_size=2,
    max_size=4,
)
Blocks = list[tuple[int, int | None, int, list[Op]]]


def _spec(max_block_weight: int | None) -> ChainSpec:
    spec = compute_funded_spec("transfer-run-property", FUNDS, VALIDATOR.public)
    if max_block_weight is not None:
        spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, max_block_weight=max_block_weight))
    config = spec.runtime_config
    assert config.existential_deposit == ED
    assert config.compute_fee(0, TRANSFER_INFO.weight, 0) > ED
    assert config.compute_fee(300, TRANSFER_INFO.weight, 1000) < FEE
    return spec


SPECS = {weight: _spec(weight) for weight in (None, 1_000_000)}


@contextmanager
def _chains(spec: ChainSpec) -> Iterator[tuple[Blockchain, Blockchain]]:
    """An author and a validator on fresh databases (each example starts at genesis)."""
    with tempfile.TemporaryDirectory(prefix="transfer-run-property-") as path:
        author = Blockchain(Database(f"{path}/author"), chain_id=spec.id, build_genesis=spec.apply_genesis)
        validator = Blockchain(Database(f"{path}/validator"), chain_id=spec.id, build_genesis=spec.apply_genesis)
        try:
            yield author, validator
        finally:
            author.db.close()
            validator.db.close()


@dataclass
class _Builder:
    """Turns generated ops into signed extrinsics for the next block: amounts and nonces are
    resolved on the state as the extrinsics before them in the block leave it (applied one
    by one on a scratch overlay)."""

    chain: Blockchain
    author: Keypair
    keep_invalid: int | None

    def __post_init__(self) -> None:
        self.runtime = self.chain.runtime
        self.overlay: Overlay = self.chain.state.overlay()
        self.number = self.chain.best_number + 1
        self.info = BlockInfo(self.number, self.chain.best_hash, self.author.public, True, self.chain.trainer)
        self.runtime.on_initialize(self.overlay, self.number, self.author.public, self.chain.best_hash)
        self.last_nonce: dict[bytes, int] = {}
        self.invalid = 0  # the invalid extrinsics found so far
        self.xts: list[Extrinsic] = []

    def add(self, op: Op) -> None:
        kind, sender_index, dest_index, amount, nonce_kind, tip, era_kind = op
        key, dest = SENDERS[sender_index], DESTS[dest_index].public
        account = balances.get_account(self.overlay, key.public)
        nonce = {
            "right": account.nonce,
            "stale": max(account.nonce - 1, 0),
            "future": account.nonce + 1,
            "repeat": self.last_nonce.get(key.public, account.nonce),
        }[nonce_kind]
        era = {
            "immortal": IMMORTAL,
            "alive": Era(max(self.number - 2, 0), 4),
            "ended": Era(0, self.number),
            "unborn": Era(self.number + 1, 8),
        }[era_kind]

        def signed(value: int) -> Extrinsic:
            value = min(max(value, 0), 2**63 - 1)
            call: calls.Call = {
                "transfer": lambda: calls.Transfer(dest, value),
                "remark": lambda: calls.Remark(value.to_bytes(8, "little")),
                "bond": lambda: calls.Bond(value),
                "unbond": lambda: calls.Unbond(value),
                "withdraw": lambda: calls.WithdrawUnbonded(),
            }[kind]()
            return sign(self.chain, key, call, nonce, tip=tip, era=era)

        xt = signed(amount if isinstance(amount, int) else 0)
        if isinstance(amount, str):
            free = account.staked if kind == "unbond" else account.free
            for _ in range(3):  # the fee depends on the length, which depends on the value
                fee = self.runtime.compute_fee(self.runtime.compute_dispatch_info(self.overlay, xt), len(xt.encode()), tip)
                value = {
                    "zero": 0, "one": 1, "dust": ED - 1, "ed": ED, "ed+1": ED + 1, "all": free, "all+1": free + 1,
                    "all-fee": free - fee, "all-fee+1": free - fee + 1, "all-fee-dust": free - fee - ED // 2,
                    "all-fee-ed": free - fee - ED, "half": free // 2,
                }[amount]
                xt = signed(value)
        raw = xt.encode()
        self.overlay.start_transaction()
        try:
            self.runtime.apply_extrinsic(self.overlay, self.info, len(self.xts), xt, blake2_256(raw), len(raw))
        except InvalidTransaction:
            self.overlay.rollback_transaction()  # the block is invalid; go on from the state before it
            self.invalid += 1
            if self.invalid - 1 != self.keep_invalid:
                return
        else:
            self.overlay.commit_transaction()
        self.last_nonce[key.public] = nonce
        self.xts.append(xt)


def _run(blocks: Blocks, max_block_weight: int | None) -> None:
    with _chains(SPECS[max_block_weight]) as (author_chain, validator):
        for slot, (author_index, keep_invalid, fillers, ops) in enumerate(blocks, start=1):
            author = AUTHORS[author_index]
            builder = _Builder(validator, author, keep_invalid)
            for op in [FILLER] * fillers + ops:
                builder.add(op)
            # The generated block, both ways on the validator's best state.
            outcome = apply_both_ways(validator, builder.xts, author.public)
            if isinstance(outcome, str):
                assert outcome.startswith(f"block #{builder.number}: "), outcome
                reasons = {"units of weight": "its weight", "already used": "a stale nonce", "ahead of": "a future nonce",
                           "cannot pay": "an unpaid fee", "does not cover": "a dead era",
                           "starts at block": "an era not begun"}
                event("a block refused for " + next((v for k, v in reasons.items() if k in outcome), outcome))
            else:
                event("a block applied, transfers in bulk" if len(outcome[4]) < len(builder.xts) else "a block applied one by one")
            # The author builds what is valid of it (the general path); the validator imports
            # that block (the bulk path): an honest block is never refused.
            built = author_chain.build_block(builder.xts, author, slot=slot)
            included = list(built.block.body.extrinsics)
            apply_both_ways(validator, included, author.public)
            imported = validator.import_block(built.block)
            assert msgspec.msgpack.encode(imported.receipts) == msgspec.msgpack.encode(built.receipts)
            assert validator.state.root() == author_chain.state.root() == built.block.header.state_root


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # the explain phase takes minutes here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(blocks=_blocks, max_block_weight=st.sampled_from([None, 1_000_000]))
def test_random_blocks_apply_alike_in_bulk_and_one_by_one(blocks: Blocks, max_block_weight: int | None) -> None:
    _run(blocks, max_block_weight)
