"""verify_opening checks an entry's path on the entry's 40 bytes packed from its loss bits:
the same leaf ml_runtime's TranscriptEntry.encode gives, for every float32 a loss can be."""

from __future__ import annotations

import numpy as np
import pytest

import ml_runtime
from chain.errors import BlockError
from chain.proofs import Opening, TrainingResult, verify_opening

LOSSES = [0.0, -0.0, float(np.float32(1e-45)), 1.5, float(np.finfo(np.float32).max), float("inf"), float("nan")]


def _bits(loss: float) -> int:
    return int(np.float32(loss).view(np.uint32))


def _transcript() -> tuple[ml_runtime.Transcript, TrainingResult]:
    entries = [ml_runtime.TranscriptEntry(j, bytes([j]) * 32, loss) for j, loss in enumerate(LOSSES)]
    transcript = ml_runtime.Transcript.build(entries)
    bits = tuple(_bits(e.loss) for e in entries)
    return transcript, TrainingResult(0, transcript.root, bits, bytes(4), None)


def test_every_kind_of_loss_verifies_as_the_entry_encodes_it() -> None:
    transcript, result = _transcript()
    for j, entry in enumerate(transcript.entries):
        opening = Opening(j, entry.weights_hash, result.losses[j], ml_runtime.merkle_proof(transcript, j))
        verify_opening(result, opening, need_weights=False)  # raises BlockError if not
        got = opening.entry()
        assert got.index == j and got.weights_hash == entry.weights_hash
        assert got.loss == entry.loss or (np.isnan(got.loss) and np.isnan(entry.loss))


@pytest.mark.parametrize("j", range(len(LOSSES)))
def test_another_weights_hash_or_path_is_not_under_the_root(j: int) -> None:
    transcript, result = _transcript()
    path = ml_runtime.merkle_proof(transcript, j)
    other = (j + 1) % len(LOSSES)
    for opening in (
        Opening(j, bytes([other]) * 32, result.losses[j], path),
        Opening(j, transcript.entries[j].weights_hash, result.losses[j], ml_runtime.merkle_proof(transcript, other)),
    ):
        with pytest.raises(BlockError, match=rf"^training result #0: opening {j}: not under the transcript root: "):
            verify_opening(result, opening, need_weights=False)


def test_a_weights_hash_of_the_wrong_length_is_refused_by_name() -> None:
    """An Opening decoded from bytes always has a 32-byte weights hash (Hash32); one built in
    process may not, and must not reach the leaf packing (struct pads or cuts it to 32 bytes)."""
    transcript, result = _transcript()
    entry = transcript.entries[2]
    path = ml_runtime.merkle_proof(transcript, 2)
    for digest in (entry.weights_hash[:31], entry.weights_hash + b"\x00"):
        opening = Opening(2, digest, result.losses[2], path)
        with pytest.raises(BlockError, match=rf"^training result #0: opening 2: weights hash is {len(digest)} bytes, not 32$"):
            verify_opening(result, opening, need_weights=False)
