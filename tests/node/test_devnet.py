"""``polchain devnet``: the N-validator local spec, node identities and command lines, and a real
devnet process that starts, authors, stops cleanly and resumes on the same base path."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chain.blockchain import Blockchain
from chain.crypto import Keypair
from chain.errors import GenesisError
from chain.pallets import balances
from chain.pallets.staking import VALIDATORS
from chain.storage import Database
from genesis.local import local_spec, validator_names
from genesis.spec import compute_genesis_storage, load_chain_spec
from node import cli, devnet


# --- the spec -----------------------------------------------------------------------------------
def test_validator_names_count_on_from_the_six_dev_accounts() -> None:
    assert validator_names(1) == ("Alice",)
    assert validator_names(8) == ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie", "Validator7", "Validator8")
    for bad in (0, -1, 65):
        with pytest.raises(GenesisError, match=f"1 to 64 validators, not {bad}"):
            validator_names(bad)


def test_local_spec_of_four_is_the_local_preset() -> None:
    """Same storage, so the same genesis hash: ``--chain local`` nodes can join a 4-node devnet."""
    assert compute_genesis_storage(local_spec(4)) == compute_genesis_storage(load_chain_spec("local"))


def test_local_spec_bonds_every_validator_beyond_the_six() -> None:
    spec = local_spec(8)
    storage = compute_genesis_storage(spec)
    state = devnet._ReadOnlyState(storage)
    publics = tuple(Keypair.from_uri("//" + n).public for n in validator_names(8))
    assert VALIDATORS.get(state) == publics
    v8 = balances.get_account(state, publics[7])
    assert v8.staked == spec.runtime_config.min_validator_bond and v8.free > 0
    assert spec.name == "Local Testnet (8 validators)" and spec.id == "local_testnet"


# --- identities and command lines ----------------------------------------------------------------
def test_node_identities_are_the_network_layers_peer_ids(tmp_path: Path) -> None:
    """The multiaddrs handed out as boot nodes name the peer id each node will present."""
    from node.network.identity import NodeKey

    plans = devnet.plan_nodes(_args("--validators", "2"), tmp_path)
    for plan in plans:
        assert plan.peer_id == str(NodeKey.from_hex(plan.node_key.hex()).peer_id)
        assert plan.peer_id.startswith("12D3KooW")


def _args(*argv: str):
    return cli.build_parser().parse_args(["devnet", *argv])


def test_plans_and_command_lines_are_ones_polchain_node_accepts(tmp_path: Path) -> None:
    args = _args("--validators", "7", "--auditors", "1", "--rpc-port", "20000", "--port", "21000", "--block-time", "500")
    plans = devnet.plan_nodes(args, tmp_path)
    assert [p.name for p in plans] == [*validator_names(7), "Auditor1"]
    assert [p.rpc_port for p in plans] == list(range(20000, 20008))
    assert [p.prometheus_port for p in plans] == list(range(9615, 9623))
    assert len({p.peer_id for p in plans}) == 8 and all(p.peer_id.startswith("12D3KooW") for p in plans)
    assert plans[1].multiaddr == f"/ip4/127.0.0.1/tcp/21001/p2p/{plans[1].peer_id}"
    assert devnet.plan_nodes(args, tmp_path)[3].node_key == plans[3].node_key  # fixed per node
    parser = cli.build_parser()
    for plan in plans:
        cmd = devnet.node_command(plan, tmp_path / "spec.json", plans, args)
        assert cmd[: len(devnet.CLI)] == list(devnet.CLI)  # polchain itself, not what the working folder holds
        node_args = parser.parse_args(cmd[len(devnet.CLI) :])
        assert node_args.rpc_port == plan.rpc_port and node_args.port == plan.p2p_port
        # The slot duration is in the spec the devnet writes (the chain's): no node gets a flag for it.
        assert node_args.prometheus_port == plan.prometheus_port and node_args.block_time is None
        assert node_args.validator is plan.validator
    validator7 = parser.parse_args(devnet.node_command(plans[6], tmp_path / "s", plans, args)[len(devnet.CLI) :])
    assert validator7.key == "//Validator7"
    assert parser.parse_args(devnet.node_command(plans[1], tmp_path / "s", plans, args)[len(devnet.CLI) :]).bob
    auditor = parser.parse_args(devnet.node_command(plans[7], tmp_path / "s", plans, args)[len(devnet.CLI) :])
    assert auditor.key is None and not any(getattr(auditor, n.lower()) for n in validator_names(6))


def test_p2p_flags_are_passed_once_the_node_knows_them(tmp_path: Path) -> None:
    """Every node boots from every other one, so the mesh is whole without peer discovery and
    survives the loss of any one node (node 0 is no hub)."""
    args = _args("--validators", "3", "--auditors", "1")
    plans = devnet.plan_nodes(args, tmp_path)
    args.node_flags = frozenset({"--node-key", "--bootnodes"})
    for plan in plans:
        cmd = devnet.node_command(plan, tmp_path / "s", plans, args)
        assert cmd[cmd.index("--node-key") + 1] == plan.node_key.hex()
        start = cmd.index("--bootnodes") + 1
        assert cmd[start : start + 3] == [p.multiaddr for p in plans if p is not plan]
        assert not cmd[start + 3 :] or cmd[start + 3].startswith("--")
    alone = devnet.plan_nodes(_args("--validators", "1"), tmp_path)
    assert "--bootnodes" not in devnet.node_command(alone[0], tmp_path / "s", alone, args)
    args.node_flags = frozenset()
    cmd = devnet.node_command(plans[1], tmp_path / "s", plans, args)
    assert "--node-key" not in cmd and "--bootnodes" not in cmd


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--validators", "0"], "0 is out of range: 1..64"),
        (["--validators", "two"], "'two' is not an integer"),
        (["--auditors", "-1"], "-1 is out of range: 0..64"),
        (["--rpc-port", "70000"], "70000 is out of range: 1..65535"),
        (["--interval", "0"], "0.0 is out of range 0.05..3600 seconds"),
    ],
)
def test_bad_arguments_are_usage_errors_with_the_reason(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["devnet", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_ports_past_65535_are_refused_before_anything_starts(tmp_path: Path, capsys) -> None:
    assert cli.main(["devnet", "--validators", "3", "--rpc-port", "65534", "--base-path", str(tmp_path)]) == 1
    assert "--rpc-port 65534 leaves no room for 3 nodes (ports 65534..65536)" in capsys.readouterr().err
    assert not (tmp_path / devnet.SPEC_FILE).exists()


def test_more_nodes_than_the_bound_are_refused_before_anything_starts(tmp_path: Path, capsys) -> None:
    # 64 validators and 64 auditors: 128 node processes of about 185 MB each, more memory than
    # this 23 GB machine has; each flag was within its own range, so all of them were started.
    base = tmp_path / "net"
    message = "--validators 64 + --auditors 64 = 128 nodes: at most 64 (one process of about 185 MB each)"
    with pytest.raises(devnet.DevnetError) as exc:
        devnet.plan_nodes(_args("--validators", "64", "--auditors", "64"), base)
    assert str(exc.value) == message
    assert cli.main(["devnet", "--validators", "64", "--auditors", "64", "--base-path", str(base)]) == 1
    assert capsys.readouterr().err.strip() == f"Error: {message}"
    assert not base.exists()  # nothing written
    assert len(devnet.plan_nodes(_args("--validators", "60", "--auditors", "4"), base)) == 64


def test_a_base_path_that_is_a_file_is_refused_naming_the_flag(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for base in (blocker, blocker / "sub"):
        assert cli.main(["devnet", "--validators", "1", "--base-path", str(base)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"Error: --base-path {base}: cannot make the folder: "), err
    assert blocker.read_text() == "x"


# --- a real devnet --------------------------------------------------------------------------------


def _rpc(port: int, method: str, params: list | None = None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())["result"]


def _best(port: int) -> int | None:
    """The node's best number; None while it does not answer (starting, or an error answer)."""
    try:
        return int(_rpc(port, "chain_getHeader")["number"], 16)
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _start(base: Path, first: int, n: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", str(n), "--base-path", str(base),
         "--rpc-port", str(first), "--port", str(first + n), "--prometheus-port", str(first + 2 * n),
         # A status poll every 10 s: the tests read the nodes' RPC themselves, and the stop comes
         # before the second poll, so the devnet's last poll is always behind the nodes' heads.
         "--block-time", "500", "--no-tui", "--interval", "10", "--stop-timeout", "20"],
        stdout=out.open("w"), stderr=subprocess.STDOUT,
    )


