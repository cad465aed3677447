"""Blocks built by one node and imported by another, on real LevelDB databases."""

from __future__ import annotations

import copy

import msgspec
import numpy as np
import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, apply_fee_only, open_chain, sign, train_call

from chain import calls
from chain.block import Block, Body
from chain.blockchain import Blockchain
from chain.errors import BlockError, ChainError
from chain.header import compute_pol_digest
from chain.pallets import balances, models
from chain.proofs import TrainingProof, compute_proofs_root
from chain.storage import Column, Database


@pytest.fixture
def pair(tmp_path):
    author = open_chain(tmp_path / "author")
    validator = open_chain(tmp_path / "validator")
    yield author, validator
    author.db.close()
    validator.db.close()


def _account(chain, key):
    return balances.get_account(chain.state.overlay(), key.public)


def test_genesis_is_stable_and_reopens(tmp_path) -> None:
    one = open_chain(tmp_path / "one")
    two = open_chain(tmp_path / "two")
    assert one.genesis_hash == two.genesis_hash and one.best_number == 0
    root = one.state.root()
    one.db.close()
    again = open_chain(tmp_path / "one")
    assert again.genesis_hash == two.genesis_hash and again.state.root() == root
    again.db.close()
    two.db.close()


def test_transfer_block_imports_with_the_same_roots(pair) -> None:
    author, validator = pair
    before = _account(author, BOB).free
    xt = sign(author, ALICE, calls.Transfer(BOB.public, 5 * 10**9), 0)
    built = author.build_block([xt], ALICE, slot=1)
    assert [r.success for r in built.receipts] == [True]
    imported = validator.import_block(built.block)
    assert validator.best_hash == author.best_hash == built.block.hash()
    assert validator.state.root() == author.state.root() == built.block.header.state_root
    assert _account(validator, BOB).free == before + 5 * 10**9
    assert imported.receipts == built.receipts


def test_failed_extrinsic_changes_only_its_fee(pair) -> None:
    author, _ = pair
    rich = _account(author, BOB).free
    xt = sign(author, BOB, calls.Transfer(CHARLIE.public, rich * 2), 0)  # more than Bob has
    expected = author.state.overlay()
    fee = author.runtime.verify_extrinsic(expected, xt, len(xt.encode()), 1).fee
    apply_fee_only(expected, BOB.public, fee, ALICE.public)  # a transfer uses all it declares
    expected_root = author.state.compute_commit(expected).root
    built = author.build_block([xt], ALICE, slot=1)
    (receipt,) = built.receipts
    assert not receipt.success and "InsufficientBalance" in (receipt.error or "")
    assert built.block.header.state_root == expected_root
    assert _account(author, BOB).nonce == 1 and _account(author, BOB).free == rich - fee


def test_invalid_extrinsics_are_left_out_of_built_blocks(pair) -> None:
    author, _ = pair
    stale = sign(author, ALICE, calls.Remark(b"x"), 5)  # nonce ahead
    dropped: list[bytes] = []
    built = author.build_block([stale], ALICE, slot=1, on_invalid=lambda h, e: dropped.append(h))
    assert built.block.body.extrinsics == () and dropped == [stale.hash()]


def test_training_block_is_verified_by_full_reexecution(pair) -> None:
    author, validator = pair
    provider_before = _account(author, FERDIE).free
    xt = sign(author, BOB, train_call(), 0)
    built = author.build_block([xt], ALICE, slot=1)
    (receipt,) = built.receipts
    assert receipt.success, receipt.error
    assert built.training_steps == 40 and len(built.block.body.proofs) == 1
    validator.import_block(built.block)
    assert validator.state.root() == author.state.root()
    info = models.get_model(validator.state.overlay(), 0)
    assert info.latest_version == 1
    version = models.VERSIONS.get(validator.state.overlay(), 0, 1)
    assert version is not None and version.parent == 0 and version.training is not None
    assert version.training.license_paid == 40 * 16 * 1000
    assert _account(author, FERDIE).free == provider_before + 40 * 16 * 1000
    weights = models.get_weights(validator.state.overlay(), 0, 1)
    assert np.isfinite(weights).all()


def _tampered(block: Block, proof: TrainingProof) -> Block:
    return Block(block.header, Body(block.body.extrinsics, (proof,)))


