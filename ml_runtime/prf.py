"""Counter-based pseudo-random functions over blake2b (no numpy generators).

Everything random on the consensus path — initial weights, the rows of each SGD batch,
the segments a validator re-runs — is a pure function of chain data, computed as
keyed blake2b (RFC 7693) over a counter, with a distinct ``person`` string per use so
the streams can never collide:

* init:    ``blake2b(key=seed, person=b"polchain/ml/init", spec_hash || u64 block)``
* batch:   ``blake2b(key=seed, person=b"polchain/ml/bat", u64 step || u32 block)``
* sample:  ``blake2b(key=secret, person=b"polchain/ml/smp", block_hash || u64 block)``

Each 64-byte block is read as 16 little-endian u32 words. Integers below ``n`` come
from rejection sampling: a word ``w`` is accepted iff ``w < 2**32 - (2**32 mod n)`` and
then maps to ``w mod n`` (exactly uniform); rejected words are skipped and the stream
continues with the next word, then the next block.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import Final

import numpy as np

from ml_runtime.errors import InvalidJob
from ml_runtime.spec import ModelSpec

_PERSON_INIT: Final = b"polchain/ml/init"
_PERSON_BATCH: Final = b"polchain/ml/bat"
_PERSON_SAMPLE: Final = b"polchain/ml/smp"
_WORDS_PER_BLOCK: Final = 16
# The largest population the u32-word rejection sampling is defined for (a domain limit of
# this PRF, pinned by the golden vectors). How many rows a data set may have is a smaller
# policy limit, ml_runtime.job.MAX_ROWS.
MAX_POPULATION: Final = 2**31 - 1

_U64 = struct.Struct("<Q")
_U64_U32 = struct.Struct("<QI")


def _accept_limit(n: int) -> int:
    return 2**32 - (2**32 % n)


def _words(base: hashlib.blake2b, prefix: bytes, packer: struct.Struct) -> Iterator[int]:
    """Endless u32 word stream of one PRF instance (block counter appended to prefix)."""
    block = 0
    while True:
        h = base.copy()
        h.update(prefix + packer.pack(block))
        yield from np.frombuffer(h.digest(), dtype="<u4").tolist()
        block += 1


def init_weights(spec: ModelSpec, seed: bytes) -> np.ndarray:
    """Deterministic Glorot-uniform initial weights for ``spec`` from a 32-byte seed.

    Each weight matrix with fan-in a and fan-out b is uniform in ±sqrt(6/(a+b))
    (Glorot & Bengio, AISTATS 2010), built in float32: ``u = (word >> 8) * 2**-24`` is an
    exact 24-bit uniform in [0, 1) and ``w = (2u - 1) * limit``. Biases are zero. Words
    are consumed in parameter order, one per weight, across all matrices.
    """
    if not isinstance(spec, ModelSpec):
        raise InvalidJob(f"init_weights needs a ModelSpec, got {type(spec).__name__}")
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise InvalidJob(f"init seed must be exactly 32 bytes, got {_describe_bytes(seed)}")
    w = np.zeros(spec.param_count, dtype=np.float32)
    total = sum(size for _, size, _, _ in spec.fan_pairs)
    blocks = -(-total // _WORDS_PER_BLOCK)
    base = hashlib.blake2b(key=seed, person=_PERSON_INIT, digest_size=64)
    prefix = spec.hash()
    stream = bytearray()
    for i in range(blocks):
        h = base.copy()
        h.update(prefix + _U64.pack(i))
        stream += h.digest()
    words = np.frombuffer(bytes(stream), dtype="<u4")[:total]
    u = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    pos = 0
    for offset, size, fan_in, fan_out in spec.fan_pairs:
        limit = np.sqrt(np.float32(6.0) / np.float32(fan_in + fan_out))
        chunk = u[pos : pos + size]
        w[offset : offset + size] = (np.float32(2.0) * chunk - np.float32(1.0)) * limit
        pos += size
    return w


def batch_indices(seed: bytes, first_step: int, num_steps: int, n: int, batch: int) -> np.ndarray:
    """Row indices of steps ``first_step .. first_step+num_steps-1``, flattened (int64).

    Step t's batch is the first ``batch`` accepted words of the batch PRF at counter t
    (rows drawn with replacement). The common case — every needed word accepted — is
    vectorised across the whole segment; any step with a rejection falls back to the
    word stream, which defines the result.
    """
    if not 1 <= n <= MAX_POPULATION:
        raise InvalidJob(f"dataset has {n} rows; the batch PRF supports 1..{MAX_POPULATION}")
    limit = _accept_limit(n)
    base = hashlib.blake2b(key=seed, person=_PERSON_BATCH, digest_size=64)
    per_step = -(-batch // _WORDS_PER_BLOCK)
    parts = []
    for t in range(first_step, first_step + num_steps):
        for b in range(per_step):
            h = base.copy()
            h.update(_U64_U32.pack(t, b))
            parts.append(h.digest())
    words = np.frombuffer(b"".join(parts), dtype="<u4").reshape(num_steps, -1)[:, :batch]
    out = (words % np.uint32(n)).astype(np.int64)
    bad_rows: list[int] = []
    if limit < 2**32:  # n a power of two: every word is accepted
        bad_rows = np.nonzero((words >= np.uint32(limit)).any(axis=1))[0].tolist()
    for r in bad_rows:
        stream = _words(base, _U64.pack(first_step + r), struct.Struct("<I"))
        row: list[int] = []
        while len(row) < batch:
            word = next(stream)
            if word < limit:
                row.append(word % n)
        out[r, :] = row
    return out.reshape(-1)


def sample_indices(secret: bytes, block_hash: bytes, population: int, m: int) -> tuple[int, ...]:
    """m distinct integers in [0, population), in draw order (partial Fisher–Yates).

    Draw i swaps position i with a PRF-chosen position in [i, population); a dict keeps
    the swapped positions so the cost is O(m), not O(population).
    """
    base = hashlib.blake2b(key=secret, person=_PERSON_SAMPLE, digest_size=64)
    stream = _words(base, block_hash, _U64)
    moved: dict[int, int] = {}
    picked = []
    for i in range(m):
        span = population - i
        limit = _accept_limit(span)
        while True:
            word = next(stream)
            if word < limit:
                break
        j = i + word % span
        value_j = moved.get(j, j)
        moved[j] = moved.get(i, i)
        picked.append(value_j)
    return tuple(picked)


def _describe_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return f"a {type(value).__name__}"
