"""JSON shapes: accounts in events are SS58 like everywhere else; the loss curve per segment."""

from __future__ import annotations

import ast
from pathlib import Path

from chain.crypto import dev_keypair
from chain.pallets.context import Event
from rpc.shapes import EVENT_ACCOUNT_ARGS, event_json

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SOURCES = ("ctx.sender", "call.dest", "info.provider", "info.owner")


def test_event_accounts_are_ss58_and_other_bytes_stay_hex() -> None:
    alice, bob = dev_keypair("Alice"), dev_keypair("Bob")
    digest = "0x" + "ab" * 32
    event = Event("balances", "Transferred", (("src", "0x" + alice.public.hex()), ("dest", "0x" + bob.public.hex()), ("value", 5)))
    assert event_json(event)["args"] == {"src": alice.address, "dest": bob.address, "value": 5}
    remark = Event("system", "Remarked", (("sender", "0x" + alice.public.hex()), ("hash", digest)))
    assert event_json(remark)["args"] == {"sender": alice.address, "hash": digest}


def test_every_account_a_pallet_emits_is_named_in_event_account_args() -> None:
    """An event argument fed from an account (the sender, a destination, a provider or
    owner) must be listed, or the RPC would show it as hex."""
    missed = []
    for path in (ROOT / "chain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit":
                for kw in node.keywords:
                    if ast.unparse(kw.value) in ACCOUNT_SOURCES and kw.arg not in EVENT_ACCOUNT_ARGS:
                        missed.append(f"{path.name}: {kw.arg}={ast.unparse(kw.value)}")
    assert not missed, missed
