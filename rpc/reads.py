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
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from chain.blockchain import Blockchain
from chain.errors import MissingTrieNode, UnknownStateRoot
from chain.storage import Column
from rpc import errors
from rpc.connections import CALLER, compute_subnet

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


class _Turns:
    """The read threads, taken in turn by the subnets waiting for one, and within a subnet by
    its addresses (round robin at both levels; each address's reads in order): a read waits for
    those running and at most one of each other subnet, or other address of its own subnet,
    waiting, not for every read queued before it. In one FIFO queue a flood of allowed heavy
    calls from one address multiplied an honest caller's latency 30-100 times (retest45's F2);
    by address alone, a flood spread over 64 addresses of one /24 did 200 times (retest50's N2).
    The cost of the flood itself is the flood's. A slot is given back when its thread's work
    ends, not when its caller stops waiting (a read cannot be stopped once it runs), and a
    read whose caller left while it waited takes no turn."""

    __slots__ = ("_free", "_waiting")

    def __init__(self) -> None:
        self._free = _READ_THREADS
        # subnet -> address -> its reads waiting; the next in turn first at both levels
        self._waiting: OrderedDict[str, OrderedDict[str, deque[asyncio.Future[None]]]] = OrderedDict()

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._free:  # (never while a read waits: a slot given back goes to it)
            self._free -= 1
        else:
            turn = loop.create_future()
            caller = CALLER.get()
            self._waiting.setdefault(compute_subnet(caller), OrderedDict()).setdefault(caller, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # its turn came as it left: the next one's
                    self._give_back()
                raise
        try:
            work = _reader.submit(call)
        except BaseException:
            self._give_back()
            raise
        work.add_done_callback(functools.partial(self._ended, loop))
        return await asyncio.wrap_future(work, loop=loop)

    def _ended(self, loop: asyncio.AbstractEventLoop, _work: Future[Any]) -> None:
        """(On the read thread, or on the loop if cancelled before it ran.)"""
        with contextlib.suppress(RuntimeError):  # (the loop closed: nobody waits)
            loop.call_soon_threadsafe(self._give_back)

    def _give_back(self) -> None:
        """A slot is free: to the first waiting read of the next address of the next subnet in turn."""
        waiting = self._waiting
        while waiting:
            subnet, addresses = waiting.popitem(last=False)
            caller, queue = addresses.popitem(last=False)
            turn = queue.popleft()
            if queue:
                addresses[caller] = queue  # (to the back: its next read after its neighbours')
            if addresses:
                waiting[subnet] = addresses  # (to the back: after the other subnets')
            if not turn.cancelled():
                turn.set_result(None)
                return
        self._free += 1


# One a loop (tests run many): the loop is not referenced by its turns, so both go with it.
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()


async def run_read(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the RPC read threads, in the turn of its caller's subnet and
    address (:class:`_Turns`); its exception, if any, raised here."""
    loop = asyncio.get_running_loop()
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = _Turns()
    return await turns.run(functools.partial(fn, *args, **kwargs))


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
