"""Mutation testing of chain/block.py: a block's bytes, its size overhead, and decoding it.

Run by name (``mutmut run "chain.block*"``; the module is in ``[tool.mutmut] only_mutate``).
``BLOCK_OVERHEAD`` is computed when the module is imported, before mutmut selects a mutant, so
the test calls ``_compute_max_header_length`` itself and pins its value. Before these tests 48
of the 64 mutants lived: no test ran that function under a mutant, nor looked at the collector
around ``decode_block``. Now 60/64.

Equivalent survivors (same behaviour on every input), all in ``_compute_max_header_length``:
it builds the largest header only to measure its encoded length, and MessagePack's length of
an unsigned integer depends only on its range (``uint32`` for 2^16..2^32-1, ``uint64`` for
2^32..2^64-1), as does the little-endian slot digest's (8 bytes for anything below 2^64). So
``2**32 - 2`` for the top block number, and ``2**63 - 2``, ``2**63 + 1`` or ``2**64 - 1`` for
the top U64, give the same 300 bytes.

Mutation testing of the changed lines of bf71aad..982ceb7 (mut17, 2026-11-30, 18:07-18:28 UTC,
mutmut 3.8.1; the other areas of the run are recorded in tests/chain/test_pallet_pol.py,
tests/ml_runtime/test_mlrt_twins.py, tests/chain/test_pool.py and tests/chain/test_storage.py).
In a scratch copy (``git archive`` of 982ceb7) whose ``[tool.mutmut]`` only_mutate was narrowed
to chain/block.py, ml_runtime/transcript.py, chain/fraud.py, chain/pallets/models.py,
chain/pallets/training.py, ml_runtime/twins.py, chain/pool.py and chain/storage.py, mutmut's own
``copy_src_dir``, ``setup_source_paths`` and ``create_mutants(1)`` made the mutants (no stats
run). In scope: each mutant of the named functions that changes a line ``git blame`` gives to a
commit of bf71aad..982ceb7. Each was put into its own function by a script (``mutmut apply``
picks the first function of that name in a file) and its tests run in a fresh ``python -m pytest
-q -x -p no:cacheprovider`` (300 s timeout), the files restored after. Tests here: this file,
tests/consensus/test_fraud_proofs.py, tests/ml_runtime/test_transcript_mutants.py and
tests/ml_runtime/test_mlrt_transcript.py (6c504cd's count-bound extrinsics root). Killed/in
scope, before -> after the test added (watched failing on its mutants): compute_extrinsics_root
5/5; verify_extrinsic_path 17/20 -> 20/20; _bind_count 10/11; ml_runtime's compute_path_root
12/12 and verify_leaf_path 17/17. Killed by
test_a_path_for_a_count_of_2_to_the_32_is_refused_as_a_proof_error: ``count > 1 << 32``,
``count >= 2 << 32`` and ``count >= 1 << 33`` (a path of the right length for 2^32 leaves
reached ``_bind_count``, whose OverflowError a fraud-proof check does not catch; the older test's
path was too short for that count, refused before). Left:

- _bind_count's ``count.to_bytes(4, )``: the byte order defaults to "big" since Python 3.11
  (requires-python >= 3.11). Equivalent.

No bug was found.
"""

from __future__ import annotations

import gc

import pytest

import ml_runtime
from chain import calls
from chain.block import (
    BLOCK_OVERHEAD,
    Block,
    Body,
    _compute_max_header_length,
    compute_extrinsics_root,
    decode_block,
    decode_body,
    encode_body,
    verify_extrinsic_path,
)
from chain.codec import encode
from chain.crypto import blake2_256, dev_keypair
from chain.errors import CodecError
from chain.extrinsic import sign_extrinsic
from chain.header import Header, PolCommitment, compute_pol_digest, compute_slot_digest

H = b"\x11" * 32
ALICE = dev_keypair("Alice")


