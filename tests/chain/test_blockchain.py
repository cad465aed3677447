"""Blocks built by one node and imported by another, on real LevelDB databases.

training._train_or_take's check of the author's own result (05eecbd) was mutation-tested on
2026-11-30 (mut17: 4/4 killed by this file's ``-k "overflows or leaves_out"``; recorded in
tests/ml_runtime/test_mlrt_twins.py).
"""

from __future__ import annotations

import copy
import dataclasses

import msgspec
import numpy as np
import pytest
from chainkit import ALICE, BOB, CHARLIE, FERDIE, apply_fee_only, open_chain, sign, train_call

import ml_runtime
from chain import calls
from chain.block import Block, Body
from chain.blockchain import Blockchain
from chain.crypto import blake2_256
from chain.errors import BlockError, ChainError
from chain.header import seal_header
from chain.pallets import balances, datasets, models
from chain.storage import Column, Database
from chain.transcripts import LocalSource
from tests.forgery import forging_trainer


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
    apply_fee_only(author, expected, 1, BOB.public, fee, ALICE.public)  # a transfer uses all it declares
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
    assert built.training_steps == 40 and len(built.block.body.results) == 1
    validator.import_block(built.block, LocalSource(author.transcripts))
    assert validator.state.root() == author.state.root()
    # The validator keeps (and can serve) every checkpoint it fetched: full re-execution fetched
    # all, the last entry by its hash (chain.proofs.compute_wanted), as a sampled validator does.
    stored = [validator.transcripts.get(built.block.hash(), 0, j) for j in range(5)]
    authored = [author.transcripts.get(built.block.hash(), 0, j) for j in range(5)]
    assert stored[:4] == authored[:4] and None not in stored
    assert stored[4] == msgspec.structs.replace(authored[4], weights=None)
    info = models.get_model(validator.state.overlay(), 0)
    assert info.latest_version == 1
    version = models.VERSIONS.get(validator.state.overlay(), 0, 1)
    assert version is not None and version.parent == 0 and version.training is not None
    assert version.training.license_paid == 40 * 16 * 1000
    assert _account(author, FERDIE).free == provider_before + 40 * 16 * 1000
    weights = models.get_weights(validator.state.overlay(), 0, 1)
    assert np.isfinite(weights).all()


def test_a_result_the_header_does_not_commit_to_is_rejected(pair) -> None:
    author, validator = pair
    built = author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=1)
    (result,) = built.block.body.results
    # A plain lie: another transcript root in the body than the author's. The model's lineage
    # record stores it, so the state root already differs from the header's.
    lie = msgspec.structs.replace(result, transcript_root=bytes(32))
    root, best = validator.state.root(), validator.best_hash
    with pytest.raises(BlockError, match=r"^state root mismatch"):
        validator.import_block(Block(built.block.header, Body(built.block.body.extrinsics, (lie,))), LocalSource(author.transcripts))
    assert validator.state.root() == root and validator.best_hash == best


@pytest.mark.parametrize(
    ("kind", "segment", "failure"),
    [
        ("segment", 2, "segment 1 re-runs to other weights than entry 2's"),
        ("loss", 4, "segment 3 re-runs to loss bits 0x[0-9a-f]{8}, entry 4 claims"),
    ],
)
def test_a_forged_training_block_is_rejected_and_nothing_changes(tmp_path, pair, kind: str, segment: int, failure: str) -> None:
    """Consistent lies, told by the author: its trainer forged the outcome, so the result,
    the openings it serves, the transcript root, the header's commitment, the state root and
    the seal all agree. Only re-execution shows the fault, and names it."""
    _, validator = pair
    forger = open_chain(tmp_path / "forger", trainer=forging_trainer(kind, segment))
    built = forger.build_block([sign(forger, BOB, train_call(), 0)], ALICE, slot=1)
    assert built.receipts[0].success
    root, best = validator.state.root(), validator.best_hash
    with pytest.raises(BlockError, match=f"^training result #0: {failure}"):
        validator.import_block(built.block, LocalSource(forger.transcripts))
    assert validator.state.root() == root and validator.best_hash == best
    assert validator.transcripts.get(built.block.hash(), 0, 0) is None  # nothing of it stored
    forger.db.close()


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
    header = seal_header(ALICE, author.genesis_hash, header)
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
    xt = sign(author, BOB, train_call(steps=40, lr=3e38, segment=10, l2=0.0), 0)
    built = author.build_block([xt], ALICE, slot=1)
    (receipt,) = built.receipts
    assert not receipt.success and "NonFiniteWeights" in (receipt.error or "")
    (result,) = built.block.body.results
    assert result.diverged_segment is not None
    assert models.get_model(author.state.overlay(), 0).latest_version == 0
    validator.import_block(built.block, LocalSource(author.transcripts))
    assert validator.state.root() == author.state.root()


