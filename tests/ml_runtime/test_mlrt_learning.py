"""It learns: softmax on the digits reaches >= 90% training accuracy; least squares gets
within 1% of the optimum's loss."""

from __future__ import annotations

import numpy as np

import ml_runtime as mr


def test_softmax_learns_digits() -> None:
    x, y = mr.load_digits()
    spec = mr.ModelSpec("softmax", 64, 10)
    job = mr.TrainingJob(spec, mr.init_weights(spec, b"\x07" * 32), x, y, steps=3000,
                         batch_size=32, lr=0.2, l2=1e-4, seed=b"\x08" * 32, segment_len=300)
    res = mr.run_job(job)
    assert res.finite
    acc = float((mr.predict(spec, res.weights, x).argmax(axis=1) == y).mean())
    assert acc >= 0.90, acc
    losses = [e.loss for e in res.transcript.entries[1:]]
    assert losses[-1] < losses[0] / 3  # the committed loss curve goes down


def test_mlp_learns_digits() -> None:
    x, y = mr.load_digits()
    spec = mr.ModelSpec("mlp", 64, 10, 32)
    job = mr.TrainingJob(spec, mr.init_weights(spec, b"\x03" * 32), x, y, steps=2000,
                         batch_size=32, lr=0.1, l2=0.0, seed=b"\x04" * 32, segment_len=500)
    res = mr.run_job(job)
    acc = float((mr.predict(spec, res.weights, x).argmax(axis=1) == y).mean())
    assert acc >= 0.90, acc


def test_linear_reaches_least_squares_optimum() -> None:
    rng = np.random.default_rng(1)  # test data only; the consensus path never sees rng
    n, d, k = 1000, 8, 3
    x = rng.uniform(-1, 1, (n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, k)) + 0.5 + 0.3 * rng.normal(size=(n, k))).astype(np.float32)
    xa = np.hstack([x, np.ones((n, 1))]).astype(np.float64)
    sol = np.linalg.lstsq(xa, y.astype(np.float64), rcond=None)[0]
    optimum = 0.5 * ((xa @ sol - y) ** 2).sum(axis=1).mean()
    spec = mr.ModelSpec("linear", d, k)
    job = mr.TrainingJob(spec, mr.init_weights(spec, b"\x01" * 32), x, y, steps=4000,
                         batch_size=64, lr=0.05, l2=0.0, seed=b"\x02" * 32, segment_len=500)
    res = mr.run_job(job)
    pred = mr.predict(spec, res.weights, x).astype(np.float64)
    loss = 0.5 * ((pred - y) ** 2).sum(axis=1).mean()
    assert loss <= 1.01 * optimum, (loss, optimum)
