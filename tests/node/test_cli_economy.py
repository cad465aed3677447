"""The economy CLI against a real dev node: Alice shares model 0, sells 40 shares to Bob,
Charlie trains it, the licence is split 60/40 and Bob claims; assets are read back."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from nodekit import start_node
from test_cli import polchain
from test_cli import polchain_query as query
from test_cli import polchain_tx as tx

from chain.crypto import blake2_256, dev_keypair
from chain.pallets import assets
from node.cli import build_parser, main


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = start_node(tmp_path_factory.mktemp("cli-economy"), "--dev", "--instant-seal")
    yield proc
    proc.stop()


def test_share_sell_train_split_and_claim(node) -> None:
    tx(node, "model-policy", "--signer", "//Alice", "--model", "0", "--permission", "anyone", "--license-per-step", "1000")
    tx(node, "share-model", "--signer", "//Alice", "--model", "0", "--shares", "100")
    tx(node, "asset-transfer", "--signer", "//Alice", "--asset", str(assets.compute_shares_asset(0)), "--dest", "//Bob", "--amount", "40")
    assert query(node, "shares", "0", "--account", "//Bob")["shares"] == "40"
    trained = tx(node, "train", "--signer", "//Charlie", "--model", "0", "--dataset", "0", "--steps", "30",
                 "--batch-size", "8", "--lr", "0.25")
    assert trained["success"], trained
    assert query(node, "revenue", "0", "--account", "//Alice")["claimable"] == "18000"
    assert query(node, "revenue", "0", "--account", "//Bob")["claimable"] == "12000"
    claimed = tx(node, "claim-revenue", "--signer", "//Bob", "--model", "0")
    event = next(e for e in claimed["events"] if e["name"] == "RevenueClaimed")
    assert event["args"]["amount"] == 12000 and event["args"]["who"] == dev_keypair("Bob").address
    assert query(node, "revenue", "0")["claimed"] == "12000"


def test_asset_commands_and_a_refusal(node) -> None:
    tx(node, "asset-create", "--signer", "//Dave", "--asset", "5", "--min-balance", "10")
    tx(node, "asset-metadata", "--signer", "//Dave", "--asset", "5", "--name", "Dave coin", "--symbol", "DAVE", "--decimals", "2")
    tx(node, "asset-mint", "--signer", "//Dave", "--asset", "5", "--to", "//Eve", "--amount", "1000")
    tx(node, "asset-transfer", "--signer", "//Eve", "--asset", "5", "--dest", "//Ferdie", "--amount", "300")
    assert query(node, "asset-balance", "5", "//Ferdie")["balance"] == "300"
    info = query(node, "asset", "5")
    assert info["metadata"]["symbol"] == "DAVE" and info["supply"] == "1000" and info["accounts"] == 2
    out = polchain("tx", "asset-mint", "--signer", "//Eve", "--asset", "5", "--to", "//Eve", "--amount", "1", "--rpc", node.url)
    assert out.returncode == 1 and "assets.NoPermission" in out.stdout
    missing = polchain("query", "asset", "77", "--rpc", node.url)
    assert missing.returncode == 1 and "no asset 77" in missing.stderr


def rpc(node, method: str, params: list) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_economy_methods_through_the_node(node) -> None:
    """After the walkthrough above (module-scoped node): the same reads as raw JSON-RPC."""
    bob = dev_keypair("Bob").address
    usdp = rpc(node, "assets_getAsset", [1])["result"]
    assert usdp["metadata"]["symbol"] == "USDP" and usdp["metadata"]["decimals"] == 6
    assert rpc(node, "assets_getBalance", [1, bob])["result"]["balance"] == str(10**12)
    assert rpc(node, "ml_getShares", [0, bob])["result"]["shares"] == "40"
    revenue = rpc(node, "ml_getRevenue", [0, bob])["result"]
    assert revenue["paid"] == "30000" and revenue["claimable"] == "0"
    bad = rpc(node, "assets_getBalance", [1, "//Bob"])["error"]
    assert bad["code"] == -32602 and "param 1 'account'" in bad["message"]


def test_paid_inference_answers_with_ml_predicts_bits(node) -> None:
    """Dave pays for an inference on model 0 (shared above, so its price is its holders' to
    set: 0); the receipt's outputs are the free ml_predict's float32 bits."""
    model = rpc(node, "ml_getModel", [0])["result"]
    d = model["spec"]["d"]
    rows = [[(i * d + j) / 50 for j in range(d)] for i in range(2)]
    paid = tx(node, "infer", "--signer", "//Dave", "--model", "0", "--inputs", json.dumps(rows))
    assert paid["success"], paid
    made = next(e for e in paid["events"] if e["name"] == "InferenceMade")["args"]
    assert made["rows"] == 2 and made["paid"] == 0 and made["version"] == model["latestVersion"]
    free = rpc(node, "ml_predict", [0, rows])["result"]
    outputs = np.frombuffer(bytes.fromhex(made["outputs"][2:]), "<f4").reshape(2, -1)
    assert outputs.tolist() == free["outputs"]
    refused = polchain("tx", "inference-price", "--signer", "//Alice", "--model", "0", "--price-per-row", "5", "--rpc", node.url)
    assert refused.returncode == 1 and "models.OwnedByShareholders" in refused.stdout


def test_dataset_license_from_the_cli_is_pending_then_applies(node, tmp_path) -> None:
    text = tmp_path / "licence.txt"
    text.write_text("research use only\n")
    out = tx(node, "dataset-license", "--signer", "//Ferdie", "--dataset", "0", "--price-per-row", "7",
             "--asset", "1", "--allow-account", "//Bob", "--max-rows-per-job", "5000", "--text-file", str(text))
    assert out["success"], out
    dataset = rpc(node, "ml_getDataset", [0])["result"]
    pending = dataset["pendingTerms"]
    assert pending["pricePerRow"] == "7" and pending["asset"] == 1 and pending["allowed"] == "accounts"
    assert pending["accounts"] == [dev_keypair("Bob").address] and pending["maxRowsPerJob"] == 5000
    assert dataset["terms"]["allowed"] == "anyone"  # the old terms hold until the notice runs out
    both = polchain("tx", "dataset-license", "--signer", "//Ferdie", "--dataset", "0", "--price-per-row", "1",
                    "--allow-account", "//Bob", "--allow-model", "2", "--rpc", node.url)
    assert both.returncode == 1 and "exclude each other" in both.stderr


@pytest.mark.parametrize(("value", "reason"), [
    ("1e39", "1e39 is out of float32's range"),  # was an OverflowError traceback from struct.pack
    ("nan", "nan is not a finite number"),  # NaN and inf were signed and sent: the bounty failed in a block
    ("inf", "inf is not a finite number"),
    ("1e400", "1e400 is not a finite number"),
    ("1_0", "'1_0' is not a number"),
])
def test_a_target_loss_is_a_finite_float32(value: str, reason: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["tx", "post-bounty", "--model", "0", "--dataset", "0", "--target-loss", value,
                                   "--amount", "1", "--expires-at", "100"])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"argument --target-loss: {reason}" in line


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # were the test to fail, fail fast


@pytest.mark.parametrize(("name", "reason"), [
    ("/dev/zero", "--text-file /dev/zero: not a regular file"),  # was read whole: all memory, then a traceback
    ("missing.txt", "--text-file {tmp}/missing.txt: No such file or directory"),  # was a bare [Errno 2]
    (".", "--text-file {tmp}/.: Is a directory"),
])
def test_a_licence_text_file_is_a_regular_file(name: str, reason: str, tmp_path) -> None:
    path = name if name.startswith("/") else f"{tmp_path}/{name}"
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "tx", "dataset-license", "--dataset", "0", "--price-per-row", "1",
         "--text-file", path, "--sign-only", "--rpc", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == "Error: " + reason.format(tmp=tmp_path)


def test_a_licence_text_is_hashed_as_its_bytes(tmp_path) -> None:
    text = tmp_path / "licence.txt"
    text.write_bytes(b"CC-BY-4.0\n" * 100_000)
    args = build_parser().parse_args(["tx", "dataset-license", "--dataset", "3", "--price-per-row", "5",
                                      "--text-file", str(text)])
    (call,) = args.build_calls(args)
    assert call.dataset == 3 and call.terms.text_hash == blake2_256(text.read_bytes())


@pytest.mark.parametrize(("argv", "message"), [
    (["asset-metadata", "--asset", "0", "--name", "x", "--symbol", "y", "--decimals", "19"],
     "SetAssetMetadata: Expected `int` <= 18 - at `$[4]` (decimals)"),
    (["gov-propose-params", "--model", "0", "--quorum", "2000000", "--threshold", "1", "--voting-blocks", "1",
      "--enactment-blocks", "1"], "ProposeParams: Expected `int` <= 1000000 - at `$[2]` (quorum)"),
])
def test_a_value_over_a_calls_bound_names_the_field(argv: list[str], message: str, capsys) -> None:
    # it named the field by its index only: "SetAssetMetadata: Expected `int` <= 18 - at `$[4]`"
    assert main(["tx", *argv, "--rpc", "http://127.0.0.1:9"]) == 1  # refused before the node is asked
    assert capsys.readouterr().err.strip() == f"Error: {message}"


def test_price_limits_reach_the_calls() -> None:
    """``tx infer --max-price`` and ``tx train --max-license/--max-data-license`` sign the
    limits the runtime enforces (chain.calls.Train, Infer); without them the calls are built
    with none, and signed with the model's price read from the node (the next test)."""
    from node.cli import _tx_calls

    args = build_parser().parse_args(["tx", "infer", "--model", "2", "--inputs", "[[0.5]]", "--max-price", "700"])
    (call,) = args.build_calls(args)
    assert (call.model, call.max_price) == (2, 700)
    train = ["tx", "train", "--model", "0", "--dataset", "0", "--steps", "20", "--batch-size", "8", "--lr", "0.1"]
    (call,) = _tx_calls(build_parser().parse_args([*train, "--max-license", "5", "--max-data-license", "6"]))
    assert (call.max_model_license, call.max_data_license, call.data_license_asset) == (5, 6, None)
    (call,) = _tx_calls(build_parser().parse_args([*train, "--max-data-license", "6", "--data-license-asset", "3"]))
    assert (call.max_data_license, call.data_license_asset) == (6, 3)
    (call,) = _tx_calls(build_parser().parse_args(train))
    assert (call.max_model_license, call.max_data_license, call.data_license_asset) == (None, None, None)


