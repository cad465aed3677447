"""Two real ``polchain node`` processes on loopback: identity, sync, announce and gossip."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest
from netkit import RawPeer
from nodekit import free_port, start_node

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from node.network.identity import NodeKey
from node.network.messages import Disconnect, Status
from node.network.multiaddr import Multiaddr
from rpc.client import RpcClient

ALICE, BOB, CHARLIE = dev_keypair("Alice"), dev_keypair("Bob"), dev_keypair("Charlie")
KEY_A = "11" * 32


async def _transfer(client: RpcClient, key, dest: bytes, nonce: int) -> str:
    genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
    version = (await client.call("state_getRuntimeVersion", []))["specVersion"]
    xt = sign_extrinsic(key, calls.Transfer(dest, 10**9), nonce=nonce, genesis_hash=genesis, spec_version=version)
    return await client.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])


async def _until(client: RpcClient, method: str, params: list, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await client.call(method, params)
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{method}{params} never satisfied the check; last {value}")
        await asyncio.sleep(0.2)


def test_a_second_node_syncs_from_the_first_and_gossips_back(tmp_path) -> None:
    pa, pb = free_port(), free_port()
    id_a = NodeKey.from_hex(KEY_A).peer_id
    a = start_node(
        tmp_path, "--chain", "dev", "--alice", "--instant-seal", "--base-path", str(tmp_path / "a"),
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{pa}", "--node-key", KEY_A,
    )
    b = None
    try:
        async def author_on_a() -> str:
            async with RpcClient(a.ws_url) as ca:
                assert await ca.call("system_localPeerId", []) == str(id_a)
                assert await ca.call("system_localListenAddresses", []) == [f"/ip4/127.0.0.1/tcp/{pa}/p2p/{id_a}"]
                for nonce in range(3):
                    await _transfer(ca, BOB, CHARLIE.public, nonce)
                    await _until(ca, "chain_getHeader", [], lambda h, n=nonce: int(h["number"], 16) == n + 1)
                return (await ca.call("chain_getHeader", []))["stateRoot"]

        root_a = asyncio.run(author_on_a())
        assert f"Local node identity is: {id_a}" in a.read_log()

        b = start_node(
            tmp_path, "--chain", "dev", "--base-path", str(tmp_path / "b"),
            "--listen-addr", f"/ip4/127.0.0.1/tcp/{pb}", "--bootnodes", f"/ip4/127.0.0.1/tcp/{pa}/p2p/{id_a}",
        )

        async def sync_and_gossip() -> None:
            async with RpcClient(a.ws_url) as ca, RpcClient(b.ws_url) as cb:
                header = await _until(cb, "chain_getHeader", [], lambda h: int(h["number"], 16) == 3)
                assert header["stateRoot"] == root_a
                # b started empty; its peer a is at #3, and so is b now.
                assert await cb.call("system_syncState", []) == {"startingBlock": 0, "currentBlock": 3, "highestBlock": 3}
                assert await cb.call("chain_getBlockHash", [3]) == await ca.call("chain_getBlockHash", [3])
                health = await cb.call("system_health", [])
                assert health["peers"] == 1 and health["shouldHavePeers"] is False
                (peer,) = await cb.call("system_peers", [])
                assert peer["peerId"] == str(id_a) and peer["roles"] == "AUTHORITY" and peer["bestNumber"] >= 3
                # A transaction sent to the full node reaches the author, and its block comes back.
                await _transfer(cb, CHARLIE, BOB.public, 0)
                header_b = await _until(cb, "chain_getHeader", [], lambda h: int(h["number"], 16) == 4)
                header_a = await ca.call("chain_getHeader", [])
                assert header_a == header_b

        asyncio.run(sync_and_gossip())
    finally:
        if b is not None:
            assert b.stop() == 0, b.read_log()
        assert a.stop() == 0, a.read_log()


def test_default_node_key_is_kept_under_the_base_path(tmp_path) -> None:
    base = tmp_path / "n"
    node = start_node(tmp_path, "--chain", "dev", "--base-path", str(base), "--listen-addr", "/ip4/127.0.0.1/tcp/0")
    try:
        key_file = base / "chains" / "dev" / "network" / "secret_ed25519"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        expected = str(NodeKey.from_file(key_file).peer_id)

        async def ask() -> tuple[str, list[str]]:
            async with RpcClient(node.ws_url) as c:
                return await c.call("system_localPeerId", []), await c.call("system_localListenAddresses", [])

        peer_id, addrs = asyncio.run(ask())
        assert peer_id == expected and f"Local node identity is: {expected}" in node.read_log()
        (addr,) = addrs
        assert addr.startswith("/ip4/127.0.0.1/tcp/") and not addr.startswith("/ip4/127.0.0.1/tcp/0/")
    finally:
        assert node.stop() == 0, node.read_log()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bootnodes", "/ip4/127.0.0.1/tcp/30333"], "--bootnodes: '/ip4/127.0.0.1/tcp/30333' has no /p2p/<peer id>"),
        (["--bootnodes", "/ip4/127.0.0.1/udp/1"], "--bootnodes: multiaddr '/ip4/127.0.0.1/udp/1': expected /tcp/<port>"),
        (["--reserved-nodes", "/ip4/1.2.3/tcp/1/p2p/x"], "is not an IPv4 address"),
        (["--listen-addr", "/dns/example.org/tcp/1"], None),
        (["--node-key", "zz"], "--node-key: a node key is 64 hex digits"),
        (["--node-key", "11" * 32, "--node-key-file", "/x"], "--node-key and --node-key-file are exclusive"),
        (["--port", "70000"], "70000 is out of range: a TCP port is 0..65535"),
    ],
)
def test_bad_network_flags_are_refused_with_a_reason(tmp_path, args: list[str], message: str | None) -> None:
    if message is None:  # parses, but cannot listen on a DNS name
        args = [*args, "--rpc-port", str(free_port())]
        message = "cannot listen on /dns/example.org/tcp/1: a listen address is /ip4 or /ip6"
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "node", "--chain", "dev", "--tmp", *args],
        capture_output=True, text=True, timeout=120,
    )
    # A flag argparse refuses by its type is a usage error (2); the others are errors (1).
    assert proc.returncode == (2 if args[0] == "--port" else 1), proc.stderr
    assert message in proc.stderr, proc.stderr


def test_a_bad_network_flag_is_named_before_a_taken_rpc_port(tmp_path) -> None:
    """The flag's own error, not the port another node holds, which would hide it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "node.cli", "node", "--chain", "dev", "--tmp", "--rpc-port", str(port),
             "--bootnodes", "/ip4/127.0.0.1/tcp/30333"],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1 and "--bootnodes: '/ip4/127.0.0.1/tcp/30333' has no /p2p/<peer id>" in proc.stderr, proc.stderr


