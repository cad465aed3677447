"""The CLI's runtime-config referenda (chain.pallets.democracy):

- ``polchain tx democracy propose --set base_fee=2000000 [--set NAME=VALUE ...]`` (the
  changes are sent sorted by name, as the chain requires; a name given twice is refused here);
- ``polchain tx democracy vote --referendum N --vote aye|nay --amount UNITS`` (the amount of POL
  locked until the vote ends);
- ``polchain tx democracy unlock --referendum N``;
- ``polchain query referenda [--before N]``, ``polchain query referendum N`` and
  ``polchain query runtime-config [--at 0xHASH]``.

Registered by node/cli.py with one call, like node/cli_economy.py; transactions go through
the CLI's own signing and submission path (``build_calls``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from chain import calls
from chain.config import FIXED, RuntimeConfig

ParserFactory = Callable[[Any, str], argparse.ArgumentParser]
ArgType = Callable[[str], int]
FIELDS = tuple(f.name for f in fields(RuntimeConfig) if f.name not in FIXED)  # the ones a referendum may change


def add_commands(
    tx: Any, query: Any, make_tx: ParserFactory, make_query: ParserFactory, *, u32: ArgType, balance: ArgType
) -> None:
    """Add ``tx democracy ...`` and the referendum queries (same factories as cli_economy)."""
    sub = tx.add_parser("democracy", help="runtime-config referenda").add_subparsers(dest="democracy_command", required=True)
    p = make_tx(sub, "propose")
    p.add_argument(
        "--set", dest="changes", action="append", required=True, type=_change(balance), metavar="NAME=VALUE",
        help=f"a runtime config field and its new value (repeat); fields: {', '.join(FIELDS)}",
    )
    p.set_defaults(build_calls=_propose)
    p = make_tx(sub, "vote")
    p.add_argument("--referendum", type=u32, required=True)
    p.add_argument("--vote", choices=("aye", "nay"), required=True)
    p.add_argument("--amount", type=balance, required=True, help="POL units locked until the vote ends")
    p.set_defaults(build_calls=lambda a: [calls.VoteConfig(a.referendum, a.vote == "aye", a.amount)])
    p = make_tx(sub, "unlock")
    p.add_argument("--referendum", type=u32, required=True)
    p.set_defaults(build_calls=lambda a: [calls.UnlockVote(a.referendum)])

    q = make_query(query, "referenda")
    q.add_argument("--before", type=u32, default=None, help="list ids below this one (paging)")
    q.set_defaults(rpc_call=lambda a: ("democracy_listReferenda", [a.before], "referenda"))
    q = make_query(query, "referendum")
    q.add_argument("referendum", type=u32)
    q.set_defaults(rpc_call=lambda a: ("democracy_getReferendum", [a.referendum], f"referendum {a.referendum}"))
    q = make_query(query, "runtime-config")
    q.add_argument("--at", default=None, help="0x block hash (default: the best block)")
    q.set_defaults(rpc_call=lambda a: ("state_getRuntimeConfig", [a.at], "runtime config"))


def _change(balance: ArgType) -> Callable[[str], calls.ConfigChange]:
    def parse(text: str) -> calls.ConfigChange:
        name, sep, value = text.partition("=")
        if name in FIXED:  # refused here, not after paying a proposal's fee and deposit
            raise argparse.ArgumentTypeError(f"{name} cannot change mid-chain: {FIXED[name]}")
        if not sep or name not in FIELDS:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE with NAME a runtime config field")
        return calls.ConfigChange(name, balance(value))

    return parse


def _propose(a: argparse.Namespace) -> list[Any]:
    changes = sorted(a.changes, key=lambda c: c.name)
    names = [c.name for c in changes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--set names {', '.join(twice)} more than once")
    return [calls.ProposeConfig(tuple(changes))]
