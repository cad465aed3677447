"""Every JSON-RPC method the node lists in ``rpc_methods``, called on one real node process.

One ``polchain node --dev --instant-seal`` serves the whole module (a module-scoped
fixture): each test asserts values it can check independently (a read proof against the
header's state root, paging against the full key list, a fee against the fee charged, a
prediction against the weights run locally). ``test_every_listed_method_has_a_test``
fails when the node lists a method whose quoted name appears in no module of tests/node.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodekit import start_node

import ml_runtime
from chain import calls
from chain.config import SPEC_NAME, SPEC_VERSION
from chain.crypto import blake2_256, dev_keypair, ss58_decode, ss58_encode
from chain.extrinsic import sign_extrinsic
from chain.header import seal_header
from chain.pallets import balances
from chain.trie import verify_read_proof
from genesis.spec import load_chain_spec
from rpc.client import RpcCallError, RpcClient

BOB, DAVE, EVE, FERDIE = (dev_keypair(n) for n in ("Bob", "Dave", "Eve", "Ferdie"))
U32_MAX = 2**32 - 1


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rpcnode")
    proc = start_node(workdir, "--dev", "--instant-seal")
    yield proc
    assert proc.stop() == 0, proc.read_log()


def post(node, body: Any) -> Any:
    """One JSON-RPC POST (a request or a batch); the decoded answer."""
    request = urllib.request.Request(
        node.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def call(node, method: str, params: Any = None) -> Any:
    answer = post(node, {"jsonrpc": "2.0", "id": 1, "method": method, "params": [] if params is None else params})
    if "error" in answer:
        raise RpcCallError.from_wire(answer["error"])
    return answer["result"]


def error_of(node, method: str, params: Any) -> dict[str, Any]:
    answer = post(node, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert "error" in answer, (method, params, answer)
    return answer["error"]


def signed(node, key, call_: Any, nonce: int | None = None) -> str:
    genesis = bytes.fromhex(call(node, "chain_getBlockHash", [0])[2:])
    version = call(node, "state_getRuntimeVersion")["specVersion"]
    if nonce is None:
        nonce = call(node, "system_accountNextIndex", [key.address])
    xt = sign_extrinsic(key, call_, nonce=nonce, genesis_hash=genesis, spec_version=version)
    return "0x" + xt.encode().hex()


def submit_and_wait(node, xt: str) -> dict[str, Any]:
    """Submit over WebSocket, wait for inBlock; the extrinsic's receipt."""

    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            sub = await client.subscribe("author_submitAndWatchExtrinsic", [xt], "author_unwatchExtrinsic")
            async with sub:
                while not (isinstance(status := await sub.next(60), dict) and "inBlock" in status):
                    assert status not in ("invalid", "dropped"), status

    asyncio.run(scenario())
    receipt = call(node, "ml_getTrainingReceipt", ["0x" + blake2_256(bytes.fromhex(xt[2:])).hex()])
    assert receipt is not None
    return receipt


# --- system ------------------------------------------------------------------------------------
def test_system_reads_describe_the_dev_chain(node) -> None:
    spec = load_chain_spec("dev")
    assert call(node, "system_name") == "polchain-node"
    assert re.fullmatch(r"\d+\.\d+\.\d+", call(node, "system_version"))
    assert call(node, "system_chain") == spec.name
    assert call(node, "system_chainType") == spec.chain_type
    assert call(node, "system_properties") == json.loads(json.dumps(spec.properties))
    assert call(node, "system_health") == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    assert call(node, "system_peers") == []
    state = call(node, "system_syncState")
    assert state["startingBlock"] == 0 and state["currentBlock"] == state["highestBlock"] >= 0
    by_ss58 = call(node, "system_accountNextIndex", [FERDIE.address])
    assert by_ss58 == call(node, "system_accountNextIndex", ["0x" + FERDIE.public.hex()])
    assert call(node, "system_accountNextIndex", {"account": FERDIE.address}) == by_ss58


