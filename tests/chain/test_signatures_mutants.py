"""Mutation testing of chain/signatures.py: the block's signature batch.

Run by name, twice, because mutmut never mutates a decorated function (it would have to copy
the decorator) and so leaves the two ``@njit`` kernels alone:

1. the module as it is, JIT on (``rm -rf mutants && mutmut run "chain.signatures*"
   --max-children 2``; the module is in ``[tool.mutmut] only_mutate``): everything but the
   kernels, with warm_up's compiled versions checked;
2. the kernels too, in a scratch copy of the checkout with the two decorator lines deleted,
   under ``NUMBA_DISABLE_JIT=1`` (the kernels then run as Python and call libsodium through
   the module's ctypes path)::

       sed -i 's/^@njit(nogil=True, cache=True)$//' chain/signatures.py
       rm -rf mutants && NUMBA_DISABLE_JIT=1 mutmut run "chain.signatures*" --max-children 2

Scores measured with ``pytest_add_cli_args_test_selection`` narrowed to the fast tests of
the three modules mutation-tested together (tests/chain/test_signatures.py,
test_signatures_mutants.py, test_trie.py, test_trie_mutants.py, test_state.py,
tests/ml_runtime/test_mlrt_transcript.py, test_transcript_mutants.py; the configured
selection holds them and more, which can only kill more). Before these tests (run 2) 218 of 336 mutants were
caught, 26 lived and 92 had no test (warm_up had none; cancel's only test needs the JIT):
among them a worker that started its range at 0 or stopped one index late or early, a
worker writing the importing thread's counter, the importing thread abandoning every range
after the first it found done, ``start``'s ranges overlapping, and a wait on workers that
could not start that never returned. None let a bad signature in (``finish`` re-checks what
a worker missed, and an unchecked verdict counts as bad), but each broke the work sharing, and
the abandoned ranges would have refused a good block whose workers were cancelled.
Now 313/336 over both runs (run 1: 249/272; run 2: 302/336, 2 of them by a segfault), no
defect found. The kernels are tested by calling them directly with a given ``progress``,
the work sharing with real threads (a pool whose threads are held busy decides when a
worker runs), forged signatures (a genuine signature of the same signer over another of its
extrinsics) at the first, the last and both sides of every range edge with 1, 2 and 3
workers.

The 23 survivors are equivalent:

- ``_verify_forward``: ``break`` -> ``return`` (nothing follows the loop).
- ``_verify_backward``: the range's lower end ``bounds[r, 0] - 2`` for ``- 1``: the one extra
  step is below the range's front, where ``i < progress[r, 0]`` breaks before any check (a
  front never falls below its range's start).
- ``__init__``: ``zip(..., strict=True)`` to ``None``/``False``/dropped (3; both lists are
  built from the same extrinsics); ``np.fromiter``'s ``count`` dropped (a size hint); the
  bounds' ``dtype=np.int64`` to ``None`` or dropped (2; numpy's default integer, int64 on
  the 64-bit platforms numba supports).
- ``start``: ``n * w / workers`` for ``//`` (the exact quotient's float, below 2**53,
  truncated to int64 is its floor); ``range(workers + 2)`` (one more edge, never read); the
  bounds' dtype to ``None`` or dropped (2; as above).
- ``warm_up`` (11): the values of its dummy arrays and arguments (the message bytes, the
  offsets, the bounds, a second verdict, ``lo``/``hi``) and ``dtype=np.int64`` dropped where
  numpy's default is int64: every verdict is GOOD, so nothing is verified whatever the
  values, and the compiled versions depend on the types only. Two more (the bounds
  ``[[0, 2]]``, range ``r = 1``) read past an array: compiled numba does not check indices
  and they live in run 1; numpy's IndexError kills them in run 2.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import msgspec
import numba
import numpy as np
import pytest
from chainkit import ALICE, BOB

from chain import calls, signatures
from chain.extrinsic import Extrinsic, SigningPayload, compute_signing_message, sign_extrinsic
from chain.signatures import (
    GOOD,
    MALFORMED,
    UNCHECKED,
    SignatureBatch,
    _verify_backward,
    _verify_forward,
    find_bad_signature,
    warm_up,
)

GENESIS = bytes(range(32))
SPEC = 3
BAD = -1  # libsodium's verdict for a signature that does not verify
N = 13  # not a multiple of 2 or 3: the ranges of 2 and 3 workers differ in length


def _xt(nonce: int, key=ALICE) -> Extrinsic:
    # Messages of different lengths (one over 256 bytes, signed through its hash): a kernel
    # that read the wrong message length or offset would fail a good signature.
    data = bytes(nonce % 4 * 100)
    return sign_extrinsic(key, calls.Remark(data), nonce=nonce, genesis_hash=GENESIS, spec_version=SPEC)


GOODS = [_xt(n, ALICE if n % 2 else BOB) for n in range(N)]


def _forged(i: int) -> Extrinsic:
    """The strongest forgery at ``i``: a genuine signature by the same signer, made for
    another of its extrinsics (a replayed signature over the wrong message)."""
    other = next(j for j in range(N) if j != i and GOODS[j].signer == GOODS[i].signer)
    return msgspec.structs.replace(GOODS[i], signature=GOODS[other].signature)


def _with_bad(*bad: int) -> list[Extrinsic]:
    return [_forged(i) if i in bad else xt for i, xt in enumerate(GOODS)]


def _expected(*bad: int) -> list[int]:
    return [BAD if i in bad else GOOD for i in range(N)]


def _kernel_args(batch: SignatureBatch) -> tuple:
    return batch._sigs, batch._keys, batch._messages, batch._offsets, batch.verdicts


class _Blocked:
    """A real pool whose threads are all busy until :meth:`release`: the batch's work waits
    in the pool's queue, so a test decides when the workers run."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)
        self.gate = threading.Event()
        self.busy = [self.pool.submit(self.gate.wait) for _ in range(workers)]

    def release(self) -> None:
        self.gate.set()
        for future in self.busy:
            future.result(timeout=10)

    def __enter__(self) -> _Blocked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.pool.shutdown(wait=True)


