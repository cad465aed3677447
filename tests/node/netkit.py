"""Real NetworkServices on loopback for tests: a synthetic chain, recording handlers, a raw peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from chain.block import Block, Body, compute_extrinsics_root
from chain.blockchain import Blockchain
from chain.crypto import dev_keypair
from chain.header import ZERO_HASH, Header, seal_header
from chain.pallets.staking import get_validators
from chain.storage import Database
from consensus.aura import compute_slot_author
from genesis.spec import ChainSpec
from node.network.identity import NodeKey, PeerId
from node.network.messages import (
    PROTOCOL_VERSION,
    ROLE_FULL,
    BlockData,
    BlockRequest,
    Message,
    Status,
    decode_message,
    encode_message,
)
from node.network.multiaddr import Multiaddr
from node.network.noise import MAX_NOISE_MESSAGE, NoiseSession, StaticKey, handshake
from node.network.service import (
    WS_PATH,
    ChainStatus,
    NetworkConfig,
    NetworkHandlers,
    NetworkService,
)

if TYPE_CHECKING:
    from node.service import NodeService

GENESIS = b"\x47" * 32
LOOPBACK = (Multiaddr("ip4", "127.0.0.1", 0),)
FAST = NetworkConfig(
    listen_addrs=LOOPBACK, handshake_timeout=2.0, request_timeout=2.0, ban_seconds=30.0,
    reconnect_min=0.1, reconnect_max=0.5, maintain_interval=0.05,
)


# The extrinsics root of an empty body: a node checks a fetched body against it before decoding.
EMPTY_BODY_ROOT = compute_extrinsics_root([])


def make_chain(
    n: int, salt: bytes = b"", *, parent: bytes = ZERO_HASH, start: int = 0, sealed_for: bytes | None = None
) -> list[Block]:
    """``n`` blocks #start.. in slots #start.., each the child of the one before (no state: only
    links matter here). Authored by no one, or, with ``sealed_for`` (a genesis hash), by Alice
    and sealed for that chain, as a node's announce check and branch walk ask of a header."""
    blocks: list[Block] = []
    alice = dev_keypair("Alice")
    for i in range(start, start + n):
        h = Header(parent, i, (salt + bytes(32))[:32], EMPTY_BODY_ROOT, i, bytes(32) if sealed_for is None else alice.public)
        if sealed_for is not None:
            h = seal_header(alice, sealed_for, h)
        blocks.append(Block(h, Body()))
        parent = h.hash()
    return blocks



