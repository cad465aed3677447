"""The polchain CLI as a user runs it: real processes, real node, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from nodekit import start_node

from chain.crypto import dev_keypair
from node.cli import main


def polchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_key_generate_and_inspect() -> None:
    out = polchain("key", "generate", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)
    assert key["ss58Address"].startswith("5") and len(bytes.fromhex(key["secretSeed"][2:])) == 32
    again = json.loads(polchain("key", "inspect", key["secretSeed"], "--output-type", "json").stdout)
    assert again["ss58Address"] == key["ss58Address"]
    alice = polchain("key", "inspect", "//Alice")
    assert dev_keypair("Alice").address in alice.stdout
    bad = polchain("key", "inspect", "0x1234")
    assert bad.returncode == 1 and "32 bytes" in bad.stderr


def test_build_spec_raw_and_purge_chain(tmp_path) -> None:
    out = polchain("build-spec", "--chain", "dev", "--raw")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["genesis"]["raw"]["top"]
    db = tmp_path / "chains" / "dev" / "db"
    db.mkdir(parents=True)
    refused = polchain("purge-chain", "--base-path", str(tmp_path))
    assert refused.returncode == 1 and "pass -y" in refused.stderr and db.exists()
    done = polchain("purge-chain", "--base-path", str(tmp_path), "-y")
    assert done.returncode == 0 and not db.exists()
    assert polchain("node", "--rpc-port", "x").returncode == 2  # argparse usage error
    missing = polchain("node", "--chain", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "no chain spec at" in missing.stderr


# Published ed25519 dev accounts: subkey inspect --scheme ed25519 //Name (the same addresses
# polkadot-js's testing keyring lists as the ed25519 //Alice.. //Ferdie).
SUBKEY_ED25519 = {
    "//Alice": ("5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu", "0x88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"),
    "//Bob": ("5GoNkf6WdbxCFnPdAnYYQyCjAKPJgLNxXwPjwTh6DGg6gN3E", "0xd17c2d7823ebf260fd138f2d7e27d114c0145d968b5ff5006125f2414fadae69"),
    "//Charlie": ("5DbKjhNLpqX3zqZdNBc9BGb4fHU1cRBaDhJUskrvkwfraDi6", None),
    "//Dave": ("5ECTwv6cZ5nJQPk6tWfaTrEk8YH2L7X1VT4EL5Tx2ikfFwb7", None),
    "//Eve": ("5Ck2miBfCe1JQ4cY3NDsXyBaD6EcsgiVmEFTWwqNSs25XDEq", None),
    "//Ferdie": ("5E2BmpVFzYGd386XRCZ76cDePMB3sfbZp5ZKGUsrG1m6gomN", None),
}


def _inspect(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["key", "inspect", *args, "--output-type", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def test_key_inspect_alice_is_subkeys_alice() -> None:
    out = polchain("key", "inspect", "--scheme", "ed25519", "//Alice")
    assert out.returncode == 0, out.stderr
    assert "SS58 Address:       5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu" in out.stdout
    assert dev_keypair("Alice").address == "5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu"


@pytest.mark.parametrize("uri", sorted(SUBKEY_ED25519))
def test_dev_accounts_match_published_vectors(capsys, uri: str) -> None:
    address, public = SUBKEY_ED25519[uri]
    code, key, err = _inspect(capsys, uri)
    assert code == 0, err
    assert key["ss58Address"] == address
    if public:
        assert key["publicKey"] == public


@pytest.mark.parametrize(
    ("uri", "seed"),
    [
        # sp-core ed25519.rs seed_and_derive_should_work: seed 9d61.. derived by Hard([0; 32]).
        ("0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60//0",
         "0xede3354e133f9c8e337ddd6ee5415ed4b4ffe5fc7d21e933f4930a3730e5b21c"),
        # substrate-bip39 lib.rs vectors (password "Substrate"): the mini secret is the first
        # 32 bytes of PBKDF2 over the phrase's entropy.
        ("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about///Substrate",
         "0x44e9d125f037ac1d51f0a7d3649689d422c2af8b1ec8e00d71db4d7bf6d127e3"),
        ("legal winner thank year wave sausage worth useful legal winner thank yellow///Substrate",
         "0x4313249608fe8ac10fd5886c92c4579007272cb77c21551ee5b8d60b78041685"),
    ],
)
def test_secret_uris_match_published_seeds(capsys, uri: str, seed: str) -> None:
    code, key, err = _inspect(capsys, uri)
    assert code == 0, err
    assert key["secretSeed"] == seed


def test_dev_phrase_uri_is_the_default_root(capsys) -> None:
    phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
    assert _inspect(capsys, f"{phrase}//Alice")[1]["ss58Address"] == SUBKEY_ED25519["//Alice"][0]
    # A password changes the key (sp-core: "//Alice///password" == DEV_PHRASE//Alice with it).
    with_pw = _inspect(capsys, "//Alice///password")[1]["ss58Address"]
    assert with_pw == _inspect(capsys, f"{phrase}//Alice///password")[1]["ss58Address"] != SUBKEY_ED25519["//Alice"][0]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("//Alice/soft", "soft derivation (/name) is not defined for ed25519"),
        ("//Alice//", "empty junction"),
        ("bottom drive obey lake curtain smoke basket hold race lonely fit fit", "bad checksum"),
        ("bottom drive obey lake curtain smoke basket hold race lonely fit walrus", "not in the BIP-39 English list"),
        ("bottom drive obey lake", "12, 15, 18, 21 or 24 words, got 4"),
        ("0x" + "11" * 32 + "///pw", "only applies to a mnemonic phrase"),
        ("my.phrase//Alice", "ASCII letters, digits and spaces"),
    ],
)
def test_bad_secret_uris_are_refused_clearly(capsys, uri: str, message: str) -> None:
    code, _, err = _inspect(capsys, uri)
    assert code == 1 and message in err and err.count("\n") == 1


def test_key_scheme_other_than_ed25519_is_refused() -> None:
    out = polchain("key", "inspect", "--scheme", "sr25519", "//Alice")
    assert out.returncode == 2 and "polchain accounts are ed25519 only" in out.stderr


def test_key_generate_gives_a_phrase_that_inspects_to_the_same_key(capsys) -> None:
    assert main(["key", "generate", "--output-type", "json"]) == 0
    key = json.loads(capsys.readouterr().out)
    assert len(key["secretPhrase"].split()) == 12
    assert _inspect(capsys, key["secretPhrase"])[1]["ss58Address"] == key["ss58Address"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = start_node(tmp_path_factory.mktemp("cli"), "--dev", "--instant-seal")
    yield proc
    proc.stop()


def test_tx_transfer_and_query_account(node) -> None:
    before = json.loads(polchain("query", "account", "//Eve", "--rpc", node.url).stdout)
    out = polchain("tx", "transfer", "--rpc", node.url, "--signer", "//Dave", "--dest", "//Eve",
                   "--value", "2000000000", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["success"] is True and result["blockNumber"] >= 1
    assert any(e["name"] == "Transferred" for e in result["events"])
    after = json.loads(polchain("query", "account", "//Eve", "--rpc", node.url).stdout)
    assert int(after["free"]) == int(before["free"]) + 2_000_000_000
    block = json.loads(polchain("query", "block", str(result["blockNumber"]), "--rpc", node.url).stdout)
    assert block["block"]["header"]["number"] == hex(result["blockNumber"])


def test_tx_call_takes_the_json_form(node) -> None:
    call = {"pallet": "staking", "call": "bond", "args": {"value": 10**9}}
    out = polchain("tx", "call", "--rpc", node.url, "--signer", "//Charlie", "--call", json.dumps(call), "--output-type", "json")
    assert out.returncode == 0, out.stderr
    assert any(e["name"] == "Bonded" for e in json.loads(out.stdout)["events"])
    bad = polchain("tx", "call", "--rpc", node.url, "--call", '{"pallet": "staking", "call": "bond", "args": {}}')
    assert bad.returncode == 1 and "missing arguments ['value']" in bad.stderr


def test_tx_errors_are_one_line(node) -> None:
    bad_signer = polchain("tx", "transfer", "--rpc", node.url, "--signer", "0xzz", "--dest", "//Eve", "--value", "1")
    assert bad_signer.returncode == 1 and bad_signer.stderr.startswith("Error:")
    failing = polchain("tx", "train", "--rpc", node.url, "--signer", "//Dave", "--model", "0", "--dataset", "0",
                       "--steps", "10", "--batch-size", "8", "--lr", "-1")
    assert failing.returncode == 1 and "InvalidLearningRate" in failing.stdout
    unknown = polchain("query", "model", "99", "--rpc", node.url)
    assert unknown.returncode == 1 and "no model 99" in unknown.stderr
