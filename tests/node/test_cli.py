"""The polchain CLI as a user runs it: real processes, real node, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from nodekit import start_node

from chain.crypto import dev_keypair


def polchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_key_generate_and_inspect() -> None:
    out = polchain("key", "generate", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)
    assert key["ss58Address"].startswith("5") and len(bytes.fromhex(key["secretSeed"][2:])) == 32
    again = json.loads(polchain("key", "inspect", key["secretSeed"], "--output-type", "json").stdout)
    assert again["ss58Address"] == key["ss58Address"]
    alice = polchain("key", "inspect", "//Alice")
    assert dev_keypair("Alice").address in alice.stdout
    bad = polchain("key", "inspect", "0x1234")
    assert bad.returncode == 1 and "32 bytes" in bad.stderr


def test_build_spec_raw_and_purge_chain(tmp_path) -> None:
    out = polchain("build-spec", "--chain", "dev", "--raw")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["genesis"]["raw"]["top"]
    db = tmp_path / "chains" / "dev" / "db"
    db.mkdir(parents=True)
    refused = polchain("purge-chain", "--base-path", str(tmp_path))
    assert refused.returncode == 1 and "pass -y" in refused.stderr and db.exists()
    done = polchain("purge-chain", "--base-path", str(tmp_path), "-y")
    assert done.returncode == 0 and not db.exists()
    assert polchain("node", "--rpc-port", "x").returncode == 2  # argparse usage error
    missing = polchain("node", "--chain", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "no chain spec at" in missing.stderr


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = start_node(tmp_path_factory.mktemp("cli"), "--dev", "--instant-seal")
    yield proc
    proc.stop()


def test_tx_transfer_and_query_account(node) -> None:
    before = json.loads(polchain("query", "account", "//Eve", "--rpc", node.url).stdout)
    out = polchain("tx", "transfer", "--rpc", node.url, "--signer", "//Dave", "--dest", "//Eve",
                   "--value", "2000000000", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["success"] is True and result["blockNumber"] >= 1
    assert any(e["name"] == "Transferred" for e in result["events"])
    after = json.loads(polchain("query", "account", "//Eve", "--rpc", node.url).stdout)
    assert int(after["free"]) == int(before["free"]) + 2_000_000_000
    block = json.loads(polchain("query", "block", str(result["blockNumber"]), "--rpc", node.url).stdout)
    assert block["block"]["header"]["number"] == hex(result["blockNumber"])


def test_tx_call_takes_the_json_form(node) -> None:
    call = {"pallet": "staking", "call": "bond", "args": {"value": 10**9}}
    out = polchain("tx", "call", "--rpc", node.url, "--signer", "//Charlie", "--call", json.dumps(call), "--output-type", "json")
    assert out.returncode == 0, out.stderr
    assert any(e["name"] == "Bonded" for e in json.loads(out.stdout)["events"])
    bad = polchain("tx", "call", "--rpc", node.url, "--call", '{"pallet": "staking", "call": "bond", "args": {}}')
    assert bad.returncode == 1 and "missing arguments ['value']" in bad.stderr


def test_tx_errors_are_one_line(node) -> None:
    bad_signer = polchain("tx", "transfer", "--rpc", node.url, "--signer", "0xzz", "--dest", "//Eve", "--value", "1")
    assert bad_signer.returncode == 1 and bad_signer.stderr.startswith("Error:")
    failing = polchain("tx", "train", "--rpc", node.url, "--signer", "//Dave", "--model", "0", "--dataset", "0",
                       "--steps", "10", "--batch-size", "8", "--lr", "-1")
    assert failing.returncode == 1 and "InvalidLearningRate" in failing.stdout
    unknown = polchain("query", "model", "99", "--rpc", node.url)
    assert unknown.returncode == 1 and "no model 99" in unknown.stderr
