"""chain.fraud.read_fraud_proof_header: a fraud proof's header read without a parse of the rest.

A node tells whether it can judge a gossiped proof (its block's parent state is here) from the
header alone, before the proof is hashed or anything after its header parsed: a last field of
2.3 million one-byte integers cost 7 ms to skip (node.network.sync's admit_fraud_proof). Each
refusal's reason and message are asserted exactly (mutmut: `mutmut run
"chain.fraud.x_read_fraud_proof_header*" "chain.fraud.x__check_opening*"`; 2026-12-01, every
mutant killed but the equivalent ones named below).
"""

from __future__ import annotations

import msgspec
import pytest

from chain.calls import Train
from chain.codec import CODEC_VERSION, encode
from chain.crypto import dev_keypair
from chain.errors import InvalidFraudProof
from chain.extrinsic import MAX_EXTRINSIC_SIZE, Era, sign_extrinsic
from chain.fraud import (
    _FIELDS,
    MAX_FRAUD_PROOF_SIZE,
    MAX_HEAD_ELEMENTS,
    MAX_HEAD_SIZE,
    MAX_HEADER_SIZE,
    read_fraud_proof_head,
    read_fraud_proof_header,
)
from chain.header import Header, compute_largest_header
from chain.proofs import MAX_PATH_LENGTH

HEADER = Header(bytes(range(32)), 7, bytes(32), bytes([1]) * 32, 99, bytes([2]) * 32, (), bytes([3]) * 64)
OPENING = bytes((CODEC_VERSION, 0x90 + _FIELDS))


def proof_with(header_bytes: bytes, rest: bytes = b"\xc1" * 12) -> bytes:
    """A proof's opening, a header's bytes, and a rest that is not MessagePack at all."""
    return OPENING + header_bytes + rest


def refusal(data: bytes, max_size: int = MAX_FRAUD_PROOF_SIZE) -> tuple[str, str]:
    with pytest.raises(InvalidFraudProof) as refused:
        read_fraud_proof_header(data, max_size)
    return refused.value.reason, str(refused.value)


def test_the_header_is_read_and_the_rest_never_parsed() -> None:
    assert _FIELDS == 13
    assert read_fraud_proof_header(proof_with(encode(HEADER))) == HEADER
    largest = compute_largest_header()
    assert len(encode(largest)) == MAX_HEADER_SIZE - 1  # (the bound counts a version byte)
    assert read_fraud_proof_header(proof_with(encode(largest), msgspec.msgpack.encode([0] * 100_000))) == largest
    # At the size bound it is read; one byte over, refused before anything is read.
    data = proof_with(encode(HEADER))
    assert read_fraud_proof_header(data, len(data)) == HEADER
    assert refusal(data, len(data) - 1) == ("oversize", f"fraud proof is {len(data)} bytes; the limit is {len(data) - 1}")


def test_an_opening_that_is_not_a_proofs_is_malformed() -> None:
    message = f"not a fraud proof: a proof opens with version {CODEC_VERSION} and an array of 13"
    for data in (b"", OPENING[:1], bytes((CODEC_VERSION + 1,)) + OPENING[1:] + encode(HEADER),
                 OPENING[:1] + bytes((0x9C,)) + encode(HEADER), OPENING[:1] + bytes((0x9E,)) + encode(HEADER)):
        assert refusal(data) == ("malformed", message), data[:3].hex()
    # The opening alone is a proof's, with no header after it.
    assert refusal(OPENING) == ("malformed", f"FraudProof: its header: the element at byte 2 runs past byte 2 "
                                             f"(its limit is {MAX_HEADER_SIZE} bytes)")


def test_a_header_that_is_cut_too_long_or_not_canonical_is_malformed() -> None:
    header = encode(HEADER)
    assert refusal(OPENING + header[:-1]) == ("malformed", f"FraudProof: its header: the element at byte 2 runs past byte "
                                                           f"{len(OPENING) + len(header) - 1} (its limit is {MAX_HEADER_SIZE} bytes)")
    # A header whose seal claims more bytes than any header may hold: refused at the limit.
    long_seal = header[: header.index(bytes([3]) * 64) - 2] + b"\xc5\xff\xff" + bytes(70_000)
    assert refusal(OPENING + long_seal) == ("malformed", f"FraudProof: its header: the element at byte 2 runs past byte "
                                                         f"{2 + MAX_HEADER_SIZE} (its limit is {MAX_HEADER_SIZE} bytes)")
    wide_number = header[:35] + b"\xcc" + header[35:]  # 7 as a uint8: MessagePack, not the canonical form
    assert header[35] == 7  # (after the array byte and the parent hash's 34)
    assert refusal(proof_with(wide_number)) == ("malformed", "FraudProof: its header: Header: bytes are not in canonical form")
    head = msgspec.msgpack.encode([0]) + b"\x00\x01\x90"  # an extrinsic (as bytes here), index, count, an empty path
    assert read_fraud_proof_head(proof_with(header, head)).header == HEADER
    with pytest.raises(InvalidFraudProof, match=r"^FraudProof: its header is not in canonical form$") as refused:
        read_fraud_proof_head(proof_with(wide_number, head))  # (msgspec reads the uint8 as 7)
    assert refused.value.reason == "malformed"
    assert refusal(proof_with(b"\x93\x01\x02\x03"))[0] == "malformed"  # an array, not a header's


