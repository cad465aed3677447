"""The cost model and the bundled digits data."""

from __future__ import annotations

import numpy as np
import pytest

import ml_runtime as mr


def test_step_cost_formulas() -> None:
    # 10 outputs counted as LANES (16): 2 * 64 * 16 a sample for the products
    assert mr.step_cost(mr.ModelSpec("linear", 64, 10), 32) == 32 * (2 * 64 * 16 + 20) + 2 * 650
    assert mr.step_cost(mr.ModelSpec("linear", 64, 16), 32) == 32 * (2 * 64 * 16 + 32) + 2 * 1040  # no floor met
    assert mr.step_cost(mr.ModelSpec("linear", 4096, 1), 1) == 2 * 4096 * 16 + 2 + 2 * 4097
    # softmax: an exp a class (EXP_UNITS, 64) and a log a sample besides the products
    assert mr.step_cost(mr.ModelSpec("softmax", 2, 4096), 1) == 2 * 16 * 4096 + (2 + 64) * 4096 + 24 + 2 * 3 * 4096
    soft = mr.step_cost(mr.ModelSpec("softmax", 64, 10), 32)
    assert soft > mr.step_cost(mr.ModelSpec("linear", 64, 10), 32)
    mlp = mr.ModelSpec("mlp", 64, 10, 32)
    assert mr.step_cost(mlp, 64) > 2 * mr.step_cost(mlp, 32) - 2 * 2 * mlp.param_count - 1


@pytest.mark.parametrize("batch", [0, -1, 2.0, True])
def test_step_cost_rejects(batch: object) -> None:
    with pytest.raises(mr.InvalidJob, match="batch_size"):
        mr.step_cost(mr.ModelSpec("linear", 2, 2), batch)  # type: ignore[arg-type]


def test_load_digits() -> None:
    x, y = mr.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(x * np.float32(16), np.round(x * np.float32(16)))  # exact pixel/16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
