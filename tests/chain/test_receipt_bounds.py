"""The receipts a block stores are bounded by its length limit (benches/receipts.py measures
the worst case per call type).

Receipts are stored with every block on every node but are not part of its encoding. The one
call whose receipt grew with what it computed rather than with its own bytes was
``models.infer``: 64 bytes of inputs (16 rows into a model of one input and 4,096 outputs)
put 65,536 outputs, 512 KiB of hex, into the receipt, and a block within its weight held
247 of them: 130 MB of receipts, 25 times max_block_length. Its outputs now count against
the block's length and fee as a TRAIN call's result does (DispatchInfo.result_length), when
built and when imported; and an error message is cut at a fixed bound.
"""

from __future__ import annotations

import pytest
from chainkit import ALICE, BOB, event_args, sign

import ml_runtime
from chain import calls
from chain.block import Block, Body, compute_extrinsics_root
from chain.blockchain import Blockchain
from chain.crypto import Keypair, blake2_256
from chain.errors import BlockError, DispatchError
from chain.header import Header, PolCommitment, compute_pol_digest, compute_slot_digest, seal_header
from chain.pallets import inference
from chain.pallets.context import BlockInfo
from chain.proofs import compute_results_root
from chain.runtime import MAX_ERROR_MESSAGE, compute_error_text
from chain.storage import Column

DAVE = Keypair.from_uri("//Dave")
WIDE = ml_runtime.ModelSpec("softmax", 1, 4096)  # one input, 4,096 outputs
WORST = bytes(4 * 16)  # 16 rows of one float32: 16 x 4,096 = MAX_INFER_OUTPUTS outputs



def _register_wide(chain: Blockchain) -> int:
    nonce = 0
    built = chain.build_block([sign(chain, DAVE, calls.RegisterModel("wide", WIDE.encode(), bytes(32)), nonce)], ALICE, slot=1)
    (receipt,) = built.receipts
    assert receipt.success, receipt.error
    return int(event_args(receipt, "ModelRegistered")["model"])


def test_a_block_of_the_worst_inferences_stores_receipts_within_its_length(chain: Blockchain) -> None:
    """40 worst-case infer calls offered: before, all 40 went in (21 MB of receipts, within the
    weight); now the builder stops where their outputs fill max_block_length, and the stored
    receipts are within it plus a fixed part per extrinsic."""
    model = _register_wide(chain)
    xts = [sign(chain, BOB, calls.Infer(model, None, WORST), n) for n in range(40)]
    built = chain.build_block(xts, ALICE, slot=2)
    assert all(r.success for r in built.receipts), [r.error for r in built.receipts]
    stored = chain.db.get(Column.RECEIPT, built.block.header.hash())
    assert stored is not None
    limit = chain.config.max_block_length
    assert len(stored) <= limit + 1024 * len(built.receipts), f"{len(stored):,} receipt bytes for a block of at most {limit:,}"
    assert len(built.receipts) == limit // (len(xts[0].encode()) + 2 + 8 * inference.MAX_INFER_OUTPUTS)  # 9


def test_an_infer_call_declares_and_pays_for_its_outputs_bytes(chain: Blockchain) -> None:
    model = _register_wide(chain)
    xt = sign(chain, BOB, calls.Infer(model, None, WORST), 0)
    info = chain.runtime.compute_dispatch_info(chain.state.overlay(), xt)
    (receipt,) = chain.build_block([xt], ALICE, slot=2).receipts
    outputs = event_args(receipt, "InferenceMade")["outputs"]
    assert isinstance(outputs, str) and info.result_length == len(outputs) == 2 + 8 * inference.MAX_INFER_OUTPUTS
    assert receipt.fee == chain.config.compute_fee(len(xt.encode()) + info.result_length, info.weight, 0)
    # One that fails in dispatch is refunded the outputs it declared (an unknown version).
    unknown = sign(chain, BOB, calls.Infer(model, 99, WORST), 1)
    declared = chain.runtime.compute_dispatch_info(chain.state.overlay(), unknown)
    (failed,) = chain.build_block([unknown], ALICE, slot=3).receipts
    assert not failed.success and declared.result_length == info.result_length
    assert failed.fee == chain.config.compute_fee(len(unknown.encode()), declared.weight, 0)
    # A call that cannot run declares no outputs (it fails before any, on its fixed weight).
    for bad in (calls.Infer(model, None, bytes(3)), calls.Infer(model + 1, None, WORST)):
        assert chain.runtime.compute_dispatch_info(chain.state.overlay(), sign(chain, BOB, bad, 2)).result_length == 0