def test_account_next_index_counts_pooled_transactions_and_pending_lists_ready_ones(node) -> None:
    """A future-nonce transfer waits in the pool: pending does not list it (ready ones only, as
    Substrate's: future ones never pay, and filled every caller's answer past its size limit,
    an outside tester's F4, round 12), the next index skips nothing (there is a gap), and
    filling the gap includes both."""
    start = call(node, "system_accountNextIndex", [EVE.address])
    later = signed(node, EVE, calls.Transfer(BOB.public, 10**9), nonce=start + 1)
    call(node, "author_submitExtrinsic", [later])
    assert later not in call(node, "author_pendingExtrinsics")
    assert call(node, "system_accountNextIndex", [EVE.address]) == start  # the gap is still open
    submit_and_wait(node, signed(node, EVE, calls.Transfer(BOB.public, 10**9), nonce=start))
    for _ in range(100):  # the filled gap promotes the later one into the next block
        if later not in call(node, "author_pendingExtrinsics"):
            break
        asyncio.run(asyncio.sleep(0.05))
    assert later not in call(node, "author_pendingExtrinsics")
    assert call(node, "system_accountNextIndex", [EVE.address]) == start + 2


# --- chain ------------------------------------------------------------------------------------
def test_finalized_head_and_its_subscription_follow_new_blocks(node) -> None:
    """The subscription announces a block past the one it started at, and the finalized head
    asked afterwards is one the subscription announces too (the same header). Blocks may be
    sealed between the notification and the call (the pool's promoted transactions of an
    earlier test: a CI run), so the head asked is matched to its own notification, not to the
    last one read."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], str]:
        async with RpcClient(node.ws_url) as client:
            sub = await client.subscribe("chain_subscribeFinalizedHeads", [], "chain_unsubscribeFinalizedHeads")
            async with sub:
                first = await sub.next(10)
                xt = signed(node, DAVE, calls.Remark(b"finality"))
                await client.call("author_submitExtrinsic", [xt])
                while int((nxt := await sub.next(30))["number"], 16) <= int(first["number"], 16):
                    pass
                finalized = await client.call("chain_getFinalizedHead", [])
                asked = await client.call("chain_getHeader", [finalized])
                while int(nxt["number"], 16) < int(asked["number"], 16):
                    nxt = await sub.next(30)
                return first, nxt, finalized

    first, header, finalized = asyncio.run(scenario())
    number = int(header["number"], 16)
    assert number > int(first["number"], 16)
    assert finalized == call(node, "chain_getBlockHash", [number])
    assert call(node, "chain_getHeader", [finalized]) == header
    assert call(node, "chain_getBlock", [finalized])["block"]["header"] == header
    assert call(node, "chain_getHead", [number]) == finalized


# --- state ------------------------------------------------------------------------------------
def test_read_proof_verifies_against_the_state_root(node) -> None:
    head = call(node, "chain_getHeader")
    at = call(node, "chain_getBlockHash", [int(head["number"], 16)])
    root = bytes.fromhex(head["stateRoot"][2:])
    present = balances.ACCOUNT.compute_key(BOB.public)
    absent = balances.ACCOUNT.compute_key(b"\x07" * 32)
    answer = call(node, "state_getReadProof", [["0x" + present.hex(), "0x" + absent.hex()], at])
    assert answer["at"] == at
    proof = [bytes.fromhex(p[2:]) for p in answer["proof"]]
    value = call(node, "state_getStorage", ["0x" + present.hex(), at])
    assert value is not None
    assert verify_read_proof(root, present, proof) == bytes.fromhex(value[2:])
    assert verify_read_proof(root, absent, proof) is None
    assert call(node, "state_getStorage", ["0x" + absent.hex(), at]) is None


def test_keys_paged_walks_every_account_in_order(node) -> None:
    prefix = "0x" + balances.ACCOUNT.prefix.hex()
    everything = call(node, "state_getKeysPaged", [prefix, 1000])
    assert everything == sorted(everything) and len(set(everything)) == len(everything)
    assert all(k.startswith(prefix) for k in everything)
    expected = {"0x" + balances.ACCOUNT.compute_key(dev_keypair(n).public).hex() for n in ("Alice", "Bob", "Charlie")}
    assert expected <= set(everything)
    paged: list[str] = []
    start = None
    while True:
        page = call(node, "state_getKeysPaged", [prefix, 2, start])
        assert len(page) <= 2
        if not page:
            break
        paged += page
        start = page[-1]
    assert paged == everything
    head = call(node, "chain_getBlockHash", [])
    assert call(node, "state_getKeysPaged", {"prefix": prefix, "count": 1000, "at": head}) == everything
    for key in everything[:3]:
        assert call(node, "state_getStorage", [key]) is not None


def test_runtime_version_names_the_spec(node) -> None:
    version = call(node, "state_getRuntimeVersion")
    assert version["specName"] == SPEC_NAME and version["specVersion"] == SPEC_VERSION
    assert version == call(node, "state_getRuntimeVersion", [call(node, "chain_getBlockHash", [0])])


# --- payment ----------------------------------------------------------------------------------
def test_query_info_predicts_the_fee_charged(node) -> None:
    xt = signed(node, DAVE, calls.Transfer(BOB.public, 10**9))
    info = call(node, "payment_queryInfo", [xt])
    assert info["class"] == "normal" and info["weight"]["refTime"] > 0
    receipt = submit_and_wait(node, xt)
    assert receipt["success"] is True
    assert info["partialFee"] == receipt["fee"]


# --- ml ---------------------------------------------------------------------------------------
def test_models_and_datasets_listed_match_single_reads(node) -> None:
    models = call(node, "ml_listModels")
    assert models, "the dev chain registers models at genesis"
    for model in models:
        one = call(node, "ml_getModel", [model["id"]])
        assert {k: one[k] for k in model} == model
        ss58_decode(model["owner"])
    assert call(node, "ml_getModel", [U32_MAX]) is None
    sets = call(node, "ml_listDatasets")
    assert sets
    for dataset in sets:
        one = call(node, "ml_getDataset", [dataset["id"]])
        assert {k: one[k] for k in dataset} == dataset and {"terms", "usage"} <= one.keys()
        at = call(node, "ml_getDataset", {"dataset": dataset["id"], "at": call(node, "chain_getBlockHash", [])})
        assert {k: at[k] for k in dataset} == dataset
        ss58_decode(dataset["provider"])
        assert 0 <= dataset["uploadedRows"] <= dataset["rowCount"]
        assert dataset["completedIn"] == 0  # the dev chain's are genesis's
    assert call(node, "ml_getDataset", [U32_MAX]) is None


def test_predict_matches_the_weights_run_locally(node) -> None:
    model = call(node, "ml_getModel", [0])
    weights = call(node, "ml_getWeights", [0])
    d = model["spec"]["d"]
    rng = np.random.default_rng(7)
    x = rng.random((3, d), dtype=np.float32)
    answer = call(node, "ml_predict", [0, x.tolist()])
    assert answer["model"] == 0 and answer["version"] == model["latestVersion"]
    local_spec = ml_runtime.ModelSpec(model["spec"]["family"], d, model["spec"]["k"], model["spec"]["h"])
    w = np.frombuffer(bytes.fromhex(weights["weights"][2:]), "<f4").astype(np.float32)
    expected = ml_runtime.predict(local_spec, w, x.astype(np.float32))
    assert np.array_equal(np.asarray(answer["outputs"], dtype=np.float32), expected.astype(np.float32))
    if model["spec"]["family"] != "linear":
        assert answer["classes"] == [int(c) for c in np.argmax(expected, axis=1)]


def test_training_receipt_loss_curve_has_one_loss_per_segment_and_events_use_ss58(node) -> None:
    before = call(node, "ml_getModel", [0])
    receipt = submit_and_wait(node, signed(node, BOB, calls.Train(0, 0, 60, 16, calls.compute_f32_bits(0.5), 0, 20)))
    assert receipt["success"] is True
    curve = receipt["lossCurve"]
    assert len(curve) == 60 // 20, curve  # one mean batch loss per segment, no starting entry
    assert all(np.isfinite(curve)) and all(loss > 0 for loss in curve), curve
    trained = next(e for e in receipt["events"] if e["name"] == "ModelTrained")
    assert trained["args"]["loss"] == curve[-1]
    paid = next(e for e in receipt["events"] if e["name"] == "LicensePaid")
    dataset = call(node, "ml_getDataset", [0])
    assert paid["args"]["provider"] == dataset["provider"]
    used = next(u for u in dataset["usage"] if u["model"] == 0 and u["asset"] is None)
    assert used["jobs"] >= 1 and int(used["rows"]) >= 60 * 16 and int(used["paid"]) == int(used["rows"]) * int(dataset["pricePerRow"])
    assert dataset["terms"]["allowed"] == "anyone" and dataset["terms"]["pricePerRow"] == dataset["pricePerRow"]
    ss58_decode(paid["args"]["provider"])
    after = call(node, "ml_getModel", [0])
    assert after["latestVersion"] == before["latestVersion"] + 1
    assert after["lineage"][-1]["training"]["lossCurve"] == curve


def test_transfer_events_name_accounts_in_ss58(node) -> None:
    receipt = submit_and_wait(node, signed(node, FERDIE, calls.Transfer(BOB.public, 10**9)))
    moved = next(e for e in receipt["events"] if e["name"] == "Transferred")
    assert moved["args"]["src"] == FERDIE.address == ss58_encode(FERDIE.public)
    assert moved["args"]["dest"] == BOB.address


def test_cli_presents_the_loss_curve_per_segment(node) -> None:
    """``polchain tx train`` prints the first and last segment's loss; a one-segment job
    has one loss (the RPC's lossCurve has no starting entry to skip)."""
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "tx", "train", "--rpc", node.url, "--signer", "//Charlie", "--model", "0",
         "--dataset", "0", "--steps", "10", "--batch-size", "8", "--lr", "0.1", "--segment-len", "10"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    xt_hash = out.stdout.split()[1]
    curve = call(node, "ml_getTrainingReceipt", [xt_hash])["lossCurve"]
    assert len(curve) == 1 and curve[0] > 0
    assert f"mean batch loss {curve[0]:.4f} (first segment) -> {curve[0]:.4f} (last)" in out.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "node.cli", "query", "model", "0", "--rpc", node.url],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    lineage = json.loads(shown.stdout)["lineage"]
    assert next(v for v in lineage if v.get("training", {}).get("extrinsicHash") == xt_hash)["training"]["lossCurve"] == curve


