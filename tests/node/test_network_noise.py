"""Noise XX bound to ed25519 identities: real X25519, ChaChaPoly, BLAKE2b and ed25519, in memory."""

from __future__ import annotations

import asyncio

import pytest

from node.network.errors import FrameError, HandshakeError, OversizeMessage, WrongPeer
from node.network.identity import NodeKey
from node.network.noise import (
    FLAG_MORE,
    MAX_CHUNK,
    MAX_NOISE_MESSAGE,
    STATIC_KEY_DOMAIN,
    NoiseSession,
    StaticKey,
    decode_handshake_payload,
    encode_handshake_payload,
    handshake,
)

MAX = 1 << 20


def pipe() -> tuple[asyncio.Queue[bytes], asyncio.Queue[bytes]]:
    return asyncio.Queue(), asyncio.Queue()


async def connect(
    a: StaticKey, b: StaticKey, expected=None, timeout: float = 2.0
) -> tuple[NoiseSession | BaseException, NoiseSession | BaseException]:
    """Both ends over in-memory queues; when one end refuses, the other waits out ``timeout``."""
    ab, ba = pipe()
    init = handshake(a, initiator=True, send=ab.put, recv=ba.get, expected=expected, max_message=MAX, timeout=timeout)
    resp = handshake(b, initiator=False, send=ba.put, recv=ab.get, max_message=MAX, timeout=timeout)
    res = await asyncio.gather(init, resp, return_exceptions=True)
    return res[0], res[1]