def test_max_head_elements_is_the_most_a_true_proofs_head_holds() -> None:
    """The largest header (an array, 7 fields, 8 digest logs of 3 fields: 41), a signed TRAIN
    with every optional field set (an array, 4 fields, an era of 2, a call of its tag and 11
    fields: 21), the extrinsic's index and count (2), a path of 32 hashes (33): 97. Such a
    head is read; the proof's own array is not counted, as it is not read."""
    assert MAX_HEAD_ELEMENTS == 41 + 21 + 2 + 33
    train = Train(2**32 - 1, 0, 1, 1, 0, 0, 1, 0, 2**63 - 1, 2**63 - 1, 0)
    xt = sign_extrinsic(dev_keypair("Bob"), train, nonce=2**32 - 1, era=Era(2**32 - 1, 2**32 - 1), genesis_hash=bytes(32), spec_version=1)
    path = msgspec.msgpack.encode([bytes(32)] * MAX_PATH_LENGTH)
    largest = compute_largest_header()
    head = read_fraud_proof_head(proof_with(encode(largest), encode(xt) + b"\x00\x01" + path + b"\xc1" * 8))
    assert (head.header, bytes(head.extrinsic), head.extrinsic_path) == (largest, encode(xt), (bytes(32),) * MAX_PATH_LENGTH)


def test_a_head_is_read_no_further_than_a_true_heads_bytes() -> None:
    """A head of few elements but many bytes (an extrinsic of one bin past the largest
    extrinsic) is refused at MAX_HEAD_SIZE, before it is copied or its extrinsic hashed; the
    largest true sizes are read."""
    header, path = encode(compute_largest_header()), msgspec.msgpack.encode([bytes(32)] * MAX_PATH_LENGTH)
    assert len(header) + 1 + MAX_EXTRINSIC_SIZE + 2 * 5 + len(path) == MAX_HEAD_SIZE  # (the header's bound counts a version byte)
    tail = b"\xce" + bytes(4) + b"\xce" + bytes(4) + path  # index and count as u32s, the path
    fits = MAX_HEAD_SIZE - len(header) - len(tail)
    xt = msgspec.msgpack.encode(bytes(fits - 5))  # (a bin 32's head: 5 bytes)
    assert len(xt) == fits
    assert bytes(read_fraud_proof_head(proof_with(header, xt + tail + b"\xc1")).extrinsic) == xt
    xt = msgspec.msgpack.encode(bytes(fits - 4))
    with pytest.raises(InvalidFraudProof, match=f"^FraudProof: its head: the element at byte 2 runs past byte {2 + MAX_HEAD_SIZE} "):
        read_fraud_proof_head(proof_with(header, xt + tail + b"\xc1"))


def _count(data: bytes) -> int:
    """The MessagePack elements of ``data``: an array is one and its items (no maps here)."""

    def count(value: object) -> int:
        return 1 + sum(map(count, value)) if isinstance(value, list) else 1

    return count(msgspec.msgpack.decode(data))


def test_a_head_is_read_no_further_than_a_true_heads_elements() -> None:
    """The header is read without the rest (a tail nested 5,000 deep is never looked at), and
    the head no further than the most elements a true proof's head holds (MAX_HEAD_ELEMENTS:
    the largest header, a TRAIN extrinsic, a full path). msgspec's read of the head parsed
    the rest to skip it: nested 5,000 deep, its RecursionError escaped every handler (an
    outside tester's AE1, retest35); 3 MB of one-byte integers cost 7 ms (AF3, retest36)."""
    data = proof_with(encode(HEADER), b"\x91" * 5000 + b"\xc0" * 12)
    assert read_fraud_proof_header(data) == HEADER
    with pytest.raises(InvalidFraudProof, match=rf"^FraudProof: its head: the element at byte 2 holds more than {MAX_HEAD_ELEMENTS} elements$") as refused:
        read_fraud_proof_head(data)
    assert refused.value.reason == "malformed"
    # A head of exactly that many elements is read; one more, refused. The extrinsic is read
    # as bytes here: an array of fixints makes up the count (the header's and the path's own
    # elements around it).
    header, path = encode(HEADER), msgspec.msgpack.encode([bytes(32)] * 3)
    fixed = _count(header) + 1 + 2 + _count(path)  # the header, the extrinsic's array, index and count, the path
    for extra, refused_at in ((0, None), (1, MAX_HEAD_ELEMENTS)):
        xt = msgspec.msgpack.encode([0] * (MAX_HEAD_ELEMENTS - fixed + extra))
        proof = proof_with(header, xt + b"\x00\x03" + path + b"\xc1" * 8)
        if refused_at is None:
            head = read_fraud_proof_head(proof)
            assert (head.header, bytes(head.extrinsic), head.extrinsic_index, head.extrinsic_count) == (HEADER, xt, 0, 3)
        else:
            with pytest.raises(InvalidFraudProof, match=f"holds more than {refused_at} elements$"):
                read_fraud_proof_head(proof)
