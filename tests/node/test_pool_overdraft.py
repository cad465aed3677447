"""A sender's pooled extrinsics must be payable together (tester16's P1, round 12).

The attack: each pooled extrinsic was checked against its sender's balance alone, never
against what the sender's lower nonces in the pool spend. An attacker account of 1 POL pooled
nonce n, a transfer of nearly everything to a twin account (tip 0), then nonces n+1.. each
tipping nearly the whole balance: each valid alone, READY, at the top of the pool, yet none
after the first could ever pay. 32 such accounts x 256 filled the node's 8,192 entries: honest
transfers were refused (``immediately_dropped``) for 0.04 POL a block, the 32 sweeps, and the
block builder found the other 8,160 unpayable every block. Sent after the honest transfers,
the attacker's evicted them, and the eviction banned their hashes for 30 minutes, so the
honest senders' resubmission of the same bytes was refused ``temporarily_banned``.

Here with a real ``NodeService`` (its validator, ``_validate_for_pool``, real signatures, a
real dev chain on LevelDB, blocks built by ``author_block``), the pool scaled down with the
attack so that a run takes seconds: 8 attacker accounts x 64 extrinsics fill a pool of 512
with ``max_per_sender`` 64, the node's defaults' shape (32 x 256 = 8,192).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chain import calls
from chain.crypto import Keypair, blake2_256, dev_keypair
from chain.errors import InvalidTransaction, PoolError
from chain.extrinsic import decode_extrinsic, sign_extrinsic
from chain.pallets import balances
from chain.pool import TransactionPool
from genesis.spec import load_chain_spec
from node.service import NodeConfig, NodeService

ATTACKERS = 8
PER_SENDER = 64
POOL = ATTACKERS * PER_SENDER
HONEST = 10
HONEST_TIP = 10**6  # 0.001 POL, about a transfer's whole fee
STAKE = 10**9  # 1 POL an attacker account
BOB = dev_keypair("Bob")


@pytest.fixture
def service() -> Iterator[NodeService]:
    node = NodeService(NodeConfig(chain="dev", tmp=True, author="//Alice", instant_seal=True), load_chain_spec("dev"))
    # The node's pool with its validator and listener, at the attack's scale.
    node.pool = TransactionPool(
        node._validate_for_pool, max_count=POOL, max_per_sender=PER_SENDER, block_number=node.chain.best_number
    )
    node.pool.add_listener(node._on_pool_status)
    try:
        yield node
    finally:
        node.close()


def _keys(label: bytes, count: int) -> list[Keypair]:
    return [Keypair.from_seed(blake2_256(label + b"%d" % i)) for i in range(count)]


def _account(service: NodeService, key: Keypair) -> balances.AccountInfo:
    return balances.get_account(service.chain.state.overlay(), key.public)


def _sign(service: NodeService, key: Keypair, call: calls.Call, nonce: int, tip: int = 0) -> bytes:
    chain = service.chain
    return sign_extrinsic(
        key, call, nonce=nonce, tip=tip, genesis_hash=chain.genesis_hash, spec_version=chain.runtime.spec_version
    ).encode()


async def _fund(service: NodeService, keys: list[Keypair]) -> None:
    nonce = _account(service, BOB).nonce
    for i, key in enumerate(keys):
        service.pool.submit(_sign(service, BOB, calls.Transfer(key.public, STAKE), nonce + i))
    imported = await service.author_block()
    assert imported is not None and len(imported.receipts) == len(keys)
    assert all(_account(service, key).free == STAKE for key in keys)


def _attack(service: NodeService, holders: list[Keypair], twins: list[Keypair], sweep_tip: int) -> list[str]:
    """Each holder pools its sweep (everything but its fee and the existential deposit, to its
    twin) then PER_SENDER - 1 transfers of 1 planck, each tipping nearly its whole balance.
    Returns each submission's outcome: "ready"/"future", or the refusal's reason."""
    runtime = service.chain.runtime
    ed = runtime.config.existential_deposit
    outcomes = []
    for holder, twin in zip(holders, twins, strict=True):
        account = _account(service, holder)
        probe = decode_extrinsic(_sign(service, holder, calls.Transfer(twin.public, 1), account.nonce, sweep_tip))
        info = runtime.compute_dispatch_info(service.chain.state.overlay(), probe)
        fee = runtime.compute_fee(info, len(probe.encode()) + 8, sweep_tip)  # + 8: the value's longer encoding
        sweep = _sign(service, holder, calls.Transfer(twin.public, account.free - fee - ed), account.nonce, sweep_tip)
        tip = account.free - 2 * fee  # valid alone: the balance pays it
        batch = [sweep] + [
            _sign(service, holder, calls.Transfer(twin.public, 1), account.nonce + i, tip) for i in range(1, PER_SENDER)
        ]
        outcomes += _submit_all(service, batch)
    return outcomes


def _honest(service: NodeService, honest: list[Keypair]) -> list[bytes]:
    return [
        _sign(service, key, calls.Transfer(BOB.public, 10**6), _account(service, key).nonce, HONEST_TIP) for key in honest
    ]


def _submit_all(service: NodeService, raws: list[bytes]) -> list[str]:
    outcomes = []
    for raw in raws:
        try:
            outcomes.append(service.pool.submit(raw).status)
        except (PoolError, InvalidTransaction) as exc:
            outcomes.append(exc.reason)
    return outcomes


async def test_unpayable_high_tips_are_refused_and_honest_transfers_get_in(service) -> None:
    """The attack as the tester ran it, for 3 blocks, the holders and twins swapping each round:
    every attacker extrinsic after the sweep is refused ``overdraft`` (its sender's balance
    cannot pay its fee after the sweep before it), not banned; every honest transfer is pooled
    and included; the builder finds nothing invalid; what the attacker pays is what its
    included sweeps pay."""
    holders, twins = _keys(b"overdraft-a", ATTACKERS), _keys(b"overdraft-b", ATTACKERS)
    honest = _keys(b"overdraft-honest", HONEST)
    await _fund(service, holders + twins + honest)
    for _ in range(3):
        outcomes = _attack(service, holders, twins, 0)
        assert outcomes == (["ready"] + ["overdraft"] * (PER_SENDER - 1)) * ATTACKERS
        assert service.pool.status().banned == 0  # refused, not found invalid: the sender may pay later
        raws = _honest(service, honest)
        assert _submit_all(service, raws) == ["ready"] * HONEST
        imported = await service.author_block()
        assert imported is not None
        included = {receipt.hash for receipt in imported.receipts}
        assert {blake2_256(raw) for raw in raws} <= included
        assert len(imported.receipts) == HONEST + ATTACKERS and all(r.success for r in imported.receipts)
        assert len(service.pool) == 0
        holders, twins = twins, holders


async def test_attack_after_the_honest_transfers_neither_evicts_nor_bans_them(service) -> None:
    """``--honest-first``: the honest transfers are pooled first, then the attack with sweeps
    tipping above them. Before the fix the attacker's 512 evicted all the honest ones, which
    were then banned and their resubmission refused. Now the attacker's unpayable extrinsics
    are refused, nothing is evicted, and the honest transfers are all in the next block."""
    holders, twins = _keys(b"overdraft-a", ATTACKERS), _keys(b"overdraft-b", ATTACKERS)
    honest = _keys(b"overdraft-honest", HONEST)
    await _fund(service, holders + twins + honest)
    raws = _honest(service, honest)
    assert _submit_all(service, raws) == ["ready"] * HONEST
    outcomes = _attack(service, holders, twins, HONEST_TIP + 1)
    assert outcomes == (["ready"] + ["overdraft"] * (PER_SENDER - 1)) * ATTACKERS
    assert all(service.pool.get_status(blake2_256(raw)) == "ready" for raw in raws)
    imported = await service.author_block()
    assert imported is not None
    assert {blake2_256(raw) for raw in raws} <= {receipt.hash for receipt in imported.receipts}


async def test_an_extrinsic_evicted_for_room_is_not_banned(service) -> None:
    """Payable extrinsics tipping more may still evict the honest ones from a full pool (that
    is the pool's priority order, and they pay for it when included), but an eviction is not
    a finding of invalidity: the evicted hashes are not banned, and the honest senders'
    resubmission of the very same bytes (ed25519 signatures are deterministic) is pooled and
    included once there is room."""
    attackers = _keys(b"overdraft-a", ATTACKERS)
    honest = _keys(b"overdraft-honest", HONEST)
    await _fund(service, attackers + honest)
    raws = _honest(service, honest)
    assert _submit_all(service, raws) == ["ready"] * HONEST
    for key in attackers:
        nonce = _account(service, key).nonce
        for i in range(PER_SENDER):  # 64 x (a transfer's fee + 0.002 POL) < 1 POL: all payable
            service.pool.submit(_sign(service, key, calls.Transfer(BOB.public, 1), nonce + i, 2 * HONEST_TIP))
    hashes = [blake2_256(raw) for raw in raws]
    assert all(service.pool.get_status(h) is None for h in hashes)  # evicted for room
    assert not any(service.pool.is_banned(h) for h in hashes)
    imported = await service.author_block()
    assert imported is not None and len(imported.receipts) == POOL and all(r.success for r in imported.receipts)
    assert _submit_all(service, raws) == ["ready"] * HONEST  # the same bytes, not "temporarily_banned"
    imported = await service.author_block()
    assert imported is not None and {r.hash for r in imported.receipts} == set(hashes)


async def test_a_sweep_by_a_bond_is_counted_too(service) -> None:
    """Any call that moves the sender's free balance counts (chain.runtime's ``spend``): a bond
    of nearly everything at nonce n leaves nonce n+1's tip unpayable, refused ``overdraft``;
    one that the rest pays is pooled, and both are included."""
    key = _keys(b"overdraft-bond", 1)[0]
    await _fund(service, [key])
    free = _account(service, key).free
    bond = _sign(service, key, calls.Bond(free // 2), 0)
    assert service.pool.submit(bond).status == "ready"
    tipped = _sign(service, key, calls.Transfer(BOB.public, 1), 1, free // 2)
    with pytest.raises(PoolError) as err:
        service.pool.submit(tipped)
    assert err.value.reason == "overdraft" and not service.pool.is_banned(blake2_256(tipped))
    payable = _sign(service, key, calls.Transfer(BOB.public, 1), 1, HONEST_TIP)
    assert service.pool.submit(payable).status == "ready"
    imported = await service.author_block()
    assert imported is not None and [r.success for r in imported.receipts] == [True, True]
    assert _account(service, key).staked == free // 2


async def test_an_infer_counts_at_its_price_cap_or_as_everything_without_one(service) -> None:
    """A model's owner may raise its inference price (or training licence) in the block of a
    pending call, at once, so an INFER counted at today's price let a retester's 32 senders
    pool 254 extrinsics each behind one: the owner's rise, first in the block, drained them,
    their later extrinsics never paid, and the refunds after the block restored the balances,
    pool after pool (an outside retest's A2, round 12). An INFER is counted at its
    ``max_price`` (``polchain tx infer`` signs today's price as it), or as everything without
    one: nothing of its sender's is pooled behind it but what the rest pays."""
    key = _keys(b"overdraft-infer", 1)[0]
    await _fund(service, [key])
    row = bytes(4 * 64)  # one row: model 0 of the dev chain takes 64 features
    unbounded = _sign(service, key, calls.Infer(0, None, row), 0)
    assert service.pool.submit(unbounded).status == "ready"
    after = _sign(service, key, calls.Transfer(BOB.public, 1), 1, HONEST_TIP)
    with pytest.raises(PoolError, match=r"\(a TRAIN or INFER with no cap on its licence or price counts as everything") as err:
        service.pool.submit(after)
    assert err.value.reason == "overdraft" and not service.pool.is_banned(blake2_256(after))
    capped = _sign(service, key, calls.Infer(0, None, row, STAKE // 2), 0, 1)  # a replacement tipping more
    assert service.pool.submit(capped).status == "ready"
    assert service.pool.submit(after).status == "ready"  # the rest pays its fee now
    too_much = _sign(service, key, calls.Transfer(BOB.public, 1), 2, STAKE // 2)
    with pytest.raises(PoolError) as err:
        service.pool.submit(too_much)  # the cap counts in full, whatever today's price (0)
    assert err.value.reason == "overdraft"
    imported = await service.author_block()
    assert imported is not None and [r.success for r in imported.receipts] == [True, True]


async def test_trains_failing_at_once_hold_no_more_than_their_share_of_the_pool(service) -> None:
    """retest51's F1 with the node's validator: TRAINs naming an unknown model pass the pool's
    check (only their arguments are checked) and fail in their block for the base fee, 64 a
    block (MAX_TRAIN_CALLS). Four accounts' 256 of them are the pool's max_rationed: the next
    is refused, honest transfers tipping no more are pooled beside them and included, and a
    block takes its 64 TRAINs."""
    from chain.block import MAX_TRAIN_CALLS
    from chain.pool import DEFAULT_MAX_RATIONED

    squatters = _keys(b"train-squat", 4)
    honest = _keys(b"train-squat-honest", HONEST)
    late = _keys(b"train-squat-late", 1)[0]
    await _fund(service, [*squatters, late, *honest])
    bogus = calls.Train(999_999, 0, 1, 1, calls.compute_f32_bits(0.5), 0, 1)  # no such model
    per = DEFAULT_MAX_RATIONED // len(squatters)
    for key in squatters:
        for nonce in range(per):
            assert service.pool.submit(_sign(service, key, bogus, nonce)).status == "ready"
    with pytest.raises(PoolError, match="max_rationed 256") as refused:
        service.pool.submit(_sign(service, late, bogus, 0))
    assert refused.value.reason == "immediately_dropped"
    raws = [_sign(service, key, calls.Transfer(BOB.public, 10**6), _account(service, key).nonce) for key in honest]  # tip 0
    assert _submit_all(service, raws) == ["ready"] * HONEST
    imported = await service.author_block()
    assert imported is not None
    assert {blake2_256(raw) for raw in raws} <= {receipt.hash for receipt in imported.receipts}
    failed = [r for r in imported.receipts if not r.success]
    assert len(failed) == MAX_TRAIN_CALLS and all("UnknownModel" in (r.error or "") for r in failed)