def build_sealed_chain(tmp: Path, spec: ChainSpec, slots: Iterable[int]) -> list[Block]:
    """Genesis and a real, empty block of the 4-validator chain ``spec`` in each of ``slots``
    (increasing), each the child of the one before and sealed by the owner of its slot (built
    in ``tmp / "builder"``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    db = Database(tmp / "builder")
    try:
        builder = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        validators = get_validators(builder.state.overlay())
        by_key = {dev_keypair(n).public: dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")}
        blocks = [builder.get_block(builder.genesis_hash)]
        for slot in slots:
            blocks.append(builder.build_block([], by_key[compute_slot_author(validators, slot)], slot).block)
        return blocks
    finally:
        db.close()


@dataclass
class Node:
    """A NetworkService with a synthetic chain and queues of what its handlers saw."""

    service: NetworkService
    blocks: list[Block]
    announces: asyncio.Queue[tuple[PeerId, Header]] = field(default_factory=asyncio.Queue)
    txs: list[tuple[PeerId, tuple[bytes, ...]]] = field(default_factory=list)
    tx_event: asyncio.Event = field(default_factory=asyncio.Event)
    votes: list[bytes] = field(default_factory=list)
    regossip: bool = True

    @property
    def addr(self) -> Multiaddr:
        return self.service.listen_addresses[0]

    @property
    def id(self) -> PeerId:
        return self.service.local_peer_id

    def status(self) -> ChainStatus:
        best = self.blocks[-1]
        return ChainStatus(best.header.number, best.hash(), 0, self.blocks[0].hash())

    async def on_announce(self, peer: PeerId, header: Header) -> None:
        await self.announces.put((peer, header))

    async def on_transactions(self, peer: PeerId, xts: tuple[bytes, ...]) -> None:
        self.txs.append((peer, xts))
        self.tx_event.set()
        if self.regossip:  # what the node does after its pool accepts them
            self.service.broadcast_transactions(xts)

    async def serve(self, peer: PeerId, req: BlockRequest) -> list[BlockData]:
        by_hash = {b.hash(): b for b in self.blocks}
        start = by_hash.get(req.start) if isinstance(req.start, bytes) else (
            self.blocks[req.start] if req.start < len(self.blocks) else None
        )
        if start is None:
            return []
        i = start.header.number
        step = 1 if req.direction == 0 else -1
        out = []
        while 0 <= i < len(self.blocks) and len(out) < req.count:
            out.append(BlockData(self.blocks[i]))
            i += step
        return out

    async def on_vote(self, peer: PeerId, payload: bytes) -> bool:
        self.votes.append(payload)
        return not payload.startswith(b"bad")


def answer_blocks_late(node: Node, seconds: float) -> None:
    """From now on ``node`` answers each block request ``seconds`` late (a slow or stalling peer)."""
    serve = node.service.handlers.serve_block_request
    assert serve is not None

    async def late(peer: PeerId, req: BlockRequest) -> Any:
        await asyncio.sleep(seconds)
        return await serve(peer, req)

    node.service.handlers.serve_block_request = late


async def start_node(
    config: NetworkConfig = FAST, *, genesis: bytes = GENESIS, blocks: int = 10, key: NodeKey | None = None, **changes: Any
) -> Node:
    node = Node(service=None, blocks=make_chain(blocks))  # type: ignore[arg-type]
    handlers = NetworkHandlers(
        on_block_announce=node.on_announce, on_transactions=node.on_transactions,
        serve_block_request=node.serve, on_vote=node.on_vote, on_justification=node.on_vote,
    )
    node.service = NetworkService(
        key or NodeKey.generate(), replace(config, **changes), genesis_hash=genesis,
        chain_status=node.status, handlers=handlers,
    )
    await node.service.start()
    return node


@asynccontextmanager
async def nodes(*configs: dict) -> AsyncIterator[list[Node]]:
    """Nodes started with each of ``configs`` (changes to FAST), stopped when the block ends."""
    started: list[Node] = []
    try:
        for changes in configs:
            started.append(await start_node(**changes))
        yield started
    finally:
        for n in started:
            await n.service.stop()


@asynccontextmanager
async def running(service: NodeService) -> AsyncIterator[NodeService]:
    """``service`` run on this event loop, yielded once it listens for peers; stopped (and
    waited for) when the block ends."""
    run = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.network is not None and bool(service.network.listen_addresses))
        yield service
    finally:
        service.request_stop()
        await run


async def dial_until_banned(node: Any, peer: Node) -> None:
    """``peer`` dials ``node`` (a NodeService) and what it serves gets it banned there."""
    await peer.service.dial(node.network.listen_addresses[0])
    await wait_for(lambda: node.network.reputation.banned_for(peer.id) > 0)


async def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class RawPeer:
    """A hand-driven client: real WebSocket and Noise, then whatever bytes a test wants to send."""

    def __init__(self, key: NodeKey | None = None) -> None:
        self.key = key or NodeKey.generate()
        self.static = StaticKey.generate(self.key)
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session: NoiseSession | None = None

    async def connect(
        self, addr: Multiaddr, *, genesis: bytes = GENESIS, status: bool = True, autoping: bool = True,
        host: str | None = None,
    ) -> Message | None:
        """(``autoping=False``: pings and pongs from the node reach ``self.ws.receive()``;
        ``host``: the loopback address to connect from, 127.0.0.2 say.)"""
        connector = None if host is None else aiohttp.TCPConnector(local_addr=(host, 0))
        self.http = aiohttp.ClientSession(connector=connector)
        self.ws = await self.http.ws_connect(addr.websocket_url(WS_PATH), max_msg_size=0, autoping=autoping)
        ws = self.ws

        async def recv() -> bytes:
            msg = await ws.receive()
            return bytes(msg.data)

        self.session = await handshake(
            self.static, initiator=True, send=ws.send_bytes, recv=recv, expected=addr.peer_id,
            max_message=1 << 24, timeout=2,
        )
        if not status:
            return None
        await self.send(Status(PROTOCOL_VERSION, genesis, ROLE_FULL, 0, genesis, 0, genesis))
        return await self.recv()

    async def send(self, message: Message) -> None:
        assert self.session is not None and self.ws is not None
        for frame in self.session.encrypt(encode_message(message)):
            await self.ws.send_bytes(frame)

    async def send_raw(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(data)

    async def send_encrypted(self, plaintext: bytes) -> None:
        """One frame whose plaintext is ``plaintext`` (flag byte included by the caller)."""
        assert self.session is not None and self.ws is not None
        await self.ws.send_bytes(self.session.conn.encrypt(plaintext))

    async def recv(self, timeout: float = 3.0) -> Message | None:
        """The next message, or None once the connection is closed."""
        assert self.session is not None and self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.BINARY:
                    return None
                data = self.session.decrypt(msg.data)
                if data is not None:
                    return decode_message(data)

    async def recv_until_closed(self, timeout: float = 3.0) -> list[Message]:
        out: list[Message] = []
        while (m := await self.recv(timeout)) is not None:
            out.append(m)
        return out

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()


__all__ = ["FAST", "GENESIS", "MAX_NOISE_MESSAGE", "RawPeer", "make_chain", "start_node", "wait_for"]
