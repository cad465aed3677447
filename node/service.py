"""The node service: database, chain, pool, block authoring and the RPC server, wired together.

Everything runs on one asyncio loop except block building and import, which run in a worker
thread (training can take seconds) while the loop keeps serving RPC. The pool is only ever
touched on the loop thread: the builder gets a snapshot of the ready extrinsics. A stop
(SIGINT/SIGTERM) lets the block in progress finish and be written, then closes the database,
so the database always ends at a whole block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.blockchain import Blockchain, ImportedBlock
from chain.crypto import Keypair, blake2_256
from chain.errors import InvalidTransaction
from chain.extrinsic import Extrinsic, decode_extrinsic
from chain.header import Header
from chain.pallets.staking import compute_slot_author, get_validators
from chain.pool import TransactionPool, Validity
from chain.storage import Database
from genesis.spec import ChainSpec
from node.metrics import NodeMetrics

log = logging.getLogger("polchain")

WATCH_QUEUE = 64
SIGNATURE_CACHE = 16384


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What the CLI decided: chain, paths, authoring and RPC settings."""

    chain: str = "dev"
    base_path: Path | None = None
    tmp: bool = False
    name: str = "polchain-node"
    author: str | None = None  # secret URI of the authoring key (//Alice for --dev)
    block_time_ms: int = 6000
    instant_seal: bool = False
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 9944
    rpc_methods: str = "auto"
    rpc_cors: tuple[str, ...] | str | None = None
    rpc_max_connections: int = 100
    rpc_max_request_size_mb: int = 15
    rpc_max_response_size_mb: int = 15
    rpc_max_subscriptions: int = 1024
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int | None = None  # None: no metrics server
    prometheus_required: bool = False  # the port was asked for: failing to bind is an error
    extra: dict[str, Any] = field(default_factory=dict)


