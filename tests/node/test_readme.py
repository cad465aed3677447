"""The README's quickstart, run as written: the node command, then the second terminal's script."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.devnet import find_free_port_range

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no ```sh block after <!-- {marker} -->"
    return match.group(1)


@contextlib.contextmanager
def _quickstart_node(tmp_path: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The quickstart's node command, run as a reader runs it; Ctrl-C at the end."""
    log = (tmp_path / "node.log").open("w")
    # exec: Ctrl-C (SIGINT) goes to the node itself, as in a terminal.
    node = subprocess.Popen(["bash", "-c", "exec " + _block("quickstart-node").strip()], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.2)
        yield node
    finally:
        node.send_signal(signal.SIGINT)  # Ctrl-C
        assert node.wait(30) == 0


@pytest.mark.skipif(shutil.which("polchain") is None, reason="needs the polchain console script (pip install -e .)")
def test_readme_economy_walkthrough_runs_as_written(tmp_path) -> None:
    """Register, share, sell, train, infer, propose and pass: the Economy section's script."""
    port = find_free_port_range(1)
    env = {k: v for k, v in os.environ.items() if k != "POLCHAIN_RPC"} | {"RPC_PORT": str(port)}
    with _quickstart_node(tmp_path, port, env):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _block("walkthrough")], capture_output=True, text=True, timeout=240, env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        revenue = json.loads(out[out.index('{\n  "model": 1') :].split("\n}\n")[0] + "\n}")
        assert revenue["claimable"] == "12000"  # 40% of 30 steps x 1000
        assert "InferenceMade" in out
        proposal = json.loads(out[out.index('{\n  "id": 0,\n  "model": 1') :].split("\n}\n")[0] + "\n}")
        assert proposal["status"] == "enacted" and proposal["ayes"] == "100", proposal
        assert proposal["deposit"] == str(100 * 10**9)  # held until the tally, returned with the quorum's turnout
        model = json.loads(out[out.rindex('{\n  "id": 1') :].split("\n}\n")[0] + "\n}")
        assert model["inferencePrice"] == "5000" and model["shares"] == "100"
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "gov_listProposals", "params": [1]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            listed = json.loads(response.read())["result"]
        assert listed["proposals"] == [] and listed["params"]["votingBlocks"] == 3 and listed["treasury"] == "0"
        body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "gov_getProposal", "params": [0]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["result"] == proposal


@pytest.mark.skipif(shutil.which("polchain") is None, reason="needs the polchain console script (pip install -e .)")
def test_readme_quickstart_runs_as_written(tmp_path) -> None:
    """Both shell blocks exactly as a reader copies them, in bash, on a free port (RPC_PORT)."""
    if shutil.which("curl") is None:
        pytest.skip("the quickstart uses curl")
    port = find_free_port_range(1)
    env = {k: v for k, v in os.environ.items() if k != "POLCHAIN_RPC"} | {"RPC_PORT": str(port)}
    with _quickstart_node(tmp_path, port, env):
        script = _block("quickstart")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=240, env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ModelTrained" in done.stdout
        # The curl-submitted transaction was waited for, not slept for: its receipt was printed.
        receipt = json.loads(done.stdout[done.stdout.index('{\n  "block') :].split("\n}\n")[0] + "\n}")
        assert receipt["success"] is True and receipt["version"] == 2
        model = json.loads(done.stdout[done.stdout.index('{\n  "id": 0') :].split("\n}\n")[0] + "\n}")
        assert model["latestVersion"] == 2
        assert [v["parent"] for v in model["lineage"]] == [None, 0, 1]
        for v in model["lineage"][1:]:
            t = v["training"]
            assert len(t["lossCurve"]) == -(-t["steps"] // t["segmentLen"])  # one loss per segment
    assert "Shut down cleanly at block #2" in (tmp_path / "node.log").read_text()


@pytest.mark.skipif(shutil.which("polchain") is None, reason="needs the polchain console script (pip install -e .)")
def test_readme_federated_round_runs_as_written(tmp_path) -> None:
    """The federated section's script on the quickstart's node, in an empty folder: it makes
    its own CSVs and its own blocks past the commit deadline (it named a bob.csv nobody had
    made, and waited for blocks an --instant-seal node never makes)."""
    port = find_free_port_range(1)
    env = {k: v for k, v in os.environ.items() if k != "POLCHAIN_RPC"} | {"RPC_PORT": str(port)}
    work = tmp_path / "reader"
    work.mkdir()
    with _quickstart_node(tmp_path, port, env):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _block("federated")], capture_output=True, text=True, timeout=300, env=env,
            cwd=work,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r'event federated\.RoundClosed \{"round": 0, "model": 0, "version": 1, "accepted": 2, "excluded": 0', out), out
    status = json.loads(out[out.rindex('{\n  "id": 0') :])
    assert status["status"] == "closed" and status["update"]["status"] == "accepted", status
    assert sorted(p.name for p in work.iterdir()) == ["bob.csv", "charlie.csv"]
