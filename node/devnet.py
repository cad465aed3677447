"""``polchain devnet``: N validators (and K full nodes) on this machine, one process each.

What it does, in order:

1. Base path. ``--base-path DIR``, by default ``$XDG_DATA_HOME/polchain/devnet`` (that is
   ``~/.local/share/polchain/devnet``), next to where Substrate nodes keep their default base
   path (``~/.local/share/<node>``), so that running ``polchain devnet`` again resumes the same
   chain; ``polchain devnet --base-path $(mktemp -d)`` gives a throwaway one. A lock file
   (``devnet.lock``) keeps a second devnet off the same directory.
2. Chain spec. ``chain-spec.json``: the raw form of :func:`genesis.local.local_spec` (storage
   key/values), so a later change of genesis code cannot change this chain's genesis, with
   ``--block-time`` as its slot duration (``runtimeConfig.slot_duration_ms``: the chain's, so
   the nodes get no flag for it). If the file exists it is reused, and refused if its
   validators are not the ``--validators N`` asked for, or its slot duration is not the
   ``--block-time`` given (the databases hold that chain; without the flag it keeps its own).
3. Nodes. Validator i is ``//Alice``, ``//Bob``, … ``//Ferdie``, ``//Validator7``, …; auditor j is
   a full node (no authoring key). Node i runs ``polchain node`` with base path
   ``<base>/<name>`` (its own LevelDB), RPC port ``--rpc-port + i``, p2p port ``--port + i``,
   Prometheus port ``--prometheus-port + i``, its log in ``<base>/<name>/node.log`` (appended),
   and a node key fixed per node (blake2-256 of ``polchain-devnet/<name>``), so every peer id
   is known before start and every node gets every other node's multiaddr as ``--bootnodes``
   (a whole mesh without peer discovery, with no hub whose loss splits it). These keys
   are public knowledge: a devnet is for one machine, never for a network others can reach.
   Auditors run ``--pol full``: they re-run every segment of every training call (validators
   sample ``pol_samples`` segments a job), so a forgery a sample misses is still proven.
4. Status. Every ``--interval`` seconds each node is asked over RPC for its best and
   finalized heads and peer count; a live table (rich) shows them with the time of the best
   block (its Aura slot × the chain's slot duration) and the rate of new best blocks over the last 30 s. With
   ``--no-tui``, or when stdout is not a terminal, one status line is printed per interval.
   Columns follow faults: ``frauds``, the training frauds each node proved (its metric
   ``polchain_pol_frauds_detected_total``, read from its Prometheus endpoint), and ``slashes``
   and ``slashed``, each validator's offences the runtime punished and the stake they took
   (``pol_getOffences`` over RPC, from the first honest node that answers).
   ``--byzantine-node K --byzantine MODE`` starts validator K (0-based) with ``--byzantine MODE``
   (node/byzantine.py), marked in the table: ``polchain devnet --byzantine-node 1 --byzantine
   forge-training=0.25`` runs the proof-of-learning fraud scenario live.
5. Stop. Ctrl-C (SIGINT) or SIGTERM: each node gets SIGINT (it finishes the block in progress
   and closes its database), then ``--stop-timeout`` seconds, then SIGKILL for any left.
   Children run in their own session, so a Ctrl-C at the terminal reaches only this process,
   which stops them in order; on Linux they also get SIGTERM if this process dies.

Exit status: 0 when every node stopped cleanly, 1 otherwise (a node that exited by itself, or
one that had to be killed); a usage error is 2, as for every polchain command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chain.crypto import DEV_ACCOUNTS, Keypair, blake2_256, ss58_encode
from chain.pallets.staking import VALIDATORS
from genesis.local import MAX_VALIDATORS, local_spec, validator_names
from genesis.spec import compute_genesis_storage, load_chain_spec, with_slot_duration
from node.byzantine import InvalidByzantineMode, parse_byzantine
from node.cli import int_in
from node.network.identity import NodeKey
from rpc.client import RpcClient
from rpc.errors import RpcError

SPEC_FILE = "chain-spec.json"
LOCK_FILE = "devnet.lock"
LOG_FILE = "node.log"
RATE_WINDOW = 30.0  # seconds of best-block history behind "imported/s"
MAX_AUDITORS = 64
#: Node processes in all (validators and auditors). A node takes about 185 MB idle (README,
#: benches/devnet.py): each flag's own bound of 64 allowed 128 processes, 24 GB, more than the
#: project's machine has.
MAX_NODES = 64
PR_SET_PDEATHSIG = 1
#: ``polchain`` as a child process's command: this Python, with ``-P``, which keeps the working
#: folder off the child's import path (``python -m`` puts it first): a file there named like one of
#: polchain's packages (an ``rpc.py``) was imported instead of it, and ``polchain bench devnet``
#: failed, the file run (an outside tester's AB1, round 16). The child finds polchain where this
#: process did: :func:`compute_child_env`.
CLI = (sys.executable, "-P", "-m", "node.cli")
#: The folder holding the polchain this process runs (its ``node`` package's parent).
POLCHAIN_ROOT = Path(__file__).resolve().parents[1]


class DevnetError(Exception):
    """A devnet that cannot start: printed as one line, exit status 1."""


# --- the command line -----------------------------------------------------------------------
def add_subcommand(sub: Any, node_parser: argparse.ArgumentParser, path_type: Callable[[str], Path]) -> None:
    """Register ``polchain devnet``. ``node_parser`` tells which flags ``polchain node`` knows;
    ``path_type`` parses ``--base-path`` as the node's own flag does (an empty path is refused,
    not taken for the current folder)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "devnet", help="run a local network: N validators (and K full nodes), one process each",
        description="Start N validators (//Alice, //Bob, … //Validator7, …) and K full nodes of a local chain, "
        "each with its own database, RPC, p2p and metrics port, show their heads live, and stop them all on Ctrl-C. "
        "Running it again on the same base path resumes the same chain.",
    )
    p.add_argument("--validators", "-n", type=int_in(1, MAX_VALIDATORS), default=4, metavar="N",
                   help=f"validators, 1..{MAX_VALIDATORS} (default 4); with --auditors at most {MAX_NODES} nodes")
    p.add_argument("--auditors", type=int_in(0, MAX_AUDITORS), default=0, metavar="K",
                   help="full nodes besides the validators, each an auditor (--pol full: re-runs every training segment)")
    p.add_argument("--base-path", "-d", type=path_type, default=None, metavar="DIR",
                   help="default: $XDG_DATA_HOME/polchain/devnet (~/.local/share/polchain/devnet)")
    p.add_argument("--rpc-port", type=int_in(1, 65535), default=9944, metavar="PORT", help="node i serves RPC on PORT + i (default 9944)")
    p.add_argument("--port", type=int_in(1, 65535), default=30333, metavar="PORT", help="node i listens for peers on PORT + i (default 30333)")
    p.add_argument("--prometheus-port", type=int_in(1, 65535), default=9615, metavar="PORT", help="node i serves metrics on PORT + i (default 9615)")
    p.add_argument("--no-prometheus", action="store_true", help="no metrics endpoints")
    p.add_argument("--block-time", type=int_in(1, 3_600_000), default=None, metavar="MS",
                   help="the new chain's slot duration, written into its spec (default 6000; a resumed devnet keeps its own)")
    p.add_argument("--no-tui", action="store_true", help="one status line per interval instead of a live table")
    p.add_argument("--interval", type=_seconds, default=1.0, metavar="S", help="status refresh, seconds (default 1)")
    p.add_argument("--stop-timeout", type=_seconds, default=30.0, metavar="S", help="seconds a node gets to stop before SIGKILL (default 30)")
    # dest is not "log": the CLI sets this process's own logging from args.log (an int level).
    p.add_argument("--log", "-l", dest="node_log", choices=("error", "warn", "info", "debug"), default="info",
                   help="the nodes' log level")
    p.add_argument("--byzantine-node", type=int_in(0, MAX_VALIDATORS - 1), default=None, metavar="K",
                   help="validator K (0-based) misbehaves as --byzantine says; the others are honest")
    p.add_argument("--byzantine", dest="byzantine_mode", type=_byzantine_mode, default=None, metavar="MODE",
                   help="forge-training=F (0 < F <= 1), withhold-checkpoints or equivocate (node/byzantine.py)")
    p.set_defaults(run=run_devnet, node_flags=frozenset(node_parser._option_string_actions), devnet_parser=p)




