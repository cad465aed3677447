"""Hand-made HTTP/1.1 and WebSocket (RFC 6455) bytes for tests a client library would hide.

aiohttp's client always masks, answers pings and sends well-formed headers; the server's
handling of unmasked frames, oversize frames, silent peers and slow header senders can only
be checked by writing the bytes ourselves. Everything here uses asyncio streams so that an
in-process server on the same loop keeps running.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


async def connect(port: int, local: str | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the server, from the loopback address ``local`` if given."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=None if local is None else (local, 0))


async def read_head(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """The status line and headers of an HTTP response."""
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)


async def http_exchange(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send raw request bytes; (status, whole response) once the server closes."""
    reader, writer = await connect(port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    return int(data.split(b" ", 2)[1]), data


async def upgrade(
    port: int, extra_headers: bytes = b"", tail: bytes = b"", local: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake by hand; ``tail`` is sent in the same write as the request."""
    reader, writer = await connect(port, local)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra_headers
        + b"\r\n" + tail
    )
    await writer.drain()
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame(
    payload: bytes, opcode: int = OP_TEXT, *, mask: bool = True, declared: int | None = None
) -> bytes:
    """One final frame; ``declared`` overrides the length field (to claim a bigger payload)."""
    n = len(payload) if declared is None else declared
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes]:
    """One server frame (servers never mask): (opcode, payload)."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), timeout)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
    assert not b1 & 0x80, "a server frame must not be masked"
    return b0 & 0x0F, await asyncio.wait_for(reader.readexactly(n), timeout)


async def read_close(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, list[int]]:
    """Read frames up to the server's close frame, then to a clean end of stream.

    Returns (close code, opcodes seen before the close). A TCP reset instead of an
    orderly close raises ConnectionResetError here, which is what the tests look for.
    """
    seen: list[int] = []
    while True:
        opcode, payload = await read_frame(reader, timeout)
        if opcode == OP_CLOSE:
            (code,) = struct.unpack(">H", payload[:2])
            break
        seen.append(opcode)
    rest = await asyncio.wait_for(reader.read(), timeout)
    assert rest == b"", rest
    return code, seen