def _seal_each_alone(chain: Blockchain, xts: list, slot: int) -> Block:
    """What a byzantine author builds: each extrinsic applied as if it were the block's only
    one (a fresh BlockInfo each: no running totals), sealed."""
    overlay = chain.state.overlay()
    runtime = chain.runtime_of(overlay)
    number = chain.best_number + 1
    runtime.on_initialize(overlay, number, ALICE.public, chain.best_hash)
    raws = [xt.encode() for xt in xts]
    for index, (xt, raw) in enumerate(zip(xts, raws, strict=True)):
        info = BlockInfo(number, chain.best_hash, ALICE.public, True, chain.trainer)
        assert runtime.apply_extrinsic(overlay, info, index, xt, blake2_256(raw), len(raw)).success
    header = Header(
        chain.best_hash, number, chain.state.compute_commit(overlay).root, compute_extrinsics_root(raws), slot,
        ALICE.public, (compute_slot_digest(slot), compute_pol_digest(PolCommitment(compute_results_root([]), 0, 0))),
    )
    return Block(seal_header(ALICE, chain.genesis_hash, header), Body(tuple(xts)))


def test_an_imported_block_whose_outputs_exceed_the_block_length_is_refused(chain: Blockchain) -> None:
    """The bound holds on import too: a byzantine block of 10 worst inferences (each valid
    alone, 5,242,900 bytes of outputs together) is refused, naming the extrinsic past it, and
    the state is unchanged."""
    _register_wide(chain)
    xts = [sign(chain, BOB, calls.Infer(1, None, WORST), n) for n in range(10)]
    block = _seal_each_alone(chain, xts, slot=2)
    root, best = chain.state.root(), chain.best_hash
    with pytest.raises(BlockError, match=r"extrinsic #9 is invalid: .*5,242,900 bytes of results and outputs"):
        chain.import_block(block)
    assert chain.state.root() == root and chain.best_hash == best


def test_an_error_message_is_cut_at_a_fixed_bound() -> None:
    """A receipt stores its error twice (the string and the ExtrinsicFailed event): each is at
    most MAX_ERROR_MESSAGE bytes of UTF-8, cut on a character boundary and marked."""
    short = DispatchError("gov", "AgendaFull", "block 9 already ends 16 votes")
    assert compute_error_text(short) == "gov.AgendaFull: block 9 already ends 16 votes"
    for filler in ("x", "é", "\U0001f600"):
        text = compute_error_text(DispatchError("democracy", "UnknownField", filler * 10_000))
        assert len(text.encode()) <= MAX_ERROR_MESSAGE and text.startswith("democracy.UnknownField: ")
        assert text.endswith("…") and text[:-1].endswith(filler)
    exact = "gov.X: " + "y" * (MAX_ERROR_MESSAGE - 7)
    assert compute_error_text(DispatchError("gov", "X", "y" * (MAX_ERROR_MESSAGE - 7))) == exact


def test_the_block_holds_results_up_to_exactly_its_room(chain: Blockchain) -> None:
    """The running total may reach the block's room (max_extrinsic_length), not pass it; past
    it the extrinsic is invalid with reason exhausts_resources and changes nothing."""
    from chain.errors import InvalidTransaction

    model = _register_wide(chain)
    xt = sign(chain, BOB, calls.Infer(model, None, WORST), 0)
    raw = xt.encode()
    overlay = chain.state.overlay()
    runtime = chain.runtime_of(overlay)
    declared = runtime.compute_dispatch_info(overlay, xt).result_length
    number = chain.best_number + 1
    room = runtime.max_extrinsic_length
    full = BlockInfo(number, chain.best_hash, ALICE.public, True, chain.trainer)
    full.result_length = room - declared + 1
    root = chain.state.compute_commit(overlay).root
    with pytest.raises(InvalidTransaction) as refused:
        runtime.apply_extrinsic(overlay, full, 0, xt, blake2_256(raw), len(raw))
    assert refused.value.reason == "exhausts_resources"
    assert f"declare {room + 1:,} bytes of results and outputs with this one" in str(refused.value)
    assert chain.state.compute_commit(overlay).root == root
    exact = BlockInfo(number, chain.best_hash, ALICE.public, True, chain.trainer)
    exact.result_length = room - declared
    assert runtime.apply_extrinsic(overlay, exact, 0, xt, blake2_256(raw), len(raw)).success
    assert exact.result_length == room
