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

The batch PRF runs on every SGD step (two blocks per step at batch 32), by the trainer and
by every validator re-running a sampled segment, so it is computed by a compiled blake2b
(:func:`_batch_rows`, RFC 7693 §3.2 written out for the one shape used here: a 32-byte
key and a 12-byte message, so exactly two compressions, the first over the key block).
The key block's compression depends only on the job seed and is cached per seed
(:func:`_keyed_state`); each block then costs one compression and no Python. ``hashlib``
stays the definition: the rare steps that reject a word are recomputed from its word
stream (:func:`_words`); ``tests/ml_runtime/test_mlrt_prf.py`` compares the compiled path
with the former hashlib path (kept in ``benches/_reference_kernels.py``) on random seeds,
step counters, populations and batch sizes, and the JIT-disabled twin tests run it as
plain Python (numpy's uint64 arithmetic wraps the same way). ``python -m benches.prf``
measures both: 57.8 -> 15.3 µs per 25-step segment of batch 32.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterator
from typing import Final

import numba
import numpy as np
from numba import njit

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


# blake2b-512 (RFC 7693 §2.6, §2.7, §3.2): initialisation vector and rotations; the message
# schedule SIGMA is written out in _compress's twelve rounds.
_IV: Final = np.array([
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
], dtype=np.uint64)
_IV.flags.writeable = False
_U64_MAX: Final = np.uint64(0xFFFFFFFFFFFFFFFF)
_ZERO64: Final = np.uint64(0)
# NUMBA_DISABLE_JIT=1 (numba sets the attribute from the environment at import).
_JIT_OFF: Final = bool(getattr(numba.config, "DISABLE_JIT", 0))
_LOW32: Final = np.uint64(0xFFFFFFFF)
_SH1, _SH16, _SH24, _SH32 = np.uint64(1), np.uint64(16), np.uint64(24), np.uint64(32)
_SH40, _SH48, _SH63 = np.uint64(40), np.uint64(48), np.uint64(63)
_KEY_BLOCK_BYTES: Final = np.uint64(128)
# The batch PRF's message, u64 step || u32 block, is 12 bytes: the final block's counter.
_BATCH_COUNTER: Final = np.uint64(128 + 12)


@njit(cache=True, nogil=True, inline="always")
def _mix(a, b, c, d, x, y):
    """The G function of RFC 7693 §3.1 on uint64 (rotations by 32, 24, 16, 63)."""
    a = a + b + x
    d = d ^ a
    d = (d >> _SH32) | (d << _SH32)
    c = c + d
    b = b ^ c
    b = (b >> _SH24) | (b << _SH40)
    a = a + b + y
    d = d ^ a
    d = (d >> _SH16) | (d << _SH48)
    c = c + d
    b = b ^ c
    b = (b >> _SH63) | (b << _SH1)
    return a, b, c, d


@njit(cache=True, nogil=True, inline="always")
def _round(v, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15):
    """One round of F (RFC 7693 §3.2): G on the columns, then on the diagonals; x = m permuted by SIGMA."""
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 = v
    v0, v4, v8, v12 = _mix(v0, v4, v8, v12, x0, x1)
    v1, v5, v9, v13 = _mix(v1, v5, v9, v13, x2, x3)
    v2, v6, v10, v14 = _mix(v2, v6, v10, v14, x4, x5)
    v3, v7, v11, v15 = _mix(v3, v7, v11, v15, x6, x7)
    v0, v5, v10, v15 = _mix(v0, v5, v10, v15, x8, x9)
    v1, v6, v11, v12 = _mix(v1, v6, v11, v12, x10, x11)
    v2, v7, v8, v13 = _mix(v2, v7, v8, v13, x12, x13)
    v3, v4, v9, v14 = _mix(v3, v4, v9, v14, x14, x15)
    return (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)


@njit(cache=True, nogil=True, inline="always")
def _compress(h, m, counter, last):
    """F of RFC 7693 §3.2: ``h`` (8 × uint64) updated in place by the 128-byte block ``m``
    (a tuple of 16 uint64, the block's little-endian words); ``counter`` is the byte count so
    far (< 2**64, so its high word is 0); ``last`` sets the final-block flag. The twelve
    rounds use SIGMA rows 0..9, 0, 1. Inlined, so words that are constant zeros (the batch
    message is 12 bytes) fold away."""
    v = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], _IV[0], _IV[1], _IV[2], _IV[3],
         _IV[4] ^ counter, _IV[5], _IV[6] ^ _U64_MAX if last else _IV[6], _IV[7])
    v = _round(v, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15])
    v = _round(v, m[14], m[10], m[4], m[8], m[9], m[15], m[13], m[6], m[1], m[12], m[0], m[2], m[11], m[7], m[5], m[3])
    v = _round(v, m[11], m[8], m[12], m[0], m[5], m[2], m[15], m[13], m[10], m[14], m[3], m[6], m[7], m[1], m[9], m[4])
    v = _round(v, m[7], m[9], m[3], m[1], m[13], m[12], m[11], m[14], m[2], m[6], m[5], m[10], m[4], m[0], m[15], m[8])
    v = _round(v, m[9], m[0], m[5], m[7], m[2], m[4], m[10], m[15], m[14], m[1], m[11], m[12], m[6], m[8], m[3], m[13])
    v = _round(v, m[2], m[12], m[6], m[10], m[0], m[11], m[8], m[3], m[4], m[13], m[7], m[5], m[15], m[14], m[1], m[9])
    v = _round(v, m[12], m[5], m[1], m[15], m[14], m[13], m[4], m[10], m[0], m[7], m[6], m[3], m[9], m[2], m[8], m[11])
    v = _round(v, m[13], m[11], m[7], m[14], m[12], m[1], m[3], m[9], m[5], m[0], m[15], m[4], m[8], m[6], m[2], m[10])
    v = _round(v, m[6], m[15], m[14], m[9], m[11], m[3], m[0], m[8], m[12], m[2], m[13], m[7], m[1], m[4], m[10], m[5])
    v = _round(v, m[10], m[2], m[8], m[4], m[7], m[6], m[1], m[5], m[15], m[11], m[9], m[14], m[3], m[12], m[13], m[0])
    v = _round(v, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15])
    v = _round(v, m[14], m[10], m[4], m[8], m[9], m[15], m[13], m[6], m[1], m[12], m[0], m[2], m[11], m[7], m[5], m[3])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