def _byzantine_mode(text: str) -> str:
    """The --byzantine text as given (validated), passed on to the node verbatim."""
    try:
        parse_byzantine(text)
    except InvalidByzantineMode as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def check_byzantine_args(args: argparse.Namespace) -> str | None:
    """The usage error of the --byzantine pair, if any: both or neither, and K a validator."""
    node, mode = getattr(args, "byzantine_node", None), getattr(args, "byzantine_mode", None)
    if (node is None) != (mode is None):
        return "--byzantine and --byzantine-node go together: which validator misbehaves, and how"
    if node is not None and node >= args.validators:
        return f"--byzantine-node {node} is not a validator: with --validators {args.validators} it is 0..{args.validators - 1}"
    return None


def _seconds(text: str) -> float:
    try:
        if not text.isascii() or "_" in text or text != text.strip():  # float() takes these
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{value} is out of range 0.05..3600 seconds")
    return value


def default_base_path() -> Path:
    """``$XDG_DATA_HOME/polchain/devnet``, ``~/.local/share/polchain/devnet`` without it."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "polchain" / "devnet"


# --- identities -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node of the devnet: who it is and where it listens."""

    index: int
    name: str  # Alice, Validator7, Auditor1
    validator: bool
    rpc_port: int
    p2p_port: int
    prometheus_port: int | None
    base_path: Path
    byzantine: str | None = None  # the --byzantine mode this node runs with, None: honest

    @property
    def dir_name(self) -> str:
        return self.name.lower()

    @property
    def node_key(self) -> bytes:
        """The node's p2p secret seed; fixed so its peer id is known before it starts."""
        return blake2_256(f"polchain-devnet/{self.dir_name}".encode())

    @property
    def peer_id(self) -> str:
        return str(NodeKey.from_seed(self.node_key).peer_id)

    @property
    def multiaddr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    @property
    def log_path(self) -> Path:
        return self.base_path / LOG_FILE


