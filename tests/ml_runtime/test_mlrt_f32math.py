"""exp32/log32: accuracy against float64 references and their defined edges."""

from __future__ import annotations

import numpy as np

from ml_runtime.f32math import exp32, log32


def test_exp32_accuracy() -> None:
    xs = np.linspace(-87, 88, 50001, dtype=np.float32)
    got = np.array([exp32(x) for x in xs], dtype=np.float64)
    want = np.exp(xs.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 4e-7  # a few float32 ulp


def test_log32_accuracy() -> None:
    bits = np.arange(0x00800000, 0x7F800000, 9973, dtype=np.uint32)  # normal floats
    xs = bits.view(np.float32)
    got = np.array([log32(x) for x in xs], dtype=np.float64)
    want = np.log(xs.astype(np.float64))
    assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) < 4e-7


def test_exp32_edges() -> None:
    assert exp32(np.float32(0.0)) == np.float32(1.0)
    assert exp32(np.float32(88.5)) == np.float32(np.inf)
    assert exp32(np.float32(-87.5)) == np.float32(0.0)
    assert exp32(np.float32(-np.inf)) == np.float32(0.0)
    assert np.isnan(exp32(np.float32(np.nan)))
    assert isinstance(exp32(np.float32(1.5)), np.float32)


def test_log32_edges() -> None:
    assert log32(np.float32(1.0)) == np.float32(0.0)
    assert log32(np.float32(0.0)) == np.float32(-np.inf)
    assert log32(np.float32(np.inf)) == np.float32(np.inf)
    assert np.isnan(log32(np.float32(-1.0)))
    assert np.isnan(log32(np.float32(np.nan)))
    tiny = np.uint32(1).view(np.float32)  # smallest subnormal
    assert abs(float(log32(tiny)) - np.log(float(tiny))) < 1e-4
    assert isinstance(log32(np.float32(3.0)), np.float32)
