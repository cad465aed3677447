"""Golden vectors pin the chain's bits across versions: genesis hash and a block with training."""

from __future__ import annotations

import json
from pathlib import Path

from chainkit import open_chain
from make_vectors import VECTORS, compute_vectors

from chain.block import decode_block
from chain.codec import decode
from chain.config import SPEC_VERSION
from chain.proofs import Opening
from tests.forgery import MemorySource


def _load(name: str) -> dict:
    path = VECTORS / name
    assert path.is_file(), f"golden vector {path} is missing (python tests/chain/make_vectors.py writes it)"
    return json.loads(path.read_text())


# Each runtime version's golden dev genesis hash and block hash. A change to what a block
# computes, or signs, changes one of them: that is a consensus change, so it takes a new
# chain.config.SPEC_VERSION and a new line here, never an edit of an old one. (Version 2's
# block hash changed twice under it, 3d0698c and 301a054, before this check existed; its line
# is the last of them. An outside reviewer found that both builds called themselves 2.)
PINNED = {
    2: ("0xe82774b65d3521b5af374c4f6a42abec759dc63efd0a799e7a7d58b03adbef16",
        "0x358721e86211272e605ddeefdfd87a6febab7d0383bf6459f92256ff47489f69"),
    # (3's block hash moved three times the day 3 was made, before any node ran it: Train's
    # price limits changed the block's TRAIN call, and its weight came to count drawing its
    # batch, then each step's and each segment's fixed part.)
    3: ("0x4d02389b6c55bf741717127cedb1819d29c0f9972bc762b4a303c17280956e44",
        "0x135b967e5fb996bf76038fb7ee456acf30b221ac2f91f6fe0c79bd7bc6e692b0"),
    # (4's block hash moved twice the day 4 was made, before any node ran it: a training step's
    # and a segment's weight came to count their parameters, then short loops and exps.)
    4: ("0xcceead58f7d1ba9bd5f3102487cd2b87b914a7429343286bc1b194bdfdbfb859",
        "0xb780309678f38ab0b0a5927f3373624426b998b62a5088286ec564c2a6fbd426"),
    # (5: the outside testers' round 7 fixes, chain/config.py; the block hash moves with the data
    # set read's weight, 4 units a byte.)
    5: ("0x7214ef50cb3bab00b30e97b033f48136abfcebc3a5114bf16819995dd3b8132e",
        "0xc32341c4c75c48cdbe19283f694289914ac9cf0c076f3061036096ba78c7d6c9"),
    # (6: the outside testers' round 8 fixes, chain/config.py; the golden block's successful
    # TRAIN computes as in 5, and its hash moves with the genesis hash it builds on.)
    6: ("0x97511b204082abb105fdd3399bbbec1a8bfa6536df87f7d91a5a099dc5adbe03",
        "0x464b7c4aff0a200fe1d99d2a1b0f856b604c9816e2b7ed5fd172e3c339247562"),
    # (7: the outside testers' round 12 fixes, chain/config.py; the golden block's hash moves with
    # its count-bound extrinsics root and the genesis hash it builds on.)
    7: ("0x906567447349e57e4d8758235a14e6d0322fc472aa64c0a0eb64a3de1a8736af",
        "0xf0bd084ba32adcfa3e7eba1f56367adc606f06ef1e189a45aee2c662e150693f"),
    # (8: a data set records the block it was completed in, chain/config.py; the genesis data
    # set's record gains the field, and the golden block builds on that genesis.)
    8: ("0x8633e6c455d3850936c0f5d98a9292c16db1ab3851393f4745431f350f52a75b",
        "0x8d76f3f26e7a2cbad7a9a2c26100eebc90b6604c84089d552e6c0cc8b5e97554"),
    # (9: round 14's fixes, chain/config.py; the golden block's TRAIN carries the licence
    # limit's currency, and the genesis the version and max_segments 64. The day 9 was made
    # its hashes moved once before any node ran it, with max_segments.)
    9: ("0x79c4875ef62b1e3c3d915f5e51b3c10dbc9d6176df5a6e1d93a26048ea0050ba",
        "0xd248397542f93bc3c34b093841ea2d526a03085f4b59abe57e9671eea9bab04e"),
}


def test_the_golden_hashes_are_this_spec_versions_own() -> None:
    genesis, block = compute_vectors()
    assert (genesis["genesis_hash"], block["block_hash"]) == PINNED[SPEC_VERSION], (
        "the golden genesis or block changed: a consensus change needs a new SPEC_VERSION (and a line in PINNED)"
    )
    for version, (old_genesis, old_block) in PINNED.items():  # no two versions share a chain
        if version != SPEC_VERSION:
            assert old_genesis != genesis["genesis_hash"] and old_block != block["block_hash"]


def test_dev_genesis_hash_and_block_are_reproduced() -> None:
    genesis, block = compute_vectors()
    assert genesis == _load("dev_genesis.json")
    assert block == _load("block_transfer_train.json")


def test_the_stored_block_imports_on_a_fresh_node(tmp_path: Path) -> None:
    vector = _load("block_transfer_train.json")
    chain = open_chain(tmp_path)
    openings = [decode(bytes.fromhex(o[2:]), Opening) for o in vector["openings"]]
    imported = chain.import_block(decode_block(bytes.fromhex(vector["block"][2:])), MemorySource(openings))
    assert "0x" + chain.best_hash.hex() == vector["block_hash"]
    assert "0x" + chain.state.root().hex() == vector["state_root"]
    assert [r.success for r in imported.receipts] == vector["receipts_success"] == [True, True]
    chain.db.close()