def _wait(proc: subprocess.Popen, out: Path, ports: list[int], *, at_least: list[int], timeout: float = 120) -> list[int]:
    """Each node's first answered best, once every node is at ``at_least`` or beyond."""
    deadline = time.monotonic() + timeout
    first: list[int | None] = [None] * len(ports)
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.read_text()
        bests = [_best(p) for p in ports]
        first = [f if f is not None else b for f, b in zip(first, bests, strict=True)]
        if all(b is not None and b >= low for b, low in zip(bests, at_least, strict=True)):
            return first  # type: ignore[return-value]
        time.sleep(0.2)
    raise AssertionError(f"devnet did not get there in {timeout}s:\n{out.read_text()}")


def _stop(proc: subprocess.Popen, out: Path) -> dict[str, int]:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, out.read_text()
    text = out.read_text()
    pids = {name: int(pid) for name, pid in re.findall(r"^(\w+) pid (\d+):", text, re.M)}
    for name, pid in pids.items():
        assert re.search(rf"^{name} \(pid {pid}\) stopped at best (#\d+|-)$", text, re.M), text
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # exited and reaped
    return pids


def _db_best(base: Path, name: str, spec_path: Path) -> int:
    """Open a node's LevelDB (its lock is free once the node exited) and walk it back to genesis."""
    spec = load_chain_spec(str(spec_path))
    db = Database(base / name / "chains" / spec.id / "db")
    try:
        chain = Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis)
        assert chain.best_header.state_root == chain.state.root()
        header = chain.best_header
        while header.number > 0:
            parent = chain.get_header(header.parent_hash)
            assert parent.number == header.number - 1 and chain.get_hash(parent.number) == header.parent_hash
            header = parent
        return chain.best_number
    finally:
        db.close()