async def test_handshake_authenticates_both_sides_and_encrypts() -> None:
    ka, kb = NodeKey.generate(), NodeKey.generate()
    sa, sb = await connect(StaticKey.generate(ka), StaticKey.generate(kb), expected=kb.peer_id)
    assert isinstance(sa, NoiseSession) and isinstance(sb, NoiseSession)
    assert sa.remote == kb.peer_id and sb.remote == ka.peer_id
    for size in (0, 1, MAX_CHUNK, MAX_CHUNK + 1, 200_000):
        message = bytes(range(256)) * (size // 256) + bytes(size % 256)
        frames = sa.encrypt(message)
        assert len(frames) == max(1, -(-size // MAX_CHUNK))
        assert all(len(f) <= MAX_NOISE_MESSAGE for f in frames)
        assert all(message[:64] not in f for f in frames if size >= 64)  # nothing in plaintext
        out = [sb.decrypt(f) for f in frames]
        assert out[:-1] == [None] * (len(frames) - 1) and out[-1] == message


async def test_dialing_the_wrong_peer_id_is_refused() -> None:
    ka, kb, kc = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    sa, _ = await connect(StaticKey.generate(ka), StaticKey.generate(kb), expected=kc.peer_id, timeout=0.3)
    assert isinstance(sa, WrongPeer)
    assert f"dialed {kc.peer_id} but the remote proved it is {kb.peer_id}" in str(sa)


async def test_a_peer_cannot_claim_another_identity() -> None:
    victim, attacker, honest = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    genuine = StaticKey.generate(victim)
    # 1. Replay the victim's genuine payload with the attacker's own Noise static key.
    replay = StaticKey.generate(attacker)
    replay.payload = genuine.payload
    _, sb = await connect(replay, StaticKey.generate(honest), timeout=0.3)
    assert isinstance(sb, HandshakeError)
    assert f"identity signature of {victim.peer_id} does not cover the Noise static key" in str(sb)
    # 2. Claim the victim's key but sign with the attacker's.
    forged = StaticKey.generate(attacker)
    forged.payload = encode_handshake_payload(victim.keypair.public, attacker.sign(STATIC_KEY_DOMAIN + forged.public))
    sa, _ = await connect(StaticKey.generate(honest), forged, timeout=0.3)
    assert isinstance(sa, HandshakeError)
    assert f"identity signature of {victim.peer_id} does not cover" in str(sa)


async def test_garbage_handshake_bytes_are_refused() -> None:
    kb = NodeKey.generate()
    ab, ba = pipe()
    await ab.put(b"\x00" * 10)  # message 1 must be a 32-byte ephemeral key
    with pytest.raises(HandshakeError, match="message 1 does not decrypt or is malformed"):
        await handshake(StaticKey.generate(kb), initiator=False, send=ba.put, recv=ab.get, max_message=MAX, timeout=2)
    ab, ba = pipe()
    await ab.put(b"\x00" * 32)  # a low-order X25519 key: the shared secret would be all zeros
    with pytest.raises(HandshakeError, match="message 2 cannot be written: the remote's ephemeral key is invalid"):
        await handshake(StaticKey.generate(kb), initiator=False, send=ba.put, recv=ab.get, max_message=MAX, timeout=2)
    ab, ba = pipe()
    await ab.put(b"\x00" * 5000)
    with pytest.raises(HandshakeError, match="message 1 is 5000 bytes, over 1024"):
        await handshake(StaticKey.generate(kb), initiator=False, send=ba.put, recv=ab.get, max_message=MAX, timeout=2)


async def test_handshake_times_out() -> None:
    ab, ba = pipe()
    with pytest.raises(HandshakeError, match=r"did not finish within 0\.1 s"):
        await handshake(StaticKey.generate(NodeKey.generate()), initiator=False, send=ba.put, recv=ab.get, max_message=MAX, timeout=0.1)


def test_payload_decoding_refuses_other_shapes() -> None:
    k = NodeKey.generate()
    good = encode_handshake_payload(k.keypair.public, bytes(64))
    assert decode_handshake_payload(good)[0] == k.peer_id
    with pytest.raises(HandshakeError, match="expected 104"):
        decode_handshake_payload(good + b"\x1a\x00")  # early data (field 3) is not accepted
    with pytest.raises(HandshakeError, match="does not start with a 36-byte identity_key"):
        decode_handshake_payload(b"\x12" + good[1:])
    with pytest.raises(HandshakeError, match="no 64-byte identity_sig"):
        decode_handshake_payload(good[:38] + b"\x1a" + good[39:])


async def test_tampered_frames_and_oversize_messages_are_refused() -> None:
    ka, kb = NodeKey.generate(), NodeKey.generate()
    sa, sb = await connect(StaticKey.generate(ka), StaticKey.generate(kb))
    assert isinstance(sa, NoiseSession) and isinstance(sb, NoiseSession)
    frame = bytearray(sa.encrypt(b"hello")[0])
    frame[3] ^= 1
    with pytest.raises(FrameError, match="does not decrypt"):
        sb.decrypt(bytes(frame))
    with pytest.raises(FrameError, match="shorter than a tag"):
        sb.decrypt(b"\x00" * 5)
    with pytest.raises(OversizeMessage, match="over the Noise limit"):
        sb.decrypt(b"\x00" * (MAX_NOISE_MESSAGE + 1))
    # A message that grows past the bound is refused at the chunk that passes it.
    sa2, sb2 = await connect(StaticKey.generate(ka), StaticKey.generate(kb))
    assert isinstance(sa2, NoiseSession) and isinstance(sb2, NoiseSession)
    sa2.max_message = 10 * MAX
    frames = sa2.encrypt(bytes(2 * MAX))
    with pytest.raises(OversizeMessage, match=f"passes the {MAX}-byte bound"):
        for f in frames:
            sb2.decrypt(f)
    with pytest.raises(OversizeMessage, match="over the"):
        sb2.encrypt(bytes(MAX + 1))


async def test_a_chunk_with_more_to_come_must_be_full() -> None:
    """An honest sender fills every chunk but the last (encrypt), so a short one with more to
    come is refused: empty ones, which the byte bound never counts, grew the reassembly list by
    a part each for as long as the peer liked (an outside tester's N3, round 15)."""
    ka, kb = NodeKey.generate(), NodeKey.generate()
    sa, sb = await connect(StaticKey.generate(ka), StaticKey.generate(kb))
    assert isinstance(sa, NoiseSession) and isinstance(sb, NoiseSession)
    for size in (0, 1, MAX_CHUNK - 1):
        with pytest.raises(FrameError, match=f"a chunk with more to come has {size} bytes, not {MAX_CHUNK}"):
            sb.decrypt(sa.conn.encrypt(bytes((FLAG_MORE,)) + bytes(size)))
    full = sa.conn.encrypt(bytes((FLAG_MORE,)) + bytes(MAX_CHUNK))
    assert sb.decrypt(full) is None and sb.decrypt(sa.encrypt(b"the end")[0]) == bytes(MAX_CHUNK) + b"the end"
