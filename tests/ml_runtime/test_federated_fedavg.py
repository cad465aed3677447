"""The FedAvg kernel equals its NumPy twin bit for bit (JIT on, and JIT off in a subprocess),
follows its stated operation order, and refuses bad inputs with a specific reason."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_runtime import fedavg, twins
from ml_runtime.errors import InvalidJob, NonFiniteWeights

REPO = Path(__file__).resolve().parents[2]
CASES = 200


def make_case(seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Random updates (with subnormals, signed zeros and large values mixed in) and counts."""
    words = np.frombuffer(
        b"".join(hashlib.blake2b(seed.to_bytes(8, "little") + i.to_bytes(4, "little"), digest_size=64).digest()
                 for i in range(64)),
        dtype="<u4",
    )
    u = 1 + int(words[0] % 7)
    p = 1 + int(words[1] % 50)
    bits = words[2 : 2 + u * p].copy()
    # Keep finite values: clear the exponent's top bit of any NaN/inf pattern, and scale most
    # values into an ordinary range by drawing their exponent from a narrow band.
    exponent = (bits >> np.uint32(23)) & np.uint32(0xFF)
    narrow = np.uint32(100) + exponent % np.uint32(50)
    ordinary = (words[200 : 200 + u * p] % np.uint32(8)) != 0
    exponent = np.where(ordinary, narrow, exponent % np.uint32(0xFF))
    bits = (bits & np.uint32(0x807FFFFF)) | (exponent << np.uint32(23))
    w = bits.view(np.float32).reshape(u, p)
    counts = [1 + int(x % (1 << int(words[400 + i] % 20))) for i, x in enumerate(words[300 : 300 + u])]
    return [w[i].copy() for i in range(u)], counts


def run_kernel(updates: list[np.ndarray], counts: list[int]) -> tuple[np.ndarray, int]:
    stacked, cnt, total = fedavg.verify_inputs(updates, counts)
    out = np.empty(stacked.shape[1], dtype=np.float32)
    with np.errstate(all="ignore"):
        status = int(fedavg.fedavg_kernel(stacked, cnt, np.int64(total), out))
    return out, status


def run_twin(updates: list[np.ndarray], counts: list[int]) -> tuple[np.ndarray, int]:
    stacked, cnt, total = fedavg.verify_inputs(updates, counts)
    return twins.fedavg(stacked, cnt, total)


def line(out: np.ndarray, status: int) -> str:
    return f"{status} {out.astype('<f4').tobytes().hex()}"


def test_kernel_equals_twin_bit_for_bit() -> None:
    for seed in range(CASES):
        updates, counts = make_case(seed)
        assert line(*run_kernel(updates, counts)) == line(*run_twin(updates, counts)), f"case {seed}"


def test_jit_disabled_subprocess_equals_twin() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, str(CASES)], env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == CASES
    for seed, got in enumerate(lines):
        assert got == line(*run_twin(*make_case(seed))), f"case {seed} differs with JIT off"


def test_the_stated_operation_order() -> None:
    """c_i = f32(n_i) / f32(N), then acc = acc + c_i * w_i in row order (not n_i * w_i / N)."""
    rng_bits = np.arange(1, 40, dtype=np.uint32) * np.uint32(2654435761)
    w = [(rng_bits[i * 13 : i * 13 + 13] >> np.uint32(9)).astype(np.float32) * np.float32(1e-3) for i in range(3)]
    counts = [3, 7, 11]
    total = np.float32(21)
    expected = np.empty(13, dtype=np.float32)
    for p in range(13):
        acc = np.float32(0.0)
        for wi, n in zip(w, counts, strict=True):
            acc = np.float32(acc + np.float32(np.float32(n) / total) * wi[p])
        expected[p] = acc
    got = fedavg.federated_average(w, counts)
    assert got.tobytes() == expected.tobytes()
    # The order matters for the bits: reversing the rows changes at least one parameter here,
    # which is why the chain fixes the order (ascending account id).
    assert fedavg.federated_average(w[::-1], counts[::-1]).tobytes() != got.tobytes()


def test_one_update_is_returned_bit_for_bit() -> None:
    updates, _ = make_case(7)
    assert fedavg.federated_average([updates[0]], [12345]).tobytes() == updates[0].tobytes()


def test_equal_counts_of_equal_updates_give_the_update() -> None:
    w = np.array([0.1, -2.5, 3e-39, 0.0], dtype=np.float32)  # 3e-39 is subnormal
    out = fedavg.federated_average([w, w], [5, 5])
    assert out.tobytes() == w.tobytes()


def test_overflow_is_reported_not_returned() -> None:
    """The coefficients of counts (1, 8, 1), 0.1 and 0.8 rounded to float32, sum to more than
    1, so averaging three copies of float32's maximum rounds past it: reported, not returned."""
    big = np.array([1.0, 3.0e38], dtype=np.float32)
    assert np.isfinite(fedavg.federated_average([big, big], [1, 1])).all()
    huge = np.array([1.0, np.finfo(np.float32).max], dtype=np.float32)
    with pytest.raises(NonFiniteWeights, match="parameter 1 is not finite") as exc:
        fedavg.federated_average([huge, huge, huge], [1, 8, 1])
    assert exc.value.step == 1
    assert run_twin([huge, huge, huge], [1, 8, 1])[1] == 1


@pytest.mark.parametrize(
    ("updates", "counts", "reason"),
    [
        ([], [], "needs 1..1024 updates"),
        ([np.zeros(3, np.float32)], [1, 2], "1 updates but 2 sample counts"),
        ([np.zeros(3, np.float64)], [1], "update 0 must be a 1-D float32"),
        ([np.zeros(3, np.float32), np.zeros(4, np.float32)], [1, 1], "update 1 has 4 parameters; update 0 has 3"),
        ([np.array([np.nan], np.float32)], [1], "update 0 contains NaN"),
        ([np.zeros(3, np.float32)], [0], "sample count 0 must be an int in 1..16777216"),
        ([np.zeros(3, np.float32)], [True], "sample count 0 must be an int"),
        ([np.zeros(3, np.float32)] * 2, [1 << 24, 1], "sum to 16777217"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(updates, counts, reason: str) -> None:
    with pytest.raises(InvalidJob, match=reason):
        fedavg.federated_average(updates, counts)


def test_no_forbidden_calls_in_the_kernel_module() -> None:
    tree = ast.parse((REPO / "ml_runtime" / "fedavg.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            assert not isinstance(node.op, ast.MatMult)
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"random", "dot", "matmul", "exp", "log", "sum", "mean", "average",
                                     "prange", "einsum"}, node.attr
        if isinstance(node, ast.keyword):
            assert node.arg not in {"fastmath", "parallel"}


if __name__ == "__main__":  # the JIT-off run: one line per case
    for case in range(int(sys.argv[1])):
        print(line(*run_kernel(*make_case(case))))
