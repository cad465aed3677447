"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): registering a model declares its parameters, and an
inference's outputs, written into its receipt, are bounded and declared."""

from __future__ import annotations

import dataclasses

import numpy as np
from chainkit import ALICE, BOB, dev_spec, event_args, open_chain, sign
from test_pallets import DAVE, Driver
from test_weights_datasets import compute_weight

import ml_runtime
from chain import calls
from chain.pallets import balances, federated, inference, models

# --- models.register_model wrote up to 2^18 parameters for a fixed weight ------------------------


def test_registering_a_model_declares_its_parameters(chain) -> None:
    """Before: 1,000,000 units whatever the size, so one block could register 2,000 models of
    max_model_params and write 2 GiB of weights (about 30 ms each: a minute a block)."""
    big = ml_runtime.ModelSpec("linear", 511, 512)  # 2^18 parameters
    small = ml_runtime.ModelSpec("softmax", 4, 3)
    weight = compute_weight(chain, calls.RegisterModel("big", big.encode(), bytes(32)))
    per_block = chain.config.max_block_weight // weight
    assert per_block * big.param_count * 4 <= 64 << 20  # at most 64 MiB of weights written a block
    assert weight == models.REGISTER_BASE_WEIGHT + models.PARAM_WEIGHT * big.param_count
    assert compute_weight(chain, calls.RegisterModel("s", small.encode(), bytes(32))) == (
        models.REGISTER_BASE_WEIGHT + models.PARAM_WEIGHT * small.param_count
    )
    assert compute_weight(chain, calls.RegisterModel("bad", b"\x07", bytes(32))) == models.REGISTER_BASE_WEIGHT


# --- models.register_model stored 4 bytes a parameter in state and paid no byte for them -----------

# The largest model the dev chain registers: 2^18 parameters, 1 MiB of weights.
LARGEST = ml_runtime.ModelSpec("linear", 511, 512)


def test_registering_a_model_pays_the_byte_fee_on_the_weights_it_stores(chain) -> None:
    """tester16's W1 (round 12): a ~170-byte register_model of max_model_params wrote version 0's
    weights, 1 MiB, into state for good and paid 0.0546 POL, 17 planck a stored byte where
    every other stored byte pays byte_fee (1,000; a TRAIN's new weights are paid as its result
    bytes). It now declares 4 bytes a parameter (DispatchInfo.stored_bytes) and pays byte_fee
    on each, as on its own bytes."""
    d = Driver(chain)
    cfg = chain.config
    call = calls.RegisterModel("big", LARGEST.encode(), bytes(32))
    xt = sign(chain, BOB, call, balances.get_account(chain.state.overlay(), BOB.public).nonce)
    info = chain.runtime.compute_dispatch_info(chain.state.overlay(), xt)
    assert info.stored_bytes == 4 * LARGEST.param_count == 1 << 20
    assert (info.result_length, info.transcript_bytes) == (0, 0)  # nothing of it is in the block or beside it
    weight = models.REGISTER_BASE_WEIGHT + models.PARAM_WEIGHT * LARGEST.param_count
    expected = cfg.base_fee + cfg.byte_fee * (len(xt.encode()) + (1 << 20)) + cfg.weight_fee * weight
    receipt = d.apply(BOB, call)
    assert receipt.success, receipt.error
    assert receipt.fee == expected == chain.runtime.compute_fee(info, len(xt.encode()), 0)
    model = int(event_args(receipt, "ModelRegistered")["model"])
    stored = models.WEIGHTS.get(chain.state.overlay(), model, 0)
    assert stored is not None and len(stored) == info.stored_bytes
    assert receipt.fee >= cfg.byte_fee * len(stored)  # at least byte_fee a byte it stored


def test_a_refused_registration_stores_nothing_and_pays_for_no_stored_byte(chain) -> None:
    """A spec over max_model_params declares its weights' bytes (the fee is withdrawn on them)
    and is refused before any parameter is made: refunded to its own bytes and the base weight,
    and nothing but the fee and nonce moves (Driver)."""
    d = Driver(chain)
    cfg = chain.config
    over = ml_runtime.ModelSpec("linear", 512, 512)  # 262,656 parameters, over 2^18
    call = calls.RegisterModel("over", over.encode(), bytes(32))
    xt = sign(chain, BOB, call, balances.get_account(chain.state.overlay(), BOB.public).nonce)
    assert chain.runtime.compute_dispatch_info(chain.state.overlay(), xt).stored_bytes == 4 * over.param_count
    receipt = d.apply(BOB, call)
    assert not receipt.success and "ModelTooLarge" in (receipt.error or "")
    assert receipt.fee == cfg.base_fee + cfg.byte_fee * len(xt.encode()) + cfg.weight_fee * models.REGISTER_BASE_WEIGHT
    bad = calls.RegisterModel("bad", b"\x07", bytes(32))  # no spec: no bytes to store
    assert chain.runtime.compute_dispatch_info(chain.state.overlay(), sign(chain, BOB, bad, 0)).stored_bytes == 0