def _resealed(block: Block, proof: TrainingProof) -> Block:
    """``block`` with ``proof``, its header committing to it and sealed again by Alice."""
    header = block.header
    commitment = msgspec.structs.replace(header.get_pol_commitment(), transcripts_root=compute_proofs_root([proof]))
    pol = compute_pol_digest(header.get_pol_commitment())
    digest = tuple(compute_pol_digest(commitment) if d == pol else d for d in header.digest)
    header = msgspec.structs.replace(header, digest=digest)
    header = msgspec.structs.replace(header, seal=ALICE.sign(header.pre_hash()))
    return Block(header, Body(block.body.extrinsics, (proof,)))


def test_a_forged_checkpoint_is_rejected_and_nothing_changes(pair) -> None:
    import ml_runtime
    from chain.proofs import compute_entries

    author, validator = pair
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    proof = built.block.body.proofs[0]
    assert len(proof.checkpoints) == 5  # 40 steps in segments of 10
    cp = bytearray(proof.checkpoints[2])
    cp[5] ^= 0x01  # one flipped bit in one weight
    forged = msgspec.structs.replace(proof, checkpoints=(*proof.checkpoints[:2], bytes(cp), *proof.checkpoints[3:]))
    root, best = validator.state.root(), validator.best_hash
    # A plain lie: the entries no longer hash to the committed transcript root.
    with pytest.raises(BlockError, match="training proof #0: entries hash to"):
        validator.import_block(_tampered(built.block, forged))
    # Consistent lies, told by the author: the transcript root recomputed over the forged
    # entries, the header's proof-of-learning commitment recomputed over that proof and the
    # header sealed again. They pass the transcript's link checks and the header's
    # commitment, and re-execution (which runs before the state root is compared) names the
    # faulty segment: segment 1 does not end at the forged checkpoint 2, and segment 3 does
    # not have the forged last loss.
    lied_loss = msgspec.structs.replace(proof, losses=(*proof.losses[:-1], proof.losses[-1] ^ 1))
    for lie, failure in ((forged, "segment 1: .*weights hash"), (lied_loss, "segment 3: .*loss")):
        lie = msgspec.structs.replace(lie, transcript_root=ml_runtime.merkle_root(compute_entries(lie)))
        with pytest.raises(BlockError, match=f"training proof #0: {failure}"):
            validator.import_block(_resealed(built.block, lie))
    assert validator.state.root() == root and validator.best_hash == best


def test_a_block_with_a_bad_seal_or_author_is_rejected(pair) -> None:
    author, validator = pair
    built = author.build_block([], ALICE, slot=1)
    bad_seal = Block(msgspec.structs.replace(built.block.header, seal=bytes(64)), built.block.body)
    with pytest.raises(BlockError, match="bad seal"):
        validator.import_block(bad_seal)
    not_validator = msgspec.structs.replace(built.block.header, author=BOB.public)
    with pytest.raises(BlockError, match="not a validator"):
        validator.import_block(Block(not_validator, built.block.body))
    validator.import_block(built.block)
    with pytest.raises(BlockError, match="already imported"):
        validator.import_block(built.block)


def test_a_block_with_a_wrong_state_root_is_rejected(pair) -> None:
    author, validator = pair
    built = author.build_block([sign(author, ALICE, calls.Transfer(BOB.public, 10**9), 0)], ALICE, slot=1)
    header = msgspec.structs.replace(built.block.header, state_root=bytes(32))
    header = msgspec.structs.replace(header, seal=ALICE.sign(header.pre_hash()))
    root = validator.state.root()
    with pytest.raises(BlockError, match="state root mismatch"):
        validator.import_block(Block(header, built.block.body))
    assert validator.state.root() == root and validator.best_number == 0


def test_reopening_with_another_chain_id_is_refused(tmp_path) -> None:
    from genesis.spec import load_chain_spec

    open_chain(tmp_path / "db").db.close()
    with pytest.raises(ChainError, match="holds chain 'dev'"):
        open_chain(tmp_path / "db", load_chain_spec("local"))


def _open_refused(path, spec) -> ChainError:
    """Open ``path`` with ``spec``, expecting a refusal; the database is closed either way."""
    db = Database(path)
    try:
        with pytest.raises(ChainError) as info:
            Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
    finally:
        db.close()
    return info.value


def _snapshot(path) -> dict:
    with Database(path) as db:
        return {column: list(db.iterate(column)) for column in Column}


def _changed_spec(change):
    from genesis.spec import load_chain_spec, parse_chain_spec

    obj = copy.deepcopy(load_chain_spec("dev").to_json())
    change(obj)
    return parse_chain_spec(obj, "changed dev spec")


