"""Where an RPC read happens: the block an ``at`` parameter names, and the state there.

Every method with an ``at`` (Substrate's ``hash``) reads the best block when it is
omitted or null, and otherwise the block with that hash. A well-formed hash of a block
this node does not have is -32602 ``unknown block 0x...``: the read cannot be answered,
and answering it from another block would be wrong. (``chain_getHeader`` and
``chain_getBlock`` differ, as in Substrate: they answer ``null`` for an unknown block.)

A block whose state is pruned (``--state-pruning``, ``polchain prune-state``) is -32602 too,
naming the block; and so is a read that was under way when online pruning took its state
(:func:`pruned_while_read`: the trie node it needed next is gone, and so is the state's root
node), where a node missing from a state that is still held is a damaged database, -32603.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chain.blockchain import Blockchain
from chain.errors import MissingTrieNode, UnknownStateRoot
from chain.storage import Column
from rpc import errors

__all__ = ["ReadOnlyState", "block_at", "pruned_while_read", "run_read", "state_at", "state_root_at"]

T = TypeVar("T")

# Reads that walk many trie nodes (a read proof or a page of up to 1,000 keys: about 20 ms of
# Python, benches/looplag.py) run on these threads, not on the event loop that also carries
# the node's blocks, votes and peers: there, callers on a hundred WebSockets asking for them
# back to back kept the loop busy. The threads share the GIL with the loop, which gets it
# back every switch interval; two of them, apart from the default executor's threads, which
# block import uses, so that readers cannot take those.
_READ_THREADS = 2
_reader = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="rpc-read")


async def run_read(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the RPC read threads; its exception, if any, raised here."""
    return await asyncio.get_running_loop().run_in_executor(_reader, functools.partial(fn, *args, **kwargs))


def block_at(chain: Blockchain, at: bytes | None) -> bytes:
    """The hash of the block ``at`` names: the best block for None."""
    if at is None:
        return chain.best_hash
    if chain.db.get(Column.HEADER, at) is None:
        raise errors.InvalidParams(f"Invalid params: unknown block 0x{at.hex()}")
    return at


def state_root_at(chain: Blockchain, at: bytes | None) -> bytes | None:
    """The state root to read at: None (the best state, served from the flat column) or
    the named block's root."""
    if at is None:
        return None
    header = chain.get_header(block_at(chain, at))
    if not chain.state.is_known_root(header.state_root):
        raise errors.InvalidParams(
            f"Invalid params: the state of block #{header.number} 0x{at.hex()} is pruned on this node "
            "(--state-pruning, or polchain prune-state); ask an archive node"
        )
    return header.state_root


@contextlib.contextmanager
def pruned_while_read(chain: Blockchain, root: bytes | None) -> Iterator[None]:
    """Around a read at state ``root`` (None: the best state, never pruned): the root or a node
    below it gone because online pruning took that state meanwhile becomes -32602 naming it."""
    try:
        yield
    except (MissingTrieNode, UnknownStateRoot):
        if root is None or chain.state.is_known_root(root):
            raise  # a node missing from a state still held: the database is damaged (-32603)
        raise errors.InvalidParams(
            f"Invalid params: the state 0x{root.hex()} was pruned on this node while it was read "
            "(--state-pruning); ask at a later block, or an archive node"
        ) from None


def state_at(chain: Blockchain, at: bytes | None) -> ReadOnlyState:
    """Read-only state at the block ``at`` names, for the pallets' storage items."""
    return ReadOnlyState(chain, state_root_at(chain, at))


class ReadOnlyState:
    """The pallets' StateAccess at one state root (None: the best state); writes are a bug."""

    __slots__ = ("chain", "root")

    def __init__(self, chain: Blockchain, root: bytes | None) -> None:
        self.chain, self.root = chain, root

    def get(self, key: bytes) -> bytes | None:
        with pruned_while_read(self.chain, self.root):
            return self.chain.state.get(key, at=self.root)

    def keys_paged(self, prefix: bytes, count: int, start_key: bytes | None = None) -> list[bytes]:
        """chain.state.StateDB.keys_paged at this state, a pruning mid-walk said as for get."""
        with pruned_while_read(self.chain, self.root):
            return self.chain.state.keys_paged(prefix, count, start_key, at=self.root)

    def set(self, key: bytes, value: bytes) -> None:
        raise errors.InternalError("read-only state")

    def delete(self, key: bytes) -> None:
        raise errors.InternalError("read-only state")
