"""Start and stop real ``polchain node`` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeProcess:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return int(self.proc.returncode)

    def read_log(self) -> str:
        return self.log.read_text()


def start_node(
    workdir: Path, *args: str, port: int | None = None, timeout: float = 90,
    preexec_fn: Callable[[], None] | None = None,
) -> NodeProcess:
    """``polchain node <args> --rpc-port <free>``; returns once /health answers.
    ``preexec_fn`` runs in the child before exec (to lower its resource limits, say)."""
    port = port or free_port()
    log = workdir / f"node-{port}.log"
    handle = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", *args, "--rpc-port", str(port)],
        stdout=handle, stderr=subprocess.STDOUT, cwd=os.getcwd(), preexec_fn=preexec_fn,
    )
    node = NodeProcess(proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{node.url}/health", timeout=1) as response:
                if response.status == 200:
                    return node
        except OSError:
            time.sleep(0.1)
    node.stop(signal.SIGKILL)
    raise RuntimeError(f"node did not answer in {timeout}s:\n{log.read_text()}")