def test_reopening_with_another_runtime_config_is_refused_and_changes_nothing(tmp_path) -> None:
    chain = open_chain(tmp_path / "db")
    chain.build_block([sign(chain, BOB, calls.Remark(b"x"), 0)], ALICE, slot=1)
    chain.db.close()
    before = _snapshot(tmp_path / "db")
    free = _changed_spec(lambda obj: obj["runtimeConfig"].update(base_fee=0, byte_fee=0))
    error = _open_refused(tmp_path / "db", free)
    assert "runtime config" in str(error) and "base_fee 1000000 (stored) vs 0 (chain spec)" in str(error)
    assert "byte_fee 1000 (stored) vs 0 (chain spec)" in str(error)
    assert _snapshot(tmp_path / "db") == before
    again = open_chain(tmp_path / "db")  # the right spec still opens it, at the same block
    assert again.best_number == 1 and again.config.base_fee == 1_000_000
    again.db.close()


def test_reopening_with_another_genesis_state_is_refused_and_changes_nothing(tmp_path) -> None:
    open_chain(tmp_path / "db").db.close()
    before = _snapshot(tmp_path / "db")
    richer = _changed_spec(lambda obj: obj["genesis"]["runtimeGenesisConfig"]["balances"][1].__setitem__(1, 7_000_000_000))
    error = _open_refused(tmp_path / "db", richer)
    assert "genesis state" in str(error) and "runtime config" not in str(error)
    assert _snapshot(tmp_path / "db") == before


def test_the_runtime_config_is_in_genesis_state(tmp_path) -> None:
    from chain.config import RUNTIME_CONFIG_KEY, decode_runtime_config

    dearer = _changed_spec(lambda obj: obj["runtimeConfig"].update(base_fee=2_000_000))
    one, two = open_chain(tmp_path / "a"), open_chain(tmp_path / "b", dearer)
    assert one.genesis_hash != two.genesis_hash  # the genesis hash covers the fees
    stored = two.state.get(RUNTIME_CONFIG_KEY)
    assert stored is not None and decode_runtime_config(stored) == two.config == dearer.runtime_config
    assert two.config.base_fee == 2_000_000
    one.db.close()
    two.db.close()


def test_diverging_training_fails_the_call_and_validators_confirm_it(pair) -> None:
    author, validator = pair
    xt = sign(author, BOB, train_call(steps=40, lr=1e30, segment=10), 0)
    built = author.build_block([xt], ALICE, slot=1)
    (receipt,) = built.receipts
    assert not receipt.success and "NonFiniteWeights" in (receipt.error or "")
    (proof,) = built.block.body.proofs
    assert proof.diverged_segment is not None
    assert models.get_model(author.state.overlay(), 0).latest_version == 0
    validator.import_block(built.block)
    assert validator.state.root() == author.state.root()


def test_a_faked_divergence_is_rejected(pair) -> None:
    author, validator = pair
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    proof = built.block.body.proofs[0]
    import ml_runtime
    from chain.proofs import compute_entries

    cut = msgspec.structs.replace(proof, checkpoints=proof.checkpoints[:2], losses=proof.losses[:2], diverged_segment=1)
    cut = msgspec.structs.replace(cut, transcript_root=ml_runtime.merkle_root(compute_entries(cut)))
    with pytest.raises(BlockError):
        validator.import_block(_tampered(built.block, cut))
    assert validator.best_number == 0


def test_aura_slots_go_round_robin_on_the_local_chain(tmp_path) -> None:
    from genesis.spec import load_chain_spec

    spec = load_chain_spec("local")  # Alice, Bob, Charlie, Dave validate, in that order
    author = open_chain(tmp_path / "a", spec)
    validator = open_chain(tmp_path / "v", spec)
    with pytest.raises(BlockError, match="does not belong"):
        author.build_block([], ALICE, slot=1)
    built = author.build_block([], BOB, slot=1)
    forged = msgspec.structs.replace(built.block.header, author=ALICE.public)
    forged = msgspec.structs.replace(forged, seal=ALICE.sign(forged.pre_hash()))
    with pytest.raises(BlockError, match="belongs to another validator"):
        validator.import_block(Block(forged, built.block.body))
    validator.import_block(built.block)
    assert validator.best_hash == author.best_hash
    author.db.close()
    validator.db.close()