def plan_nodes(args: argparse.Namespace, base: Path) -> list[NodePlan]:
    names = [(n, True) for n in validator_names(args.validators)]
    names += [(f"Auditor{j + 1}", False) for j in range(args.auditors)]
    total = len(names)
    if total > MAX_NODES:
        raise DevnetError(f"--validators {args.validators} + --auditors {args.auditors} = {total} nodes: at most {MAX_NODES} "
                          "(one process of about 185 MB each)")
    for flag, first in (("--rpc-port", args.rpc_port), ("--port", args.port), ("--prometheus-port", args.prometheus_port)):
        if first + total - 1 > 65535:
            raise DevnetError(f"{flag} {first} leaves no room for {total} nodes (ports {first}..{first + total - 1})")
    byzantine_node = getattr(args, "byzantine_node", None)
    return [
        NodePlan(
            i, name, validator, args.rpc_port + i, args.port + i,
            None if args.no_prometheus else args.prometheus_port + i, base / name.lower(),
            args.byzantine_mode if i == byzantine_node else None,
        )
        for i, (name, validator) in enumerate(names)
    ]


def compute_child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (this process's by default) with :data:`POLCHAIN_ROOT` first on PYTHONPATH, for a
    child run with :data:`CLI`: it runs this process's polchain, installed or run from a checkout."""
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(POLCHAIN_ROOT), out.get("PYTHONPATH")]))
    return out


def node_command(plan: NodePlan, spec_path: Path, plans: list[NodePlan], args: argparse.Namespace) -> list[str]:
    """The ``polchain node`` command line of one node. Flags the node does not know yet (the p2p
    ones, before networking is merged) are left out rather than making it refuse to start."""
    known: frozenset[str] = args.node_flags
    cmd = [
        *CLI, "node", "--chain", str(spec_path), "--base-path", str(plan.base_path),
        "--name", plan.name, "--rpc-port", str(plan.rpc_port), "--port", str(plan.p2p_port), "--log", args.node_log,
    ]
    if plan.validator:
        flag = f"--{plan.name.lower()}"
        cmd += ["--validator", flag] if plan.name in DEV_ACCOUNTS else ["--validator", "--key", "//" + plan.name]
    if "--node-key" in known:
        cmd += ["--node-key", plan.node_key.hex()]
    others = [p.multiaddr for p in plans if p is not plan]
    if others and "--bootnodes" in known:
        cmd += ["--bootnodes", *others]
    if plan.byzantine is not None:
        cmd += ["--byzantine", plan.byzantine]
    if not plan.validator and "--pol" in known:
        cmd += ["--pol", "full"]
    if plan.prometheus_port is None:
        cmd += ["--no-prometheus"]
    else:
        cmd += ["--prometheus-port", str(plan.prometheus_port)]
    return cmd


