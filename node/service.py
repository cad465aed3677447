"""The node service: database, chain, pool, block authoring and the RPC server, wired together.

Everything runs on one asyncio loop except block building and import, which run in a worker
thread (training can take seconds) while the loop keeps serving RPC: the kernels release the
GIL, and a short GIL switch interval (:data:`LOOP_SWITCH_INTERVAL`) bounds how long the loop
waits while the worker runs Python (``python -m benches.health`` measures both). The pool is
only ever touched on the loop thread: the builder gets a snapshot of the ready extrinsics, and
the pool hears of the block (``TransactionPool.maintain``) once the worker is done. In between, a
submission is validated against the state the worker already advanced; the pool never lets
that move a sender's nonce (see ``chain.pool``), so the block's extrinsics are pruned as
included and their watchers see ``inBlock``, not ``invalid``. While the worker builds, the pool
may also replace or evict one of the snapshot's extrinsics: the watcher's final status for a
snapshot extrinsic waits until the block is done, and is dropped if the block included it. A stop
(SIGINT/SIGTERM) lets the block in progress finish and be written, then closes the database,
so the database always ends at a whole block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chain.block import Block
from chain.blockchain import Blockchain, ImportedBlock
from chain.crypto import Keypair, blake2_256
from chain.errors import InvalidTransaction
from chain.extrinsic import Extrinsic, decode_extrinsic
from chain.header import Header
from chain.pallets.staking import get_validators
from chain.pool import TransactionPool, Validity
from chain.storage import Database
from consensus.aura import Aura, compute_slot_author
from consensus.block_import import ConsensusRules
from genesis.spec import ChainSpec
from node.metrics import NodeMetrics
from node.network.identity import NodeKey
from node.network.messages import ROLE_AUTHORITY, ROLE_FULL
from node.network.service import ChainStatus, NetworkConfig, NetworkService
from node.network.sync import NodeLink

log = logging.getLogger("polchain")

WATCH_QUEUE = 64
SIGNATURE_CACHE = 16384
# GIL switch interval while serving (CPython's default is 5 ms). The numba kernels release
# the GIL, but building a block also runs Python (the batch PRF: ~80,000 blake2b calls for a
# maximum-weight job, hashing, storage). Each time the loop thread wakes (a socket read, a
# write) it waits up to one interval for the GIL, so at 5 ms a burst of callers queues up:
# benches.health measured a system_health p99 of ~40 ms during maximum-weight blocks at 5 ms,
# ~5 ms at 0.5 ms, with no change in build time.
LOOP_SWITCH_INTERVAL = 0.0005


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
    network: NetworkConfig | None = None  # None: no networking (a node alone)
    node_key: str | None = None  # --node-key (hex)
    node_key_file: Path | None = None
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
            self.db, chain_id=spec.id, build_genesis=spec.apply_genesis,
            rules=ConsensusRules(Aura(config.block_time_ms)),
        )
        self.pool = TransactionPool(self._validate_for_pool, block_number=self.chain.best_number)
        self.pool.add_listener(self._on_pool_status)
        self.author = Keypair.from_uri(config.author) if config.author else None
        self._stop = asyncio.Event()
        self._work = asyncio.Event()
        self._lock = asyncio.Lock()
        self._head_watchers: set[asyncio.Queue[Header]] = set()
        self._final_watchers: set[asyncio.Queue[Header]] = set()
        self._xt_watchers: dict[bytes, set[asyncio.Queue[Any]]] = {}
        # The block being built: its candidates' hashes -> a final status the pool sent
        # meanwhile (see _on_pool_status), or None.
        self._in_flight: dict[bytes, Any] = {}
        self.slot_ms = config.block_time_ms
        self._signature_ok: dict[bytes, None] = {}  # insertion-ordered: the oldest is evicted first
        self.metrics = NodeMetrics(self)
        self._import_listeners: list[Callable[[ImportedBlock], None]] = []
        self.network: NetworkService | None = None
        self.link: NodeLink | None = None
        if config.network is not None:
            self._setup_network(config.network, Path(base) / "chains" / spec.id / "network")

    def _setup_network(self, net: NetworkConfig, network_dir: Path) -> None:
        """The p2p service and its link to this node (node/network/sync.py holds the policy)."""
        if self.config.node_key is not None:
            key = NodeKey.from_hex(self.config.node_key)
        elif self.config.node_key_file is not None:
            key = NodeKey.from_file(self.config.node_key_file)
        else:
            key = NodeKey.load_or_generate(network_dir)
        roles = ROLE_AUTHORITY if self.author is not None else ROLE_FULL
        net = replace(net, roles=roles)
        self.network = NetworkService(
            key, net, genesis_hash=self.chain.genesis_hash, chain_status=self._link_status
        )
        self.link = NodeLink(self, self.network)
        self._import_listeners.append(self.link.on_imported)

    def _link_status(self) -> ChainStatus:
        assert self.link is not None
        return self.link.chain_status()

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
        final: Any = None
        if status == "usurped" and data is not None:
            final = {"usurped": "0x" + data.hex()}
        elif status in ("dropped", "invalid"):
            final = status
        if final is None:
            self._notify(xt_hash, status, final=False)
        elif xt_hash in self._in_flight:
            # The worker is building a block from a snapshot that holds this extrinsic: the
            # pool may replace or evict it meanwhile, yet the block may include it. Its watcher
            # learns which once the block is done (_settle_in_flight).
            self._in_flight[xt_hash] = final
        else:
            self._notify(xt_hash, final, final=True)

    def _settle_in_flight(self, included: set[bytes]) -> None:
        """After a build: send the held final statuses of the candidates the block left out."""
        held, self._in_flight = self._in_flight, {}
        for xt_hash, final in held.items():
            if final is not None and xt_hash not in included:
                self._notify(xt_hash, final, final=True)

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
            ready = list(self.pool.ready_with_hashes())
            candidates = [xt for _, xt in ready]
            invalid: list[tuple[bytes, InvalidTransaction]] = []
            started = time.perf_counter()
            self._in_flight = dict.fromkeys((xt_hash for xt_hash, _ in ready), None)
            included: set[bytes] = set()
            try:
                imported = await asyncio.to_thread(
                    self.chain.build_block, candidates, self.author, slot,
                    on_invalid=lambda h, e: invalid.append((h, e)),
                )
                included = {receipt.hash for receipt in imported.receipts}
            finally:
                self._settle_in_flight(included)
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
        included = [receipt.hash for receipt in imported.receipts]  # the extrinsics' hashes, in order
        # One step on the loop thread: prune the block's extrinsics by hash, then revalidate the
        # rest against the post-block state. Submissions that arrived while the worker thread
        # wrote the block were validated against that state already; the pool left their
        # senders' older extrinsics in place for this step to recognise as included.
        self.pool.maintain(block.header.number, included)
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
        for listener in self._import_listeners:
            listener(imported)

    async def import_block(self, block: Block) -> ImportedBlock | None:
        """Import a block from a peer, serialised with authoring; None if it no longer extends
        the best block (we authored one meanwhile). BlockError if it is bad."""
        async with self._lock:
            if block.header.parent_hash != self.chain.best_hash:
                return None
            started = time.perf_counter()
            imported = await asyncio.to_thread(self.chain.import_block, block)
            self._after_import(imported, time.perf_counter() - started)
            return imported

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
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(LOOP_SWITCH_INTERVAL)
        try:
            await self._serve(rpc_server)
        finally:
            sys.setswitchinterval(switch_interval)

    async def _serve(self, rpc_server: Any | None) -> None:
        try:
            if self.network is not None:
                await self.network.start()
                log.info("Local node identity is: %s", self.network.local_peer_id)
                for addr in self.network.listen_addresses:
                    log.info("Listening for new connections on %s", addr)
            if rpc_server is not None:
                await rpc_server.start()
                log.info("JSON-RPC on %s", rpc_server.url)
        except BaseException:
            # A failed start (a port taken, say) leaves nothing open behind it.
            if self.network is not None:
                await self.network.stop()
            self.close()
            raise
        author = asyncio.create_task(self._authoring_loop())
        try:
            await self._stop.wait()
        finally:
            await asyncio.gather(author, return_exceptions=True)
            if self.network is not None:
                await self.network.stop()  # fails pending requests, so syncs end
            if self.link is not None:
                await self.link.stop()  # waits for an import in progress
            async with self._lock:  # the block in progress is written before the database closes
                if rpc_server is not None:
                    await rpc_server.stop()
                self.close()

    def close(self) -> None:
        self.db.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
