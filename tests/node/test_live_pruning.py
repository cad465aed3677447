"""Online state pruning in a running node (``polchain node --state-pruning N``,
NodeService._maybe_prune, chain.pruning.LivePrune): a dev validator authoring and finalizing
every 100 ms slot prunes the states more than N blocks below the finalized one while it goes
on, keeps every other state whole, and stops cleanly with a run under way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from chain.crypto import dev_keypair
from chain.pallets import balances
from chain.pruning import LivePrune, PruneReport
from chain.state import TrieColumn
from chain.trie import Trie
from genesis.spec import load_chain_spec, with_slot_duration
from node.logfilter import PROGRESS_LOGGER
from node.service import PRUNE_DUTY, NodeConfig, NodeService

KEEP = 2


def _service(tmp_path, state_pruning: int | None) -> NodeService:
    return NodeService(
        NodeConfig(base_path=tmp_path, author="//Alice", state_pruning=state_pruning),
        with_slot_duration(load_chain_spec("dev"), 100),
    )


def _run_until(service: NodeService, done, timeout: float = 60.0) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    await asyncio.sleep(0.05)
        finally:
            service.request_stop()  # (with a pruning run perhaps under way: it is waited for)
            await task

    asyncio.run(scenario())


def test_a_running_node_prunes_old_states_and_keeps_the_rest_whole(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    service = _service(tmp_path, KEEP)
    chain = service.chain
    _run_until(service, lambda: service.metrics.pruned_nodes._value.get() > 0 and chain.finalized_number >= 12)
    # Each run is a progress line (PROGRESS_LOGGER: never collapsed by the repeat filter).
    assert any(r.name == PROGRESS_LOGGER and r.getMessage().startswith("Pruned ") for r in caplog.records)
    # Reopened: what the runs left on disk, after a stop that waited for the last one.
    service = _service(tmp_path, KEEP)
    chain = service.chain
    try:
        finalized = chain.finalized_number
        pruned = [n for n in range(finalized + 1) if not chain.has_state(chain.get_hash(n))]
        assert 0 in pruned and pruned == list(range(len(pruned))), pruned  # the oldest, from genesis up
        assert len(pruned) <= finalized - KEEP  # never one of the last KEEP final states
        kept: set[bytes] = set()
        for n in range(len(pruned), chain.best_number + 1):  # every state left is whole
            Trie(TrieColumn(chain.db)).mark_reachable(chain.get_header(chain.get_hash(n)).state_root, kept)
        assert balances.get_account(chain.state_at(chain.best_hash), dev_keypair("Alice").public).free > 0
    finally:
        service.close()


def test_archive_keeps_every_state(tmp_path) -> None:
    service = _service(tmp_path, None)
    chain = service.chain
    _run_until(service, lambda: chain.finalized_number >= 6)
    service = _service(tmp_path, None)
    try:
        assert all(service.chain.has_state(service.chain.get_hash(n)) for n in range(service.chain.best_number + 1))
        assert service.metrics.pruned_nodes._value.get() == 0
    finally:
        service.close()


# Mutation testing of e1dbe3e's PRUNE_DUTY lines (2026-11-30, mutmut 3.8.1): made by the run in
# tests/node/test_network_transcripts.py's docstring, each applied with ``mutmut apply`` in a scratch
# copy and this file run in a fresh process (LevelDB hangs mutmut's forked runners). 10 mutants:
# _maybe_prune__mutmut_7, _prune__mutmut_10..16 and NodeService.__init__'s ``_prune_not_before =
# None`` / ``1.0`` (112, 113; edited by hand: ``mutmut apply`` wrote that __init__ over the file's
# first one, NodeVerifier's). 2 killed before, 8 after the exact wait below (_prune__mutmut_11..16:
# minus, divided, 11 s, 8 s, 19 s, -0.9 s). Left, equivalent: ``<=`` for ``<`` (_maybe_prune__mutmut_7:
# time.monotonic() equals the stored float only by chance, and the next call is later), and 1.0 for
# 0.0 (time.monotonic() is the machine's uptime, past a second before a node starts).
def test_pruning_runs_take_at_most_their_share_of_the_time(tmp_path) -> None:
    """A node syncing 50 blocks a second started a pruning run every 32 finalized blocks, so
    every 0.6 s, back to back, and spent 37-45% of its time pruning (an outside tester's
    finding, 2026-11-30). After a run of s seconds the next waits s * (1 / PRUNE_DUTY - 1),
    however far finality moved meanwhile."""
    service = _service(tmp_path, KEEP)

    async def scenario() -> None:
        service._pruned_at = service.chain.finalized_number - 100  # finality moved far enough
        service._prune_not_before = time.monotonic() + 60  # a long run just ended
        service._maybe_prune()
        assert service._pruning is None
        service._prune_not_before = time.monotonic() - 1
        service._maybe_prune()
        assert service._pruning is not None
        await service._pruning
        # The run that just ended sets the wait (its duration, times 9 for PRUNE_DUTY = 0.1).
        assert PRUNE_DUTY == 0.1 and service._prune_not_before > time.monotonic() - 1
        started = service._pruning
        service._pruned_at = service.chain.finalized_number - 100
        service._prune_not_before = time.monotonic() + 60
        service._maybe_prune()
        assert service._pruning is started  # no second run within the wait

    try:
        asyncio.run(scenario())
    finally:
        service.close()


def test_a_run_of_s_seconds_holds_the_next_one_off_for_nine_times_as_long(tmp_path) -> None:
    """The wait is s * (1 / PRUNE_DUTY - 1) from the end of a run of s seconds, exactly: a
    real run whose report says it took 1 s holds the next one off for 9 s (kills
    ``_prune__mutmut_11``..``16`` of the e1dbe3e run below, which the bound above let live)."""
    service = _service(tmp_path, KEEP)

    class OneSecond(LivePrune):
        def run(self) -> PruneReport:
            return dataclasses.replace(super().run(), seconds=1.0)

    async def scenario() -> None:
        before = time.monotonic()
        await service._prune(OneSecond(service.db, service.chain.state, KEEP))
        after = time.monotonic()
        assert before + 9.0 <= service._prune_not_before <= after + 9.0

    try:
        asyncio.run(scenario())
    finally:
        service.close()


def test_no_pruning_run_starts_once_the_node_is_stopping(tmp_path) -> None:
    """An outside tester's S1 (round 14): the stop waited for the pruning run under way, then
    for the network and the sync to end; finality moved on meanwhile and started another run,
    and the database was closed under it: a SIGSEGV in 3 of 36 stops of a node stopped as its
    sync began. Once the node is stopping no run starts, and the close waits for any left."""
    service = _service(tmp_path, KEEP)

    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        async with asyncio.timeout(60):
            while service.chain.finalized_number < 6 or (service._pruning is not None and not service._pruning.done()):
                await asyncio.sleep(0.01)
        service.request_stop()
        running = service._pruning
        service._pruned_at, service._prune_not_before = -KEEP - 1, 0.0  # as if finality had moved far since the last run
        service._maybe_prune()
        assert service._pruning is running  # no new run
        await task

    asyncio.run(scenario())
    assert service.exit_code == 0
