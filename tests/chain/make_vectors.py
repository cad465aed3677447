"""Write tests/vectors/chain/*.json: run only when a consensus-breaking change is intended.

    python tests/chain/make_vectors.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from chainkit import ALICE, BOB, open_chain, sign, train_call

from chain import calls
from chain.codec import encode

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "chain"


def compute_vectors() -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        chain = open_chain(Path(tmp))
        genesis = {
            "chain": "dev",
            "genesis_hash": "0x" + chain.genesis_hash.hex(),
            "state_root": "0x" + chain.state.root().hex(),
        }
        xts = [
            sign(chain, ALICE, calls.Transfer(BOB.public, 12_345_000_000), 0),
            sign(chain, BOB, train_call(steps=30, batch=8, lr=0.25, segment=10), 0),
        ]
        built = chain.build_block(xts, ALICE, slot=1)
        block = {
            "description": "dev chain block #1: Alice transfers to Bob, Bob trains model 0 on data set 0 (30 steps, batch 8, lr 0.25, segment 10)",
            "block": "0x" + built.block.encode().hex(),
            "block_hash": "0x" + built.block.hash().hex(),
            "state_root": "0x" + built.block.header.state_root.hex(),
            "transcript_root": "0x" + built.block.body.results[0].transcript_root.hex(),
            "receipts_success": [r.success for r in built.receipts],
            # The checkpoints the block does not carry: what its author serves (chain.transcripts).
            "openings": [
                "0x" + encode(chain.transcripts.get(built.block.hash(), 1, j)).hex()
                for j in range(len(built.block.body.results[0].losses))
            ],
        }
        chain.db.close()
    return genesis, block


if __name__ == "__main__":
    genesis, block = compute_vectors()
    VECTORS.mkdir(parents=True, exist_ok=True)
    (VECTORS / "dev_genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    (VECTORS / "block_transfer_train.json").write_text(json.dumps(block, indent=2) + "\n")
    print(f"wrote {VECTORS}")
