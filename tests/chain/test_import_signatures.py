"""Signature checks on import: one thread or several, the same verdict and the same error.

Mutation testing of the import path (README, Mutation testing: ``mutmut run`` on
``chain.blockchain.xǁBlockchainǁ`` + _prepare_import, verify_length, _verify_extrinsics_root,
_claim_ahead, start_signatures_ahead, _finish_import, _finish_signatures, verify_signatures,
_report_bad_signature, _signature_pool_for, _new_signature_checks; 2026-11-29): 189 of 200
killed, 1 timed out (a cancelled batch replaced by None: the import hangs), 10 survive:

- ``wait=`` of SignatureBatch.start changed (True, False, None or left out) at its three call
  sites, and one worker range more than the pool has threads: the wait only lets the workers
  start before the importing thread takes the GIL, and the importing thread verifies any range
  no worker reached (chain.signatures, Work sharing): the same verdict, sooner or later.
- _report_bad_signature re-checking with None for the genesis hash or the spec version: it runs
  only for a signature the batch found bad, to word the error, and a bad signature fails under
  any message as well; the error is the same.
- verify_length taking the best state's max_block_length instead of the parent state's: the two
  differ only across an enacted referendum on max_block_length (tests/chain/test_democracy.py
  pins that each block runs with its parent's config; no test builds a block between the two
  limits).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numba
import pytest
from chainkit import ALICE, BOB, dev_spec, open_chain, sign, train_call

import chain.blockchain as blockchain_module
from chain import calls
from chain.block import Block, Body, compute_extrinsics_root
from chain.blockchain import Blockchain
from chain.errors import BlockError, ChainError
from chain.pallets import balances
from chain.signatures import SignatureBatch
from chain.storage import Column, Database
from chain.transcripts import LocalSource


def _open(path: Path, threads: int) -> Blockchain:
    spec = dev_spec()
    return Blockchain(
        Database(path), chain_id=spec.id, build_genesis=spec.apply_genesis,
        signature_threads=threads,
    )


def _tampered(block: Block, xts: list, **header_changes: object) -> Block:
    """``block`` with the extrinsics ``xts`` under a header that commits to them (its
    extrinsics root recomputed; no re-seal: these chains check no seal), so the import gets
    past the extrinsics root, which it compares before anything else in the body."""
    header = msgspec.structs.replace(
        block.header, extrinsics_root=compute_extrinsics_root([xt.encode() for xt in xts]), **header_changes
    )
    return Block(header, Body(tuple(xts), block.body.results))


@pytest.fixture
def built(tmp_path: Path) -> Block:
    author = open_chain(tmp_path / "author")
    xts = [sign(author, ALICE, calls.Transfer(BOB.public, 10**7), n) for n in range(300)]
    block = author.build_block(xts, ALICE, slot=1).block
    author.db.close()
    return block


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_block_imports_alike_with_any_number_of_signature_threads(tmp_path: Path, built: Block, threads: int) -> None:
    validator = _open(tmp_path / "validator", threads)
    validator.import_block(built)
    assert validator.state.root() == built.header.state_root
    validator.db.close()


def test_the_first_bad_signature_is_reported_whatever_the_threads(tmp_path: Path, built: Block) -> None:
    xts = list(built.body.extrinsics)
    for index in (250, 160):  # both in later ranges: the lower index must still be named
        xts[index] = msgspec.structs.replace(xts[index], signature=xts[index - 1].signature)
    tampered = _tampered(built, xts)
    messages = []
    for threads in (1, 2, 3):
        validator = _open(tmp_path / f"v{threads}", threads)
        genesis_root = validator.state.root()
        with pytest.raises(BlockError, match=r"extrinsic #160: ") as exc:
            validator.import_block(tampered)
        assert validator.best_number == 0 and validator.state.root() == genesis_root
        messages.append(str(exc.value))
        validator.db.close()
    assert len(set(messages)) == 1


def test_signature_threads_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="signature_threads"):
        _open(tmp_path / "zero", 0)


def test_a_bad_signature_is_reported_before_an_execution_failure_earlier_in_the_block(tmp_path: Path, built: Block) -> None:
    # Extrinsic #20 fails in execution (its nonce is used), #200 has a bad signature: with the
    # signatures checked beside execution, the block is still judged as if they were checked
    # first, so #200's signature is named, with any number of threads.
    for threads in (1, 2, 3):
        validator = _open(tmp_path / f"v{threads}", threads)
        xts = list(built.body.extrinsics)
        xts[20] = sign(validator, ALICE, xts[20].call, 0)  # well signed, but its nonce is used
        xts[200] = msgspec.structs.replace(xts[200], signature=xts[199].signature)
        tampered = _tampered(built, xts)
        genesis_root = validator.state.root()
        with pytest.raises(BlockError, match=r"^extrinsic #200: bad ed25519 signature"):
            validator.import_block(tampered)
        assert validator.best_number == 0 and validator.state.root() == genesis_root
        validator.db.close()


def test_an_execution_failure_is_reported_when_every_signature_is_good(tmp_path: Path, built: Block) -> None:
    for threads in (1, 2, 3):
        validator = _open(tmp_path / f"v{threads}", threads)
        xts = list(built.body.extrinsics)
        xts[20] = sign(validator, ALICE, xts[20].call, 0)  # well signed, but its nonce is used
        tampered = _tampered(built, xts)
        with pytest.raises(BlockError, match=r"extrinsic #20 is invalid: nonce 0 is already used"):
            validator.import_block(tampered)
        assert validator.best_number == 0
        validator.db.close()


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_a_block_leaves_the_garbage_collector_as_it_found_it(built: Block, enabled: bool) -> None:
    # decode_block leaves the collector as it was, also when the bytes are bad (it used to pause
    # it; wire objects are untracked now, chain.codec.Wire).
    import gc

    from chain.block import decode_block
    from chain.errors import CodecError

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert decode_block(built.encode()) == built
        assert gc.isenabled() == enabled
        with pytest.raises(CodecError):
            decode_block(built.encode()[:-3])
        assert gc.isenabled() == enabled
    finally:
        gc.enable() if was else gc.disable()


def test_a_bad_signature_is_reported_before_a_wrong_state_root(tmp_path: Path, built: Block) -> None:
    # The signature threads run on while the importer computes the roots: a block with both
    # faults is still refused for its signature, and nothing is stored.
    xts = list(built.body.extrinsics)
    xts[290] = msgspec.structs.replace(xts[290], signature=xts[289].signature)
    tampered = _tampered(built, xts, state_root=bytes(32))
    for threads in (1, 2, 3):
        validator = _open(tmp_path / f"v{threads}", threads)
        genesis_root = validator.state.root()
        with pytest.raises(BlockError, match=r"^extrinsic #290: bad ed25519 signature"):
            validator.import_block(tampered)
        assert validator.best_number == 0 and validator.state.root() == genesis_root
        validator.db.close()


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: the kernels run as Python, under the GIL")
def test_signature_threads_verify_while_the_importing_thread_holds_the_gil(tmp_path: Path, built: Block) -> None:
    # The importing thread runs the runtime (Python) while the signature threads verify: they
    # must not need the GIL per signature, or they stall until it is handed over (every
    # sys.getswitchinterval()) and the importing thread ends up verifying nearly all itself.
    # sum() over a range loops in C and never releases the GIL: a stand-in for the runtime.
    import time

    validator = _open(tmp_path / "v", 2)
    xts = built.body.extrinsics
    serial = time.thread_time()
    validator.verify_signatures(xts)
    serial = time.thread_time() - serial
    n = 1_000_000
    held = time.perf_counter()
    sum(range(n))
    held = time.perf_counter() - held
    pool = validator._signature_pool_for(built)
    assert pool is not None
    checks = validator._new_signature_checks(built, pool, wait=True)
    # Once the worker is past its Python prologue (start() waits for that only 10 ms, which a
    # loaded machine may not grant), the hold must not stop it.
    deadline = time.monotonic() + 10
    while checks._progress[0, 0] == checks._bounds[0, 0] and time.monotonic() < deadline:
        time.sleep(0.0005)
    sum(range(int(n * 8 * serial / held)))  # the GIL held for ~8x a serial check of the block
    cpu = time.thread_time()
    assert checks.finish() is None
    cpu = time.thread_time() - cpu
    # What the importing thread still had to verify itself: little of the block (the second
    # thread had the whole hold to verify it, whatever the machine's load took of that); had
    # it stalled, the two would share the block once the GIL is free, about half each.
    assert cpu < serial / 5, f"{cpu * 1e3:.1f} ms of {serial * 1e3:.1f} ms left to the importing thread"
    validator.db.close()


def _with_bad_signature(block: Block, index: int) -> Block:
    """``block`` with extrinsic ``index`` signed wrongly and a header that commits to it (its
    extrinsics root recomputed; a signature changes no state): every root matches."""
    xts = list(block.body.extrinsics)
    xts[index] = msgspec.structs.replace(xts[index], signature=xts[index - 1].signature)
    header = msgspec.structs.replace(block.header, extrinsics_root=compute_extrinsics_root([xt.encode() for xt in xts]))
    return Block(header, Body(tuple(xts), block.body.results))


def test_a_bad_signature_in_a_block_whose_roots_match_stores_nothing(tmp_path: Path, built: Block) -> None:
    # With signature threads the verdict on a block without training is awaited only before
    # its batch is written (finish_import): the block is refused there, and nothing is stored.
    tampered = _with_bad_signature(built, 123)
    for threads in (1, 2, 3):
        validator = _open(tmp_path / f"v{threads}", threads)
        genesis_root = validator.state.root()
        if threads > 1:
            prepared = validator.prepare_import(tampered)
            assert prepared.signatures is not None
            with pytest.raises(BlockError, match=r"^extrinsic #123: bad ed25519 signature"):
                validator.finish_import(prepared, validator.verify_training(prepared))
        with pytest.raises(BlockError, match=r"^extrinsic #123: bad ed25519 signature"):
            validator.import_block(tampered)
        assert validator.best_number == 0 and validator.state.root() == genesis_root
        assert not validator.has_block(tampered.hash()) and validator.db.get(Column.BODY, tampered.hash()) is None
        receiver = balances.ACCOUNT.compute_key(built.body.extrinsics[0].call.dest)
        assert validator.state.overlay().get(receiver) == validator.db.get(Column.STATE, receiver)  # the genesis value
        validator.import_block(built)  # the honest block still imports
        assert validator.state.root() == built.header.state_root
        validator.db.close()


def test_a_training_block_has_its_signatures_checked_before_its_training(tmp_path: Path) -> None:
    # A block with training claims waits for the signature threads in prepare_import, before
    # the verifier fetches or re-runs anything.
    author = open_chain(tmp_path / "author")
    xts = [sign(author, BOB, train_call(), 0)]
    xts += [sign(author, ALICE, calls.Transfer(BOB.public, 10**7), n) for n in range(80)]
    block = author.build_block(xts, ALICE, slot=1).block
    assert len(block.body.results) == 1 and len(block.body.extrinsics) == 81
    tampered = _with_bad_signature(block, 40)
    validator = _open(tmp_path / "v", 2)
    with pytest.raises(BlockError, match=r"^extrinsic #40: bad ed25519 signature"):
        validator.prepare_import(tampered)
    prepared = validator.prepare_import(block)
    assert prepared.signatures is None  # checked already
    validator.finish_import(prepared, validator.verify_training(prepared, LocalSource(author.transcripts)))
    assert validator.state.root() == block.header.state_root
    author.db.close()
    validator.db.close()


@pytest.mark.parametrize("threads", [2, 3])
def test_signatures_checked_ahead_give_the_import_the_same_verdict(tmp_path: Path, built: Block, threads: int) -> None:
    # A syncing node starts the next block's checks before it imports the current one: the
    # import of that block claims them, and their verdict is the one a fresh check gives.
    validator = _open(tmp_path / "v", threads)
    genesis_root = validator.state.root()
    tampered = _with_bad_signature(built, 123)
    validator.start_signatures_ahead(tampered)
    with pytest.raises(BlockError, match=r"^extrinsic #123: bad ed25519 signature"):
        validator.import_block(tampered)
    assert validator.best_number == 0 and validator.state.root() == genesis_root
    assert validator._ahead == []  # claimed by the import, bad verdict and all
    validator.start_signatures_ahead(built)
    validator.import_block(built)
    assert validator._ahead == [] and validator.state.root() == built.header.state_root
    validator.db.close()


def test_a_range_imported_as_sync_does_checks_each_blocks_signatures_once(tmp_path: Path, monkeypatch) -> None:
    # Sync starts block k+1's checks, then imports block k, which must claim the checks
    # started for it one step earlier, not lose them to the newer start and verify again.
    author = open_chain(tmp_path / "author")
    blocks = []
    for k in range(3):
        xts = [sign(author, ALICE, calls.Transfer(BOB.public, 10**7), 100 * k + n) for n in range(100)]
        blocks.append(author.build_block(xts, ALICE, slot=k + 1).block)
    author.db.close()
    started: list[SignatureBatch] = []

    class Counted(SignatureBatch):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(blockchain_module, "SignatureBatch", Counted)
    validator = _open(tmp_path / "v", 2)
    for k, block in enumerate(blocks):
        if k + 1 < len(blocks):
            validator.start_signatures_ahead(blocks[k + 1])
        validator.import_block(block)
    assert validator.best_number == 3 and validator.state.root() == blocks[-1].header.state_root
    assert len(started) == 3 and validator._ahead == []  # one check a block, each claimed by its import
    validator.db.close()


def test_checks_started_ahead_are_claimed_only_by_the_block_they_checked(tmp_path: Path, built: Block) -> None:
    # The same header with other extrinsics (a peer's swap) must not claim the checks started
    # for the honest body: it is refused for its extrinsics root before any signature is
    # checked, and the honest body's import still finds its checks.
    validator = _open(tmp_path / "v", 2)
    genesis_root = validator.state.root()
    xts = list(built.body.extrinsics)
    xts[160] = msgspec.structs.replace(xts[160], signature=xts[159].signature)
    swapped = Block(built.header, Body(tuple(xts), built.body.results))
    assert swapped.hash() == built.hash()
    validator.start_signatures_ahead(built)
    with pytest.raises(BlockError, match=r"^extrinsics root mismatch"):
        validator.import_block(swapped)
    assert validator.state.root() == genesis_root
    validator.import_block(built)  # the checks started for it are still there for it
    assert validator._ahead == [] and validator.state.root() == built.header.state_root
    validator.db.close()


def test_a_body_that_is_not_its_headers_starts_no_checks_ahead(tmp_path: Path, built: Block, monkeypatch) -> None:
    # A range response may pair a real header with a body of the peer's own (valid
    # signatures by throwaway keys): its extrinsics root is matched before any signature
    # is handed to the threads, as the import itself does.
    validator = _open(tmp_path / "v", 2)
    genesis_root = validator.state.root()
    xts = list(built.body.extrinsics)
    xts[7] = sign(validator, ALICE, calls.Transfer(BOB.public, 10**6), 7)  # validly signed, not the header's
    swapped = Block(built.header, Body(tuple(xts), built.body.results))
    started: list[SignatureBatch] = []
    monkeypatch.setattr(blockchain_module, "SignatureBatch", lambda *a: started.append(SignatureBatch(*a)) or started[-1])
    validator.start_signatures_ahead(swapped)
    assert validator._ahead == [] and started == []
    with pytest.raises(BlockError, match=r"^extrinsics root mismatch"):
        validator.import_block(swapped)
    assert started == [] and validator.state.root() == genesis_root
    validator.db.close()


def test_a_block_started_ahead_hashes_its_extrinsics_once(tmp_path: Path, built: Block, monkeypatch) -> None:
    validator = _open(tmp_path / "v", 2)
    roots: list[int] = []
    real = blockchain_module.compute_extrinsics_root
    monkeypatch.setattr(blockchain_module, "compute_extrinsics_root", lambda raws: roots.append(len(raws)) or real(raws))
    validator.start_signatures_ahead(built)
    validator.import_block(built)
    assert roots == [len(built.body.extrinsics)]  # at the start, not again by the import
    assert validator.state.root() == built.header.state_root
    validator.db.close()


def test_checks_no_import_claimed_are_cancelled_beyond_two_blocks(tmp_path: Path, built: Block) -> None:
    validator = _open(tmp_path / "v", 2)
    others = [_with_bad_signature(built, i) for i in (5, 6)]
    validator.start_signatures_ahead(built)
    validator.start_signatures_ahead(built)  # already started: nothing new
    first = validator._ahead[0][1]
    assert len(validator._ahead) == 1
    validator.start_signatures_ahead(others[0])
    assert [b for b, *_ in validator._ahead] == [built, others[0]]
    assert not (first._progress[:, 1] == first._bounds[:, 0]).all()  # still running
    validator.start_signatures_ahead(others[1])  # a third: the oldest is cancelled
    assert [b for b, *_ in validator._ahead] == others
    assert (first._progress[:, 1] == first._bounds[:, 0]).all()  # its worker stops at its next signature
    small, smallest_handed_off = (_tampered(built, list(built.body.extrinsics[:n])) for n in (63, 64))
    validator.start_signatures_ahead(small)
    assert [b for b, *_ in validator._ahead] == others  # a small block: checked by its import, nothing started
    validator.start_signatures_ahead(smallest_handed_off)
    assert [b for b, *_ in validator._ahead] == [others[1], smallest_handed_off]
    kept = [c for _, c, _ in validator._ahead]
    validator.start_signatures_ahead(None)
    assert validator._ahead == [] and all((c._progress[:, 1] == c._bounds[:, 0]).all() for c in kept)
    validator.import_block(built)
    assert validator.state.root() == built.header.state_root
    one = _open(tmp_path / "one", 1)
    one.start_signatures_ahead(built)  # one signature thread: nothing to start
    assert one._ahead == []
    one.db.close()
    validator.db.close()