# --- the chain spec on disk -----------------------------------------------------------------------
def prepare_spec(base: Path, n: int, block_time: int | None = None) -> tuple[Path, bool, int]:
    """``(spec path, resumed, slot duration in ms)``: write the raw spec for ``n`` validators
    with the slot duration ``block_time`` (None: the preset's, 6000), or check the one there
    (``block_time`` None: whatever duration it has)."""
    path = base / SPEC_FILE
    wanted = tuple(Keypair.from_uri("//" + name).public for name in validator_names(n))
    if path.exists():
        spec = load_chain_spec(str(path))
        storage = spec.raw if spec.raw is not None else compute_genesis_storage(spec)
        found = VALIDATORS.get(_ReadOnlyState(storage))
        if found != wanted:
            raise DevnetError(
                f"{base} holds a devnet of {len(found)} validators, not {n}: run it with --validators "
                f"{len(found)}, or choose another --base-path (or delete {base} to start over)"
            )
        slot_ms = spec.runtime_config.slot_duration_ms
        if block_time is not None and block_time != slot_ms:
            raise DevnetError(
                f"{base} holds a devnet with the slot duration {slot_ms} ms, not --block-time {block_time}: the slot "
                "duration is the chain's; leave --block-time out, or choose another --base-path (or delete "
                f"{base} to start over)"
            )
        return path, True, slot_ms
    spec = local_spec(n) if block_time is None else with_slot_duration(local_spec(n), block_time)
    text = json.dumps(spec.to_json(raw=True), indent=1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a spec file is whole or absent
    return path, False, spec.runtime_config.slot_duration_ms


class _ReadOnlyState:
    """Genesis storage as the state a storage item reads."""

    def __init__(self, items: dict[bytes, bytes]) -> None:
        self.items = items

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        raise TypeError("read-only")

    def delete(self, key: bytes) -> None:
        raise TypeError("read-only")


def compute_ephemeral_start() -> int:
    """The lowest port the kernel hands out to outbound connections and ``bind(0)``
    (Linux's ``net.ipv4.ip_local_port_range``, 32768 by default; that default elsewhere).
    A port chosen at or above it and left unbound until a node binds it can meanwhile be
    taken as the source port of any outbound connection (a devnet's own nodes dialing each
    other make plenty): "address already in use" at random. Below it only listeners bind."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out, by this process or by any other still alive on this machine. Each pick is
# only checked free at the time: a test that asked for two ports before starting the node that
# binds them got the same port twice (1 in about 22,000 a pair; a CI run failed on it), and a
# devnet's ports, free between its stop and its resume, were taken by a test in another pytest
# worker and its resumed node could not bind its Prometheus port (a CI run, 2026-12-01). So
# each port handed out holds an exclusive flock(2) on a file named after it under
# PORT_LOCK_DIR until this process exits (the kernel drops the lock with it: nothing to clean
# up after a crash), and a port whose file another process holds is not handed out.
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "polchain-ports"
_HANDED_OUT: dict[int, int | None] = {}  # port -> descriptor of its held lock file (None: none could be made)


def _hand_out(port: int) -> bool:
    """Whether ``port`` was not handed out before, here or in a live process; it is now."""
    if port in _HANDED_OUT:
        return False
    try:
        PORT_LOCK_DIR.mkdir(exist_ok=True)
        # Every user's to write, and each file every user's to read (flock takes a read-only
        # descriptor): the umask narrows the modes asked at creation, and another user's
        # processes, refused, kept no record of ports a live process here held (a review's R3).
        with contextlib.suppress(OSError):  # (not ours to change: another user made it)
            PORT_LOCK_DIR.chmod(0o1777)
        fd = os.open(PORT_LOCK_DIR / str(port), os.O_RDONLY | os.O_CREAT, 0o666)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)
    except OSError:  # a folder we cannot write (another user's, of another mode): this process's own record only
        _HANDED_OUT[port] = None
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _HANDED_OUT[port] = fd
    return True


def release_ports(ports: range) -> None:
    """Hand ``ports`` back (their locks released): for tests of the picking itself."""
    for port in ports:
        fd = _HANDED_OUT.pop(port, None)
        if fd is not None:
            os.close(fd)


def find_free_port_range(count: int, low: int = 10000, high: int | None = None) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1, below ``high`` (by default
    the kernel's ephemeral range, :func:`compute_ephemeral_start`), tried at random starts so
    that devnets started side by side (tests, benchmarks) rarely pick the same range, and never
    overlapping a range this process or another live one was given (:data:`PORT_LOCK_DIR`)."""
    if high is None:
        high = compute_ephemeral_start()
        if high - low < 4 * count:  # an unusual ephemeral range: take the usual span instead
            high = 60000
    starts = range(low, high - count)
    for first in random.Random().sample(starts, min(200, len(starts))):
        ports = range(first, first + count)
        if any(port in _HANDED_OUT for port in ports):
            continue
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        taken = list(itertools.takewhile(_hand_out, ports))
        if len(taken) == count:
            return first
        release_ports(range(first, first + len(taken)))
    raise DevnetError(f"no {count} consecutive free ports in {low}..{high}")


def _check_ports_free(plans: list[NodePlan]) -> None:
    for plan in plans:
        for what, port in (("RPC", plan.rpc_port), ("p2p", plan.p2p_port), ("Prometheus", plan.prometheus_port)):
            if port is None:
                continue
            with socket.socket() as s:
                # As asyncio's servers do, so a port in TIME_WAIT after a restart counts as free.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    raise DevnetError(
                        f"port {port} ({what} of {plan.name}) is in use; is another node running? "
                        f"Choose other ports with --rpc-port / --port / --prometheus-port"
                    ) from None


