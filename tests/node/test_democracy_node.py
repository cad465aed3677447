"""A runtime-config referendum on a real dev node (``--dev --instant-seal``: votes last 3 blocks
and enactment waits 1; every transaction seals a block): Bob proposes a higher base fee and a
block weight limit of 1,000,000 units through the CLI, Charlie votes it through, and the node honours the new
config from the block after the enactment, without a restart and after one."""

from __future__ import annotations

import pytest
from nodekit import start_node
from test_cli import polchain
from test_cli import polchain_query as query
from test_cli import polchain_tx as tx
from test_rpc_node import call, error_of

from chain import calls
from chain.crypto import dev_keypair
from chain.extrinsic import sign_extrinsic
from chain.pallets import democracy

VOTE = 7 * 10**14  # above the quorum: a tenth of the dev chain's 6 * 10^15 POL units


def transfer_fee(node) -> int:
    return int(tx(node, "transfer", "--signer", "//Dave", "--dest", "//Eve", "--value", "1000000000")["fee"])


def signed(node, call_: calls.Call) -> str:
    genesis = bytes.fromhex(call(node, "chain_getBlockHash", [0])[2:])
    version = call(node, "state_getRuntimeVersion")["specVersion"]
    nonce = call(node, "system_accountNextIndex", [dev_keypair("Ferdie").address])
    xt = sign_extrinsic(dev_keypair("Ferdie"), call_, nonce=nonce, genesis_hash=genesis, spec_version=version)
    return "0x" + xt.encode().hex()


def too_heavy(node) -> str:
    """A signed append_rows of 70,000 bytes, 1,650,000 weight units (250,000 + 20 a byte): within the default block
    weight (2 * 10^9), not within 10^6."""
    return signed(node, calls.AppendRows(0, 0, bytes(70_000)))


@pytest.mark.timeout(300)
def test_a_referendum_changes_the_config_of_a_running_node_and_survives_a_restart(tmp_path) -> None:
    base = tmp_path / "base"
    node = start_node(tmp_path, "--dev", "--instant-seal", "--base-path", str(base))
    try:
        old = call(node, "state_getRuntimeConfig")
        assert old["max_block_weight"] == 2 * 10**9
        fee_before = transfer_fee(node)
        proposed = tx(node, "democracy", "propose", "--signer", "//Bob", "--set", "max_block_weight=1000000",
                      "--set", f"base_fee={old['base_fee'] + 1_000_000}")
        assert proposed["success"], proposed
        ref = next(e for e in proposed["events"] if e["name"] == "Proposed")["args"]["referendum"]
        assert tx(node, "democracy", "vote", "--signer", "//Charlie", "--referendum", str(ref), "--vote", "aye",
                  "--amount", str(VOTE))["success"]
        refused = polchain("tx", "democracy", "unlock", "--signer", "//Charlie", "--referendum", str(ref), "--rpc", node.url)
        assert refused.returncode == 1 and "democracy.StillVoting" in refused.stdout, refused.stdout + refused.stderr
        while query(node, "referendum", str(ref))["status"] in ("voting", "passed"):
            assert tx(node, "transfer", "--signer", "//Dave", "--dest", "//Eve", "--value", "1000000000")["success"]
        shown = call(node, "democracy_getReferendum", [ref])
        assert shown["status"] == "enacted" and shown["ayes"] == str(VOTE) and shown["changes"] == [
            {"name": "base_fee", "value": old["base_fee"] + 1_000_000}, {"name": "max_block_weight", "value": 1_000_000},
        ]
        listed = call(node, "democracy_listReferenda", [])
        assert [r["id"] for r in listed["referenda"]] == [ref] and listed["quorum"] == democracy.QUORUM_PPM
        new = query(node, "runtime-config")
        assert new == {**old, "base_fee": old["base_fee"] + 1_000_000, "max_block_weight": 1_000_000}
        enacted_at = call(node, "chain_getBlockHash", [shown["enactAt"]])
        parent = call(node, "chain_getBlockHash", [shown["enactAt"] - 1])
        assert call(node, "state_getRuntimeConfig", [parent]) == old and call(node, "state_getRuntimeConfig", [enacted_at]) == new
        remark = signed(node, calls.Remark(b"fee?"))
        fees = [int(call(node, "payment_queryInfo", [remark, *at])["partialFee"]) for at in ([parent], [])]
        assert fees[1] - fees[0] == 1_000_000
        # Without a restart: the pool measures against the new weight limit, and fees are the new ones.
        error = error_of(node, "author_submitExtrinsic", [too_heavy(node)])
        assert "weight 1650000 exceeds a block's limit of 1000000" in error["data"], error
        assert transfer_fee(node) - fee_before == 1_000_000
        assert tx(node, "democracy", "unlock", "--signer", "//Charlie", "--referendum", str(ref))["success"]
    finally:
        assert node.stop() == 0, node.read_log()
    node = start_node(tmp_path, "--dev", "--instant-seal", "--base-path", str(base))
    try:
        assert call(node, "state_getRuntimeConfig") == new
        error = error_of(node, "author_submitExtrinsic", [too_heavy(node)])
        assert "weight 1650000 exceeds a block's limit of 1000000" in error["data"], error
        assert transfer_fee(node) - fee_before == 1_000_000
    finally:
        assert node.stop() == 0, node.read_log()
