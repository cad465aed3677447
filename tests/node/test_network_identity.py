"""Node keys, libp2p PeerIds and multiaddrs: published vectors and every refusal's reason."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.network.errors import InvalidMultiaddr, InvalidNodeKey, InvalidPeerId
from node.network.identity import NodeKey, PeerId, decode_public_key, encode_public_key
from node.network.multiaddr import Multiaddr

# libp2p peer-ids spec, "Test vectors" (github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md):
# the ed25519 private key 08011240 || seed || public, and its public key protobuf.
SPEC_PRIVATE = bytes.fromhex(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PUBLIC = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
# The PeerId of that key, as pinned by libp2p implementations' tests.
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def test_peer_id_of_the_spec_vector() -> None:
    seed = SPEC_PRIVATE[4:36]
    key = NodeKey.from_seed(seed)
    assert key.keypair.public == SPEC_PRIVATE[36:]
    assert encode_public_key(key.keypair.public) == SPEC_PUBLIC
    assert str(key.peer_id) == SPEC_PEER_ID
    assert PeerId.parse(SPEC_PEER_ID) == key.peer_id
    assert PeerId.parse(SPEC_PEER_ID).public_key == SPEC_PUBLIC[4:]


def test_generated_ids_print_as_libp2p_ed25519_ids() -> None:
    for _ in range(5):
        pid = NodeKey.generate().peer_id
        assert str(pid).startswith("12D3KooW")
        assert PeerId.parse(str(pid)) == pid


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty peer id"),
        ("12D3KooW0", "outside base58btc: '0'"),
        ("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "sha2-256 PeerId"),
        ("16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY", "is not an ed25519 PublicKey"),
        ("12D3KooW", "identity multihash of 10 bytes"),
        ("1" * 200, "too long"),
    ],
)
def test_bad_peer_ids_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidPeerId, match=reason):
        PeerId.parse(text)


def test_public_key_protobuf_of_another_type_is_refused() -> None:
    with pytest.raises(InvalidPeerId, match="key type 2 is not Ed25519"):
        decode_public_key(bytes.fromhex("08021221") + bytes(33))


def test_node_key_from_hex_and_file(tmp_path) -> None:
    hexkey = SPEC_PRIVATE[4:36].hex()
    assert str(NodeKey.from_hex(hexkey).peer_id) == SPEC_PEER_ID
    assert str(NodeKey.from_hex("0x" + hexkey).peer_id) == SPEC_PEER_ID
    raw = tmp_path / "raw"
    raw.write_bytes(SPEC_PRIVATE[4:36])
    assert str(NodeKey.from_file(raw).peer_id) == SPEC_PEER_ID
    text = tmp_path / "hex"
    text.write_text(hexkey + "\n")
    assert str(NodeKey.from_file(text).peer_id) == SPEC_PEER_ID


@pytest.mark.parametrize(
    ("text", "reason"),
    [("abc", "64 hex digits"), ("zz" * 32, "must be hex digits"), ("00" * 33, "got 66 characters")],
)
def test_bad_node_keys_are_refused_without_echoing_them(text: str, reason: str) -> None:
    with pytest.raises(InvalidNodeKey, match=reason) as info:
        NodeKey.from_hex(text)
    assert text not in str(info.value)


def test_bad_node_key_files(tmp_path) -> None:
    with pytest.raises(InvalidNodeKey, match="cannot read node key file"):
        NodeKey.from_file(tmp_path / "absent")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01" * 40)
    with pytest.raises(InvalidNodeKey, match="neither 32 raw bytes nor 64 hex digits"):
        NodeKey.from_file(bad)


def test_a_node_key_file_is_read_only_as_far_as_a_key_can_go(tmp_path) -> None:
    """A key is at most a few hundred bytes: a larger file (or /dev/zero, which never ends) is
    refused after that much is read, not read whole into memory."""
    big = tmp_path / "big"
    big.write_bytes(b"0" * (1 << 20))
    with pytest.raises(InvalidNodeKey, match=r"node key file .*big is over 256 bytes"):
        NodeKey.from_file(big)
    with pytest.raises(InvalidNodeKey, match="node key file /dev/zero is over 256 bytes"):
        NodeKey.from_file(Path("/dev/zero"))
    padded = tmp_path / "padded"  # 64 hex digits and whitespace, within the bound, still a key
    padded.write_text("  0x" + "11" * 32 + "\n" * 100)
    assert NodeKey.from_file(padded).peer_id == NodeKey.from_hex("11" * 32).peer_id


def test_default_key_is_generated_once_with_mode_0600(tmp_path) -> None:
    netdir = tmp_path / "chains" / "dev" / "network"
    first = NodeKey.load_or_generate(netdir)
    path = netdir / "secret_ed25519"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert NodeKey.load_or_generate(netdir).peer_id == first.peer_id


def test_multiaddr_round_trip() -> None:
    text = f"/ip4/127.0.0.1/tcp/30333/p2p/{SPEC_PEER_ID}"
    ma = Multiaddr.parse(text)
    assert (ma.protocol, ma.host, ma.port, str(ma.peer_id)) == ("ip4", "127.0.0.1", 30333, SPEC_PEER_ID)
    assert str(ma) == text
    assert str(Multiaddr.parse(f"/ip4/127.0.0.1/tcp/30333/ws/p2p/{SPEC_PEER_ID}")) == text
    assert str(Multiaddr.parse("/ip6/::1/tcp/1")) == "/ip6/::1/tcp/1"
    assert Multiaddr.parse("/ip6/::1/tcp/1").websocket_url("/p2p") == "http://[::1]:1/p2p"
    assert str(Multiaddr.parse("/dns/Boot.Example.org/tcp/30333")) == "/dns/boot.example.org/tcp/30333"
    assert Multiaddr.parse("/ip4/0.0.0.0/tcp/0", listen=True).port == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty multiaddr"),
        ("ip4/1.2.3.4/tcp/1", "must start with '/'"),
        ("/", "no host component"),
        ("/ip4/1.2.3/tcp/1", "is not an IPv4 address"),
        ("/ip6/zz::/tcp/1", "is not an IPv6 address"),
        ("/dns/bad_name!/tcp/1", "is not a DNS name"),
        ("/tcp/1", "is not one of ip4"),
        ("/ip4/1.2.3.4", "expected /tcp/<port> after the host, got nothing"),
        ("/ip4/1.2.3.4/udp/1/quic", "got /udp (polchain dials tcp only)"),
        ("/ip4/1.2.3.4/tcp", "/tcp needs a value"),
        ("/ip4/1.2.3.4/tcp/http", "is not a number"),
        ("/ip4/1.2.3.4/tcp/70000", "out of range 1..65535"),
        ("/ip4/1.2.3.4/tcp/0", "out of range 1..65535"),
        ("/ip4/1.2.3.4/tcp/1/p2p", "/p2p needs a value"),
        ("/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "sha2-256 PeerId"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{SPEC_PEER_ID}/p2p/{SPEC_PEER_ID}", "unexpected component /p2p"),
        ("/ip4/1.2.3.4/tcp/1/wss", "unexpected component /wss (polchain dials tcp only)"),
        ("/ip4/1.2.3.4/tcp/1" + "/ws" * 300, "too long"),
    ],
)
def test_bad_multiaddrs_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidMultiaddr, match=reason.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        Multiaddr.parse(text)
