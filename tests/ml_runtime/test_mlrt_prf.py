"""Counter-based PRFs: initial weights, batch indices, validator sampling."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml_runtime as mr
from benches._reference_kernels import batch_indices_hashlib


def _stream_reference(seed: bytes, t: int, n: int, batch: int) -> list[int]:
    """The batch PRF's definition, word by word (prf.py's docstring)."""
    limit = 2**32 - (2**32 % n)
    out: list[int] = []
    block = 0
    while len(out) < batch:
        digest = hashlib.blake2b(
            struct.pack("<QI", t, block), key=seed, person=b"polchain/ml/bat", digest_size=64
        ).digest()
        for (word,) in struct.iter_unpack("<I", digest):
            if word < limit and len(out) < batch:
                out.append(word % n)
        block += 1
    return out


@pytest.mark.parametrize("n", [1, 2, 10, 1797, 2**20, 3 * 2**29 + 1, 2**31 - 1])
def test_batch_indices_match_stream_definition(n: int) -> None:
    # n = 3*2**29 + 1 rejects a quarter of all words, so the fallback path runs too.
    seed = bytes(range(32))
    got = mr.batch_indices(seed, 7, 20, n, 33).reshape(20, 33)
    for i in range(20):
        assert got[i].tolist() == _stream_reference(seed, 7 + i, n, 33)
    assert got.min() >= 0 and got.max() < n


def test_batch_indices_rows_bound() -> None:
    with pytest.raises(mr.InvalidJob, match="rows"):
        mr.batch_indices(bytes(32), 0, 1, 0, 1)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytes(64), "x" * 32, bytearray(32)])
def test_batch_indices_rejects_bad_seed(seed: object) -> None:
    # The compiled PRF is built for the job seed's one shape (a 32-byte key); hashlib took
    # any key up to 64 bytes (and an empty one as no key), a different construction.
    with pytest.raises(mr.InvalidJob, match="batch seed must be exactly 32 bytes"):
        mr.batch_indices(seed, 0, 1, 10, 1)  # type: ignore[arg-type]


# n: powers of two (no rejection), small, digits-sized, and sizes that reject up to half
# of all words (2**31 + 1 would, but exceeds the domain; 3 * 2**29 + 1 rejects a quarter).
_N = st.one_of(st.sampled_from([1, 2, 3, 10, 1797, 2**20, 2**30, 3 * 2**29 + 1, 2**31 - 1]),
               st.integers(1, 2**31 - 1))


@settings(max_examples=300, deadline=None, database=None)
@given(seed=st.binary(min_size=32, max_size=32), first=st.integers(0, 2**63 - 64),
       steps=st.integers(1, 5), n=_N, batch=st.integers(1, 70))
def test_compiled_batch_prf_equals_hashlib_reference(seed: bytes, first: int, steps: int, n: int,
                                                     batch: int) -> None:
    """The compiled blake2b path gives the old hashlib path's bits (the vectors pin a few)."""
    got = mr.batch_indices(seed, first, steps, n, batch)
    want = batch_indices_hashlib(seed, first, steps, n, batch)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()


def test_compiled_batch_prf_equals_stream_definition_on_many_blocks() -> None:
    # batch 70 = five blocks per step, the last one partly used; 40 steps from a high counter.
    seed = bytes(range(100, 132))
    got = mr.batch_indices(seed, 2**40, 40, 1797, 70).reshape(40, 70)
    for i in range(40):
        assert got[i].tolist() == _stream_reference(seed, 2**40 + i, 1797, 70)


def test_init_weights_deterministic_and_bounded() -> None:
    spec = mr.ModelSpec("mlp", 64, 10, 32)
    a = mr.init_weights(spec, b"\x01" * 32)
    b = mr.init_weights(spec, b"\x01" * 32)
    c = mr.init_weights(spec, b"\x02" * 32)
    assert a.dtype == np.float32 and a.shape == (spec.param_count,)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    w1 = a[: 64 * 32]
    assert np.abs(w1).max() <= np.sqrt(np.float32(6 / 96)) and np.abs(w1).max() > 0.2
    assert not a[64 * 32 : 64 * 32 + 32].any()  # b1
    assert not a[-10:].any()  # b2
    assert abs(float(w1.mean())) < 0.02  # uniform, centred


def test_init_weights_depend_on_spec() -> None:
    a = mr.init_weights(mr.ModelSpec("softmax", 4, 3), b"\x01" * 32)
    b = mr.init_weights(mr.ModelSpec("linear", 4, 3), b"\x01" * 32)
    assert a.tobytes() != b.tobytes()


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33, "x" * 32])
def test_init_weights_rejects_bad_seed(seed: object) -> None:
    with pytest.raises(mr.InvalidJob, match="32 bytes"):
        mr.init_weights(mr.ModelSpec("linear", 2, 2), seed)  # type: ignore[arg-type]


SECRET = b"s" * 32
BLOCK = b"b" * 32


@pytest.mark.parametrize(("S", "m"), [(1, 1), (5, 2), (100, 10), (100, 100), (10**6, 64)])
def test_sample_segments_distinct_sorted_in_range(S: int, m: int) -> None:
    got = mr.sample_segments(SECRET, BLOCK, S, m)
    assert len(got) == m == len(set(got))
    assert list(got) == sorted(got)
    assert all(0 <= i < S for i in got)
    assert got == mr.sample_segments(SECRET, BLOCK, S, m)


def test_sample_segments_clips_and_empty() -> None:
    assert mr.sample_segments(SECRET, BLOCK, 4, 9) == (0, 1, 2, 3)
    assert mr.sample_segments(SECRET, BLOCK, 4, 0) == ()


def test_sample_segments_depends_on_secret_and_block() -> None:
    base = mr.sample_segments(SECRET, BLOCK, 10**6, 8)
    assert mr.sample_segments(b"t" * 32, BLOCK, 10**6, 8) != base
    assert mr.sample_segments(SECRET, b"c" * 32, 10**6, 8) != base


def test_sample_segments_roughly_uniform() -> None:
    counts = np.zeros(10, dtype=int)
    for i in range(2000):
        for j in mr.sample_segments(SECRET, i.to_bytes(32, "little"), 10, 3):
            counts[j] += 1
    assert counts.min() > 500 and counts.max() < 700  # 600 expected each


@pytest.mark.parametrize(
    ("secret", "block", "S", "m", "message"),
    [
        (b"short", BLOCK, 10, 1, "secret"),
        (b"x" * 65, BLOCK, 10, 1, "secret"),
        (SECRET, b"b" * 31, 10, 1, "block hash"),
        (SECRET, BLOCK, 0, 1, "S"),
        (SECRET, BLOCK, 10, -1, "m"),
        (SECRET, BLOCK, 10, 1.5, "m"),
    ],
)
def test_sample_segments_rejects(secret: bytes, block: bytes, S: int, m: int, message: str) -> None:
    with pytest.raises(mr.InvalidJob, match=message):
        mr.sample_segments(secret, block, S, m)