# --- running ------------------------------------------------------------------------------------
@dataclass
class NodeStatus:
    """What the devnet knows of one running node."""

    plan: NodePlan
    proc: subprocess.Popen[bytes]
    client: RpcClient
    best: int | None = None
    best_slot: int | None = None
    finalized: int | None = None
    finalized_hash: str | None = None
    peers: int | None = None
    frauds: int | None = None  # polchain_pol_frauds_detected_total of this node
    slashes: int | None = None  # offences of this node's validator punished (an honest node's view)
    slashed: int | None = None  # and the stake they took
    answered: bool = False
    history: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def state(self) -> str:
        code = self.proc.poll()
        if code is not None:
            return f"exited {code}"
        return "up" if self.answered else "starting"

    def rate(self) -> float | None:
        """New best blocks per second over the last RATE_WINDOW seconds."""
        if len(self.history) < 2:
            return None
        (t0, b0), (t1, b1) = self.history[0], self.history[-1]
        return max(0, b1 - b0) / (t1 - t0) if t1 > t0 else None


async def poll(node: NodeStatus) -> None:
    """Ask one node for its heads and peers; a node that does not answer keeps its old figures."""
    if node.proc.poll() is not None:
        node.answered = False
        return
    try:
        best, fin_hash, health = await node.client.batch(
            [("chain_getHeader", []), ("chain_getFinalizedHead", []), ("system_health", [])]
        )
        if isinstance(best, Exception) or isinstance(fin_hash, Exception) or isinstance(health, Exception):
            return
        if fin_hash != node.finalized_hash:
            header = await node.client.call("chain_getHeader", [fin_hash])
            node.finalized, node.finalized_hash = int(header["number"], 16), fin_hash
    except (RpcError, OSError, TimeoutError, KeyError, TypeError, ValueError):
        node.answered = False
        return
    node.answered = True
    node.best = int(best["number"], 16)
    node.best_slot = int(best["slot"], 16) if isinstance(best.get("slot"), str) else None
    node.peers = int(health["peers"])
    now = time.monotonic()
    node.history.append((now, node.best))
    while node.history and now - node.history[0][0] > RATE_WINDOW:
        node.history.popleft()


FRAUDS_METRIC = "polchain_pol_frauds_detected_total"


