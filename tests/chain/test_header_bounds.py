"""A header's every field is bounded while it is decoded: its digest (at most MAX_DIGEST_ITEMS
logs, each a 4-byte engine id, a u8 kind and at most MAX_DIGEST_DATA bytes) and its seal (an
ed25519 signature, or empty at genesis). Before, a block response of up to 16 MiB whose header
held 2.8 million empty digest logs decoded, in 0.48 s and 353 MB, before any check saw it."""

from __future__ import annotations

import msgspec
import pytest

from chain.block import Block, Body, decode_block
from chain.codec import encode
from chain.errors import CodecError
from chain.header import (
    MAX_DIGEST_DATA,
    MAX_DIGEST_ITEMS,
    DigestItem,
    Header,
    PolCommitment,
    compute_pol_digest,
    compute_slot_digest,
    decode_header,
)
from node.network.errors import MessageError
from node.network.messages import BlockData, BlockResponse, decode_message


def _header(digest: tuple, seal: bytes = bytes(64)) -> Header:
    return Header(bytes(32), 7, bytes(32), bytes(32), 9, bytes(32), digest, seal)


def _raw(header: Header) -> bytes:
    """The header's wire bytes, whatever its bounds (msgspec encodes without checking them)."""
    return header.encode()


def test_an_honest_header_is_within_every_bound() -> None:
    honest = _header((compute_slot_digest(2**63 - 1), compute_pol_digest(PolCommitment(bytes(32), 2**63 - 1, 2**63 - 1))))
    assert decode_header(_raw(honest)) == honest
    assert all(len(d.data) <= 60 for d in honest.digest)


@pytest.mark.parametrize("header, refusal", [
    (_header(tuple(DigestItem(4, b"POL_", b"") for _ in range(MAX_DIGEST_ITEMS + 1))),
     rf"Expected `array` of length <= {MAX_DIGEST_ITEMS} - at `\$\[6\]`"),
    (_header((DigestItem(4, b"POL_", bytes(MAX_DIGEST_DATA + 1)),)),
     rf"Expected `bytes` of length <= {MAX_DIGEST_DATA} - at `\$\[6\]\[0\]\[2\]`"),
    (_header((DigestItem(4, b"POL_X", b""),)), r"Expected `bytes` of length <= 4 - at `\$\[6\]\[0\]\[1\]`"),
    (_header((DigestItem(4, b"POL", b""),)), r"Expected `bytes` of length >= 4 - at `\$\[6\]\[0\]\[1\]`"),
    (_header((DigestItem(256, b"POL_", b""),)), r"Expected `int` <= 255 - at `\$\[6\]\[0\]\[0\]`"),
    (_header((), bytes(65)), r"Expected `bytes` of length <= 64 - at `\$\[7\]`"),
])
def test_a_header_past_a_bound_is_refused_while_it_is_decoded(header: Header, refusal: str) -> None:
    with pytest.raises(CodecError, match=refusal):
        decode_header(_raw(header))


def test_a_header_at_every_bound_is_decoded() -> None:
    full = _header(tuple(DigestItem(255, b"abcd", bytes(MAX_DIGEST_DATA)) for _ in range(MAX_DIGEST_ITEMS)))
    assert decode_header(_raw(full)) == full
    assert decode_header(_raw(_header((), b""))).seal == b""  # genesis: no seal


def test_a_block_response_stuffed_with_digest_logs_is_refused_while_it_is_decoded() -> None:
    """The peer's message of the report: one block whose header holds far more digest logs
    than any header may (here 100,000; 2.8 million fit 16 MiB)."""
    stuffed = _header(tuple(DigestItem(0, b"\x00" * 4, b"") for _ in range(100_000)))
    response = BlockResponse(1, (BlockData(Block(stuffed, Body())),))
    with pytest.raises(MessageError, match=rf"length <= {MAX_DIGEST_ITEMS}"):
        decode_message(encode(response))
    with pytest.raises(CodecError, match=rf"length <= {MAX_DIGEST_ITEMS}"):
        decode_block(Block(stuffed, Body()).encode())
    assert isinstance(msgspec.msgpack.decode(_raw(stuffed)[1:]), list)  # the bytes themselves are valid MessagePack
