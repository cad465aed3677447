"""``polchain fl`` against a real dev node: Alice opens a round on model 0, Bob, Charlie and
Dave each join with a private third of the digits (CSV files that never reach the node),
reveal their challenged segments, and the round closes with a better model."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from nodekit import free_port, start_node
from test_cli import polchain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))
from fedkit import accuracy, split_digits

import ml_runtime
from chain.crypto import dev_keypair
from node import cli_fl

PEOPLE = ("Bob", "Charlie", "Dave")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = start_node(tmp_path_factory.mktemp("cli-fl"), "--dev", "--instant-seal")
    yield proc
    proc.stop()


def run(node, *args: str) -> dict:
    out = polchain("fl", *args, "--rpc", node.url, *(("--output-type", "json") if args[0] not in ("train", "status") else ()))
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def test_a_three_party_round_from_the_command_line(node, tmp_path) -> None:
    shares, (x_test, y_test) = split_digits(3, seed=21)
    files = {}
    for who, (x, y) in zip(PEOPLE, shares, strict=True):
        files[who] = tmp_path / f"{who}.csv"
        np.savetxt(files[who], np.column_stack([x.astype(np.float64), y]), delimiter=",", fmt="%.10g")
    opened = run(node, "open", "--signer", "//Alice", "--model", "0", "--local-steps", "40", "--batch-size", "16",
                 "--lr", "0.5", "--segment-len", "5", "--samples", "2", "--min-updates", "3", "--bond", "1000000000",
                 "--reward-pool", "3000000000", "--commit-blocks", "4", "--reveal-blocks", "20")
    assert opened["success"], opened
    # `train` is a dry run: the same commitment `join` submits, computed locally.
    dry = run(node, "train", "--round", "0", "--data", str(files["Bob"]), "--signer", "//Bob")
    assert dry["rows"] == len(shares[0][1]) and len(dry["lossCurve"]) == 8
    for who in PEOPLE:
        joined = run(node, "join", "--signer", f"//{who}", "--round", "0", "--data", str(files[who]))
        assert joined["success"], joined
    status = run(node, "status", "--round", "0", "--account", "//Bob")
    assert status["update"]["transcriptRoot"] == dry["transcriptRoot"] and status["update"]["status"] == "committed"
    # One more block passes the commit deadline; the first `reveal` then challenges the round.
    while run(node, "status", "--round", "0")["commitDeadline"] > _best(node):
        assert polchain("tx", "call", "--signer", "//Eve", "--call", '{"pallet": "system", "call": "remark", "args": {"data": "0x00"}}',
                        "--rpc", node.url).returncode == 0
    for who in PEOPLE:
        revealed = run(node, "reveal", "--signer", f"//{who}", "--round", "0", "--data", str(files[who]))
        results = revealed if isinstance(revealed, list) else [revealed]
        assert all(r["success"] for r in results), results
    status = run(node, "status", "--round", "0", "--account", "//Dave")
    assert status["status"] == "revealing" and status["update"]["status"] == "accepted"
    closed = run(node, "close", "--signer", "//Ferdie", "--round", "0")
    assert closed["success"] and any(e["name"] == "RoundClosed" for e in closed["events"]), closed
    final = run(node, "status", "--round", "0")
    assert final["status"] == "closed" and final["newVersion"] == 1 and len(final["lineage"]) == 3
    assert {e["participant"] for e in final["lineage"]} == {dev_keypair(w).address for w in PEOPLE}
    weights = polchain("query", "model", "0", "--version", "1", "--rpc", node.url)
    raw = bytes.fromhex(json.loads(weights.stdout)["weights"]["weights"][2:])
    spec = ml_runtime.ModelSpec("softmax", 64, 10, 0)
    assert accuracy(spec, np.frombuffer(raw, "<f4").astype(np.float32), x_test, y_test) > 0.6


def rpc(node, method: str, params: list) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _best(node) -> int:
    return int(rpc(node, "chain_getHeader", [])["result"]["number"], 16)


def test_fl_methods_through_the_node(node) -> None:
    """After the round above (module-scoped node): the fl_ reads as raw JSON-RPC."""
    got = rpc(node, "fl_getRound", [0])["result"]
    assert got["status"] == "closed" and got["newVersion"] == 1
    assert [r["id"] for r in rpc(node, "fl_listRounds", [])["result"]] == [0]
    update = rpc(node, "fl_getUpdate", [0, dev_keypair("Bob").address])["result"]
    assert update["status"] == "accepted" and update["verified"] == update["challenged"]
    assert rpc(node, "fl_getRound", [9])["result"] is None
    assert rpc(node, "fl_getUpdate", [0, "0x12"])["error"]["code"] == -32602


def test_bad_arguments_get_one_error_line(node, tmp_path) -> None:
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("0.5,0.25,3\n")
    out = polchain("fl", "status", "--round", "9", "--rpc", node.url)
    assert out.returncode == 1 and out.stderr.strip() == "Error: no federated round 9"
    out = polchain("fl", "join", "--round", "9", "--data", str(narrow), "--signer", "//Bob", "--rpc", node.url)
    assert out.returncode == 1 and out.stderr.strip() == "Error: no federated round 9"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.5,0.25,3\n", "rows must have 64 features and 1 label column(s), got 3 columns"),
        (",".join(["0.5"] * 64) + ",10\n", "labels are integers 0..9"),
        (",".join(["0.5"] * 64) + ",2.5\n", "labels are integers 0..9"),
        (",".join(["nan"] * 64) + ",1\n", "a feature is not a finite float32"),
        ("", "no rows"),
    ],
)
def test_private_rows_are_checked_before_training(tmp_path, text: str, reason: str) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.raises(cli_fl.FlError, match=re.escape(reason)):
        cli_fl.read_rows(path, ml_runtime.ModelSpec("softmax", 64, 10, 0))


@pytest.mark.parametrize("command", [["status", "--round", "0"], ["train", "--round", "0", "--data", "rows.csv"]])
def test_no_node_at_the_url_is_the_same_line_as_the_other_commands_give(command: list[str]) -> None:
    # fl status / fl train printed "Error: Transport error: POST <url>: ClientConnectorError(...)",
    # without the hint every other command gives
    url = f"http://127.0.0.1:{free_port()}"
    out = polchain("fl", *command, "--rpc", url, "--timeout", "5")
    assert out.returncode == 1 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"Error: no answer from a node at {url} (is `polchain node` running there?): "), line


@pytest.mark.parametrize(("flags", "reason"), [
    (["--commit-blocks", "4294967295"],
     "--commit-blocks 4294967295 + --reveal-blocks 10: a round's deadlines are at most 100000 blocks ahead"),
    (["--commit-blocks", "50000", "--reveal-blocks", "50000"],
     "--commit-blocks 50000 + --reveal-blocks 50000: a round's deadlines are at most 100000 blocks ahead"),
    (["--reveal-blocks", "0"], "--reveal-blocks 0: the reveal phase is at least 1 block"),
])
def test_round_deadlines_the_chain_refuses_are_refused_before_signing(node, flags: list[str], reason: str) -> None:
    # They were signed and sent: a deadline past 2^32 died in the codec as "OpenRound: Expected
    # `int` <= 4294967295 - at `$[14]`", the others failed in a block and paid the fee.
    nonce = rpc(node, "system_accountNextIndex", [dev_keypair("Alice").address])["result"]
    out = polchain("fl", "open", "--rpc", node.url, "--model", "0", "--local-steps", "40", "--batch-size", "16", "--lr", "0.5",
                   "--segment-len", "10", *flags)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == f"Error: {reason}"
    assert rpc(node, "system_accountNextIndex", [dev_keypair("Alice").address])["result"] == nonce  # nothing sent