def test_pol_getOffences_lists_a_reported_equivocation(node) -> None:
    """Two headers Alice sealed for one slot, reported by Bob: slashed, and kept (the dev
    chain's only validator)."""

    from chain.header import Header

    alice = dev_keypair("Alice")
    genesis = bytes.fromhex(call(node, "chain_getBlockHash", [0])[2:])  # a parent on this chain
    headers = []
    for root in (b"\x01" * 32, b"\x02" * 32):
        header = Header(genesis, 1, root, bytes(32), 10**9, alice.public)
        headers.append(seal_header(alice, genesis, header).encode())
    assert call(node, "pol_getOffences")["offences"] == []
    receipt = submit_and_wait(node, signed(node, BOB, calls.ReportEquivocation(*headers)))
    assert receipt["success"], receipt
    got = call(node, "pol_getOffences")
    (offence,) = got["offences"]
    assert (offence["kind"], offence["offender"], offence["reporter"]) == ("aura", alice.address, BOB.address)
    assert int(offence["slashed"]) == int(offence["reporterReward"]) + int(offence["burned"]) > 0
    assert got["validators"] == [alice.address] and got["pendingRemoval"] == [] and got["next"] is None


# --- bad parameters: -32602 with a reason ------------------------------------------------------
LONG_KEY = "0x" + "ab" * 257
BAD_PARAMS = [
    ("ml_getModel", [2**32], "param 0 'model' must be an integer in 0..4294967295"),
    ("ml_getModel", [-1], "param 0 'model' must be an integer in 0..4294967295"),
    ("ml_getWeights", [0, 2**64], "param 1 'version' must be an integer in 0..4294967295"),
    ("ml_getWeights", [2**40], "param 0 'model' must be an integer in 0..4294967295"),
    ("ml_getDataset", [2**32], "param 0 'dataset' must be an integer in 0..4294967295"),
    ("ml_predict", [2**32, [[0.0]]], "param 0 'model' must be an integer in 0..4294967295"),
    ("ml_predict", [0, [[10**400]]], "param 1 'inputs'"),
    ("ml_predict", [0, [["1"]]], "param 1 'inputs' must be rows of numbers"),
    ("ml_predict", [0, [[1e39]]], "param 1 'inputs'"),
    ("state_getStorage", [LONG_KEY], "param 0 'key' must be at most 256 bytes, got 257"),
    ("state_getReadProof", [[LONG_KEY]], "param 0 'keys' item 0 must be at most 256 bytes, got 257"),
    ("state_getReadProof", [["0x00"] * 1001], "param 0 'keys' must hold at most 1000 items"),
    ("state_getKeysPaged", [LONG_KEY, 10], "param 0 'prefix' must be at most 256 bytes, got 257"),
    ("state_getKeysPaged", ["0x", 10, LONG_KEY], "param 2 'start_key' must be at most 256 bytes, got 257"),
    ("state_getKeysPaged", ["0x", 0], "param 1 'count' must be an integer in 1..1000"),
    ("state_getStorage", ["0x 1234"], "param 0 'key' must be 0x-prefixed hex"),
    ("state_getStorage", ["0x123"], "param 0 'key' must be 0x-prefixed hex"),
    ("state_getStorage", ["0x", "0x" + "00" * 32], "unknown block"),
    ("state_getRuntimeVersion", ["0x1234"], "param 0 'at' must be 32 bytes, got 2"),
    ("chain_getHeader", ["0x1234"], "param 0 'hash' must be 32 bytes, got 2"),
    ("chain_getBlockHash", [[0] * 1025], "param 0 'number' must hold at most 1024 items"),
    ("chain_getBlockHash", [2**32], "must be a block number: an integer in 0..4294967295"),
    ("system_accountNextIndex", ["//Alice"], "param 0 'account' must be an SS58 address or a 0x-hex 32-byte account id"),
    ("system_accountNextIndex", ["0x12"], "param 0 'account'"),
    ("system_health", [1], "expected at most 0"),
    ("author_submitExtrinsic", ["0xzz"], "param 0 'extrinsic' must be 0x-prefixed hex"),
    ("payment_queryInfo", ["0x0102"], "param 0 'extrinsic'"),
    ("ml_getTrainingReceipt", ["0x12"], "param 0 'hash' must be 32 bytes, got 1"),
]


