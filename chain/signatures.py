"""A block's extrinsic signatures, checked in bulk and off the GIL.

Why
---
An ed25519 verification costs about 65 us in libsodium and a few us of Python around it.
PyNaCl releases the GIL for the libsodium call only, so a thread that verifies signatures
one call at a time needs the GIL back after every one; while the importing thread runs the
runtime (pure Python) it gets it only when that thread is forced to yield, every
``sys.getswitchinterval()`` (5 ms): one signature per 5 ms. That is why a second signature
thread made import no faster (docs/performance.md: 0.32 of the two-core ceiling). Here the
signing messages are built once, on the importing thread, and packed into arrays; a numba
kernel compiled ``nogil`` then calls libsodium's ``crypto_sign_verify_detached`` for a whole
range without touching the GIL, so a worker thread verifies while the importing thread
executes the block, and the importing thread joins in once it is done.

Same verdict as ``nacl.signing.VerifyKey(public).verify(message, signature)`` (what
``chain.crypto.verify_signature`` does): PyNaCl calls libsodium's ``crypto_sign_open``,
which runs the same check as ``crypto_sign_verify_detached`` (libsodium
``crypto_sign/ed25519/ref10/open.c``: both call ``_crypto_sign_ed25519_verify_detached``
with ``prehashed = 0``), on the library PyNaCl itself loaded (``nacl._sodium``, initialised
by PyNaCl's import). A public key that is not 32 bytes, or a signature that is not 64, is
bad, as VerifyKey refuses it; a decoded extrinsic cannot have either (chain.codec bounds).

Work sharing
------------
The extrinsics are split into one contiguous range per worker thread. A worker verifies its
range from the front, the importing thread (when :meth:`SignatureBatch.finish` is called)
from the back of each range in turn, and each side stops where the other has been:
``progress[r] = (front, back)`` records that every index below ``front`` (from ``lo``) and
every index from ``back`` (to ``hi``) is verified. Each side writes its own counter after a
verification and reads the other's before one; a stale read only makes a side verify an
index the other also verifies (the same verdict, written twice), never skip one. So no core
idles whichever side is slower, and no lock is taken per signature.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Final

import llvmlite.binding
import nacl._sodium
import nacl.bindings  # its import runs sodium_init(), which libsodium needs before any call
import numba
import numpy as np
from numba import njit, types

from chain.extrinsic import SigningPayload, compute_signing_message

if TYPE_CHECKING:
    from chain.extrinsic import Extrinsic

__all__ = ["SignatureBatch", "find_bad_signature", "warm_up"]

# int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
#                                 unsigned long long mlen, const unsigned char *pk);
# from libsodium as PyNaCl loaded it.
_verify_detached: Any
if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]  # kernels run as Python: by ctypes
    _c_verify = ctypes.CDLL(nacl._sodium.__file__).crypto_sign_verify_detached
    _c_verify.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_void_p)
    _c_verify.restype = ctypes.c_int

    def _verify_detached(sig: int, message: int, length: int, key: int) -> int:
        return int(_c_verify(int(sig), int(message), int(length), int(key)))
else:
    # Its symbols resolved by name when numba links the kernels, so the compiled kernels can
    # be cached on disk (a raw function address could not). Pointers passed as uintp: the
    # same registers and width on every 64-bit ABI numba targets.
    llvmlite.binding.load_library_permanently(nacl._sodium.__file__)
    _verify_detached = types.ExternalFunction(
        "crypto_sign_verify_detached", types.int32(types.uintp, types.uintp, types.uint64, types.uintp)
    )

_START_TIMEOUT: Final = 0.01  # seconds :meth:`SignatureBatch.start` waits for each worker to start

#: Verdicts in ``SignatureBatch.verdicts``.
UNCHECKED: Final = 2
GOOD: Final = 0
MALFORMED: Final = -2  # a key or signature of the wrong length: bad without a check
# libsodium returns -1 for a signature that does not verify.


@njit(nogil=True, cache=True)
def _verify_forward(sigs, keys, messages, offsets, verdicts, progress, r, lo, hi):
    """Verify ``lo..hi-1`` upwards until the back of range ``r`` is reached."""
    base = messages.ctypes.data
    for i in range(lo, hi):
        if i >= progress[r, 1]:
            break
        if verdicts[i] == UNCHECKED:
            start = offsets[i]
            verdicts[i] = _verify_detached(sigs[i].ctypes.data, base + start, offsets[i + 1] - start, keys[i].ctypes.data)
        progress[r, 0] = i + 1


@njit(nogil=True, cache=True)
def _verify_backward(sigs, keys, messages, offsets, verdicts, progress, bounds):
    """Verify every range downwards from its back until its front is reached."""
    base = messages.ctypes.data
    for r in range(bounds.shape[0]):
        for i in range(bounds[r, 1] - 1, bounds[r, 0] - 1, -1):
            if i < progress[r, 0]:
                break
            if verdicts[i] == UNCHECKED:
                start = offsets[i]
                verdicts[i] = _verify_detached(sigs[i].ctypes.data, base + start, offsets[i + 1] - start, keys[i].ctypes.data)
            progress[r, 1] = i


class SignatureBatch:
    """The signatures of ``extrinsics`` (signed for ``genesis_hash`` and ``spec_version``),
    packed for the kernels; :meth:`start` hands ranges to worker threads, :meth:`finish`
    verifies what is left on the calling thread and returns the first bad index."""

    def __init__(self, extrinsics: Sequence[Extrinsic], genesis_hash: bytes, spec_version: int) -> None:
        n = len(extrinsics)
        messages = [
            compute_signing_message(SigningPayload(xt.call, xt.nonce, xt.tip, xt.era, genesis_hash, spec_version))
            for xt in extrinsics
        ]
        self.verdicts = np.full(n, UNCHECKED, dtype=np.int32)
        signatures, keys = [xt.signature for xt in extrinsics], [xt.signer for xt in extrinsics]
        for i, (signature, key) in enumerate(zip(signatures, keys, strict=True)):
            if not isinstance(signature, bytes) or len(signature) != 64 or not isinstance(key, bytes) or len(key) != 32:
                self.verdicts[i] = MALFORMED
                signatures[i], keys[i] = bytes(64), bytes(32)
        self._sigs = np.frombuffer(b"".join(signatures), dtype=np.uint8).reshape(n, 64)
        self._keys = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(n, 32)
        # One spare byte: the data pointer of an empty message stays inside the buffer.
        self._messages = np.frombuffer(b"".join(messages) + b"\0", dtype=np.uint8)
        self._offsets = np.fromiter(accumulate(map(len, messages), initial=0), dtype=np.int64, count=n + 1)
        self._bounds = np.array([[0, n]], dtype=np.int64)
        self._progress = self._bounds.copy()
        self._futures: list[Future[None]] = []

    def __len__(self) -> int:
        return len(self.verdicts)

    def start(self, pool: ThreadPoolExecutor, workers: int, *, wait: bool = True) -> None:
        """Give each of ``workers`` threads of ``pool`` one contiguous range (call once, first).

        ``wait=False`` returns at once: for a batch queued behind another block's on busy
        threads (Blockchain.start_signatures_ahead), whose threads would not start within the
        wait anyway; they take it up as they finish the earlier batch, whose :meth:`finish`
        leaves the GIL free meanwhile."""
        n = len(self)
        edges = [n * w // workers for w in range(workers + 1)]
        self._bounds = np.array([[edges[w], edges[w + 1]] for w in range(workers)], dtype=np.int64)
        self._progress = self._bounds.copy()
        started = [threading.Event() for _ in range(workers)]
        self._futures = [pool.submit(self._forward, r, started[r]) for r in range(workers)]
        # Wait, without the GIL, until each worker is past the Python it needs the GIL for: a
        # worker woken while this thread runs Python would otherwise wait for the GIL to be
        # forced over (sys.getswitchinterval(), 5 ms; measured 8 ms on a loaded machine).
        # A worker that is not scheduled within the timeout simply starts later.
        if wait:
            for event in started:
                event.wait(_START_TIMEOUT)

    def cancel(self) -> None:
        """Make the worker threads stop at their next signature (a batch no import will claim).

        Their verdicts so far stay, and :meth:`finish` would still verify the rest on the
        calling thread: each range's back is moved down to its front, which a worker reads
        before every verification, as it reads the importing thread's progress."""
        self._progress[:, 1] = self._bounds[:, 0]

    def _forward(self, r: int, started: threading.Event) -> None:
        lo, hi = self._bounds[r]
        started.set()
        _verify_forward(self._sigs, self._keys, self._messages, self._offsets, self.verdicts, self._progress, r, lo, hi)

    def finish(self) -> int | None:
        """Verify what the workers have not reached, wait for them; the lowest bad index, or None."""
        _verify_backward(self._sigs, self._keys, self._messages, self._offsets, self.verdicts, self._progress, self._bounds)
        for future in self._futures:
            future.result()
        bad = np.flatnonzero(self.verdicts != GOOD)
        return int(bad[0]) if len(bad) else None


def find_bad_signature(extrinsics: Sequence[Extrinsic], genesis_hash: bytes, spec_version: int) -> int | None:
    """The index of the first extrinsic whose signature is bad, or None (on this thread)."""
    if not extrinsics:
        return None
    return SignatureBatch(extrinsics, genesis_hash, spec_version).finish()


def warm_up() -> None:
    """Load (or compile, the first time on a machine) both kernels now rather than on the
    first block: about 0.2 s with numba's on-disk cache, a few seconds without."""
    sig, key, message = bytes(64), bytes(32), b"\0"
    offsets = np.array([0, 1], dtype=np.int64)
    bounds = np.array([[0, 1]], dtype=np.int64)
    sigs, keys = np.frombuffer(sig, dtype=np.uint8).reshape(1, 64), np.frombuffer(key, dtype=np.uint8).reshape(1, 32)
    messages = np.frombuffer(message, dtype=np.uint8)
    verdicts = np.full(1, GOOD, dtype=np.int32)  # nothing left unchecked: no libsodium call
    _verify_forward(sigs, keys, messages, offsets, verdicts, bounds.copy(), 0, 0, 1)
    _verify_backward(sigs, keys, messages, offsets, verdicts, bounds.copy(), bounds)
