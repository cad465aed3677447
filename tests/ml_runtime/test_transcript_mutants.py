"""Mutation testing of ml_runtime/transcript.py: the RFC 6962 Merkle hashing of checkpoints.

Run by name (``rm -rf mutants && mutmut run "ml_runtime.transcript*" --max-children 2``; the
module is in ``[tool.mutmut] only_mutate``).

Before these tests, with tests/ml_runtime/test_mlrt_transcript.py selected, 311 of 369
mutants were caught (4 by a timeout), 29 lived and 29 had no test (the frontier, tested
only through a data set upload in tests/chain/test_weights_datasets.py): an entry index of
2**32 or a float accepted, a weights hash of 31 bytes or a bytearray accepted, ``True``
taken as a leaf index or count, a leaf index equal to the count let through to the fold,
and the refusal messages (``None`` or a wrong range). The hash domains, split points and
index checks of the fold were already pinned by the existing tests: a mutant there either
failed a proof or a root. Now 369/369 (365 killed, 4 by a timeout: ``_mth`` loops that no
longer end) with the selection narrowed as tests/chain/test_signatures_mutants.py says; with
the configured selection, 369 killed (2026-11-29, about 15 minutes, most of it the two runs
of the whole selection that precede the mutants). No survivor, no defect. Noticed, not changed: ``TranscriptEntry`` takes a
bool index (``True`` is the int 1 and encodes as index 1), unlike ``compute_leaf_path``;
entries from the wire are decoded as u32, so no bool reaches it from a peer.

6c504cd's compute_path_root and the verify_leaf_path built on it were mutation-tested on
2026-11-30 (mut17: 12/12 and 17/17 of their changed lines killed; recorded in
tests/chain/test_block_mutants.py).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

import ml_runtime as mr
from ml_runtime.transcript import TranscriptEntry

H = bytes(range(32))


def _h(b: bytes) -> bytes:
    return hashlib.blake2b(b, digest_size=32).digest()


def _reason(fn, *args) -> str:
    with pytest.raises(mr.ProofError) as info:
        fn(*args)
    return str(info.value)


def _entries(n: int) -> list[TranscriptEntry]:
    return [TranscriptEntry(i, _h(bytes([i])), float(np.float32(i) / np.float32(3))) for i in range(n)]


def test_an_entry_index_is_exactly_a_u32() -> None:
    assert TranscriptEntry(2**32 - 1, H, 0.0).encode()[:4] == b"\xff\xff\xff\xff"
    assert TranscriptEntry(0, H, 0.0).index == 0
    assert _reason(TranscriptEntry, 2**32, H, 0.0) == "entry index 4294967296 is not a u32"
    assert _reason(TranscriptEntry, -1, H, 0.0) == "entry index -1 is not a u32"
    # Not an int, though within range: refused by type, whatever its value.
    assert _reason(TranscriptEntry, 1.5, H, 0.0) == "entry index 1.5 is not a u32"
    assert _reason(TranscriptEntry, 64.0, H, 0.0) == "entry index 64.0 is not a u32"


def test_an_entry_weights_hash_is_exactly_32_bytes() -> None:
    assert _reason(TranscriptEntry, 0, H[:31], 0.0) == "entry weights_hash must be 32 bytes"
    assert _reason(TranscriptEntry, 0, H + b"\0", 0.0) == "entry weights_hash must be 32 bytes"
    # 32 of them, but not bytes: refused by type.
    assert _reason(TranscriptEntry, 0, bytearray(H), 0.0) == "entry weights_hash must be 32 bytes"
    assert _reason(TranscriptEntry, 0, H.hex()[:32], 0.0) == "entry weights_hash must be 32 bytes"


def test_entry_decoding_names_the_length() -> None:
    raw = TranscriptEntry(7, H, 0.5).encode()
    assert TranscriptEntry.decode(raw) == TranscriptEntry(7, H, 0.5)
    assert _reason(TranscriptEntry.decode, raw[:-1]) == "entry encoding has 39 bytes; expected 40"
    assert _reason(TranscriptEntry.decode, raw + b"\0") == "entry encoding has 41 bytes; expected 40"


def test_roots_and_proofs_refuse_out_of_range_with_the_exact_reason() -> None:
    assert _reason(mr.merkle_root, []) == "a transcript needs at least one entry"
    t = mr.Transcript.build(_entries(5))
    assert _reason(mr.merkle_proof, t, 5) == "entry index 5 is outside 0..4"
    assert _reason(mr.merkle_proof, t, -1) == "entry index -1 is outside 0..4"
    assert mr.merkle_proof(t, 4) == mr.merkle_proofs(t)[4]


def test_verify_merkle_proof_names_each_fault() -> None:
    es = _entries(3)
    t = mr.Transcript.build(es)
    proof = mr.merkle_proof(t, 2)
    mr.verify_merkle_proof(t.root, es[2], proof, 3)
    assert _reason(mr.verify_merkle_proof, t.root, es[2], proof, 0) == "transcript count 0 must be a positive int"
    assert _reason(mr.verify_merkle_proof, t.root, es[2], proof, "3") == "transcript count '3' must be a positive int"
    assert _reason(mr.verify_merkle_proof, t.root, es[2], proof, 2) == "entry index 2 is outside 0..1"
    assert _reason(mr.verify_merkle_proof, t.root[:31], es[2], proof, 3) == "root must be 32 bytes"
    assert _reason(mr.verify_merkle_proof, bytearray(t.root), es[2], proof, 3) == "root must be 32 bytes"
    # A path one hash short for the count the verifier holds (the last, root-side hash cut).
    assert _reason(mr.verify_merkle_proof, t.root, es[2], proof[:-1], 3) == "proof is too short for the claimed count"
    assert _reason(mr.verify_merkle_proof, t.root, es[2], (), 3) == "proof is too short for the claimed count"


def test_leaf_paths_refuse_bools_and_the_index_equal_to_the_count() -> None:
    """``True`` is an int in Python but not an index; index == count is one past the end."""
    leaves = [b"a", b"b", b"c"]
    root = mr.compute_merkle_root(leaves)
    path = mr.compute_leaf_path(leaves, 1)
    mr.verify_leaf_path(root, b"b", path, 1, 3)
    assert _reason(mr.compute_leaf_path, leaves, True) == "leaf index True is outside 0..2"
    assert _reason(mr.verify_leaf_path, root, b"b", path, True, 3) == "leaf index True is outside 0..2"
    assert _reason(mr.verify_leaf_path, root, b"b", path, 1, True) == "leaf count True must be a positive int"
    assert _reason(mr.verify_leaf_path, root, b"c", path, 3, 3) == "leaf index 3 is outside 0..2"
    assert _reason(mr.verify_leaf_path, root, bytearray(b"b"), path, 1, 3) == "leaf must be bytes, got bytearray"
    assert _reason(mr.verify_leaf_path, root, "b", path, 1, 3) == "leaf must be bytes, got str"


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16, 17])
def test_the_frontier_extends_the_root_leaf_by_leaf_and_in_chunks(n: int) -> None:
    """compute_frontier is RFC 6962's tree kept as its perfect subtrees: its root equals
    compute_merkle_root after each leaf and after any split of the leaves into chunks."""
    leaves = [bytes([i]) * (i % 3) for i in range(n)]
    frontier: list[bytes] = []
    for count, leaf in enumerate(leaves):
        frontier = mr.compute_frontier(frontier, count, [leaf])
        assert len(frontier) == bin(count + 1).count("1")
        assert mr.compute_frontier_root(frontier) == mr.compute_merkle_root(leaves[: count + 1])
    for cut in range(n + 1):
        chunked = mr.compute_frontier(mr.compute_frontier([], 0, leaves[:cut]), cut, leaves[cut:])
        assert chunked == frontier
    # The subtrees, largest first: for 3 leaves node(l0, l1) then l2; the domain bytes 0x00, 0x01.
    if n == 3:
        l0, l1, l2 = (_h(b"\x00" + leaf) for leaf in leaves)
        assert frontier == [_h(b"\x01" + l0 + l1), l2]
        assert mr.compute_frontier_root(frontier) == _h(b"\x01" + _h(b"\x01" + l0 + l1) + l2)


def test_a_leaf_cannot_pass_for_a_node_nor_a_node_for_a_leaf() -> None:
    """Two leaves' hashes joined as one leaf do not give the node's hash (0x00 vs 0x01)."""
    es = _entries(2)
    t = mr.Transcript.build(es)
    assert t.root == _h(b"\x01" + _h(b"\x00" + es[0].encode()) + _h(b"\x00" + es[1].encode()))
    assert re.fullmatch(r"proof for entry 0 does not lead to the root", _reason(
        mr.verify_merkle_proof, t.root, es[0], (_h(b"\x01" + es[1].encode()),), 2
    ))