@functools.lru_cache(maxsize=64)
def _keyed_state(seed: bytes) -> np.ndarray:
    """blake2b-512 state after the key block, ``key=seed`` (32 bytes), ``person`` = batch's.

    RFC 7693 §2.5: parameter word 0 is digest length | key length << 8 | fanout 1 << 16 |
    depth 1 << 24; the personalisation (16 bytes, zero-padded) is XORed into h[6], h[7];
    the key, zero-padded to 128 bytes, is the first block. Per job seed, hence cached
    (read-only: the batch function copies it per block).
    """
    h = _IV.copy()
    h[0] ^= np.uint64(64 | (len(seed) << 8) | (1 << 16) | (1 << 24))
    person = np.frombuffer(_PERSON_BATCH.ljust(16, b"\0"), dtype="<u8")
    h[6] ^= person[0]
    h[7] ^= person[1]
    key = np.frombuffer(seed.ljust(128, b"\0"), dtype="<u8").astype(np.uint64)
    with np.errstate(over="ignore"):  # uint64 adds wrap by design (as Python, with the JIT off)
        _key_block(h, key)
    h.flags.writeable = False
    return h


@njit(cache=True, nogil=True)
def _key_block(h, key):
    """Compress the padded key block (16 words), which is never the last block here."""
    m = (key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
         key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15])
    _compress(h, m, _KEY_BLOCK_BYTES, False)


@njit(cache=True, nogil=True)
def _batch_rows(hk, first_step, num_steps, batch, n, limit):
    """out[r*batch + i] = the i-th accepted word (< limit) of step first_step + r's word
    stream, mod n: the stream's blocks are taken in order, as many as the batch needs.

    Block b of step t is blake2b(key=seed, person=bat, u64 t || u32 b): one compression from
    the keyed state ``hk`` of the block whose words are t, b and fourteen zeros; its digest is
    sixteen u32 words, little-endian (the low then the high half of each state word). A
    rejected word is skipped here, in compiled code: a step with one was redone from the
    stream in Python, about 5 ms at a batch of 4,096, and a data set size chosen to make most
    steps reject one (n = 1,048,321) made a cheap TRAIN call cost every validator a minute
    (an outside tester's finding). Same words, same order, same indices.
    """
    out = np.empty(num_steps * batch, dtype=np.int64)
    h = np.empty(8, dtype=np.uint64)
    nn = np.uint32(n)
    lim = np.uint64(limit)
    for r in range(num_steps):
        t = np.uint64(first_step + r)
        row = r * batch
        filled = 0
        b = 0
        while filled < batch:
            for i in range(8):
                h[i] = hk[i]
            m = (t, np.uint64(b), _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64,
                 _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64, _ZERO64)
            _compress(h, m, _BATCH_COUNTER, True)
            for i in range(8):
                lo = h[i] & _LOW32
                hi = h[i] >> _SH32
                if filled < batch and lo < lim:
                    out[row + filled] = np.int64(np.uint32(lo) % nn)
                    filled += 1
                if filled < batch and hi < lim:
                    out[row + filled] = np.int64(np.uint32(hi) % nn)
                    filled += 1
            b += 1
    return out


def batch_indices(seed: bytes, first_step: int, num_steps: int, n: int, batch: int) -> np.ndarray:
    """Row indices of steps ``first_step .. first_step+num_steps-1``, flattened (int64).

    Step t's batch is the first ``batch`` accepted words of the batch PRF at counter t (rows
    drawn with replacement), all computed by the compiled blake2b (:func:`_batch_rows`).
    """
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise InvalidJob(f"batch seed must be exactly 32 bytes, got {_describe_bytes(seed)}")
    if not 1 <= n <= MAX_POPULATION:
        raise InvalidJob(f"dataset has {n} rows; the batch PRF supports 1..{MAX_POPULATION}")
    limit = _accept_limit(n)
    if num_steps <= 0 or batch <= 0:
        return np.empty(max(num_steps, 0) * max(batch, 0), dtype=np.int64)
    if _JIT_OFF:  # run as Python: numpy's uint64 adds wrap, and warn
        with np.errstate(over="ignore"):
            out: np.ndarray = _batch_rows(_keyed_state(seed), first_step, num_steps, batch, n, limit)
            return out
    out = _batch_rows(_keyed_state(seed), first_step, num_steps, batch, n, limit)
    return out


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
