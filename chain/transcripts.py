"""The node's store of training openings: the checkpoints a block does not carry.

A block carries each TRAIN call's result (transcript root, losses, new weights; see
chain.proofs); the intermediate checkpoints stay with whoever holds them, as
:class:`chain.proofs.Opening` s, in the database's OPENING column:

=========================================================  =================================
key (after the column byte)                                 value
=========================================================  =================================
block hash (32) || extrinsic index (u32 BE) || entry (u32 BE)  the encoded Opening
=========================================================  =================================

The author stores every opening of every job when it builds the block (in the block's own
write batch, so a stored block always has its transcripts); an importer stores the openings
its verifier fetched, in the imported block's batch, and serves them in turn. Keys sort by
block, then call, then entry, so one job's openings are one prefix scan. Openings are kept
for every stored block until pruning drops those of old and abandoned blocks (chain.pruning).

Every opening written here was checked by ``chain.proofs.verify_opening`` against its
block's result (the author computed them; an importer's source verified them). Reads are
decoded canonically (chain.codec); a record that does not decode counts as absent, and
:class:`LocalSource` verifies what it reads once more rather than trust the disk.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import msgspec

from chain.codec import decode, encode
from chain.errors import CheckpointsUnavailable, CodecError
from chain.proofs import Opening, TrainingResult, verify_opening
from chain.storage import Column, Database, WriteBatch

_KEY = struct.Struct(">II")


def _key(block_hash: bytes, extrinsic_index: int, index: int) -> bytes:
    return block_hash + _KEY.pack(extrinsic_index, index)


class TranscriptStore:
    """Openings by (block hash, extrinsic index, entry index) in one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def stage(self, batch: WriteBatch, block_hash: bytes, extrinsic_index: int, openings: Iterable[Opening]) -> None:
        """Stage ``openings`` of one TRAIN call of ``block_hash`` in ``batch``."""
        batch.put_many(Column.OPENING, ((_key(block_hash, extrinsic_index, o.index), encode(o)) for o in openings))

    def get(self, block_hash: bytes, extrinsic_index: int, index: int) -> Opening | None:
        """The stored opening, or None (never stored, or a record that does not decode)."""
        raw = self.db.get(Column.OPENING, _key(block_hash, extrinsic_index, index))
        if raw is None:
            return None
        try:
            return decode(raw, Opening)
        except CodecError:
            return None


class LocalSource:
    """A CheckpointSource over a TranscriptStore: what this node holds, nothing fetched.

    An opening stored without weights does not satisfy a request that needs them; a missing
    one raises CheckpointsUnavailable naming the entries. An opening is handed out with its
    weights only where they were asked for, as a peer sends it: the weights nobody asked for
    are neither hashed here nor stored again by the importer (a sampling validator asks for
    the weights of m of a job's S + 1 entries and the entries after them without). Each
    opening is verified against the result (chain.proofs.verify_opening), which costs one
    hash of the weights where they are handed out: the store may hold another block's
    openings under a hash only if the database was tampered with, but a verifier should not
    have to assume that.
    """

    def __init__(self, store: TranscriptStore) -> None:
        self.store = store

    def fetch(self, block_hash: bytes, result: TrainingResult, wanted: Sequence[tuple[int, bool]]) -> dict[int, Opening]:
        found: dict[int, Opening] = {}
        missing: list[int] = []
        for index, need_weights in wanted:
            opening = self.store.get(block_hash, result.extrinsic_index, index)
            if opening is None or (need_weights and opening.weights is None):
                missing.append(index)
                continue
            if not need_weights and opening.weights is not None:
                opening = msgspec.structs.replace(opening, weights=None)
            verify_opening(result, opening, need_weights=need_weights)
            found[index] = opening
        if missing:
            raise CheckpointsUnavailable(
                f"block {block_hash.hex()}: training result #{result.extrinsic_index}: "
                f"entries {', '.join(map(str, missing))} are not stored here"
            )
        return found
