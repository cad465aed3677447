"""What every block records about the chain it extends: the hashes of recent blocks.

Substrate's ``frame_system::BlockHash``: before block N's extrinsics, the runtime stores the
hash of block N-1 (its parent) under N-1 and forgets the one :data:`BLOCK_HASH_COUNT` blocks
older (Substrate's ``BlockHashCount``, 4096), so the state holds a bounded window of its own
ancestry. A call that refers to another block by its header (a fraud proof names the faulty
block's parent) can then check that the block it names is on this chain, which a state alone
cannot tell: another fork may hold a model version or data set under the same id with other
data, and a proof judged against it could frame an honest author.
"""

from __future__ import annotations

from chain.codec import Hash32
from chain.pallets.items import StateAccess, StorageMap

BLOCK_HASH_COUNT = 4096
BLOCK_HASH = StorageMap("System", "BlockHash", Hash32)  # number -> that block's hash, the last BLOCK_HASH_COUNT


def get_block_hash(state: StateAccess, number: int) -> bytes | None:
    """The hash of this chain's block ``number``, if it is within the window (and not the
    block being executed)."""
    return BLOCK_HASH.get(state, number)


def apply_on_initialize(state: StateAccess, number: int, parent_hash: bytes) -> None:
    BLOCK_HASH.apply_set(state, parent_hash, number - 1)
    if number - 1 >= BLOCK_HASH_COUNT:
        BLOCK_HASH.apply_delete(state, number - 1 - BLOCK_HASH_COUNT)