# --- the kernels, called directly: each side stops exactly where the other has been -----------


def test_forward_verifies_its_range_up_to_the_back_and_records_its_front() -> None:
    """Range 1 of [[0, 5], [5, 13]] whose back has come down to 9: the worker verifies 5..8,
    not 9 (the other side's) nor anything of range 0, and records its front as 9."""
    batch = SignatureBatch(_with_bad(7), GENESIS, SPEC)
    bounds = np.array([[0, 5], [5, N]], dtype=np.int64)
    progress = bounds.copy()
    progress[1, 1] = 9
    _verify_forward(*_kernel_args(batch), progress, 1, 5, N)
    assert batch.verdicts.tolist() == [UNCHECKED] * 5 + [GOOD, GOOD, BAD, GOOD] + [UNCHECKED] * 4
    assert progress.tolist() == [[0, 5], [9, 9]]


def test_forward_runs_to_its_end_and_keeps_verdicts_already_given() -> None:
    """With the back untouched the worker goes to ``hi``; an index already given a verdict
    (by the other side, or MALFORMED) is not verified again: its verdict stays."""
    batch = SignatureBatch(_with_bad(0, 3), GENESIS, SPEC)
    batch.verdicts[3] = GOOD  # as if the other side had verified it (it is bad: a re-check shows)
    batch.verdicts[4] = MALFORMED
    progress = np.array([[0, N]], dtype=np.int64)
    _verify_forward(*_kernel_args(batch), progress, 0, 0, N)
    assert batch.verdicts.tolist() == [BAD, GOOD, GOOD, GOOD, MALFORMED] + [GOOD] * (N - 5)
    assert progress.tolist() == [[N, N]]


