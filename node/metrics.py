"""Prometheus metrics of a node, served in the text exposition format on ``--prometheus-port``.

Names follow Substrate's where one exists, so dashboards made for Substrate nodes read
polchain nodes too (the names and help texts are those a Substrate node exports, e.g. in
its public /metrics output; sc-service, sc-consensus import queue, sc-basic-authorship):

- ``substrate_block_height{status="best"|"finalized"}`` (gauge)
- ``substrate_sub_libp2p_peers_count`` (gauge; 0 while the node runs without a network)
- ``substrate_ready_transactions_number`` (gauge: the pool's ready queue)
- ``substrate_block_verification_and_import_time`` (histogram, seconds: blocks from peers)
- ``substrate_proposer_block_constructed`` (histogram, seconds: blocks this node authored)

and polchain's own counters of training work:

- ``polchain_blocks_authored_total``
- ``polchain_authoring_failures_total`` (slots whose authoring raised: a bug, logged; the loop goes on)
- ``polchain_training_steps_total`` (SGD steps run by this node as a block author)
- ``polchain_training_steps_verified_total`` (SGD steps of peers' blocks re-executed on import)

and of proof-of-learning (issue 9; node.network.transcripts, node.service):

- ``polchain_pol_verify_seconds`` (histogram: checking a peer's block's training, fetching
  the openings included; and checking a peer's fraud proof)
- ``polchain_pol_frauds_detected_total`` (faults this node's verifier proved)
- ``polchain_pol_fraud_proofs_accepted_total`` (valid fraud proofs from peers)
- ``polchain_pol_unavailable_total`` (imports refused because openings could not be fetched)
- ``polchain_pol_openings_fetched_total``, ``polchain_pol_checkpoints_fetched_total``,
  ``polchain_pol_fetched_bytes_total`` (verified openings fetched from peers, those of them
  with weights, and their encoded bytes)
- ``polchain_pol_openings_served_total``, ``polchain_pol_served_bytes_total``
- ``polchain_pol_bad_openings_total`` (openings from peers that did not verify)

and of the node's event loop (:class:`LoopLagProbe`):

- ``polchain_event_loop_lag_seconds`` (histogram: how late the probe woke, each time)
- ``polchain_event_loop_lag_max_seconds`` (gauge: the largest lag of the last minute)

and of the in-memory tables that peers and RPC callers can make grow (each has a bound):

- ``polchain_table_entries{table=...}`` (gauge: entries now; ``NodeService.table_sizes``)

and of the p2p listener:

- ``polchain_p2p_connections_reset_total`` (inbound connections reset on connecting, unread:
  their address had used its handshake allowance; ``NetworkService._admit``)

plus the ``process_*`` metrics of prometheus-client's process collector (CPU, memory, fds).

Gauges are read from the node when scraped, so only the counters and histograms need hooks
(:meth:`NodeMetrics.on_block`). Each node has its own registry, never the library's global
one, so several nodes in one process (tests) do not collide. The server is a small aiohttp app
on the node's own event loop: no extra thread. Substrate binds 127.0.0.1:9615 unless
``--prometheus-external`` and serves only ``GET /metrics``; so does this.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from rpc.connections import ConnectionBudget, Listener

if TYPE_CHECKING:
    from chain.blockchain import ImportedBlock
    from node.service import NodeService

log = logging.getLogger("polchain")

DEFAULT_PORT = 9615
# Connections waiting for their request: a Prometheus server keeps one per target; more can
# only be a flood, which closes the longest idle (the endpoint may be public:
# --prometheus-external). HEADER_TIMEOUT is the RPC server's default header timeout.
MAX_CONNECTIONS = 32
HEADER_TIMEOUT = 10.0
# The classic text format, which generate_latest writes (with its default underscore escaping
# of names) and Substrate serves; prometheus-client >= 0.22 labels it 1.0.0 by default.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# prometheus-client's default buckets (Substrate's import histogram uses the same), extended
# upwards: a block with training calls can take tens of seconds to build or re-execute.
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Event-loop lag: from a millisecond (a loop that keeps up) to ten seconds (a loop that stops
# answering its peers). Votes and blocks are gossiped on the loop, so anything near the slot
# time (a second or more on a devnet) delays consensus itself.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    """The metrics of one :class:`~node.service.NodeService`, in a registry of its own."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        height = Gauge("substrate_block_height", "Block height info of the chain", ["status"], registry=reg)
        height.labels("best").set_function(lambda: service.chain.best_number)
        height.labels("finalized").set_function(self._finalized_number)
        Gauge("substrate_sub_libp2p_peers_count", "Number of connected peers", registry=reg).set_function(self._peers)
        Gauge(
            "substrate_ready_transactions_number", "Number of transactions in the ready queue", registry=reg
        ).set_function(lambda: service.pool.status().ready)
        self.import_time = Histogram(
            "substrate_block_verification_and_import_time", "Time taken to verify and import blocks",
            buckets=TIME_BUCKETS, registry=reg,
        )
        self.constructed = Histogram(
            "substrate_proposer_block_constructed", "Histogram of time taken to construct new block",
            buckets=TIME_BUCKETS, registry=reg,
        )
        self.authored = Counter("polchain_blocks_authored", "Blocks this node authored", registry=reg)
        self.authoring_failures = Counter(
            "polchain_authoring_failures", "Slots whose authoring raised (logged; the next slot tries again)", registry=reg
        )
        self.steps = Counter(
            "polchain_training_steps", "SGD steps this node ran as block author", registry=reg
        )
        self.steps_verified = Counter(
            "polchain_training_steps_verified", "SGD steps of peers' blocks re-executed on import", registry=reg
        )
        self.pol_verify_time = Histogram(
            "polchain_pol_verify_seconds", "Time taken to check the training of a peer's block or fraud proof",
            buckets=TIME_BUCKETS, registry=reg,
        )
        self.pol_frauds = Counter(
            "polchain_pol_frauds_detected", "Training faults this node's verifier proved", registry=reg
        )
        self.pol_fraud_proofs = Counter(
            "polchain_pol_fraud_proofs_accepted", "Valid fraud proofs received from peers", registry=reg
        )
        self.pol_unavailable = Counter(
            "polchain_pol_unavailable", "Block imports refused: checkpoints not obtainable in time", registry=reg
        )
        self.pruned_nodes = Counter(
            "polchain_state_pruned_nodes", "Trie nodes online state pruning deleted (--state-pruning)", registry=reg
        )
        reg.register(_TranscriptCollector(service))
        reg.register(_TablesCollector(service))
        reg.register(_NetworkCollector(service))
        self.loop_lag = LoopLagProbe(
            Histogram(
                "polchain_event_loop_lag_seconds", "How late the node's event loop ran a timer due every 50 ms",
                buckets=LAG_BUCKETS, registry=reg,
            ).observe
        )
        Gauge(
            "polchain_event_loop_lag_max_seconds", "The largest event loop lag of the last 60 seconds", registry=reg
        ).set_function(self.loop_lag.recent_max)
        ProcessCollector(registry=reg)

    def _finalized_number(self) -> int:
        chain = self.service.chain
        return chain.get_header(chain.finalized_hash).number

    def _peers(self) -> int:
        # The same probe as rpc/api.py's system_health: a node alone has no network service.
        network = getattr(self.service, "network", None)
        return 0 if network is None else len(network.peers())

    def on_block(self, imported: ImportedBlock, elapsed: float, *, authored: bool) -> None:
        """A block became best: built here (``authored``) or imported from a peer."""
        if authored:
            self.constructed.observe(elapsed)
            self.authored.inc()
            self.steps.inc(imported.training_steps)
        else:
            self.import_time.observe(elapsed)
            self.steps_verified.inc(imported.training_steps)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (version 0.0.4)."""
        return generate_latest(self.registry)


class LoopLagProbe:
    """How late the node's event loop runs a timer: the time every peer, RPC caller and slot
    timer waits behind whatever runs on the loop without yielding.

    :meth:`run` sleeps ``interval`` seconds, again and again, and each time observes how much
    later than due it woke (``loop.time()``, monotonic; never below 0: asyncio may run a timer
    up to its clock resolution early). A callback that holds the loop for ``d`` seconds shows
    as a lag between ``d - interval`` and ``d``; the probe costs one timer per ``interval``.
    Substrate exports the same for its tokio tasks (``substrate_tasks_polling_duration``);
    Node.js exports it as ``nodejs_eventloop_lag_seconds`` (prom-client), from a timer as here.

    The histogram has every lag since the start; :meth:`recent_max` is the largest of the last
    ``window`` seconds, so that one stall at start-up does not hide the rest for ever. It keeps
    a deque of decreasing lags (a sliding-window maximum): a lag drops out when a larger one
    comes after it or when it is older than the window, so it holds a few entries at most.
    """

    def __init__(
        self, observe: Callable[[float], None], *, interval: float = 0.05, window: float = 60.0,
    ) -> None:
        self.observe = observe
        self.interval = interval
        self.window = window
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag), lags decreasing
        self._now: Callable[[], float] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until ``stop`` is set (it is seen within ``interval``)."""
        loop = asyncio.get_running_loop()
        self._now = loop.time
        while not stop.is_set():
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            woke = loop.time()
            self.note(woke, max(0.0, woke - due))

    def note(self, when: float, lag: float) -> None:
        """One lag, observed at ``when`` (``loop.time()``)."""
        self.observe(lag)
        while self._recent and self._recent[-1][1] <= lag:
            self._recent.pop()
        self._recent.append((when, lag))
        self._expire(when)

    def recent_max(self) -> float:
        """The largest lag of the last ``window`` seconds (0 before the first; read at scrape)."""
        if self._now is not None:
            self._expire(self._now())
        return self._recent[0][1] if self._recent else 0.0

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()


