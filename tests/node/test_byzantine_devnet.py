"""Faults on purpose, live: ``polchain devnet --validators 4 --byzantine-node 1 --byzantine MODE``
(four real node processes on loopback, Bob misbehaving), and what the honest three do about it.

- forge-training=0.25: Bob authors training calls with a quarter of their segments made up
  (a consistent transcript, commitments recomputed, header re-sealed). An honest validator's
  SampledVerifier re-runs a forged segment and refuses the block with FraudFound; the block is
  never imported by the honest nodes nor finalized, ``pol.report_fraud`` lands on the honest
  chain and slashes Bob's bond, and the honest nodes agree on the finalized chain.
- withhold-checkpoints: Bob authors normally but serves no checkpoint: his blocks with training
  are never imported by the others and never finalized (and nothing is slashed: withholding
  is not provable).
- equivocate: Bob seals two blocks in each of his slots; the evidence is reported
  (``pol.report_equivocation``) and Bob's bond slashed.

Training calls go to Bob over RPC just before his slot (Aura: slot s belongs to validator
s mod 4), so that his block, not an honest one, includes them; a call an honest author took
first is retried in Bob's next slot. The job has S = 4 segments and the chain samples
m = 4 (pol_samples), so every honest validator re-runs the forged one: detection is certain,
not probabilistic (the probability is consensus.pol's test's business).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chain import calls
from chain.codec import decode
from chain.crypto import dev_keypair, ss58_encode
from chain.extrinsic import sign_extrinsic
from chain.pallets.balances import ACCOUNT, AccountInfo
from node.devnet import find_free_port_range
from rpc.client import RpcClient

BLOCK_MS = 1000
NAMES = ("alice", "bob", "charlie", "dave")
HONEST = ("alice", "charlie", "dave")
BOB = dev_keypair("Bob")
TRAINER = dev_keypair("Ferdie")  # sends the training calls: not a validator, its nonces are its own
STEPS, SEGMENT = 40, 10  # S = 4 segments


@dataclass
class LiveDevnet:
    proc: subprocess.Popen[str]
    base: Path
    rpc_port: int
    lines: list[str] = field(default_factory=list)
    clients: dict[str, RpcClient] = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.base / name / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def last_status(self) -> str:
        status = [line for line in self.lines if re.match(r"\d\d:\d\d:\d\d Alice", line)]
        return status[-1] if status else ""


@contextlib.contextmanager
def live_devnet(tmp_path: Path, mode: str) -> Iterator[LiveDevnet]:
    first = find_free_port_range(12)
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "devnet", "--validators", "4", "--byzantine-node", "1", "--byzantine", mode,
         "--base-path", str(tmp_path / "devnet"), "--rpc-port", str(first), "--port", str(first + 4),
         "--prometheus-port", str(first + 8), "--block-time", str(BLOCK_MS), "--no-tui", "--interval", "0.5",
         "--stop-timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    net = LiveDevnet(proc, tmp_path / "devnet", first)
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: net.lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        yield net
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)


def run(net: LiveDevnet, scenario: Callable[[LiveDevnet], Awaitable[None]]) -> None:
    async def main() -> None:
        net.clients = {name: RpcClient(f"http://127.0.0.1:{net.rpc_port + i}", timeout=10) for i, name in enumerate(NAMES)}
        try:
            await _until(lambda: _all_up(net), 120, "four connected nodes past block #1", net)
            await scenario(net)
        finally:
            for c in net.clients.values():
                await c.close()

    asyncio.run(main())


async def _all_up(net: LiveDevnet) -> bool:
    try:
        for c in net.clients.values():
            health = await c.call("system_health", [])
            if health["peers"] < 3 or int((await c.call("chain_getHeader", []))["number"], 16) < 1:
                return False
    except Exception:
        return False
    return True


async def _until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, net: LiveDevnet) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline or net.proc.poll() is not None:
            tail = "\n".join(net.lines[-5:])
            logs = "\n".join(f"--- {n}\n" + "\n".join(net.log(n).splitlines()[-15:]) for n in NAMES)
            raise AssertionError(f"timed out waiting for {what}\n{tail}\n{logs}")
        await asyncio.sleep(0.2)


async def _finalized(client: RpcClient) -> tuple[int, str]:
    head = await client.call("chain_getFinalizedHead", [])
    return int((await client.call("chain_getHeader", [head]))["number"], 16), head


async def _staked(client: RpcClient, who: bytes, at: str | None = None) -> int:
    key = "0x" + ACCOUNT.compute_key(who).hex()
    raw = await client.call("state_getStorage", [key] if at is None else [key, at])
    return int(decode(bytes.fromhex(raw[2:]), AccountInfo).staked) if raw else 0


async def _offences(client: RpcClient) -> list[dict[str, Any]]:
    return list((await client.call("pol_getOffences", []))["offences"])


async def _agree(net: LiveDevnet, names: tuple[str, ...] = HONEST) -> int:
    """The honest nodes' finalized chains are prefixes of one chain; returns the lowest height."""
    finalized = {n: await _finalized(net.clients[n]) for n in names}
    low = min(number for number, _ in finalized.values())
    chains = {n: tuple(await net.clients[n].call("chain_getBlockHash", [list(range(low + 1))])) for n in names}
    assert len(set(chains.values())) == 1, chains
    return low


