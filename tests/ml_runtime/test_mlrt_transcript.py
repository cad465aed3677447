"""Transcript entries and the RFC 6962 Merkle tree: roots, audit paths, tampering."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import ml_runtime as mr
from ml_runtime.transcript import TranscriptEntry


def _entries(n: int) -> list[TranscriptEntry]:
    return [
        TranscriptEntry(i, hashlib.blake2b(bytes([i % 256]) * 3, digest_size=32).digest(),
                        float(np.float32(i) / np.float32(7)))
        for i in range(n)
    ]


def _h(b: bytes) -> bytes:
    return hashlib.blake2b(b, digest_size=32).digest()


def test_entry_encoding() -> None:
    e = TranscriptEntry(3, b"\xab" * 32, float(np.float32(0.1)))
    enc = e.encode()
    assert len(enc) == 40
    assert enc[:4] == (3).to_bytes(4, "little") and enc[4:36] == b"\xab" * 32
    assert enc[36:] == np.float32(0.1).tobytes()
    assert TranscriptEntry.decode(enc) == e


def test_entry_rejects_non_float32_loss() -> None:
    with pytest.raises(mr.ProofError, match="float32"):
        TranscriptEntry(0, b"\x00" * 32, 0.1)


def test_root_small_trees_by_hand() -> None:
    es = _entries(3)
    leaves = [_h(b"\x00" + e.encode()) for e in es]
    assert mr.merkle_root(es[:1]) == leaves[0]
    # RFC 6962: MTH(D[3]) = node(node(l0, l1), l2); no duplicated leaf.
    assert mr.merkle_root(es) == _h(b"\x01" + _h(b"\x01" + leaves[0] + leaves[1]) + leaves[2])


@pytest.mark.parametrize("n", range(1, 18))
def test_every_proof_verifies(n: int) -> None:
    t = mr.Transcript.build(_entries(n))
    for i, e in enumerate(t.entries):
        proof = mr.merkle_proof(t, i)
        mr.verify_merkle_proof(t.root, e, proof, n)


@pytest.mark.parametrize("n", [2, 5, 8, 13])
def test_tampered_proofs_fail(n: int) -> None:
    t = mr.Transcript.build(_entries(n))
    for i, e in enumerate(t.entries):
        proof = mr.merkle_proof(t, i)
        for k in range(len(proof)):
            bad = bytearray(proof[k])
            bad[k % 32] ^= 0x01
            forged = (*proof[:k], bytes(bad), *proof[k + 1 :])
            with pytest.raises(mr.ProofError, match="does not lead to the root"):
                mr.verify_merkle_proof(t.root, e, forged, n)
        with pytest.raises(mr.ProofError, match="too short"):
            mr.verify_merkle_proof(t.root, e, proof[:-1], n)
        with pytest.raises(mr.ProofError, match="extra"):
            mr.verify_merkle_proof(t.root, e, (*proof, b"\x00" * 32), n)
        other = TranscriptEntry(e.index, e.weights_hash, float(np.float32(e.loss) + np.float32(1)))
        with pytest.raises(mr.ProofError):
            mr.verify_merkle_proof(t.root, other, proof, n)


def test_wrong_index_or_count_fails() -> None:
    t = mr.Transcript.build(_entries(6))
    proof = mr.merkle_proof(t, 2)
    moved = TranscriptEntry(3, t.entries[2].weights_hash, t.entries[2].loss)
    with pytest.raises(mr.ProofError):
        mr.verify_merkle_proof(t.root, moved, proof, 6)
    # As in RFC 6962 the root does not commit to the tree size (the verifier takes the
    # count from the job: S + 1); a count that changes the path's shape fails.
    for count in (3, 4, 12):
        with pytest.raises(mr.ProofError):
            mr.verify_merkle_proof(t.root, t.entries[2], proof, count)
    with pytest.raises(mr.ProofError, match="outside"):
        mr.verify_merkle_proof(t.root, t.entries[2], proof, 2)
    with pytest.raises(mr.ProofError, match="32-byte"):
        mr.verify_merkle_proof(t.root, t.entries[2], (b"x", *proof[1:]), 6)
    with pytest.raises(mr.ProofError, match="outside"):
        mr.merkle_proof(t, 6)


def test_leaf_cannot_pose_as_node() -> None:
    es = _entries(2)
    root = mr.merkle_root(es)
    assert root != _h(es[0].leaf_hash() + es[1].leaf_hash())
    with pytest.raises(mr.ProofError, match="at least one"):
        mr.merkle_root([])


def test_build_requires_consecutive_indices() -> None:
    es = _entries(3)
    with pytest.raises(mr.ProofError, match="position 1"):
        mr.Transcript.build([es[0], es[2]])


def test_hash_weights_is_little_endian_bytes() -> None:
    w = np.array([1.0, -2.5], dtype=np.float32)
    assert mr.hash_weights(w) == _h(w.astype("<f4").tobytes())
    assert mr.hash_weights(w.astype(">f4")) == mr.hash_weights(w)


def test_compute_merkle_root_over_raw_leaves() -> None:
    es = _entries(7)
    assert mr.compute_merkle_root([e.encode() for e in es]) == mr.merkle_root(es)
    assert mr.compute_merkle_root([]) == _h(b"")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8])
def test_a_prefix_is_hashed_in_front_of_every_leaf(n: int) -> None:
    leaves = [bytes([i]) * i for i in range(n)]
    for prefix in (b"\x01", b"\x00\x01", b"\xff" * 130):
        root = mr.compute_merkle_root([memoryview(leaf) for leaf in leaves], prefix)  # any buffer, not only bytes
        assert root == mr.compute_merkle_root([prefix + leaf for leaf in leaves])
    assert mr.compute_merkle_root([prefix + leaf for leaf in leaves], b"") == mr.compute_merkle_root(
        [prefix + leaf for leaf in leaves]
    )
    assert mr.compute_merkle_root([], b"\x01") == _h(b"")
    if n > 1:  # a prefix is not a leaf of its own
        assert mr.compute_merkle_root(leaves, b"\x01") != mr.compute_merkle_root([b"\x01", *leaves])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_merkle_proofs_are_every_audit_path(n: int) -> None:
    t = mr.Transcript.build(_entries(n))
    assert mr.merkle_proofs(t) == tuple(mr.merkle_proof(t, i) for i in range(n))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16])
def test_leaf_paths_verify_against_the_raw_leaf_root(n: int) -> None:
    leaves = [bytes([i]) * (i + 1) for i in range(n)]
    root = mr.compute_merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        path = mr.compute_leaf_path(leaves, i)
        mr.verify_leaf_path(root, leaf, path, i, n)
        with pytest.raises(mr.ProofError, match=rf"^path for leaf {i} does not lead to the root$"):
            mr.verify_leaf_path(root, leaf + b"x", path, i, n)
        if n > 1:
            with pytest.raises(mr.ProofError, match=r"does not lead to the root|too short|extra hashes"):
                mr.verify_leaf_path(root, leaf, path, (i + 1) % n, n)


def test_leaf_path_edge_cases_name_the_fault() -> None:
    leaves = [b"a", b"b", b"c"]
    root = mr.compute_merkle_root(leaves)
    path = mr.compute_leaf_path(leaves, 2)
    with pytest.raises(mr.ProofError, match=r"^leaf index 3 is outside 0\.\.2$"):
        mr.compute_leaf_path(leaves, 3)
    with pytest.raises(mr.ProofError, match=r"^leaf index -1 is outside 0\.\.2$"):
        mr.verify_leaf_path(root, b"c", path, -1, 3)
    with pytest.raises(mr.ProofError, match=r"^leaf count 0 must be a positive int$"):
        mr.verify_leaf_path(root, b"c", path, 0, 0)
    with pytest.raises(mr.ProofError, match=r"^root must be 32 bytes$"):
        mr.verify_leaf_path(root[:31], b"c", path, 2, 3)
    with pytest.raises(mr.ProofError, match=r"^path element 0 is not a 32-byte hash$"):
        mr.verify_leaf_path(root, b"c", (b"x",), 2, 3)
    with pytest.raises(mr.ProofError, match=r"^proof has 1 extra hashes$"):
        mr.verify_leaf_path(root, b"c", (*path, bytes(32)), 2, 3)
    # A raw leaf is hashed as 0x00 || leaf: the root of a one-leaf tree is not the leaf itself.
    mr.verify_leaf_path(_h(b"\x00only"), b"only", (), 0, 1)


def _mth_by_definition(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 as written: split at the largest power of two below n, recurse."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return _h(b"\x01" + _mth_by_definition(hashes[:k]) + _mth_by_definition(hashes[k:]))


@pytest.mark.parametrize("sizes", [range(1, 301), (511, 512, 513, 2000, 4097)])
def test_roots_level_by_level_equal_the_recursive_definition(sizes: range | tuple[int, ...]) -> None:
    # Leaves of varied lengths, the empty one included; the RFC's leaf hash is H(0x00 || leaf).
    for n in sizes:
        leaves = [bytes([i % 251]) * (i % 7 * 9) for i in range(n)]
        assert mr.compute_merkle_root(leaves) == _mth_by_definition([_h(b"\x00" + leaf) for leaf in leaves])
    assert mr.compute_merkle_root([]) == _h(b"")