@pytest.mark.parametrize("lr", [5e36, 9.5e36])
def test_training_whose_loss_sum_overflows_is_a_divergence_validators_confirm(pair, lr) -> None:
    """Step losses of about 1e38, each finite, overflowed the segment's sum: the author
    committed an infinite mean loss as a finite entry, every validator refused its block ("a
    loss is not finite") and banned it, and a 3-validator devnet split into three forks for
    good over one user's TRAIN (an outside tester's H2, round 12; these arguments on the dev
    chain did so). Now the segment diverges there, the call fails, and validators confirm it."""
    author, validator = pair
    xt = sign(author, BOB, train_call(steps=100, batch=2, lr=lr, segment=100, l2=0.0), 0)
    built = author.build_block([xt], ALICE, slot=1)
    (receipt,) = built.receipts
    assert not receipt.success and "NonFiniteWeights" in (receipt.error or "")
    (result,) = built.block.body.results
    assert result.diverged_segment == 0 and result.losses == (0,)
    validator.import_block(built.block, LocalSource(author.transcripts))
    assert validator.best_hash == author.best_hash and validator.state.root() == author.state.root()


def test_an_author_leaves_out_a_call_whose_result_importers_would_refuse(pair, monkeypatch) -> None:
    """The author makes the importers' result checks (verify_result_shape) on its own results:
    one that fails them, from a bug, costs the call its place in the block, not the author its
    block (before, it sealed a block every validator refused: an outside tester's H2, round 12)."""
    author, validator = pair
    real = author.trainer

    def infinite_mean(job):
        out = real(job)
        entries = list(out.transcript.entries)
        entries[-1] = ml_runtime.TranscriptEntry(entries[-1].index, entries[-1].weights_hash, float("inf"))
        return dataclasses.replace(out, transcript=ml_runtime.Transcript.build(entries))

    author.trainer = infinite_mean
    invalid: list[str] = []
    built = author.build_block(
        [sign(author, BOB, train_call(), 0)], ALICE, slot=1, on_invalid=lambda _h, exc: invalid.append(str(exc))
    )
    assert built.block.body.extrinsics == () and built.block.body.results == ()
    assert len(invalid) == 1 and "a loss is not finite" in invalid[0]
    validator.import_block(built.block)
    assert validator.best_hash == author.best_hash


def test_a_faked_divergence_is_rejected(tmp_path, pair) -> None:
    _, validator = pair
    forger = open_chain(tmp_path / "forger", trainer=forging_trainer("divergence", 1))
    built = forger.build_block([sign(forger, BOB, train_call(), 0)], ALICE, slot=1)
    assert not built.receipts[0].success and "NonFiniteWeights" in (built.receipts[0].error or "")
    with pytest.raises(BlockError, match=r"^training result #0: segment 1 does not diverge as claimed$"):
        validator.import_block(built.block, LocalSource(forger.transcripts))
    assert validator.best_number == 0
    forger.db.close()


def test_aura_slots_go_round_robin_on_the_local_chain(tmp_path) -> None:
    from genesis.spec import load_chain_spec

    spec = load_chain_spec("local")  # Alice, Bob, Charlie, Dave validate, in that order
    author = open_chain(tmp_path / "a", spec)
    validator = open_chain(tmp_path / "v", spec)
    with pytest.raises(BlockError, match="does not belong"):
        author.build_block([], ALICE, slot=1)
    built = author.build_block([], BOB, slot=1)
    forged = msgspec.structs.replace(built.block.header, author=ALICE.public)
    forged = seal_header(ALICE, author.genesis_hash, forged)
    with pytest.raises(BlockError, match="belongs to another validator"):
        validator.import_block(Block(forged, built.block.body))
    validator.import_block(built.block)
    assert validator.best_hash == author.best_hash
    author.db.close()
    validator.db.close()