@pytest.mark.parametrize(("method", "params", "reason"), BAD_PARAMS, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD_PARAMS)])
def test_bad_params_get_32602_with_the_reason(node, method: str, params: list[Any], reason: str) -> None:
    error = error_of(node, method, params)
    assert error["code"] == -32602, error
    assert reason in error["message"], error


def test_bad_subscription_params_are_refused_before_an_id(node) -> None:
    async def scenario() -> None:
        async with RpcClient(node.ws_url) as client:
            for method in ("chain_subscribeNewHeads", "chain_subscribeFinalizedHeads"):
                with pytest.raises(RpcCallError) as info:
                    await client.call(method, [1])
                assert info.value.code == -32602 and "expected at most 0" in info.value.message
            with pytest.raises(RpcCallError) as info:
                await client.call("author_submitAndWatchExtrinsic", ["0x" + "ab" * 3 + "z"])
            assert info.value.code == -32602

    asyncio.run(scenario())


# --- fuzzing the real method table ------------------------------------------------------------
def _hex_of(n: int) -> str:
    return "0x" + "ab" * n


EDGES = st.sampled_from(
    [0, 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64, -1, 10**400, 1e39, -0.0, True]
    + [_hex_of(n) for n in (0, 1, 31, 32, 33, 256, 257, 300)]
    + ["0x0", "0xzz", "0x 12", "12", "", "//Alice", "0x\u0661\u0662", BOB.address, BOB.address[:-1] + "x"]
)
SCALARS = EDGES | st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
NAMES = ["hash", "at", "key", "keys", "prefix", "count", "start_key", "model", "version", "inputs", "dataset", "extrinsic", "account", "number"]
PARAMS = st.lists(EDGES | VALUES, max_size=4) | st.dictionaries(st.sampled_from(NAMES), EDGES | VALUES, max_size=4) | VALUES


