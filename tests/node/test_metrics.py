"""Prometheus metrics: a real node process scraped over HTTP, and the port rules in-process."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from nodekit import free_port, start_node
from prometheus_client.parser import text_string_to_metric_families

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from genesis.spec import load_chain_spec
from node import cli
from node.service import NodeConfig, NodeService
from rpc.client import RpcClient

BOB = dev_keypair("Bob")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, parsed by prometheus-client's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def best(m) -> float:
    return m[("substrate_block_height", (("status", "best"),))]


async def _signed(client: RpcClient, call, nonce: int) -> str:
    genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
    version = (await client.call("state_getRuntimeVersion", []))["specVersion"]
    return "0x" + sign_extrinsic(BOB, call, nonce=nonce, genesis_hash=genesis, spec_version=version).encode().hex()


async def _next_block(client: RpcClient, after: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        number = int((await client.call("chain_getHeader", []))["number"], 16)
        if number > after:
            return number
        await asyncio.sleep(0.05)
    raise AssertionError(f"no block after #{after} in {timeout}s")


def test_a_node_exports_substrate_and_polchain_metrics_that_move_with_blocks(tmp_path: Path) -> None:
    port = free_port()
    node = start_node(tmp_path, "--dev", "--block-time", "3000", "--prometheus-port", str(port))
    try:
        asyncio.run(_scenario(node.url, port))
        # Only /metrics is served.
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert exc.value.code == 404
    finally:
        assert node.stop() == 0, node.read_log()
    assert f"Prometheus exporter on http://127.0.0.1:{port}/metrics" in node.read_log()


async def _scenario(url: str, port: int) -> None:
    async with RpcClient(url) as client:
        m0 = scrape(port)
        for name in ("substrate_sub_libp2p_peers_count", "substrate_ready_transactions_number",
                     "polchain_blocks_authored_total", "polchain_training_steps_total",
                     "polchain_training_steps_verified_total", "substrate_block_verification_and_import_time_count",
                     "substrate_proposer_block_constructed_count", "process_cpu_seconds_total",
                     "polchain_event_loop_lag_seconds_count", "polchain_event_loop_lag_max_seconds"):
            assert (name, ()) in m0, name
        assert m0[("substrate_sub_libp2p_peers_count", ())] == 0  # no network on this node

        # Right after a block, a transfer waits in the ready queue until the next slot (3 s away;
        # on a machine so loaded that a block came first, try again after it).
        nonce, number = 0, int(best(m0))
        for _ in range(5):
            number = await _next_block(client, number)
            await client.call("author_submitExtrinsic", [await _signed(client, calls.Transfer(BOB.public, 5), nonce)])
            nonce += 1
            m1 = scrape(port)
            if best(m1) == number:
                break
            number = int(best(m1))
        assert best(m1) == number, "never scraped between a submission and the next block"
        assert m1[("substrate_ready_transactions_number", ())] == 1
        authored = m1[("polchain_blocks_authored_total", ())]
        constructed = m1[("substrate_proposer_block_constructed_count", ())]
        assert authored == constructed == number  # --dev: Alice authors every block

        steps = 30
        train = calls.Train(0, 0, steps, 16, calls.compute_f32_bits(0.1), 0, 10)
        await client.call("author_submitExtrinsic", [await _signed(client, train, nonce)])
        while (await client.call("author_pendingExtrinsics", [])):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        m2 = scrape(port)
        assert best(m2) > number
        assert m2[("substrate_block_height", (("status", "finalized"),))] == best(m2)  # one validator
        assert m2[("substrate_ready_transactions_number", ())] == 0
        assert m2[("polchain_blocks_authored_total", ())] == best(m2)
        assert m2[("substrate_proposer_block_constructed_count", ())] == best(m2)
        assert m2[("polchain_training_steps_total", ())] == steps
        assert m2[("substrate_proposer_block_constructed_sum", ())] > 0
        # Nothing came from a peer.
        assert m2[("polchain_training_steps_verified_total", ())] == 0
        assert m2[("substrate_block_verification_and_import_time_count", ())] == 0


def test_an_explicit_prometheus_port_in_use_stops_the_node_with_the_reason(tmp_path: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["node", "--dev", "--base-path", str(tmp_path), "--rpc-port", str(free_port()),
                         "--prometheus-port", str(port)])
    assert code == 1
    assert f"cannot serve Prometheus metrics on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err


async def test_the_default_port_in_use_costs_only_the_metrics(tmp_path: Path, caplog) -> None:
    """Several nodes on one machine without --prometheus-port: the first one serves 9615."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = NodeConfig(base_path=tmp_path, prometheus_port=port, prometheus_required=False)
        service = NodeService(config, load_chain_spec("dev"))
        try:
            assert await cli._start_metrics(config, service) is None
        finally:
            service.close()
    assert f"Prometheus metrics off: 127.0.0.1:{port} is not free" in caplog.text


@pytest.mark.parametrize(("value", "message"), [("65536", "65536 is out of range: a TCP port is 0..65535"), ("x", "'x' is not an integer")])
def test_bad_prometheus_ports_are_usage_errors_with_the_reason(value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["node", "--dev", "--prometheus-port", value])
    assert exc.value.code == 2 and message in capsys.readouterr().err