def test_a_runtime_bug_costs_the_extrinsic_not_the_block(tmp_path, monkeypatch) -> None:
    """An unexpected exception while a call dispatches (a bug some input reaches) must not
    stop the author: the extrinsic is left out of the block and reported invalid, with every
    change it made undone (its fee and nonce too), and the block holds the others. Without
    this, one such transaction gossiped to every pool stops every validator from authoring."""
    from chain import runtime

    original = runtime.DISPATCH[calls.Remark]

    def handler(ctx, call) -> None:
        if call.data == b"boom":
            balances.apply_account(ctx.state, ctx.sender, balances.AccountInfo(nonce=99, free=1))  # then fails
            raise RuntimeError("a bug")
        original.handler(ctx, call)

    monkeypatch.setitem(runtime.DISPATCH, calls.Remark, runtime.CallRow(handler, original.info))
    chain = open_chain(tmp_path / "a")
    twin = open_chain(tmp_path / "b")
    try:
        boom, fine = sign(chain, BOB, calls.Remark(b"boom"), 0), sign(chain, CHARLIE, calls.Remark(b"fine"), 0)
        invalid: list = []
        built = chain.build_block([boom, fine], ALICE, slot=1, on_invalid=lambda h, e: invalid.append((h, e)))
        assert [r.hash for r in built.receipts] == [blake2_256(fine.encode())]
        ((bad_hash, exc),) = invalid
        assert bad_hash == blake2_256(boom.encode()) and exc.reason == "runtime_error" and "a bug" in str(exc)
        assert balances.get_account(chain.state.overlay(), BOB.public).nonce == 0
        expected = twin.build_block([fine], ALICE, slot=1)
        assert built.block.header.state_root == expected.block.header.state_root
    finally:
        chain.db.close()
        twin.db.close()


def test_a_thread_that_flushes_subnormals_builds_no_block_and_drops_no_extrinsic(tmp_path, monkeypatch) -> None:
    """SubnormalsFlushed (ml_runtime.fpenv: this thread's FTZ/DAZ would compute other bits) is
    no verdict on the extrinsic: the build stops with it, and the extrinsic is not reported
    invalid for the pool to drop, as a runtime bug's is (a reviewer's finding, 2026-11-30)."""
    import ml_runtime
    from chain import runtime

    original = runtime.DISPATCH[calls.Remark]

    def handler(ctx, call) -> None:
        raise ml_runtime.SubnormalsFlushed("the linear kernel: this thread flushes subnormal float32 values")

    monkeypatch.setitem(runtime.DISPATCH, calls.Remark, runtime.CallRow(handler, original.info))
    chain = open_chain(tmp_path / "a")
    try:
        invalid: list = []
        root = chain.state.root()
        with pytest.raises(ml_runtime.SubnormalsFlushed):
            chain.build_block([sign(chain, BOB, calls.Remark(b"x"), 0)], ALICE, slot=1, on_invalid=lambda h, e: invalid.append(e))
        assert invalid == [] and chain.best_number == 0 and chain.state.root() == root
    finally:
        chain.db.close()


@pytest.mark.parametrize("last", [False, True], ids=["then_a_train", "last"])
def test_a_runtime_bug_after_training_leaves_no_result_or_opening_behind(tmp_path, monkeypatch, last: bool) -> None:
    """A TRAIN call that ran its job and then hit a bug: its result, openings and step count
    are dropped with it, so the block (its POL commitment, its stored openings) is the block
    without the call. Also when it is the block's last candidate, so that no later TRAIN
    included at its index overwrites what it left (a mutation run's survivors: the undo's
    ``results.pop`` and ``openings.pop`` of another key)."""
    from chain import runtime

    original = runtime.DISPATCH[calls.Train]

    def handler(ctx, call) -> None:
        original.handler(ctx, call)
        if call.steps == 40:
            raise RuntimeError("a bug after the job ran")

    monkeypatch.setitem(runtime.DISPATCH, calls.Train, runtime.CallRow(handler, original.info))
    chain = open_chain(tmp_path / "a")
    twin = open_chain(tmp_path / "b")
    try:
        boom, fine = sign(chain, BOB, train_call(steps=40), 0), sign(chain, CHARLIE, train_call(steps=30), 0)
        built = chain.build_block([fine, boom] if last else [boom, fine], ALICE, slot=1)
        expected = twin.build_block([fine], ALICE, slot=1)
        assert built.block.body.results == expected.block.body.results and len(built.block.body.results) == 1
        assert built.block.header == expected.block.header and built.training_steps == expected.training_steps == 30
        assert chain.transcripts.get(built.block.hash(), 0, 0) == twin.transcripts.get(expected.block.hash(), 0, 0)
        assert chain.transcripts.get(built.block.hash(), 1, 0) is None
    finally:
        chain.db.close()
        twin.db.close()


