"""chain.signatures: the bulk, GIL-free check gives PyNaCl's verdict on every signature."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import msgspec
import numba
import pytest
from chainkit import ALICE, BOB

from chain import calls
from chain.errors import ChainError
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.signatures import GOOD, UNCHECKED, SignatureBatch, find_bad_signature

GENESIS = bytes(range(32))
SPEC = 3
# The order of the ed25519 group, little-endian: a signature whose S is not below it is not
# canonical, and libsodium refuses it (RFC 8032 §5.1.7).
ORDER = (2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little")


def _xt(nonce: int, data: bytes = b"x") -> Extrinsic:
    return sign_extrinsic(ALICE, calls.Remark(data), nonce=nonce, genesis_hash=GENESIS, spec_version=SPEC)


def _pynacl_good(xt: Extrinsic) -> bool:
    try:
        xt.verify_signature(GENESIS, SPEC)
    except ChainError:  # InvalidTransaction; a 31-byte key fails in the message's address
        return False
    return True


def _cases() -> list[Extrinsic]:
    good = _xt(0)
    long_payload = _xt(1, bytes(300))  # a payload over 256 bytes is signed through its hash
    return [
        good,
        long_payload,
        msgspec.structs.replace(good, nonce=7),  # the message changed
        msgspec.structs.replace(good, signer=BOB.public),  # another key
        msgspec.structs.replace(good, signature=good.signature[:32] + ORDER),  # S not canonical
        msgspec.structs.replace(good, signer=bytes(32)),  # a small-order key
        msgspec.structs.replace(good, signature=bytes(64)),
        msgspec.structs.replace(long_payload, signature=good.signature),
        msgspec.structs.replace(good, signer=ALICE.public[:31]),  # built in Python: wrong lengths
        msgspec.structs.replace(good, signature=good.signature + b"\0"),
        _xt(2),
    ]


def test_each_verdict_is_pynacls() -> None:
    cases = _cases()
    for xt in cases:
        assert (find_bad_signature([xt], GENESIS, SPEC) is None) == _pynacl_good(xt), xt
    assert [_pynacl_good(xt) for xt in cases] == [True, True] + [False] * 8 + [True]
    assert find_bad_signature(cases, GENESIS, SPEC) == 2
    assert find_bad_signature([], GENESIS, SPEC) is None
    assert find_bad_signature([cases[0], cases[1], cases[-1]], GENESIS, SPEC) is None
    # the same signature under another chain's genesis hash or spec version does not verify
    assert find_bad_signature([cases[0]], bytes(32), SPEC) == 0
    assert find_bad_signature([cases[0]], GENESIS, SPEC + 1) == 0


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_shared_ranges_check_every_signature_once_or_more(workers: int) -> None:
    cases = _cases() * 9
    serial = SignatureBatch(cases, GENESIS, SPEC)
    assert serial.finish() == 2
    with ThreadPoolExecutor(workers) as pool:
        batch = SignatureBatch(cases, GENESIS, SPEC)
        batch.start(pool, workers)
        assert batch.finish() == 2
    assert UNCHECKED not in batch.verdicts
    assert ((batch.verdicts == GOOD) == (serial.verdicts == GOOD)).all()
    assert [v == GOOD for v in batch.verdicts] == [_pynacl_good(xt) for xt in cases]


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: the kernels run as Python, under the GIL")
def test_a_cancelled_batch_stops_its_workers_and_finish_still_checks_the_rest() -> None:
    xts = [_xt(n) for n in range(1500)]  # ~100 ms of signatures: the worker is far from done when cancelled
    xts[1400] = msgspec.structs.replace(xts[1400], nonce=1)  # the message changed: bad
    with ThreadPoolExecutor(1) as pool:
        batch = SignatureBatch(xts, GENESIS, SPEC)
        batch.start(pool, 1)  # waits until the worker runs
        batch.cancel()
        batch._futures[0].result(timeout=10)  # the worker returns without reaching the end
        left = int((batch.verdicts == UNCHECKED).sum())
        assert left > 0
        assert batch.finish() == 1400  # the calling thread verifies what is left, the bad one too
    assert UNCHECKED not in batch.verdicts