def test_backward_verifies_each_range_down_to_its_front_and_goes_on_to_the_next() -> None:
    """Ranges [[0, 4], [4, 8], [8, 13]]: range 0's worker is at 2, range 1's is done, range 2's
    has not started. The importing thread verifies 3, 2, then nothing of range 1, then all of
    range 2 (a stop in range 0 or 1 must not end the whole pass), recording each back."""
    batch = SignatureBatch(_with_bad(2, 8, 12), GENESIS, SPEC)
    bounds = np.array([[0, 4], [4, 8], [8, N]], dtype=np.int64)
    progress = bounds.copy()
    progress[0, 0] = 2
    progress[1, 0] = 8
    _verify_backward(*_kernel_args(batch), progress, bounds)
    assert batch.verdicts.tolist() == [UNCHECKED, UNCHECKED, BAD, GOOD] + [UNCHECKED] * 4 + [BAD, GOOD, GOOD, GOOD, BAD]
    assert progress.tolist() == [[2, 2], [8, 8], [8, 8]]


# --- work sharing with real threads ------------------------------------------------------------


def _edge_cases() -> list[tuple[int, int]]:
    """(workers, bad index): the first and last index, and both sides of every range edge."""
    cases = set()
    for workers in (1, 2, 3):
        edges = [N * w // workers for w in range(workers + 1)]
        for bad in {0, N - 1, *(e for e in edges[1:-1]), *(e - 1 for e in edges[1:-1])}:
            cases.add((workers, bad))
    return sorted(cases)


@pytest.mark.parametrize(("workers", "bad"), _edge_cases())
def test_a_forged_signature_at_every_edge_is_found_with_1_2_and_3_workers(workers: int, bad: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        batch = SignatureBatch(_with_bad(bad), GENESIS, SPEC)
        batch.start(pool, workers)
        assert batch.finish() == bad
    assert batch.verdicts.tolist() == _expected(bad)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_first_of_several_bad_signatures_is_reported(workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        batch = SignatureBatch(_with_bad(5, 9, 12), GENESIS, SPEC)
        batch.start(pool, workers)
        assert batch.finish() == 5
        good = SignatureBatch(GOODS, GENESIS, SPEC)
        good.start(pool, workers)
        assert good.finish() is None
    assert batch.verdicts.tolist() == _expected(5, 9, 12)
    assert good.verdicts.tolist() == _expected()


def test_each_worker_gets_one_contiguous_range() -> None:
    """13 signatures over 3 workers: [0, 4), [4, 8), [8, 13) (``n * w // workers``)."""
    with _Blocked(3) as blocked:
        batch = SignatureBatch(GOODS, GENESIS, SPEC)
        batch.start(blocked.pool, 3, wait=False)
        assert batch._bounds.tolist() == [[0, 4], [4, 8], [8, 13]]
        assert batch._progress.tolist() == [[0, 4], [4, 8], [8, 13]]
        assert batch._bounds.dtype == np.int64 and batch._progress.dtype == np.int64
        blocked.release()
        assert batch.finish() is None


def test_a_cancelled_batch_leaves_its_workers_nothing_and_finish_verifies_all() -> None:
    """Cancelled before its workers run: each range's back is at its front, so a worker
    verifies no signature (not even its first); finish still verifies every one itself."""
    with _Blocked(2) as blocked:
        batch = SignatureBatch(_with_bad(0, 6), GENESIS, SPEC)
        batch.start(blocked.pool, 2, wait=False)
        batch.cancel()
        assert batch._progress.tolist() == [[0, 0], [6, 6]]
        blocked.release()
        for future in batch._futures:
            future.result(timeout=10)
        assert batch.verdicts.tolist() == [UNCHECKED] * N
        assert batch.finish() == 0
    assert batch.verdicts.tolist() == _expected(0, 6)


def test_start_on_busy_threads_returns_after_its_short_wait() -> None:
    """Workers that cannot start (every thread busy) do not hold up ``start``: it waits at
    most ``_START_TIMEOUT`` for each, then returns; the work runs when the threads free up."""
    with _Blocked(1) as blocked:
        batch = SignatureBatch(_with_bad(3), GENESIS, SPEC)
        done = threading.Event()
        caller = threading.Thread(target=lambda: (batch.start(blocked.pool, 1), done.set()))
        caller.start()
        returned = done.wait(10)
        blocked.release()
        caller.join(10)
        assert returned, "start waited for a worker that could not start"
        assert batch.finish() == 3


def test_start_waits_by_default_until_each_worker_has_begun(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default ``start`` returns once every worker runs (here: the thread frees up 0.2 s
    later, well within a long timeout), so the worker is not left waiting for the GIL."""
    monkeypatch.setattr(signatures, "_START_TIMEOUT", 60.0)
    with _Blocked(1) as blocked:
        batch = SignatureBatch(GOODS, GENESIS, SPEC)
        timer = threading.Timer(0.2, blocked.gate.set)
        timer.start()
        batch.start(blocked.pool, 1)
        assert batch._futures[0].running() or batch._futures[0].done()
        timer.join()
        assert batch.finish() is None


# --- malformed keys and signatures ---------------------------------------------------------------


def test_malformed_keys_and_signatures_are_bad_without_a_check() -> None:
    """Wrong lengths, and the right bytes in the wrong type (a bytearray or str is not bytes,
    as VerifyKey requires): MALFORMED, the others verified as usual."""
    good = GOODS[1]
    cases = [
        good,
        msgspec.structs.replace(good, signature=good.signature[:63]),
        msgspec.structs.replace(good, signature=good.signature + b"\0"),
        msgspec.structs.replace(good, signer=good.signer[:31]),
        msgspec.structs.replace(good, signer=good.signer + b"\0"),
        msgspec.structs.replace(good, signature=bytearray(good.signature)),
        msgspec.structs.replace(good, signer=bytearray(good.signer)),
        msgspec.structs.replace(good, signature=good.signature.hex()[:64]),
        msgspec.structs.replace(good, signer=good.signer.hex()[:32]),
        msgspec.structs.replace(good, signature=b""),
        good,
    ]
    batch = SignatureBatch(cases, GENESIS, SPEC)
    assert batch.verdicts.tolist() == [UNCHECKED] + [MALFORMED] * 9 + [UNCHECKED]
    assert batch.finish() == 1
    assert batch.verdicts.tolist() == [GOOD] + [MALFORMED] * 9 + [GOOD]
    assert find_bad_signature([good, cases[5]], GENESIS, SPEC) == 1
    assert find_bad_signature([cases[6], good], GENESIS, SPEC) == 0


def test_the_packed_arrays_have_the_types_the_kernels_were_compiled_for() -> None:
    """The kernels are compiled and cached on disk for exactly these types (another dtype
    would compile a second version on the first block); the messages carry one spare byte."""
    batch = SignatureBatch(GOODS, GENESIS, SPEC)
    messages = [
        compute_signing_message(SigningPayload(xt.call, xt.nonce, xt.tip, xt.era, GENESIS, SPEC)) for xt in GOODS
    ]
    assert batch.verdicts.dtype == np.int32 and batch.verdicts.shape == (N,)
    assert batch._offsets.dtype == np.int64
    assert batch._offsets.tolist() == [sum(map(len, messages[:i])) for i in range(N + 1)]
    assert batch._messages.tobytes() == b"".join(messages) + b"\0"
    assert batch._sigs.shape == (N, 64) and batch._keys.shape == (N, 32)
    assert batch._bounds.tolist() == [[0, N]] and batch._bounds.dtype == np.int64
    assert len(batch) == N
    assert find_bad_signature([], GENESIS, SPEC) is None


def test_warm_up_compiles_the_versions_a_batch_uses() -> None:
    """warm_up runs both kernels once, with nothing to verify; with the JIT on, a batch
    afterwards uses the versions it compiled (no second compilation on the first block)."""
    assert warm_up() is None
    if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
        return
    compiled = (list(_verify_forward.signatures), list(_verify_backward.signatures))
    assert len(compiled[0]) == 1 and len(compiled[1]) == 1
    with ThreadPoolExecutor(2) as pool:
        batch = SignatureBatch(_with_bad(4), GENESIS, SPEC)
        batch.start(pool, 2)
        assert batch.finish() == 4
    assert (list(_verify_forward.signatures), list(_verify_backward.signatures)) == compiled
