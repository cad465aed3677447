"""An extrinsic's nonce and tip at the ends of their ranges: the pool's validation, a block
built or imported (transfers in bulk and one by one) refuse the same way, with a reason,
and nothing stored changes.

The states are built directly (a genesis builder writes the account): 2^32 extrinsics to
reach the last nonce are out of the question."""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec
import pytest
from chainkit import ALICE, BOB, CHARLIE, apply_both_ways, dev_spec, sign

from chain import calls
from chain.blockchain import Blockchain
from chain.codec import MAX_BALANCE
from chain.errors import InvalidTransaction
from chain.pallets import balances
from chain.pool import TransactionPool, Validity
from chain.storage import Database
from consensus.aura import Aura
from consensus.block_import import ConsensusRules

LAST_NONCE = 2**32 - 1  # AccountInfo.nonce is a u32
FUNDS = 10**15


def _open(path, nonces: dict[bytes, int]) -> Blockchain:
    """The dev chain, with the accounts in ``nonces`` at those nonces (and FUNDS free)."""
    spec = dev_spec()

    def build(state) -> None:
        spec.apply_genesis(state)
        for who, nonce in nonces.items():
            account = balances.get_account(state, who)
            balances.apply_account(state, who, msgspec.structs.replace(account, nonce=nonce))

    return Blockchain(Database(path), chain_id=spec.id, build_genesis=build, rules=ConsensusRules(Aura(6000)))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blockchain]:
    node = _open(tmp_path_factory.mktemp("bounds"), {BOB.public: LAST_NONCE, CHARLIE.public: LAST_NONCE - 1})
    assert balances.get_account(node.state.overlay(), BOB.public).free >= FUNDS
    yield node
    node.db.close()


def _pool_view(chain: Blockchain, xt) -> InvalidTransaction:
    """What a pool validating as the node does (node.service: the runtime's check on the best
    state, a future nonce allowed) says of ``xt``: refused and banned, the state unchanged."""

    def validate(ext) -> Validity:
        checked = chain.runtime.verify_extrinsic(
            chain.state.overlay(), ext, len(ext.encode()), chain.best_number + 1, allow_future=True
        )
        return Validity(checked.priority, checked.account_nonce, 64)

    root = chain.state.root()
    pool = TransactionPool(validate)
    with pytest.raises(InvalidTransaction) as info:
        pool.submit(xt.encode())
    assert len(pool) == 0 and pool.is_banned(xt.hash())
    assert chain.state.root() == root
    return info.value


def test_the_last_nonce_is_refused_everywhere(chain: Blockchain) -> None:
    """An account at nonce 2^32-1 would store nonce 2^32, which no AccountInfo decodes: the
    account could never be read again (nor the block's state)."""
    xt = sign(chain, BOB, calls.Transfer(ALICE.public, 10**9), LAST_NONCE)
    exc = _pool_view(chain, xt)
    assert exc.reason == "exhausts_resources" and str(exc) == (
        "nonce 4294967295 is the last a u32 holds: the account's next nonce would not fit; "
        "this account can send no more extrinsics"
    ), exc
    root, best = chain.state.root(), chain.best_hash
    # Imported: both the bulk transfer path and apply_extrinsic refuse it, with the same message.
    refused = apply_both_ways(chain, [xt], ALICE.public)
    assert isinstance(refused, str) and "nonce 4294967295 is the last" in refused, refused
    assert chain.state.root() == root and chain.best_hash == best
    # Built: the author leaves it out.
    dropped: list[str] = []
    built = chain.build_block([xt], ALICE, slot=1, on_invalid=lambda _h, e: dropped.append(str(e)))
    assert built.block.body.extrinsics == () and "nonce 4294967295 is the last" in dropped[0]
    assert balances.get_account(chain.state.overlay(), BOB.public).nonce == LAST_NONCE  # still decodes


def test_a_future_extrinsic_at_the_last_nonce_is_refused_by_the_pool(chain: Blockchain) -> None:
    xt = sign(chain, ALICE, calls.Remark(b"never"), LAST_NONCE)
    exc = _pool_view(chain, xt)
    assert exc.reason == "exhausts_resources" and "nonce 4294967295 is the last" in str(exc), exc


def test_the_nonce_before_the_last_still_works(chain: Blockchain) -> None:
    xt = sign(chain, CHARLIE, calls.Transfer(ALICE.public, 10**9), LAST_NONCE - 1)
    receipts, _changes, _reads, _root, _one_by_one = apply_both_ways(chain, [xt], ALICE.public)
    (receipt,) = msgspec.msgpack.decode(receipts)
    assert receipt[2] is True, receipt  # success


def test_a_tip_that_pushes_the_fee_past_a_balance_is_refused(chain: Blockchain) -> None:
    """A tip of 2^63-1 plus the fee's other terms is more than any balance can hold: refused
    as unpayable with that reason, never a fee above 2^63-1 in a message."""
    xt = sign(chain, ALICE, calls.Transfer(CHARLIE.public, 10**9), 0, tip=MAX_BALANCE)
    exc = _pool_view(chain, xt)
    assert exc.reason == "payment" and f"tip {MAX_BALANCE}" in str(exc), exc
    assert all(int(n) <= MAX_BALANCE for n in re.findall(r"\d+", str(exc))), exc
    root = chain.state.root()
    refused = apply_both_ways(chain, [xt], ALICE.public)
    assert chain.state.root() == root
    assert isinstance(refused, str) and f"tip {MAX_BALANCE}" in refused, refused
    assert all(int(n) <= MAX_BALANCE for n in re.findall(r"\d+", refused)), refused
    # The largest tip that still fits: the fee is computed in range and only the balance is short.
    info = chain.runtime.compute_dispatch_info(chain.state.overlay(), xt)
    fee_without_tip = chain.runtime.compute_fee(info, len(xt.encode()), 0)
    fits = sign(chain, ALICE, calls.Transfer(CHARLIE.public, 10**9), 0, tip=MAX_BALANCE - fee_without_tip)
    exc = _pool_view(chain, fits)
    assert exc.reason == "payment" and f"cannot pay the fee {MAX_BALANCE}" in str(exc), exc
