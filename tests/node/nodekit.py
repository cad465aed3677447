"""Start and stop real ``polchain node`` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from node.devnet import find_free_port_range


def free_port() -> int:
    """A port for one node to listen on, below the kernel's ephemeral range
    (node.devnet.compute_ephemeral_start: an outbound connection cannot take it meanwhile)."""
    return find_free_port_range(1)


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
    node = launch_node(workdir, *args, port=port, preexec_fn=preexec_fn)
    wait_ready(node, timeout)
    return node


def start_nodes(workdir: Path, *commands: Sequence[str], timeout: float = 90) -> list[NodeProcess]:
    """One node per argument list, all launched before any is waited for: a node spends its
    first seconds importing and loading kernels, which overlap on the cores (three nodes one
    after another took about 9 s to be up). If one does not come up, all are killed."""
    nodes = [launch_node(workdir, *args) for args in commands]
    try:
        for node in nodes:
            wait_ready(node, timeout)
    except BaseException:
        for node in nodes:
            node.stop(signal.SIGKILL)
        raise
    return nodes


def launch_node(
    workdir: Path, *args: str, port: int | None = None, preexec_fn: Callable[[], None] | None = None,
) -> NodeProcess:
    """The node process of :func:`start_node`, not waited for (:func:`wait_ready`)."""
    port = port or free_port()
    log = workdir / f"node-{port}.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", *args, "--rpc-port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, cwd=os.getcwd(), preexec_fn=preexec_fn,
        )
    return NodeProcess(proc, port, log)


def wait_ready(node: NodeProcess, timeout: float = 90) -> None:
    """Until the node's /health answers; a node that exits or does not answer in ``timeout``
    seconds is an error with its log (and is killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"node exited with {node.proc.returncode}:\n{node.read_log()}")
        try:
            with urllib.request.urlopen(f"{node.url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    node.stop(signal.SIGKILL)
    raise RuntimeError(f"node did not answer in {timeout}s:\n{node.read_log()}")