def test_devnet_authors_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    base, n = tmp_path / "net", 2
    first = devnet.find_free_port_range(3 * n)
    ports = [first + i for i in range(n)]
    out = tmp_path / "run1.txt"
    proc = _start(base, first, n, out)
    try:
        _wait(proc, out, ports, at_least=[2] * n)
        # A second devnet on the same base path is refused while this one runs.
        second = subprocess.run(
            [sys.executable, "-m", "node.cli", "devnet", "--validators", str(n), "--base-path", str(base)],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 1 and "another polchain devnet runs on" in second.stderr, second.stderr
    finally:
        if proc.poll() is None:
            _stop(proc, out)
    assert (base / devnet.SPEC_FILE).is_file()
    spec_path = base / devnet.SPEC_FILE
    before = {name: _db_best(base, name, spec_path) for name in ("alice", "bob")}
    assert min(before.values()) >= 2
    # What it printed at the stop is where each node stopped (it printed its last poll, blocks
    # behind, or "-" before the first answer; a node also finishes the block in progress).
    printed = re.findall(r"^(\w+) \(pid \d+\) stopped at best #(\d+)$", out.read_text(), re.M)
    assert {name.lower(): int(best) for name, best in printed} == before, out.read_text()

    # Another N on the same base path: refused, nothing started, the spec untouched.
    spec_bytes = spec_path.read_bytes()
    other = subprocess.run(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", "3", "--base-path", str(base)],
        capture_output=True, text=True, timeout=60,
    )
    assert other.returncode == 1
    assert "holds a devnet of 2 validators, not 3: run it with --validators 2" in other.stderr
    assert spec_path.read_bytes() == spec_bytes

    out2 = tmp_path / "run2.txt"
    proc = _start(base, first, n, out2)
    try:
        resumed = _wait(proc, out2, ports, at_least=[0] * n)  # the first answer of each node
        assert all(r >= before[name] for r, name in zip(resumed, ("alice", "bob"), strict=True)), (resumed, before)
        assert "Resuming a devnet of 2 validators" in out2.read_text()
        _wait(proc, out2, ports, at_least=[b + 1 for b in resumed])  # and it goes on authoring
    finally:
        if proc.poll() is None:
            _stop(proc, out2)
    assert all(_db_best(base, name, spec_path) > before[name] for name in ("alice", "bob"))


def test_node_refuses_key_together_with_a_dev_account_flag(tmp_path: Path, capsys) -> None:
    """``--key`` (what the devnet gives //Validator7 and beyond) names the authoring key; a dev
    flag beside it would leave it ambiguous which key authors."""
    code = cli.main(["node", "--chain", "local", "--key", "//Validator7", "--bob", "--base-path", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "--key and --bob both name the authoring key; use one" in err and "Validator7" not in err
    assert not (tmp_path / "chains").exists()


def test_status_table_and_line_show_heads_rates_and_exited_nodes(tmp_path: Path) -> None:
    from rich.console import Console

    from rpc.client import RpcClient

    args = _args("--validators", "2", "--block-time", "1000")
    plans = devnet.plan_nodes(args, tmp_path)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    gone.wait()
    try:
        alice = devnet.NodeStatus(plans[0], running, RpcClient("http://127.0.0.1:1"), best=12, finalized=9, peers=1,
                                  answered=True, best_slot=int(time.time()) - 5)
        alice.history.extend([(100.0, 2), (110.0, 12)])
        bob = devnet.NodeStatus(plans[1], gone, RpcClient("http://127.0.0.1:1"))
        assert alice.rate() == 1.0 and bob.rate() is None
        line = devnet.status_line([alice, bob], 1000)
        assert "Alice up best #12 fin #9 peers 1 1.00/s" in line and "Bob exited 3 best - fin -" in line
        console = Console(record=True, width=160)
        console.print(devnet.status_table([alice, bob], 1000, "t"))
        text = console.export_text()
        assert re.search(r"Alice\s+│\s+validator\s+│\s+up\s+│\s+\d+\s+│\s+\d+\s+│\s+#12\s+│\s+#9\s+│\s+1\s+│.*\((5|6)s ago\)\s+│\s+1.00", text), text
        assert re.search(r"Bob\s+│\s+validator\s+│\s+exited 3", text), text
    finally:
        running.kill()
        running.wait()


def test_the_head_a_node_stopped_at_is_its_last_shutdown_line_else_the_last_poll(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("Imported #7\nShut down cleanly at block #8\nrestarted\nShut down cleanly at block #12\n")
    assert devnet.read_stopped_at(log, 11) == 12  # the poll lags the block finished after SIGINT
    log.write_text("Imported #7\nkilled\n")
    assert devnet.read_stopped_at(log, 7) == 7  # no shutdown line: the poll is all there is
    assert devnet.read_stopped_at(tmp_path / "missing.log", None) is None


def test_free_ports_are_chosen_below_the_ephemeral_range() -> None:
    """Ports a test or devnet picks for its nodes lie below the ports the kernel gives outbound
    connections (a node dialing a peer could otherwise take one before its node binds it)."""
    start = devnet.compute_ephemeral_start()
    assert start == int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        first = devnet.find_free_port_range(3)
        assert first >= 10000 and first + 3 <= start
    for port in range(first, first + 3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_handed_out_is_not_handed_out_again() -> None:
    """Two picks before either port is bound cannot be the same port: a test that asked for a
    p2p and a Prometheus port got 11463 twice and its node failed to listen (a CI run). In a
    span of 40 ports, 40 single picks and then a pair are all different; the 41st cannot be had."""
    low = devnet.find_free_port_range(40)  # 40 ports free now, and handed out to this test
    devnet.release_ports(range(low, low + 40))
    picks = [devnet.find_free_port_range(1, low, low + 41) for _ in range(40)]
    assert sorted(picks) == list(range(low, low + 40))
    with pytest.raises(devnet.DevnetError, match="no 1 consecutive free ports"):
        devnet.find_free_port_range(1, low, low + 41)


def test_a_port_another_live_process_was_handed_is_not_handed_out_here() -> None:
    """A devnet's ports are free between its stop and its resume, and a test in another pytest
    worker took one of them meanwhile: the resumed node could not bind it (a CI run,
    2026-12-01). Ports handed out in another process that is still alive are skipped, though
    nothing binds them; once it exits they can be had again."""
    low = devnet.find_free_port_range(6)  # six ports free now, handed out here and given back
    devnet.release_ports(range(low, low + 6))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from node import devnet; "
         f"print(devnet.find_free_port_range(3, {low}, {low + 4}), flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=devnet.compute_child_env(),
    )
    try:
        assert holder.stdout is not None
        assert int(holder.stdout.readline()) == low  # the only three consecutive ports below low + 4
        picks = [devnet.find_free_port_range(1, low, low + 7) for _ in range(3)]  # (starts below high - count)
        assert sorted(picks) == [low + 3, low + 4, low + 5]
        with pytest.raises(devnet.DevnetError, match="no 1 consecutive free ports"):
            devnet.find_free_port_range(1, low, low + 7)
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    assert devnet.find_free_port_range(3, low, low + 4) == low  # released with its holder
    devnet.release_ports(range(low, low + 6))
    # Whatever the umask, every user may lock there (a review's R3: another user's processes
    # were refused the folder and kept no record of ports held here).
    assert stat.S_IMODE(devnet.PORT_LOCK_DIR.stat().st_mode) == 0o1777
    assert stat.S_IMODE((devnet.PORT_LOCK_DIR / str(low)).stat().st_mode) == 0o666


def test_a_child_node_runs_this_polchain_whatever_its_working_folder_holds(tmp_path) -> None:
    """Child nodes (``polchain devnet``'s, the benches') are started with devnet.CLI and
    compute_child_env: ``python -m`` put the working folder first on the child's import path,
    and a file there named like one of polchain's packages was imported instead of it
    (``polchain bench devnet`` failed, the file run: an outside tester's AB1, round 16). Here an
    ``rpc.py`` that says so when it is imported, and no PYTHONPATH: the plain command runs it,
    CLI does not (a devnet node's command line starts with CLI: the plan test above)."""
    (tmp_path / "rpc.py").write_text('raise SystemExit("a stray rpc.py was imported")\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = [sys.executable, "-m", "node.cli", "node", "--help"]

    def started(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    shadowed = started(run, {**env, "PYTHONPATH": str(devnet.POLCHAIN_ROOT)})
    assert shadowed.returncode != 0 and "a stray rpc.py was imported" in shadowed.stderr  # (the finding, reproduced)
    fine = started([*devnet.CLI, "node", "--help"], devnet.compute_child_env(env))
    assert fine.returncode == 0 and "--rpc-port" in fine.stdout, fine.stderr
    assert devnet.compute_child_env(env)["PYTHONPATH"] == str(devnet.POLCHAIN_ROOT)
    assert devnet.compute_child_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == os.pathsep.join([str(devnet.POLCHAIN_ROOT), "/x"])
