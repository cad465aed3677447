"""The README's quickstart, run as written: the node command, then the second terminal's script."""

from __future__ import annotations

import json
import os
import re
import shlex
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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(shutil.which("polchain") is None, reason="needs the polchain console script (pip install -e .)")
def test_readme_quickstart_runs_as_written(tmp_path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the quickstart uses curl")
    assert _port_free(9944), "the quickstart uses port 9944, which is taken"
    node_cmd = _block("quickstart-node").strip()
    log = (tmp_path / "node.log").open("w")
    node = subprocess.Popen(shlex.split(node_cmd), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:9944/health", timeout=1)
                break
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.2)
        script = _block("quickstart")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=240,
            env={**os.environ},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ModelTrained" in done.stdout
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