class _ServiceCollector:
    """Metrics read from the node service at scrape, by :meth:`collect`."""

    def __init__(self, service: NodeService) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # read only at collection: what they read may not exist yet at registration

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class _TranscriptCollector(_ServiceCollector):
    """The node's transcript counters (node.network.transcripts.TranscriptStats), read at scrape."""

    def collect(self) -> Iterator[Metric]:
        stats = getattr(self.service, "pol_stats", None)
        if stats is None:
            return
        for name, doc, value in (
            ("polchain_pol_openings_fetched", "Verified transcript openings fetched from peers", stats.openings_fetched),
            ("polchain_pol_checkpoints_fetched", "Openings fetched with their weights (checkpoints)", stats.checkpoints_fetched),
            ("polchain_pol_fetched_bytes", "Encoded bytes of the openings fetched from peers", stats.bytes_fetched),
            ("polchain_pol_openings_served", "Transcript openings served to peers", stats.openings_served),
            ("polchain_pol_served_bytes", "Encoded bytes of the openings served to peers", stats.bytes_served),
            ("polchain_pol_bad_openings", "Openings from peers that did not verify", stats.bad_openings),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class _TablesCollector(_ServiceCollector):
    """Entries of the node's bounded in-memory tables, read at scrape."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "polchain_table_entries", "Entries of an in-memory table peers or RPC callers can grow", labels=["table"]
        )
        for name, value in sorted(self.service.table_sizes().items()):
            family.add_metric([name], value)
        yield family


class _NetworkCollector(_ServiceCollector):
    """The p2p service's counts, read at scrape (a node alone has no network service)."""

    def collect(self) -> Iterator[Metric]:
        network = getattr(self.service, "network", None)
        if network is not None:
            yield CounterMetricFamily(
                "polchain_p2p_connections_reset",
                "Inbound p2p connections reset on connecting: their address had used its handshake allowance",
                value=network.connections_reset,
            )


class MetricsServer:
    """``GET /metrics`` on ``host:port``; start and stop it on the node's loop."""

    def __init__(self, metrics: NodeMetrics, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        # A connection must send its request head within HEADER_TIMEOUT of opening or of its last
        # answer (aiohttp's keep-alive timer), and at most MAX_CONNECTIONS wait to: the longest
        # idle is closed first (rpc.connections). A scrape's body is never read.
        server = Listener(
            self._handle, ConnectionBudget(MAX_CONNECTIONS), keepalive_timeout=HEADER_TIMEOUT, access_log=None
        )
        self._runner = web.ServerRunner(server, handle_signals=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        if request.path != "/metrics":
            return web.Response(status=404, text="Not Found\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="GET /metrics\n", headers={"Allow": "GET, HEAD"})
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        """Bind and serve; OSError (port in use, no permission) if it cannot bind."""
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError:
            await self._runner.cleanup()
            raise

    async def stop(self) -> None:
        await self._runner.cleanup()


def scrape(port: int, *, timeout: float = 10.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample a node serves at ``http://127.0.0.1:port/metrics``, keyed by (name, sorted
    labels): what the benches and tests read (a client of :class:`MetricsServer`)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
