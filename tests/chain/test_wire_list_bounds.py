"""Every list a peer can send is bounded in items, not only in bytes (an outside tester's N1,
round 15): a list of one-byte items costs a decode per item, and a 16 MiB block response of
16.7 million losses cost a node about a second of its event loop and 270 MB before anything
could refuse it. The bounds are those no honest encoding can pass: a result's losses at
chain.config.MAX_SEGMENTS + 1 (a config above is refused: tests/genesis/test_chain_spec.py),
an audit path at MAX_PATH_LENGTH (a tree of at most 2**32 leaves), a fraud proof's openings
at two; a block body's results at MAX_TRAIN_CALLS and its extrinsics at the most that fit the
largest block length a spec may set (a tester's R1 and Q1: one body of 419,424 empty results).
One item more is refused by the decode, as msgspec reads the list's header."""

from __future__ import annotations

import time

import pytest

from chain import calls
from chain.block import MAX_BLOCK_EXTRINSICS, MAX_TRAIN_CALLS, Body
from chain.codec import decode, encode, encode_versioned
from chain.config import MAX_BLOCK_LENGTH, MAX_SEGMENTS
from chain.errors import CodecError, InvalidFraudProof
from chain.extrinsic import IMMORTAL, Extrinsic
from chain.fraud import FraudProof, decode_fraud_proof
from chain.header import Header
from chain.proofs import MAX_PATH_LENGTH, Opening, ResultCommitment, TrainingResult


def _result(losses: int) -> TrainingResult:
    return TrainingResult(0, bytes(32), (0,) * losses, b"")


def _opening(path: int) -> Opening:
    return Opening(0, bytes(32), 0, (bytes(32),) * path)


def test_a_results_losses_are_read_up_to_max_segments_plus_one() -> None:
    assert decode(encode(_result(MAX_SEGMENTS + 1)), TrainingResult) == _result(MAX_SEGMENTS + 1)
    with pytest.raises(CodecError, match=rf"Expected `array` of length <= {MAX_SEGMENTS + 1}"):
        decode(encode(_result(MAX_SEGMENTS + 2)), TrainingResult)


def test_an_audit_path_is_read_up_to_the_deepest_tree() -> None:
    assert decode(encode(_opening(MAX_PATH_LENGTH)), Opening) == _opening(MAX_PATH_LENGTH)
    with pytest.raises(CodecError, match=rf"Expected `array` of length <= {MAX_PATH_LENGTH}"):
        decode(encode(_opening(MAX_PATH_LENGTH + 1)), Opening)


def _proof(openings: int, path: int = 0) -> FraudProof:
    header = Header(bytes(32), 1, bytes(32), bytes(32), 0, bytes(32))
    extrinsic = Extrinsic(bytes(32), bytes(64), 0, 0, IMMORTAL, calls.Transfer(bytes(32), 1))
    return FraudProof(
        header, extrinsic, 0, 1, (bytes(32),) * path, ResultCommitment(0, bytes(32), bytes(32), None), 1, 0,
        (bytes(32),) * path, 0, 0, 0, tuple(_opening(0) for _ in range(openings)),
    )


def test_a_fraud_proof_carries_two_openings_and_paths_of_the_deepest_tree_at_most() -> None:
    assert len(decode_fraud_proof(encode_versioned(_proof(2, MAX_PATH_LENGTH))).openings) == 2
    for bad in (_proof(3), _proof(0, MAX_PATH_LENGTH + 1)):
        with pytest.raises(InvalidFraudProof, match="Expected `array` of length <= ") as refused:
            decode_fraud_proof(encode_versioned(bad))
        assert refused.value.reason == "malformed"


def test_sixteen_mebibytes_of_one_byte_losses_are_refused_before_they_are_read() -> None:
    """The tester's payload: 16.7 million losses. Refused as the list's header is read (the
    time is printed, not asserted: a timed assertion fails on a loaded machine)."""
    data = encode(_result(16 * 1024 * 1024 - 64))
    started = time.perf_counter()
    with pytest.raises(CodecError, match=rf"Expected `array` of length <= {MAX_SEGMENTS + 1}"):
        decode(data, TrainingResult)
    print(f"refused {len(data):,} bytes in {1e3 * (time.perf_counter() - started):.3f} ms")


def _extrinsic() -> Extrinsic:
    return Extrinsic(bytes(32), bytes(64), 0, 0, IMMORTAL, calls.Transfer(bytes(32), 1))


def test_a_body_carries_max_train_calls_results_and_a_full_blocks_extrinsics_at_most() -> None:
    body = Body(results=(_result(0),) * MAX_TRAIN_CALLS)
    assert decode(encode(body), Body) == body
    with pytest.raises(CodecError, match=rf"Expected `array` of length <= {MAX_TRAIN_CALLS}"):
        decode(encode(Body(results=(_result(0),) * (MAX_TRAIN_CALLS + 1))), Body)
    body = Body((_extrinsic(),) * MAX_BLOCK_EXTRINSICS)
    assert len(decode(encode(body), Body).extrinsics) == MAX_BLOCK_EXTRINSICS
    with pytest.raises(CodecError, match=rf"Expected `array` of length <= {MAX_BLOCK_EXTRINSICS}"):
        decode(encode(Body((_extrinsic(),) * (MAX_BLOCK_EXTRINSICS + 1))), Body)


def test_no_block_within_the_largest_length_holds_more_extrinsics_than_the_bound() -> None:
    """The bound counts a signer and a signature of fixed length, as bins, and nothing else:
    every extrinsic encodes in more (here the smallest fields and a transfer's call)."""
    assert len(encode(_extrinsic())) > 2 + 32 + 2 + 64
    assert MAX_BLOCK_EXTRINSICS * (2 + 32 + 2 + 64) <= MAX_BLOCK_LENGTH