AUTHORED = re.compile(r"byzantine \((?P<mode>[^)]*)\): authored block #(?P<number>\d+) 0x(?P<hash>[0-9a-f]{64})")


async def train_in_bobs_block(net: LiveDevnet, tries: int = 4) -> dict[str, Any]:
    """Submit a training call to Bob just before his slot until Bob's own block includes it;
    that block as Bob's log names it: {"number", "hash", "at"} (at: the log line's time).

    Bob's node may not keep that block on its best chain for long (the honest nodes refuse
    it, and Bob follows their longer chain), so its log, not its receipts, says which it was.
    Either way the call ends up in an honest block too: that is when a try is over."""
    bob, alice = net.clients["bob"], net.clients["alice"]
    genesis = bytes.fromhex((await bob.call("chain_getBlockHash", [0]))[2:])
    version = (await bob.call("state_getRuntimeVersion", []))["specVersion"]
    for _ in range(tries):
        seen = len(AUTHORED.findall(net.log("bob")))  # Bob's training blocks so far
        nonce = int(await alice.call("system_accountNextIndex", ["0x" + TRAINER.public.hex()]))
        xt = sign_extrinsic(
            TRAINER, calls.Train(0, 0, STEPS, 16, calls.compute_f32_bits(0.5), 0, SEGMENT), nonce=nonce,
            genesis_hash=genesis, spec_version=version,
        )
        # Into the slot before Bob's (slot s belongs to validator s mod 4; Bob is 1), after its
        # block is built: the call then waits in the pools for Bob's slot.
        now = time.time() * 1000
        slot = int(now // BLOCK_MS)
        target = slot + ((1 - slot) % 4 or 4)  # the next slot of Bob's, at least one away
        await asyncio.sleep(((target - 1) * BLOCK_MS + 0.4 * BLOCK_MS - now) / 1000)
        await bob.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])

        async def honest_receipt(xt_hash: str = "0x" + xt.hash().hex()) -> Any:
            return await alice.call("ml_getTrainingReceipt", [xt_hash])

        await _until(honest_receipt, 30, "an honest block to include the training call", net)
        found = list(AUTHORED.finditer(net.log("bob")))[seen:]
        if found:
            m = found[0]
            return {"number": int(m["number"]), "hash": "0x" + m["hash"], "line": m[0]}
    raise AssertionError(f"an honest author included the training call first each of {tries} times")


def _log_time(log: str, needle: str) -> float:
    """The time (seconds since the epoch) of the first log line containing ``needle``."""
    line = next(line for line in log.splitlines() if needle in line)
    stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(line[20:23]) / 1000


