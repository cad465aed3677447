"""A node killed with SIGKILL while importing blocks reopens at the last whole block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from chainkit import ALICE, BOB, CHARLIE, open_chain, sign

from chain import calls
from chain.block import decode_block

BLOCKS = 60
PER_BLOCK = 40

IMPORTER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from chainkit import open_chain
    from chain.block import decode_block
    chain = open_chain(__import__("pathlib").Path(sys.argv[1]))
    for raw in open(sys.argv[2], "rb").read().split(b"\\n--block--\\n"):
        block = decode_block(raw)
        if block.header.number <= chain.best_number:
            continue
        chain.import_block(block)
        print(block.header.number, flush=True)
    print("done", flush=True)
    """
)


def test_sigkill_during_import_leaves_the_last_whole_block(tmp_path) -> None:
    author = open_chain(tmp_path / "author")
    blocks, roots = [], {}
    nonce = 0
    for slot in range(1, BLOCKS + 1):
        xts = []
        for _ in range(PER_BLOCK):
            xts.append(sign(author, ALICE, calls.Transfer((BOB if nonce % 2 else CHARLIE).public, 10**9 + nonce), nonce))
            nonce += 1
        built = author.build_block(xts, ALICE, slot=slot)
        blocks.append(built.block)
        roots[built.block.header.number] = (built.block.hash(), built.block.header.state_root)
    author.db.close()
    data = tmp_path / "blocks.bin"
    data.write_bytes(b"\n--block--\n".join(b.encode() for b in blocks))

    here = os.path.dirname(__file__)
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(tmp_path / "node"), str(data), here],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 8 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the importer stopped early"
        if line.strip().isdigit():
            seen = int(line)
    time.sleep(0.05)  # let it get into the middle of another import
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen >= 8

    node = open_chain(tmp_path / "node")
    best = node.best_number
    assert best >= seen
    assert (node.best_hash, node.state.root()) == roots[best]
    node.db.close()

    # A fresh import of the same blocks reaches the same state root at the same height.
    fresh = open_chain(tmp_path / "fresh")
    for block in blocks[:best]:
        fresh.import_block(decode_block(block.encode()))
    assert (fresh.best_hash, fresh.state.root()) == roots[best]
    fresh.db.close()
