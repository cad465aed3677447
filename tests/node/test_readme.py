"""The README's quickstart, run as written: the node command, then the second terminal's script."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no ```sh block after <!-- {marker} -->"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("polchain") is None, reason="needs the polchain console script (pip install -e .)")
def test_readme_quickstart_runs_as_written(tmp_path) -> None:
    """Both shell blocks exactly as a reader copies them, in bash, on a free port (RPC_PORT)."""
    if shutil.which("curl") is None:
        pytest.skip("the quickstart uses curl")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "POLCHAIN_RPC"} | {"RPC_PORT": str(port)}
    node_cmd = _block("quickstart-node").strip()
    log = (tmp_path / "node.log").open("w")
    # exec: Ctrl-C (SIGINT) goes to the node itself, as in a terminal.
    node = subprocess.Popen(["bash", "-c", "exec " + node_cmd], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.2)
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
    finally:
        node.send_signal(signal.SIGINT)  # Ctrl-C
        assert node.wait(30) == 0
    assert "Shut down cleanly at block #2" in (tmp_path / "node.log").read_text()
