"""Attacks an outside tester ran against a real ``polchain node`` process, one test each.

Each test names what the attacker could do before the fix; each checks that the node keeps
serving and that its state root did not move.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import struct
import time
import urllib.request

from netkit import RawPeer
from nodekit import NodeProcess, free_port, start_node
from test_cli import polchain

import ml_runtime
from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from node import metrics
from node.network.messages import Status
from node.network.multiaddr import Multiaddr
from node.network.service import NetworkConfig
from rpc.client import RpcClient
from rpc.namespaces.ml import MAX_LIST

FD_LIMIT = 512  # the node's open-file limit (soft and hard) in the descriptor tests


def _rpc(node: NodeProcess, method: str, params: list, timeout: float = 5.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["result"]


def _state_root(node: NodeProcess) -> str:
    header = _rpc(node, "chain_getHeader", [])
    assert isinstance(header, dict)
    return str(header["stateRoot"])


def _still_open(sock: socket.socket) -> bool:
    """True unless the node has closed ``sock`` (EOF or reset)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_silent_connections_to_the_p2p_port_cannot_take_every_file_descriptor(tmp_path) -> None:
    """Before: the p2p listener (public by default, 0.0.0.0:30333) kept every TCP connection
    that never sent its upgrade request for aiohttp's 75 s keep-alive, with no bound on their
    number. Anyone who could reach the port took all the node's descriptors: at a limit of
    512, 556 silent connections left the RPC server unable to accept (``/health`` timed out)
    and asyncio logging a traceback per failed accept. Now at most
    ``NetworkConfig.max_pending_connections`` of them stay open (the longest idle is closed
    first), the rest of the node keeps its descriptors, and a real peer still gets in."""
    p2p = free_port()
    node = start_node(
        tmp_path, "--chain", "dev", "--tmp", "--no-prometheus",
        "--listen-addr", f"/ip4/127.0.0.1/tcp/{p2p}", preexec_fn=_low_fd_limit,
    )
    socks: list[socket.socket] = []
    try:
        root = _state_root(node)
        for i in range(FD_LIMIT + 44):
            try:
                sock = socket.create_connection(("127.0.0.1", p2p), timeout=2)
            except OSError:
                break  # the node's accept queue is full: enough
            if i % 2:
                sock.sendall(b"GET /p2p HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            socks.append(sock)
        assert len(socks) > FD_LIMIT - 20
        with urllib.request.urlopen(f"{node.url}/health", timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 5
        while (held := sum(_still_open(s) for s in socks)) > NetworkConfig().max_pending_connections:
            assert time.monotonic() < deadline, f"the node still holds {held} silent p2p connections"
            time.sleep(0.1)
        assert _state_root(node) == root

        async def honest_peer() -> None:
            async with RpcClient(node.ws_url) as client:
                genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
                (addr,) = await client.call("system_localListenAddresses", [])
                peer = RawPeer()
                assert isinstance(await peer.connect(Multiaddr.parse(addr), genesis=genesis), Status)
                assert (await client.call("system_health", []))["peers"] == 1
                await peer.close()

        asyncio.run(honest_peer())
    finally:
        for sock in socks:
            sock.close()
        assert node.stop() == 0, node.read_log()
    assert "Traceback" not in node.read_log()


def test_silent_connections_to_the_metrics_port_cannot_take_every_file_descriptor(tmp_path) -> None:
    """Before: the Prometheus endpoint (``--prometheus-external`` puts it on every interface)
    had the p2p port's hole: aiohttp kept each connection that never sent a request for 75 s,
    with no bound on their number, and 556 of them at a limit of 512 descriptors left the RPC
    server unable to accept. Now at most ``metrics.MAX_CONNECTIONS`` wait for their request
    (the longest idle is closed first) and a scrape still works."""
    port = free_port()
    node = start_node(
        tmp_path, "--chain", "dev", "--tmp", "--prometheus-port", str(port),
        "--listen-addr", "/ip4/127.0.0.1/tcp/0", preexec_fn=_low_fd_limit,
    )
    socks: list[socket.socket] = []
    try:
        root = _state_root(node)
        for _ in range(FD_LIMIT + 44):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        assert len(socks) > FD_LIMIT - 20
        with urllib.request.urlopen(f"{node.url}/health", timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 5
        while (held := sum(_still_open(s) for s in socks)) > metrics.MAX_CONNECTIONS:
            assert time.monotonic() < deadline, f"the node still holds {held} silent metrics connections"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"substrate_block_height" in response.read()
        assert _state_root(node) == root
    finally:
        for sock in socks:
            sock.close()
        assert node.stop() == 0, node.read_log()
    assert "Traceback" not in node.read_log()


def test_a_body_of_millions_of_empty_objects_is_refused_before_it_is_decoded(tmp_path) -> None:
    """Before: the server decoded any body under 15 MiB and then walked every container for
    its nesting depth on the event loop: one 13.5 MB POST of 4.5 million ``{}`` held the loop
    (and with it block production, peers and every other caller) for about 4 s, and a few
    in parallel for 12 s. It got a -32602 for its params at the end. Now a body with more
    than 65,536 ``[``/``{`` is a -32700 error before any decoding; a legal large body is
    decoded on the encoding threads."""
    node = start_node(tmp_path, "--chain", "dev", "--tmp", "--no-prometheus", "--listen-addr", "/ip4/127.0.0.1/tcp/0")
    try:
        root = _state_root(node)
        body = b'{"jsonrpc":"2.0","id":7,"method":"system_name","params":[[' + b",".join([b"{}"] * 4_500_000) + b"]]}"
        request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["error"] == {
            "code": -32700, "message": "Parse error",
            "data": "JSON has more than 65536 arrays and objects ('[' and '{' counted in the raw text)",
        }
        rows = [[0.5] * 64 for _ in range(1024)]  # the largest ml_predict: still answered
        result = _rpc(node, "ml_predict", [0, rows], timeout=30)
        assert isinstance(result, dict) and len(result["outputs"]) == 1024
        assert _state_root(node) == root
    finally:
        assert node.stop() == 0, node.read_log()


def test_the_model_and_data_set_lists_come_in_pages(tmp_path) -> None:
    """Before: ``ml_listModels`` and ``ml_listDatasets`` read and shaped every model or data
    set on the event loop in one answer. A model costs a 2.2 mPOL fee to register: 3,000 of
    them made each call take 0.1 s and 1.2 MB, so about 40,000 (88 POL) make every call
    hold the node for over a second and then fail with -32008 for everyone. Now they answer
    at most MAX_LIST from ``start`` (default: the newest), as ``fl_listRounds`` does; the
    CLI finds the next data set id from storage, not from the list's length."""
    node = start_node(tmp_path, "--dev", "--instant-seal", "--tmp", "--no-prometheus", "--listen-addr", "/ip4/127.0.0.1/tcp/0")
    try:
        genesis = bytes.fromhex(str(_rpc(node, "chain_getBlockHash", [0]))[2:])
        version = _rpc(node, "state_getRuntimeVersion", [])["specVersion"]  # type: ignore[index]
        model_spec = ml_runtime.ModelSpec("linear", 2, 1, 0).encode()
        dave, eve = dev_keypair("Dave"), dev_keypair("Eve")
        for i in range(MAX_LIST + 10):
            xt = sign_extrinsic(dave, calls.RegisterModel(f"m{i}", model_spec, bytes(32)), nonce=i, genesis_hash=genesis, spec_version=version)
            _rpc(node, "author_submitExtrinsic", ["0x" + xt.encode().hex()])
        for i in range(MAX_LIST):
            call = calls.RegisterDataset(f"d{i}", 2, "classification", 2, 1, bytes(32), 0, "")
            xt = sign_extrinsic(eve, call, nonce=i, genesis_hash=genesis, spec_version=version)
            _rpc(node, "author_submitExtrinsic", ["0x" + xt.encode().hex()])
        deadline = time.monotonic() + 60
        while _rpc(node, "ml_getModel", [MAX_LIST + 10]) is None or _rpc(node, "ml_getDataset", [MAX_LIST]) is None:
            assert time.monotonic() < deadline, "the registrations were not included"
            time.sleep(0.2)
        root = _state_root(node)
        newest = _rpc(node, "ml_listModels", [])
        assert [m["id"] for m in newest] == list(range(11, MAX_LIST + 11))  # type: ignore[union-attr, index]
        assert [m["id"] for m in _rpc(node, "ml_listModels", [0])] == list(range(MAX_LIST))  # type: ignore[union-attr, index]
        assert [m["id"] for m in _rpc(node, "ml_listModels", [105])] == list(range(105, MAX_LIST + 11))  # type: ignore[union-attr, index]
        assert [d["id"] for d in _rpc(node, "ml_listDatasets", [])] == list(range(1, MAX_LIST + 1))  # type: ignore[union-attr, index]
        assert [d["id"] for d in _rpc(node, "ml_listDatasets", [0])] == list(range(MAX_LIST))  # type: ignore[union-attr, index]
        assert _state_root(node) == root
        rows = tmp_path / "rows.csv"
        rows.write_text("0.5,0.25,1\n0.125,1.0,0\n0.75,0.5,1\n")
        out = polchain("tx", "register-dataset", "--rpc", node.url, "--signer", "//Ferdie", "--name", "tiny", "--csv", str(rows),
                       "--kind", "classification", "--outputs", "2", "--output-type", "json")
        assert out.returncode == 0, out.stderr
        assert [r["success"] for r in json.loads(out.stdout)] == [True, True]
        tiny = _rpc(node, "ml_getDataset", [MAX_LIST + 1])
        assert isinstance(tiny, dict) and tiny["name"] == "tiny" and tiny["complete"] is True
    finally:
        assert node.stop() == 0, node.read_log()


def test_a_model_s_lineage_comes_in_pages(tmp_path) -> None:
    """Before: ``ml_getModel`` read and shaped every version of the model in one answer. The
    dev model (training permission "anyone") gains a version for each training call, and the
    cheapest one (1 step, batch 1) costs 4.8 mPOL: about 25,000 of them (120 POL) push the
    answer past the response cap, after which every ``ml_getModel`` and ``polchain query
    model`` of it fails for everyone, each after reading all the versions on the event loop.
    Now the lineage holds at most MAX_LIST versions from ``start`` (its third param; default:
    the newest), and ``weightsHash`` is still the latest version's."""
    node = start_node(tmp_path, "--dev", "--instant-seal", "--tmp", "--no-prometheus", "--listen-addr", "/ip4/127.0.0.1/tcp/0")
    try:
        genesis = bytes.fromhex(str(_rpc(node, "chain_getBlockHash", [0]))[2:])
        version = _rpc(node, "state_getRuntimeVersion", [])["specVersion"]  # type: ignore[index]
        lr = int.from_bytes(struct.pack("<f", 0.01), "little")
        bob = dev_keypair("Bob")
        for i in range(MAX_LIST + 1):
            call = calls.Train(model=0, dataset=0, steps=1, batch_size=1, lr=lr, l2=0, segment_len=1, max_model_license=0)  # (capped: more may queue behind it)
            xt = sign_extrinsic(bob, call, nonce=i, genesis_hash=genesis, spec_version=version)
            _rpc(node, "author_submitExtrinsic", ["0x" + xt.encode().hex()])
        deadline = time.monotonic() + 120
        while (latest := _rpc(node, "ml_listModels", [0])[0]["latestVersion"]) < MAX_LIST + 1:  # type: ignore[index]
            assert time.monotonic() < deadline, f"only {latest} versions were trained"
            time.sleep(0.2)
        root = _state_root(node)
        newest = _rpc(node, "ml_getModel", [0])
        assert isinstance(newest, dict)
        assert [v["version"] for v in newest["lineage"]] == list(range(2, MAX_LIST + 2))
        assert newest["weightsHash"] == newest["lineage"][-1]["weightsHash"]
        oldest = _rpc(node, "ml_getModel", [0, None, 0])
        assert isinstance(oldest, dict)
        assert [v["version"] for v in oldest["lineage"]] == list(range(MAX_LIST))
        assert oldest["weightsHash"] == newest["weightsHash"]  # the latest version's, whatever the page
        assert _state_root(node) == root
    finally:
        assert node.stop() == 0, node.read_log()