class NodeService:
    """One node: call :meth:`run` and stop it with :meth:`request_stop`."""

    def __init__(self, config: NodeConfig, spec: ChainSpec) -> None:
        self.config = config
        self.spec = spec
        self._tmpdir: str | None = None
        base = config.base_path
        if config.tmp or base is None:
            self._tmpdir = tempfile.mkdtemp(prefix="polchain-")
            base = Path(self._tmpdir)
        self.db_path = Path(base) / "chains" / spec.id / "db"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.db_path)
        self.chain = Blockchain(
            self.db, chain_id=spec.id, build_genesis=spec.apply_genesis
        )
        self.pool = TransactionPool(self._validate_for_pool)
        self.pool.add_listener(self._on_pool_status)
        self.author = Keypair.from_uri(config.author) if config.author else None
        self._stop = asyncio.Event()
        self._work = asyncio.Event()
        self._lock = asyncio.Lock()
        self._head_watchers: set[asyncio.Queue[Header]] = set()
        self._final_watchers: set[asyncio.Queue[Header]] = set()
        self._xt_watchers: dict[bytes, set[asyncio.Queue[Any]]] = {}
        self.slot_ms = config.block_time_ms
        self._signature_ok: dict[bytes, None] = {}  # insertion-ordered: the oldest is evicted first
        self.metrics = NodeMetrics(self)

    # --- the pool's view of validity -----------------------------------------------------------
    def _validate_for_pool(self, xt: Extrinsic) -> Validity:
        # A hash fixes the bytes and so the signature's validity on this chain: check it once,
        # not again at every revalidation after a block.
        raw = xt.encode()
        xt_hash = blake2_256(raw)
        checked = xt_hash in self._signature_ok
        v = self.chain.runtime.verify_extrinsic(
            self.chain.state.overlay(), xt, len(raw), self.chain.best_number + 1,
            check_signature=not checked, allow_future=True,
        )
        if not checked:
            self._signature_ok[xt_hash] = None
            if len(self._signature_ok) > SIGNATURE_CACHE:
                self._signature_ok.pop(next(iter(self._signature_ok)))
        return Validity(v.priority, v.account_nonce, 64)

    def _on_pool_status(self, xt_hash: bytes, status: str, data: bytes | None) -> None:
        if status == "usurped" and data is not None:
            self._notify(xt_hash, {"usurped": "0x" + data.hex()}, final=True)
        elif status in ("dropped", "invalid"):
            self._notify(xt_hash, status, final=True)
        else:
            self._notify(xt_hash, status, final=False)

    # --- submission and watching ---------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Put an extrinsic in the pool; raises the pool's or the runtime's error."""
        submitted = self.pool.submit(raw)
        self._work.set()
        return submitted.hash

    async def watch(self, raw: bytes) -> AsyncIterator[Any]:
        """Submit and yield Substrate TransactionStatus values until a final one."""
        queue: asyncio.Queue[Any] = asyncio.Queue(WATCH_QUEUE)
        xt_hash = decode_extrinsic(raw).hash()
        self._xt_watchers.setdefault(xt_hash, set()).add(queue)
        try:
            submitted = self.pool.submit(raw)
            self._work.set()
            yield submitted.status
            while True:
                status, final = await queue.get()
                if status in ("ready", "future") and status == submitted.status:
                    continue
                yield status
                if final:
                    return
        finally:
            watchers = self._xt_watchers.get(xt_hash)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._xt_watchers[xt_hash]

    def _notify(self, xt_hash: bytes, status: Any, *, final: bool) -> None:
        for queue in self._xt_watchers.get(xt_hash, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((status, final))

    async def heads(self, *, finalized: bool) -> AsyncIterator[Header]:
        """The current (best or finalized) head, then each new one."""
        queue: asyncio.Queue[Header] = asyncio.Queue(WATCH_QUEUE)
        watchers = self._final_watchers if finalized else self._head_watchers
        watchers.add(queue)
        try:
            yield self.chain.get_header(self.chain.finalized_hash if finalized else self.chain.best_hash)
            while True:
                yield await queue.get()
        finally:
            watchers.discard(queue)

    def _publish(self, watchers: set[asyncio.Queue[Header]], header: Header) -> None:
        for queue in list(watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(header)

    # --- authoring -------------------------------------------------------------------------------
    async def author_block(self) -> ImportedBlock | None:
        """Build one block from the pool now (serialised with any other block work)."""
        if self.author is None:
            return None
        async with self._lock:
            slot = self._next_own_slot(max(self.chain.best_header.slot + 1, int(time.time() * 1000) // self.slot_ms))
            if slot is None:
                return None
            candidates = list(self.pool.ready())
            invalid: list[tuple[bytes, InvalidTransaction]] = []
            started = time.perf_counter()
            imported = await asyncio.to_thread(
                self.chain.build_block, candidates, self.author, slot,
                on_invalid=lambda h, e: invalid.append((h, e)),
            )
            elapsed = time.perf_counter() - started
            for xt_hash, exc in invalid:
                if exc.reason != "future":
                    self.pool.report_invalid(xt_hash)
            self._after_import(imported, elapsed, authored=True)
            return imported

    def _after_import(self, imported: ImportedBlock, elapsed: float, *, authored: bool = False) -> None:
        self.metrics.on_block(imported, elapsed, authored=authored)
        block = imported.block
        block_hash = block.hash()
        included = [xt.hash() for xt in block.body.extrinsics]
        self.pool.prune(included)
        self.pool.revalidate()
        log.info(
            "Imported #%d (0x%s…) extrinsics=%d training_steps=%d in %.0f ms",
            block.header.number, block_hash.hex()[:12], len(included), imported.training_steps, elapsed * 1000,
        )
        for xt_hash in included:
            self._notify(xt_hash, {"inBlock": "0x" + block_hash.hex()}, final=False)
        self._publish(self._head_watchers, block.header)
        # One validator: its own block is final at once (more than 2/3 of one vote).
        if len(self._validators()) == 1:
            self.chain.set_finalized(block_hash)
            for xt_hash in included:
                self._notify(xt_hash, {"finalized": "0x" + block_hash.hex()}, final=True)
            self._publish(self._final_watchers, block.header)

    def _next_own_slot(self, earliest: int) -> int | None:
        """The first slot from ``earliest`` that Aura gives to this node's key (None: never)."""
        validators = self._validators()
        if self.author is None or self.author.public not in validators:
            return None
        if self.config.instant_seal:
            return next(s for s in range(earliest, earliest + len(validators)) if compute_slot_author(validators, s) == self.author.public)
        return earliest if compute_slot_author(validators, earliest) == self.author.public else None

    def _validators(self) -> tuple[bytes, ...]:
        return get_validators(self.chain.state.overlay())

    async def _authoring_loop(self) -> None:
        if self.author is None or self.author.public not in self._validators():
            log.info("Not authoring: no validator key of this chain")
            return
        while not self._stop.is_set():
            if self.config.instant_seal:
                await self._wait_for(self._work, None)
                self._work.clear()
                if self._stop.is_set():
                    return
                if self.pool.status().ready:
                    await self.author_block()
                    if self.pool.status().ready:
                        self._work.set()
            else:
                now = time.time() * 1000
                await self._wait_for(self._stop, (self.slot_ms - now % self.slot_ms) / 1000)
                if not self._stop.is_set():
                    await self.author_block()

    async def _wait_for(self, event: asyncio.Event, timeout: float | None) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        other = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stop, other}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            other.cancel()

    # --- lifecycle ---------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()
        self._work.set()

    async def run(self, rpc_server: Any | None = None) -> None:
        """Serve until :meth:`request_stop`; then finish the block in progress and close."""
        if rpc_server is not None:
            await rpc_server.start()
            log.info("JSON-RPC on %s", rpc_server.url)
        author = asyncio.create_task(self._authoring_loop())
        try:
            await self._stop.wait()
        finally:
            await asyncio.gather(author, return_exceptions=True)
            async with self._lock:  # the block in progress is written before the database closes
                if rpc_server is not None:
                    await rpc_server.stop()
                self.close()

    def close(self) -> None:
        self.db.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