def test_fuzzed_params_never_get_an_internal_error(node) -> None:
    """Each example is one batch calling every listed method with random params (edge
    values weighted: ids past u32, keys past 256 bytes, bad hex): never -32603, the node
    keeps serving, and no block is made (nothing is stored)."""
    methods = call(node, "rpc_methods")["methods"]
    root_before = call(node, "chain_getHeader")["stateRoot"]

    @settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(params=st.lists(PARAMS, min_size=len(methods), max_size=len(methods)))
    def check(params: list[Any]) -> None:
        batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(zip(methods, params, strict=True))]
        answers = {answer["id"]: answer for answer in post(node, batch)}
        assert sorted(answers) == list(range(len(batch)))
        for request in batch:
            error = answers[request["id"]].get("error")
            assert error is None or error["code"] != -32603, (request, answers[request["id"]])

    check()
    assert "Traceback" not in node.read_log()
    assert call(node, "system_health")["isSyncing"] is False
    assert call(node, "chain_getHeader")["stateRoot"] == root_before


# --- coverage of the method list ---------------------------------------------------------------
def test_every_listed_method_has_a_test(node) -> None:
    listed = call(node, "rpc_methods")["methods"]
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    untested = [name for name in listed if f'"{name}"' not in sources]
    assert not untested, f"methods listed by rpc_methods with no test through a real node: {untested}"