def test_a_block_of_registrations_at_the_weight_limit_pays_for_every_stored_byte(tmp_path) -> None:
    """A block filled with registrations of the largest model up to max_block_weight (three
    on these chains): the builder leaves the fourth out, each pays byte_fee on its 1 MiB, the
    author is paid all of it, and a second chain imports the block to the same state."""
    spec = dev_spec()
    weight = models.REGISTER_BASE_WEIGHT + models.PARAM_WEIGHT * LARGEST.param_count
    spec = dataclasses.replace(spec, runtime_config=dataclasses.replace(spec.runtime_config, max_block_weight=3 * weight))
    author, validator = open_chain(tmp_path / "a", spec), open_chain(tmp_path / "v", spec)
    try:
        cfg = author.config
        xts = [sign(author, BOB, calls.RegisterModel(f"m{n}", LARGEST.encode(), bytes(32)), n) for n in range(4)]
        before = balances.get_account(author.state.overlay(), ALICE.public).free
        built = author.build_block(list(xts), ALICE, slot=1)
        assert len(built.receipts) == 3 and all(r.success for r in built.receipts)
        assert sum(r.weight for r in built.receipts) == cfg.max_block_weight
        fees = [cfg.base_fee + cfg.byte_fee * (len(xt.encode()) + 4 * LARGEST.param_count) + cfg.weight_fee * weight for xt in xts[:3]]
        assert [r.fee for r in built.receipts] == fees
        assert balances.get_account(author.state.overlay(), ALICE.public).free == before + sum(fees)
        assert sum(fees) >= cfg.byte_fee * 3 * (1 << 20)
        validator.import_block(author.get_block(author.best_hash))
        assert validator.state.root() == author.state.root()
    finally:
        author.db.close()
        validator.db.close()


# --- models.infer: outputs of rows x k numbers, hex in the receipt ------------------------------


def test_inference_outputs_are_bounded_and_their_bytes_declared(chain) -> None:
    """Before: 1,024 rows into a 1-input 4,096-output model put 16 MiB of outputs (32 MiB of
    hex) in one receipt for the forward pass's weight: 117 such calls a block, 4 GB of
    receipts and about 20 s to import."""
    d = Driver(chain)
    wide = ml_runtime.ModelSpec("linear", 1, 4096)
    receipt = d.apply(DAVE, calls.RegisterModel("wide", wide.encode(), bytes(32)))
    model = event_args(receipt, "ModelRegistered")["model"]
    rows = (1 << 16) // wide.k  # 2^16 outputs: 256 KiB of float32, 512 KiB of hex
    ok = np.ones((rows, 1), dtype="<f4").tobytes()
    too_many = np.ones((rows + 1, 1), dtype="<f4").tobytes()
    d.fails(BOB, calls.Infer(model, None, too_many), "TooManyOutputs")
    assert inference.MAX_INFER_OUTPUTS == 1 << 16
    assert compute_weight(chain, calls.Infer(model, None, ok)) == (
        inference.INFER_BASE_WEIGHT + models.compute_weights_read_weight(wide) + ml_runtime.step_cost(wide, rows)
        + inference.OUTPUT_WEIGHT * rows * wide.k
    )
    assert d.apply(BOB, calls.Infer(model, None, ok)).success


# --- federated.open_round read the base version's weights for a fixed weight ---------------------


def test_opening_a_round_declares_reading_the_base_versions_weights(chain) -> None:
    """Before: 200,000 units whatever the model, and the base version's weights (1 MiB at
    2^18 parameters) were read before the round's arguments were checked: a refused open
    changed nothing and could be sent 10,000 times a block (about 12 s)."""
    d = Driver(chain)
    big = ml_runtime.ModelSpec("linear", 511, 512)  # 2^18 parameters
    receipt = d.apply(BOB, calls.RegisterModel("big", big.encode(), bytes(32)))
    model = event_args(receipt, "ModelRegistered")["model"]
    half = calls.compute_f32_bits(0.5)
    call = calls.OpenRound(model, 0, (), 0, 1, half, 0, 1, 1, 1, 1, 0, 0, 10**6, 10**6 + 10)  # 0 local steps
    weight = compute_weight(chain, call)
    assert weight >= federated.BASE_WEIGHT + 4 * big.param_count
    assert weight == federated.BASE_WEIGHT + models.compute_weights_read_weight(big)
    d.fails(BOB, call, "InvalidSteps")  # Driver: the state moved by the fee and nonce only
    assert compute_weight(chain, calls.OpenRound(99, 0, (), 0, 1, half, 0, 1, 1, 1, 1, 0, 0, 10**6, 10**6 + 10)) == federated.BASE_WEIGHT


def test_no_valid_config_makes_a_registrations_stored_bytes_overflow_its_fee() -> None:
    """The config's bounds keep every fee within a balance but a tip's (RuntimeConfig.compute_fee):
    the fee of the largest block's bytes, its checkpoints, and now a registration's stored
    weights, 4 x max_model_params. A config of small blocks and a large byte_fee passed the
    bound on the first two, and a registration of the largest model then cost more than any
    balance holds (refused as "payment", its message blaming the tip)."""
    from chain.codec import MAX_BALANCE
    from chain.config import RuntimeConfig

    small = RuntimeConfig(max_block_length=64 * 1024, max_transcript_bytes=8)
    stored = 4 * small.max_model_params
    config = dataclasses.replace(small, byte_fee=MAX_BALANCE // stored + 1)
    # the old bound held: a full block's bytes and checkpoints, and its weight, fit a balance
    assert config.compute_fee(small.max_block_length + small.max_transcript_bytes, small.max_block_weight, 0) <= MAX_BALANCE
    assert config.compute_fee(stored, 0, 0) > MAX_BALANCE  # a registration of the largest model: no balance pays it
    assert [p for p in config.compute_problems() if "the fee of a full block" in p] == [
        "base_fee/byte_fee/weight_fee: the fee of a full block (base_fee + byte_fee x (max_block_length + "
        "max_transcript_bytes + 4 x max_model_params) + weight_fee x max_block_weight) exceeds 2^63-1"
    ]
    most = (MAX_BALANCE - small.base_fee - small.max_block_weight) // (small.max_block_length + small.max_transcript_bytes + stored)
    assert dataclasses.replace(small, byte_fee=most).compute_problems() == []
    assert dataclasses.replace(small, byte_fee=most + 1).compute_problems() != []