def test_the_lookup_index_stores_each_location_as_its_struct_encodes(tmp_path) -> None:
    # _stage_canonical encodes the LOOKUP values as (block, index) tuples in one call: the
    # bytes must be _Location's, which get_extrinsic_location decodes (canonical form only),
    # for indexes of every msgpack integer width.
    from chain.blockchain import _Location
    from chain.codec import encode
    from chain.runtime import Receipt

    chain = open_chain(tmp_path / "chain")
    block_hash = blake2_256(b"a block")
    indexes = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32]
    receipts = tuple(Receipt(i, blake2_256(i.to_bytes(8, "big")), True, 1, 1, None, ()) for i in indexes)
    with chain.db.write_batch() as batch:
        Blockchain._stage_canonical(batch, 7, block_hash, receipts)
    for receipt in receipts:
        assert chain.db.get(Column.LOOKUP, receipt.hash) == encode(_Location(block_hash, receipt.index))
        assert chain.get_extrinsic_location(receipt.hash) == (block_hash, receipt.index)
    chain.db.close()


def test_a_blocks_bytes_put_together_from_storage_are_its_encoding(pair) -> None:
    """get_block_bytes (what peers are served, without a decode and an encode) gives the
    canonical encoding of get_block's block: for the genesis (an empty body), a block of
    transfers, a block with a training result and a header stored without its body; an unknown hash is a ChainError, and bytes
    stored in another codec version are refused, not served as if they were this one's."""
    from chain.codec import encode

    author, _ = pair
    built = [
        author.build_block([sign(author, ALICE, calls.Transfer(BOB.public, 5 * 10**9), 0)], ALICE, slot=1),
        author.build_block([sign(author, BOB, train_call(), 0)], ALICE, slot=2),
    ]
    assert built[1].block.body.results
    for block_hash in (author.get_hash(0), *(b.block.hash() for b in built)):
        assert block_hash is not None
        assert author.get_block_bytes(block_hash) == encode(author.get_block(block_hash))
    with pytest.raises(ChainError, match="unknown block"):
        author.get_block_bytes(b"\x07" * 32)
    # A header stored without its body (no code path leaves one; get_block reads an empty body):
    # served with an empty body too, not a TypeError (mutation testing, mut12).
    without_body = built[1].block.hash()
    with author.db.write_batch() as batch:
        batch.delete(Column.BODY, without_body)
    assert author.get_block(without_body).body == Body()
    assert author.get_block_bytes(without_body) == encode(author.get_block(without_body))
    block_hash = built[0].block.hash()
    with author.db.write_batch() as batch:
        batch.put(Column.BODY, block_hash, b"\x02" + author.db.get(Column.BODY, block_hash)[1:])
    with pytest.raises(ChainError, match="another codec version"):
        author.get_block_bytes(block_hash)


def test_a_model_registered_in_a_block_is_not_trained_in_it(pair) -> None:
    """A TRAIN's job must be one its block's parent state describes: a model registered in the
    same block is not there, so a fraud proof of a forged segment in such a job could be checked
    by no node at the parent state and was refused on chain too; the samplers that drew the
    segment refused the block, the rest kept it, and its author went unpunished (an outside
    retest, round 12). Such a TRAIN fails ("ModelTooNew") and pays its fee; in the next block
    it trains."""
    author, validator = pair
    spec = ml_runtime.ModelSpec("softmax", 64, 10, 0)  # data set 0's shape
    register = calls.RegisterModel("fresh", spec.encode(), bytes(range(32)))
    model = models.NEXT_MODEL_ID.get(author.state.overlay())
    train = msgspec.structs.replace(train_call(steps=10, batch=2, segment=10), model=model)
    built = author.build_block([sign(author, BOB, register, 0), sign(author, BOB, train, 1)], ALICE, slot=1)
    registered, refused = built.receipts
    assert registered.success and not refused.success
    assert refused.error == f"training.ModelTooNew: model {model} was registered in block #1: train it from a later block"
    assert built.block.body.results == ()
    validator.import_block(built.block, LocalSource(author.transcripts))
    again = author.build_block([sign(author, BOB, msgspec.structs.replace(train, from_version=0), 2)], ALICE, slot=2)
    assert again.receipts[0].success and len(again.block.body.results) == 1
    validator.import_block(again.block, LocalSource(author.transcripts))
    assert validator.state.root() == author.state.root()


def _fresh_dataset_calls(author) -> tuple[int, list]:
    """The next data set's id, and calls registering it (digits' shape, data set 0's: 64
    features, 10 classes, 20 rows) and uploading every row, for BOB to sign."""
    x, y = ml_runtime.load_digits()
    rows = datasets.compute_rows_bytes(x[:20], y[:20], "classification")
    dataset = datasets.NEXT_DATASET_ID.get(author.state.overlay())
    return dataset, [
        calls.RegisterDataset("fresh", 64, "classification", 10, 20, datasets.compute_rows_root(rows, 260), 0, ""),
        calls.AppendRows(dataset, 0, rows),
    ]


