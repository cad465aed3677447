"""Declared weights bound the real cost of calls under state an attacker shapes
(benches/weights.py measures it): registering a model declares its parameters, and an
inference's outputs, written into its receipt, are bounded and declared."""

from __future__ import annotations

import numpy as np
from chainkit import BOB, event_args
from test_pallets import DAVE, Driver
from test_weights_datasets import compute_weight

import ml_runtime
from chain import calls
from chain.pallets import federated, inference, models

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
        inference.INFER_BASE_WEIGHT + ml_runtime.step_cost(wide, rows) + inference.OUTPUT_WEIGHT * rows * wide.k
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