def test_a_taken_default_port_falls_back_but_an_explicit_one_fails(tmp_path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("0.0.0.0", 30333))
            holder.listen()
        except OSError:
            pass  # something else holds it already: the same situation
        node = start_node(tmp_path, "--chain", "dev", "--tmp")
        try:
            assert "p2p port 30333 is in use; listening on a free port instead" in node.read_log()
        finally:
            assert node.stop() == 0, node.read_log()
        proc = subprocess.run(
            [sys.executable, "-m", "node.cli", "node", "--chain", "dev", "--tmp", "--port", "30333",
             "--rpc-port", str(free_port())],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 1
        assert "cannot listen on /ip4/0.0.0.0/tcp/30333: Address already in use" in proc.stderr


def test_a_node_bans_a_garbage_peer_refuses_another_chain_and_keeps_going(tmp_path) -> None:
    port = free_port()
    node = start_node(tmp_path, "--chain", "dev", "--tmp", "--listen-addr", f"/ip4/127.0.0.1/tcp/{port}")

    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
            (addr,) = await client.call("system_localListenAddresses", [])
            target = Multiaddr.parse(addr)
            attacker = RawPeer()
            assert isinstance(await attacker.connect(target, genesis=genesis), Status)
            await attacker.send_raw(b"\x01not a Noise frame at all")
            rest = await attacker.recv_until_closed()
            await attacker.close()
            assert isinstance(rest[-1], Disconnect) and rest[-1].reason.startswith("garbage")
            stranger = RawPeer()
            assert isinstance(await stranger.connect(target, genesis=b"\x01" * 32), Status)  # the node's own
            answer = (await stranger.recv_until_closed())[-1]
            await stranger.close()
            assert isinstance(answer, Disconnect) and "the peer is on another chain" in answer.reason
            honest = RawPeer()
            assert isinstance(await honest.connect(target, genesis=genesis), Status)
            assert (await client.call("system_health", []))["peers"] == 1
            await honest.close()

    try:
        asyncio.run(scenario())
        log = node.read_log()
        assert "misbehaved (garbage: frame does not decrypt" in log and "banned for 60 s" in log
        assert "the peer is on another chain" in log
    finally:
        assert node.stop() == 0, node.read_log()