def test_a_data_set_completed_in_a_block_is_not_trained_on_in_it(pair) -> None:
    """As a model registered in a block (above): a data set whose last rows were uploaded in a
    block is incomplete in the block's parent state, so no node judging a fraud proof there
    could rebuild a job on it ("unknown_job"), and a forged segment in such a job split the
    samplers that drew it from the rest. A TRAIN on it in that block fails ("DatasetTooNew")
    and pays its fee; in the next block it trains."""
    author, validator = pair
    dataset, setup = _fresh_dataset_calls(author)
    train = msgspec.structs.replace(train_call(steps=10, batch=2, segment=10), dataset=dataset)
    xts = [sign(author, BOB, call, nonce) for nonce, call in enumerate([*setup, train])]
    built = author.build_block(xts, ALICE, slot=1)
    *uploaded, refused = built.receipts
    assert all(r.success for r in uploaded) and not refused.success
    assert refused.error == f"training.DatasetTooNew: data set {dataset} was completed in block #1: train on it from a later block"
    assert built.block.body.results == ()
    assert datasets.get_dataset(author.state.overlay(), dataset).completed_in == 1
    validator.import_block(built.block, LocalSource(author.transcripts))
    again = author.build_block([sign(author, BOB, train, 3)], ALICE, slot=2)
    assert again.receipts[0].success and len(again.block.body.results) == 1
    validator.import_block(again.block, LocalSource(author.transcripts))
    assert validator.state.root() == author.state.root()


def test_a_version_made_in_a_block_is_not_trained_from_in_it(pair) -> None:
    """As a model or data set made in a block (above): a TRAIN naming a version an earlier call
    of its block made ("VersionTooNew") fails and pays its fee, and trains it from the next
    block. Each fork that made a version of that number made other weights, so a block that
    lost a fork race was judged on the winner against the winner's version (an outside
    tester's P1, round 14: tests/chain/test_pallet_pol.py). A version unknown fails as before."""
    author, validator = pair
    chained = msgspec.structs.replace(train_call(steps=10, segment=10), from_version=1)
    xts = [sign(author, BOB, train_call(steps=10, segment=10), 0), sign(author, BOB, chained, 1),
           sign(author, BOB, msgspec.structs.replace(chained, from_version=7), 2)]
    built = author.build_block(xts, ALICE, slot=1)
    made, refused, unknown = built.receipts
    assert made.success and not refused.success and not unknown.success
    assert refused.error == "training.VersionTooNew: version 1 of model 0 was made in block #1: train it from a later block"
    assert unknown.error == "models.UnknownVersion: model 0 has no version 7"
    assert len(built.block.body.results) == 1
    validator.import_block(built.block, LocalSource(author.transcripts))
    again = author.build_block([sign(author, BOB, chained, 3)], ALICE, slot=2)
    assert again.receipts[0].success and len(again.block.body.results) == 1
    validator.import_block(again.block, LocalSource(author.transcripts))
    assert validator.state.root() == author.state.root()


def test_an_author_training_on_a_data_set_completed_in_its_block_is_refused(pair, monkeypatch) -> None:
    """The strongest forgery of the rule above: an author whose runtime lacks it trains on a
    data set completed in its own block, and its block is whole (results, roots and seal its
    own). Importers refuse it, by the call's receipt, and store nothing."""
    author, validator = pair
    dataset, setup = _fresh_dataset_calls(author)
    train = msgspec.structs.replace(train_call(steps=10, batch=2, segment=10), dataset=dataset)
    xts = [sign(author, BOB, call, nonce) for nonce, call in enumerate([*setup, train])]
    honest = datasets.get_complete_dataset
    with monkeypatch.context() as m:  # the forger's runtime: every data set complete since genesis
        m.setattr(datasets, "get_complete_dataset", lambda s, i: msgspec.structs.replace(honest(s, i), completed_in=0))
        forged = author.build_block(xts, ALICE, slot=1)
    assert all(r.success for r in forged.receipts) and len(forged.block.body.results) == 1
    root, best = validator.state.root(), validator.best_hash
    with pytest.raises(BlockError, match="state root mismatch: re-execution gives"):
        validator.import_block(forged.block, LocalSource(author.transcripts))
    assert validator.state.root() == root and validator.best_hash == best
