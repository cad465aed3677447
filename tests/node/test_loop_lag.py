"""The node's event-loop lag probe (node.metrics.LoopLagProbe): exported on a real node's
Prometheus endpoint, and moved by a callback that holds the loop.

A NodeService runs in this process (LevelDB in a temporary directory, the dev chain) with its
MetricsServer on a free loopback port, scraped over HTTP by prometheus-client's own parser;
the test then blocks the node's loop itself, as a synchronous fsync or a long encode would.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from nodekit import free_port
from prometheus_client.parser import text_string_to_metric_families

from genesis.spec import load_chain_spec
from node.metrics import LoopLagProbe, MetricsServer
from node.service import NodeConfig, NodeService

LAG = "polchain_event_loop_lag_seconds"
STALL = 0.4  # seconds the test holds the loop: the probe (every 50 ms) sees at least 0.35 s


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(url) as response:
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _over(m: dict, seconds: str) -> float:
    """Lags observed above ``seconds`` (a bucket bound), from the cumulative buckets."""
    return m[(f"{LAG}_count", ())] - m[(f"{LAG}_bucket", (("le", seconds),))]


async def test_a_blocked_event_loop_shows_in_the_nodes_loop_lag_metrics(tmp_path) -> None:
    service = NodeService(NodeConfig(base_path=tmp_path), load_chain_spec("dev"))
    server = MetricsServer(service.metrics, port=free_port())
    await server.start()
    run = asyncio.create_task(service.run())
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.3)
            before = await _scrape(session, server.url)
            assert before[(f"{LAG}_count", ())] >= 2, "the probe does not run"
            time.sleep(STALL)  # a synchronous call on the node's loop
            await asyncio.sleep(0.2)
            after = await _scrape(session, server.url)
    finally:
        service.request_stop()
        await run
        await server.stop()
    assert _over(after, "0.25") >= _over(before, "0.25") + 1
    assert after[(f"{LAG}_sum", ())] - before[(f"{LAG}_sum", ())] >= STALL - 0.05
    assert after[("polchain_event_loop_lag_max_seconds", ())] >= STALL - 0.05
    assert run.done() and not run.cancelled()  # the probe ended with the node


def test_the_recent_maximum_forgets_a_stall_after_its_window() -> None:
    lags: list[float] = []
    probe = LoopLagProbe(lags.append, window=60.0)
    assert probe.recent_max() == 0.0
    probe.note(100.0, 2.0)
    probe.note(101.0, 0.5)
    probe.note(102.0, 0.7)  # drops 0.5: it can never be the maximum again
    assert probe.recent_max() == 2.0 and lags == [2.0, 0.5, 0.7]
    probe.note(160.5, 0.1)  # 2.0 is older than 60 s now
    assert probe.recent_max() == 0.7
    probe.note(163.0, 0.0)
    assert probe.recent_max() == 0.1