def test_a_forging_author_is_caught_never_finalized_and_slashed(tmp_path: Path) -> None:
    with live_devnet(tmp_path, "forge-training=0.25") as net:

        async def scenario(net: LiveDevnet) -> None:
            alice = net.clients["alice"]
            genesis = await alice.call("chain_getBlockHash", [0])
            bond = await _staked(alice, BOB.public, genesis)
            assert bond > 0
            forged = await train_in_bobs_block(net)
            assert "byzantine: forging segments" in net.log("bob")

            async def detected() -> bool:
                return any(f"Fraud in block #{forged['number']} (0x{forged['hash'][2:14]}…)" in net.log(n) for n in HONEST)

            await _until(detected, 30, "an honest validator to find the forged segment", net)
            found_at = min(
                _log_time(net.log(n), f"Fraud in block #{forged['number']}") for n in HONEST if "Fraud in block" in net.log(n)
            )
            detection = found_at - _log_time(net.log("bob"), forged["line"])

            async def slashed() -> bool:
                return await _staked(alice, BOB.public) < bond

            await _until(slashed, 40, "pol.report_fraud to slash Bob's bond on the honest chain", net)
            left = await _staked(alice, BOB.public)
            # Bob may forge again before he leaves the set (the era's end): each forged block is
            # one offence, keyed fraud/ + its hash; the first is the block this test watched.
            offences = await _offences(alice)
            assert {(o["kind"], o["offender"]) for o in offences} == {("fraud", ss58_encode(BOB.public))}
            assert any(o["key"].endswith(forged["hash"][2:]) for o in offences), offences

            async def past_it() -> bool:
                return min([(await _finalized(net.clients[n]))[0] for n in HONEST]) > forged["number"]

            await _until(past_it, 60, "the honest nodes to finalize past the forged block's height", net)
            for name in HONEST:
                client = net.clients[name]
                assert await client.call("chain_getBlockHash", [forged["number"]]) != forged["hash"]
                header = await client.call("chain_getHeader", [forged["hash"]])
                assert header is None, f"{name} imported the forged block"
            await _agree(net)

            async def shown() -> bool:  # the devnet's status line: frauds found, Bob's slash
                line = net.last_status()
                frauds = [int(f) for f in re.findall(r"frauds (\d+)", line)]
                bob = line.split("Bob [byzantine forge-training=0.25]")[-1].split("|")[0]
                shown = re.search(r"slashes (\d+) slashed (\d+)", bob)
                return sum(frauds) >= 1 and shown is not None and int(shown[1]) >= 1 and int(shown[2]) >= bond - left

            await _until(shown, 10, "the status line to show the fraud and the slash", net)
            print(f"forged block #{forged['number']} found {detection * 1000:.0f} ms after Bob sealed it; Bob's bond {bond} -> {left}")

        run(net, scenario)


@pytest.mark.slow  # ~30 s; shorter: test_byzantine.py's withholding server, test_pol_nodes.py's unfetchable sample
def test_a_withholding_authors_blocks_are_never_imported_nor_finalized(tmp_path: Path) -> None:
    with live_devnet(tmp_path, "withhold-checkpoints") as net:

        async def scenario(net: LiveDevnet) -> None:
            alice = net.clients["alice"]
            genesis = await alice.call("chain_getBlockHash", [0])
            bond = await _staked(alice, BOB.public, genesis)
            withheld = await train_in_bobs_block(net)

            async def past_it() -> bool:
                return min([(await _finalized(net.clients[n]))[0] for n in HONEST]) > withheld["number"]

            await _until(past_it, 60, "the honest nodes to finalize past the withheld block's height", net)
            for name in NAMES:  # Bob's own node included: it follows the honest finality
                client = net.clients[name]
                if (await _finalized(client))[0] >= withheld["number"]:
                    assert await client.call("chain_getBlockHash", [withheld["number"]]) != withheld["hash"], name
            for name in HONEST:
                assert await net.clients[name].call("chain_getHeader", [withheld["hash"]]) is None, name
            assert any(f"of block 0x{withheld['hash'][2:14]}… could not be had" in net.log(n) for n in HONEST)
            await _agree(net)
            assert await _staked(alice, BOB.public) == bond  # withholding is not provable: no slash
            assert await _offences(alice) == []
            assert not any("Fraud in block" in net.log(n) for n in HONEST)

        run(net, scenario)


def test_an_equivocating_author_is_reported_and_slashed(tmp_path: Path) -> None:
    with live_devnet(tmp_path, "equivocate") as net:

        async def scenario(net: LiveDevnet) -> None:
            alice = net.clients["alice"]
            genesis = await alice.call("chain_getBlockHash", [0])
            bond = await _staked(alice, BOB.public, genesis)

            async def sealed_twice() -> bool:
                return "byzantine: sealed a second block" in net.log("bob")

            await _until(sealed_twice, 30, "Bob to seal two blocks in one slot", net)

            async def seen() -> bool:
                return any("equivocation, evidence stored" in net.log(n) for n in HONEST)

            await _until(seen, 30, "an honest node to store the equivocation evidence", net)

            async def slashed() -> bool:
                return await _staked(alice, BOB.public) < bond

            await _until(slashed, 40, "pol.report_equivocation to slash Bob's bond", net)
            offences = await _offences(alice)
            assert offences and {(o["kind"], o["offender"]) for o in offences} == {("aura", ss58_encode(BOB.public))}
            assert sum(int(o["slashed"]) for o in offences) == bond - await _staked(alice, BOB.public)
            assert "Submitted pol.report_equivocation:" in "".join(net.log(n) for n in HONEST)
            await _agree(net)

        run(net, scenario)