def read_metric(text: str, name: str) -> int | None:
    """The sum of a Prometheus counter's samples (every label set) in an exposition ``text``;
    None if the node does not export it."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            seen = True
    return int(total) if seen else None


def _fetch_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1.0) as response:
        return str(response.read(4 << 20).decode("utf-8", "replace"))


async def poll_frauds(node: NodeStatus) -> None:
    """Frauds this node detected, from its metrics endpoint (kept if it does not answer)."""
    port = node.plan.prometheus_port
    if port is None or node.proc.poll() is not None:
        return
    try:
        text = await asyncio.to_thread(_fetch_metrics, port)
    except (OSError, ValueError):
        return
    node.frauds = read_metric(text, FRAUDS_METRIC)


async def poll_offences(nodes: list[NodeStatus]) -> None:
    """Each validator's punished offences (count and stake slashed), from the first honest node
    that answers ``pol_getOffences`` (chain.pallets.pol records each offence once)."""
    validators = {ss58_encode(Keypair.from_uri("//" + n.plan.name).public): n for n in nodes if n.plan.validator}
    for source in (n for n in nodes if n.plan.byzantine is None and n.answered and n.proc.poll() is None):
        try:
            found = await source.client.call("pol_getOffences", [])
            offences = found["offences"]
            counts = dict.fromkeys(validators, 0)
            amounts = dict.fromkeys(validators, 0)
            for offence in offences:
                who = offence["offender"]
                if who in counts:
                    counts[who] += 1
                    amounts[who] += int(offence["slashed"])
        except (RpcError, OSError, TimeoutError, KeyError, TypeError, ValueError):
            continue
        for who, node in validators.items():
            node.slashes, node.slashed = counts[who], amounts[who]
        return


def _last_block(node: NodeStatus, block_ms: int) -> str:
    if node.best_slot is None or not node.best:
        return "-"
    ago = time.time() - node.best_slot * block_ms / 1000
    return time.strftime("%H:%M:%S", time.localtime(node.best_slot * block_ms / 1000)) + f" ({max(0.0, ago):.0f}s ago)"


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"#{value}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def status_line(nodes: list[NodeStatus], block_ms: int) -> str:
    parts = []
    for n in nodes:
        rate = n.rate()
        parts.append(
            f"{n.plan.name}{'' if n.plan.byzantine is None else f' [byzantine {n.plan.byzantine}]'} {n.state} "
            f"best {_fmt(n.best)} fin {_fmt(n.finalized)} peers {'-' if n.peers is None else n.peers} "
            f"{'-' if rate is None else f'{rate:.2f}'}/s frauds {_count(n.frauds)} slashes {_count(n.slashes)} "
            f"slashed {_count(n.slashed)}"
        )
    return time.strftime("%H:%M:%S") + " " + " | ".join(parts)


def status_table(nodes: list[NodeStatus], block_ms: int, title: str) -> Any:
    from rich.table import Table

    table = Table(
        title=title,
        caption="Ctrl-C stops every node. frauds: training frauds the node proved; slashes: the validator's offences punished, and the stake they took",
    )
    numeric = ("best", "finalized", "peers", "imported/s", "RPC", "p2p", "frauds", "slashes", "slashed")
    columns = ("node", "role", "state", "RPC", "p2p", "best", "finalized", "peers", "last block", "imported/s", "frauds", "slashes", "slashed")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    for n in nodes:
        rate = n.rate()
        state = n.state
        style = "green" if state == "up" else ("red" if state.startswith("exited") else "yellow")
        role = "validator" if n.plan.validator else "full"
        if n.plan.byzantine is not None:
            role = f"[bold red]{role}, byzantine: {n.plan.byzantine}[/]"
        table.add_row(
            n.plan.name, role, f"[{style}]{state}[/]", str(n.plan.rpc_port),
            str(n.plan.p2p_port), _fmt(n.best), _fmt(n.finalized), "-" if n.peers is None else str(n.peers),
            _last_block(n, block_ms), "-" if rate is None else f"{rate:.2f}", _count(n.frauds),
            f"[bold red]{n.slashes}[/]" if n.slashes else _count(n.slashes),
            f"[bold red]{n.slashed}[/]" if n.slashed else _count(n.slashed),
        )
    return table


def _set_parent_death_signal() -> None:
    """In the child before exec (Linux): SIGTERM when the devnet process dies, so no node is
    left running after a SIGKILL of the devnet."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_node(plan: NodePlan, spec_path: Path, plans: list[NodePlan], args: argparse.Namespace) -> subprocess.Popen[bytes]:
    plan.base_path.mkdir(parents=True, exist_ok=True)
    log: IO[bytes] = plan.log_path.open("ab")
    try:
        return subprocess.Popen(
            node_command(plan, spec_path, plans, args), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=compute_child_env(), start_new_session=True, preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
        )
    finally:
        log.close()  # the child holds its own descriptor


