"""The node takes its slot duration from its chain; ``--block-time`` sets it only for a spec the
node (or ``build-spec``, or ``devnet``) builds, and a value the chain does not have is refused.

Before, every node was given ``--block-time`` on its command line: a node started with
another value than the others cut time into slots of another scale and never imported their
blocks (it only said so in a log line).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from netkit import FAST, running, wait_for
from nodekit import free_port, start_node

from genesis.local import local_spec
from genesis.spec import load_chain_spec
from node import devnet
from node.cli import main
from node.service import NodeConfig, NodeService

SLOT_MS = 400


def _write(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _two_validator_spec(path: Path, slot_ms: int, *, raw: bool = False) -> Path:
    obj = local_spec(2).to_json()
    obj["runtimeConfig"]["slot_duration_ms"] = slot_ms
    if raw:
        obj = load_chain_spec(str(_write(path, obj))).to_json(raw=True)
    return _write(path, obj)


def _polchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=timeout)


async def test_two_nodes_of_one_spec_agree_on_slots_without_any_flag(tmp_path) -> None:
    """Alice and Bob, each given only the spec file (slots of 400 ms in runtimeConfig): both
    cut time into 400 ms slots, import each other's blocks and finalize together (2 of 2 votes
    per round: a round is a slot)."""
    spec = load_chain_spec(str(_two_validator_spec(tmp_path / "spec.json", SLOT_MS)))
    alice_config = NodeConfig(chain="spec", tmp=True, author="//Alice", network=FAST)
    async with running(NodeService(alice_config, spec)) as alice:
        assert alice.network is not None
        bob_config = NodeConfig(chain="spec", tmp=True, author="//Bob", network=replace(FAST, bootnodes=(alice.network.listen_addresses[0],)))
        async with running(NodeService(bob_config, spec)) as bob:
            for node in (alice, bob):
                assert node.slot_ms == SLOT_MS and node.rules.aura.slot_ms == SLOT_MS
            authors = {alice.author.public: "Alice", bob.author.public: "Bob"}  # type: ignore[union-attr]

            def both_sealed_and_final() -> bool:
                chain = alice.chain
                if chain.finalized_number < 2 or not bob.chain.has_block(chain.finalized_hash):
                    return False
                seen = {chain.get_header(chain.get_hash(n) or b"").author for n in range(1, chain.best_number + 1)}
                return set(authors) <= seen

            await wait_for(both_sealed_and_final, 30)
            now = int(time.time() * 1000) // SLOT_MS
            for node in (alice, bob):
                assert now - 10 <= node.chain.best_header.slot <= now + 2  # slots of 400 ms, not of 6 s


@pytest.mark.parametrize("raw", [False, True])
def test_a_block_time_other_than_the_spec_files_is_refused_naming_both(tmp_path, capsys, raw: bool) -> None:
    path = _two_validator_spec(tmp_path / "spec.json", 500, raw=raw)
    base = tmp_path / "base"
    assert main(["node", "--chain", str(path), "--base-path", str(base), "--alice", "--block-time", "1000"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"Error: --block-time 1000: the chain of {path} has the slot duration 500 ms (runtimeConfig.slot_duration_ms): "
        "leave --block-time out, or build the spec with it (polchain build-spec --block-time MS)"
    ]
    assert not base.exists()  # refused before anything is written


def test_a_block_time_other_than_the_chain_in_the_database_is_refused_naming_both(tmp_path) -> None:
    """--dev --block-time 300 made a chain of 300 ms slots; started again on its base path with
    another --block-time (or none: the preset's 6000), the node builds another chain and the
    database refuses it in one line naming both durations; with the same value it resumes."""
    base = tmp_path / "base"
    common = ("--dev", "--base-path", str(base), "--no-prometheus")
    node = start_node(tmp_path, *common, "--block-time", "300", "--port", str(free_port()))
    assert node.stop(signal.SIGINT) == 0
    assert "slot duration 300 ms" in node.read_log()
    for flag, wanted in ((("--block-time", "1000"), 1000), ((), 6000)):
        refused = _polchain("node", *common, *flag, "--rpc-port", str(free_port()), "--port", str(free_port()))
        assert refused.returncode == 1, refused.stderr
        last = refused.stderr.splitlines()[-1]
        assert last.startswith("Error: the database holds chain 'dev' with another runtime config than the chain spec's: "
                               f"slot_duration_ms 300 (stored) vs {wanted} (chain spec) (start it with --block-time 300, "
                               "the value it was made with, or purge the chain to start it with the new config)"), refused.stderr
        assert "Traceback" not in refused.stderr
    node = start_node(tmp_path, *common, "--block-time", "300", "--port", str(free_port()))
    assert node.stop(signal.SIGINT) == 0


def test_build_spec_writes_the_block_time_into_the_spec(tmp_path, capsys) -> None:
    assert main(["build-spec", "--chain", "dev", "--block-time", "2000"]) == 0
    readable = json.loads(capsys.readouterr().out)
    assert readable["runtimeConfig"]["slot_duration_ms"] == 2000
    assert main(["build-spec", "--chain", "dev", "--raw", "--block-time", "2000"]) == 0
    raw = _write(tmp_path / "raw.json", json.loads(capsys.readouterr().out))
    assert load_chain_spec(str(raw)).runtime_config.slot_duration_ms == 2000
    assert load_chain_spec(str(raw)).raw is not None
    # A raw spec is a chain already built: the same duration is accepted, another refused.
    assert main(["build-spec", "--chain", str(raw), "--raw", "--block-time", "2000"]) == 0
    capsys.readouterr()
    assert main(["build-spec", "--chain", str(raw), "--block-time", "1000"]) == 1
    assert capsys.readouterr().err.strip() == (
        "Error: chain spec 'dev': a raw chain spec's slot duration is in its genesis storage (slot_duration_ms 2000), not 1000")


@pytest.mark.parametrize("command", ["node", "build-spec", "devnet"])
@pytest.mark.parametrize("value", ["0", "3600001"])
def test_a_block_time_out_of_range_is_a_usage_error(command: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--block-time", value])
    assert exited.value.code == 2
    assert f"--block-time: {value} is out of range" in capsys.readouterr().err


def test_devnet_writes_the_block_time_into_its_spec_and_a_resumed_one_keeps_its_own(tmp_path) -> None:
    path, resumed, slot_ms = devnet.prepare_spec(tmp_path, 2, 500)
    assert not resumed and slot_ms == 500 and load_chain_spec(str(path)).runtime_config.slot_duration_ms == 500
    assert devnet.prepare_spec(tmp_path, 2, None) == (path, True, 500)
    assert devnet.prepare_spec(tmp_path, 2, 500) == (path, True, 500)
    with pytest.raises(devnet.DevnetError, match=rf"^{tmp_path} holds a devnet with the slot duration 500 ms, not --block-time 1000: "):
        devnet.prepare_spec(tmp_path, 2, 1000)
    other = tmp_path / "other"
    other.mkdir()
    assert devnet.prepare_spec(other, 2, None)[2] == 6000