def test_the_largest_header_an_author_builds_is_300_bytes() -> None:
    """version 1 + array 1 + three hashes and the author 4 x 34 + number ``uint32`` 5 + slot
    ``uint64`` 9 + digest (array 1 + slot log 18 + POL_ log 63) + seal 66 = 300; the block adds
    its version byte, its array header, the body's array header and two list headers of at most
    5 bytes each."""
    assert _compute_max_header_length() == 300
    assert BLOCK_OVERHEAD == 300 + 1 + 1 + 5 + 5
    top = 2**63 - 1
    largest = Header(
        H, 2**32 - 1, H, H, top, H,
        (compute_slot_digest(top), compute_pol_digest(PolCommitment(H, top, top))), bytes(64),
    )
    assert len(largest.encode()) == _compute_max_header_length()


def test_a_body_and_a_block_have_exact_bytes() -> None:
    assert encode_body(Body()) == b"\x01\x92\x90\x90"
    assert decode_body(b"\x01\x92\x90\x90") == Body()
    header = Header(H, 7, H, H, 9, H)
    block = Block(header, Body())
    assert block.encode() == b"\x01\x92" + encode(header) + b"\x92\x90\x90"
    assert decode_block(block.encode()) == block
    assert block.hash() == header.hash()
    with pytest.raises(CodecError) as info:
        decode_body(b"\x01\x92\x90")
    assert str(info.value) == "Body: malformed bytes: Input data was truncated"
    with pytest.raises(CodecError) as info:
        decode_block(b"\x01\x92\x90\x90")
    assert str(info.value) == "Block: Expected `array` of at least length 6, got 0 - at `$[0]` (header)"  # the header's


def test_the_extrinsics_root_binds_the_count_to_the_merkle_root_of_the_encoded_extrinsics() -> None:
    encoded = [b"a", b"bc", b"d"]
    root = ml_runtime.compute_merkle_root(encoded)
    assert compute_extrinsics_root(encoded) == blake2_256(b"\x02" + (3).to_bytes(4, "big") + root)
    assert compute_extrinsics_root(encoded) != compute_extrinsics_root([])
    # The last of 3 is also the second of "2" under the bare Merkle root, not under this one.
    path = ml_runtime.compute_leaf_path(encoded, 2)
    ml_runtime.verify_leaf_path(root, b"d", path, 1, 2)
    verify_extrinsic_path(compute_extrinsics_root(encoded), b"d", path, 2, 3)
    for index, count in ((1, 2), (2, 4), (2, 2**32)):
        with pytest.raises(ml_runtime.ProofError):
            verify_extrinsic_path(compute_extrinsics_root(encoded), b"d", path, index, count)


def test_a_path_for_a_count_of_2_to_the_32_is_refused_as_a_proof_error() -> None:
    """A count no u32 holds is refused before it is bound: a path of the right length (32 hashes
    for 2^32 leaves) leads to some Merkle root, and binding 2^32 would raise OverflowError,
    which a fraud-proof check does not catch (only ProofError: "bad_extrinsic_path")."""
    with pytest.raises(ml_runtime.ProofError, match="of 4294967296 does not lead"):
        verify_extrinsic_path(H, b"d", [H] * 32, 2, 2**32)


def _big_block() -> bytes:
    """A block of 3,000 transfers: tracked, its objects set off about 8 collections of the
    youngest generation (threshold 700) while it decoded."""
    xt = sign_extrinsic(ALICE, calls.Transfer(H, 5), nonce=0, genesis_hash=H, spec_version=1)
    return Block(Header(H, 1, H, H, 1, H), Body((xt,) * 3000)).encode()


def test_decoding_a_block_sets_off_no_collection() -> None:
    """Its objects are not tracked by the collector (chain.codec.Wire is gc=False), so decoding
    a big block needs no pause of the collector: none runs, and the block is untracked."""
    data = _big_block()
    phases: list[str] = []

    def count(phase: str, info: dict[str, int]) -> None:
        phases.append(phase)

    gc.collect()
    gc.callbacks.append(count)
    try:
        assert gc.isenabled()
        block = decode_block(data)
        assert phases.count("start") == 0 and gc.isenabled()
        assert len(block.body.extrinsics) == 3000
        assert not gc.is_tracked(block) and not gc.is_tracked(block.body.extrinsics[0])
    finally:
        gc.callbacks.remove(count)


def test_the_collector_is_restored_when_a_block_is_refused() -> None:
    with pytest.raises(CodecError, match="Block: malformed bytes"):
        decode_block(b"\x01\xc1")
    assert gc.isenabled()