async def stop_nodes(nodes: list[NodeStatus], timeout: float, say: Any) -> bool:
    """SIGINT to each node, up to ``timeout`` seconds, then SIGKILL. True if all stopped cleanly."""
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    while any(n.proc.poll() is None for n in nodes) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    clean = True
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
            say(f"{n.plan.name} (pid {n.proc.pid}) did not stop in {timeout:.0f}s: killed")
            clean = False
        elif n.proc.returncode != 0:
            say(f"{n.plan.name} (pid {n.proc.pid}) exited with status {n.proc.returncode}; see {n.plan.log_path}")
            clean = False
        else:
            say(f"{n.plan.name} (pid {n.proc.pid}) stopped at best {_fmt(read_stopped_at(n.plan.log_path, n.best))}")
    return clean


STOPPED_AT = re.compile(r"Shut down cleanly at block #(\d+)")


def read_stopped_at(log_path: Path, polled: int | None) -> int | None:
    """The block a node stopped at, from the last line it logs ("Shut down cleanly at block
    #N", node/cli.py); ``polled`` (the last status poll) if that line is missing. The poll is
    up to ``--interval`` old, and a node finishes the block in progress after SIGINT, so the
    poll alone named a head the node had already passed."""
    found = STOPPED_AT.findall(_tail(log_path))
    return int(found[-1]) if found else polled


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_devnet(args: argparse.Namespace) -> int:
    problem = check_byzantine_args(args)
    if problem is not None:
        args.devnet_parser.error(problem)
    base = (args.base_path or default_base_path()).resolve()
    plans = plan_nodes(args, base)  # its refusals write nothing
    try:
        base.mkdir(parents=True, exist_ok=True)
        lock = (base / LOCK_FILE).open("a")
    except OSError as exc:
        raise DevnetError(f"--base-path {base}: cannot make the folder: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DevnetError(f"another polchain devnet runs on {base} ({base / LOCK_FILE} is locked)") from None
        spec_path, resumed, slot_ms = prepare_spec(base, args.validators, args.block_time)
        _check_ports_free(plans)
        return asyncio.run(_run(args, base, plans, spec_path, resumed, slot_ms))
    finally:
        lock.close()


async def _run(
    args: argparse.Namespace, base: Path, plans: list[NodePlan], spec_path: Path, resumed: bool, slot_ms: int,
) -> int:
    tui = not args.no_tui and sys.stdout.isatty()

    def say(text: str) -> None:
        print(text, flush=True)

    validators = sum(p.validator for p in plans)
    say(f"{'Resuming' if resumed else 'Starting'} a devnet of {validators} validators and {len(plans) - validators} "
        f"full nodes in {base} (chain spec {spec_path}, slots of {slot_ms} ms)")
    if "--bootnodes" not in args.node_flags:
        say("This polchain node has no p2p network yet: every validator authors its own slots alone")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nodes: list[NodeStatus] = []
    try:
        for plan in plans:
            proc = start_node(plan, spec_path, plans, args)
            nodes.append(NodeStatus(plan, proc, RpcClient(f"http://127.0.0.1:{plan.rpc_port}", timeout=max(2.0, args.interval))))
            say(f"{plan.name} pid {proc.pid}: RPC http://127.0.0.1:{plan.rpc_port}  p2p {plan.multiaddr}"
                + (f"  metrics http://127.0.0.1:{plan.prometheus_port}/metrics" if plan.prometheus_port else "")
                + f"  log {plan.log_path}" + ("" if plan.byzantine is None else f"  BYZANTINE: {plan.byzantine}"))
        title = f"polchain devnet: {validators} validators, {len(plans) - validators} full nodes, {base}"
        live: Any = None
        if tui:
            from rich.live import Live

            live = Live(status_table(nodes, slot_ms, title), auto_refresh=False)
            live.start()
        try:
            while not stop.is_set():
                await asyncio.gather(*(poll(n) for n in nodes), *(poll_frauds(n) for n in nodes))
                await poll_offences(nodes)
                if live is not None:
                    live.update(status_table(nodes, slot_ms, title), refresh=True)
                else:
                    say(status_line(nodes, slot_ms))
                if all(n.proc.poll() is not None for n in nodes):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.interval)
        finally:
            if live is not None:
                live.stop()
        if not stop.is_set():
            say("Every node exited; the last lines of their logs:")
            for n in nodes:
                say(f"--- {n.plan.name} ({n.plan.log_path})\n{_tail(n.plan.log_path)}")
    finally:
        clean = await stop_nodes(nodes, args.stop_timeout, say)
        await asyncio.gather(*(n.client.close() for n in nodes), return_exceptions=True)
    return 0 if clean and stop.is_set() else 1