def test_a_train_or_infer_with_no_limit_is_signed_at_the_models_price_now(node) -> None:
    """An owner may change its licence or inference price in the block of a pending call, and
    the CLI signed no limit unless asked: Charlie paid 999,999 POL for one row (an outside
    tester's finding, round 5). With no --max-license / --max-data-license / --max-price the CLI
    now signs the prices as it reads them (licence per step x steps, the data set's licence per
    row x steps x batch size, price x rows); the runtime refuses a higher one
    (LicenseAboveLimit, PriceAboveLimit). The data set's licence was left open, its change
    waiting 10 blocks, until a call held back past the notice paid the new price (round 13)."""
    from chain.extrinsic import decode_extrinsic

    model = rpc(node, "ml_getModel", [0])["result"]
    d = model["spec"]["d"]

    def signed(*argv: str):  # type: ignore[no-untyped-def]
        out = polchain("tx", *argv, "--signer", "//Dave", "--sign-only", "--rpc", node.url)
        assert out.returncode == 0, out.stderr
        return decode_extrinsic(bytes.fromhex(out.stdout.strip()[2:])).call

    call = signed("train", "--model", "0", "--dataset", "0", "--steps", "30", "--batch-size", "8", "--lr", "0.25")
    per_row = int(rpc(node, "ml_getDataset", [0])["result"]["terms"]["pricePerRow"])
    assert per_row > 0  # the dev digits' licence (Ferdie's)
    assert (call.max_model_license, call.max_data_license) == (int(model["licensePerStep"]) * 30, per_row * 30 * 8)
    out = polchain("tx", "train", "--model", "0", "--dataset", "9", "--steps", "30", "--batch-size", "8", "--lr", "0.25",
                   "--signer", "//Dave", "--sign-only", "--rpc", node.url)
    assert out.returncode == 1 and "no data set 9" in out.stderr
    # A version the model does not have is refused before signing, even with a limit given
    # (it passed the pool and failed in its block, its fee paid: an outside tester's D7, round 15).
    latest = model["latestVersion"]
    assert signed("train", "--model", "0", "--dataset", "0", "--steps", "30", "--batch-size", "8", "--lr", "0.25",
                  "--from-version", str(latest)).from_version == latest
    out = polchain("tx", "train", "--model", "0", "--dataset", "0", "--steps", "30", "--batch-size", "8", "--lr", "0.25",
                   "--from-version", "99", "--max-license", "5", "--signer", "//Dave", "--sign-only", "--rpc", node.url)
    assert out.returncode == 1 and f"Error: model 0 has no version 99 (its latest is {latest})" in out.stderr
    rows = json.dumps([[0.0] * d] * 3)
    assert signed("infer", "--model", "0", "--inputs", rows).max_price == int(model["inferencePrice"]) * 3
    assert signed("infer", "--model", "0", "--inputs", rows, "--max-price", "7").max_price == 7
    out = polchain("tx", "infer", "--model", "99", "--inputs", rows, "--signer", "//Dave", "--sign-only", "--rpc", node.url)
    assert out.returncode == 1 and "no model 99" in out.stderr
