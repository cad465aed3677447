"""The CLI's economy commands: ``polchain tx`` for assets, model policy, shares and revenue,
and ``polchain query`` for their reads.

Kept apart from node/cli.py, which registers them with one call in ``build_parser`` and runs
their transactions through its own signing and submission path (each tx subcommand here sets
``build_calls``, which cli._tx_calls uses). Accounts accept an SS58 address, 0x-hex or a
//Dev URI, as everywhere in the CLI; the RPC is sent SS58.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
from collections.abc import Callable
from typing import Any

from chain import calls
from chain.crypto import parse_account, ss58_encode

ParserFactory = Callable[[Any, str], argparse.ArgumentParser]
ArgType = Callable[[str], int]
FloatType = Callable[[str], float]


def add_commands(
    tx: Any, query: Any, make_tx: ParserFactory, make_query: ParserFactory, *, u32: ArgType, balance: ArgType, f32: FloatType
) -> None:
    """Add the economy subcommands to the ``tx`` and ``query`` subparsers; ``make_tx`` and
    ``make_query`` give each the CLI's common flags (--rpc, --timeout, signing), ``u32``,
    ``balance`` and ``f32`` are the CLI's range-checked number types."""

    def command(name: str, build: Callable[[argparse.Namespace], list[Any]], *arguments: tuple[str, dict[str, Any]]) -> None:
        p = make_tx(tx, name)
        for flag, options in arguments:
            p.add_argument(flag, required=options.pop("required", True), **options)
        p.set_defaults(build_calls=build)

    asset, amount = ("--asset", {"type": u32}), ("--amount", {"type": balance})
    command("asset-create", lambda a: [calls.CreateAsset(a.asset, a.min_balance)], asset, ("--min-balance", {"type": balance}))
    command(
        "asset-metadata", lambda a: [calls.SetAssetMetadata(a.asset, a.name, a.symbol, a.decimals)],
        asset, ("--name", {}), ("--symbol", {}), ("--decimals", {"type": u32}),
    )
    command("asset-mint", lambda a: [calls.MintAsset(a.asset, parse_account(a.to), a.amount)], asset, ("--to", {}), amount)
    command("asset-burn", lambda a: [calls.BurnAsset(a.asset, parse_account(a.who), a.amount)], asset, ("--who", {}), amount)
    command("asset-transfer", lambda a: [calls.TransferAsset(a.asset, parse_account(a.dest), a.amount)], asset, ("--dest", {}), amount)
    model = ("--model", {"type": u32})
    command(
        "model-policy", lambda a: [calls.SetTrainingPolicy(a.model, a.permission, a.license_per_step)],
        model, ("--permission", {"choices": ("owner", "allowlist", "anyone")}),
        ("--license-per-step", {"type": balance, "default": 0, "required": False}),
    )
    command(
        "model-trainer", lambda a: [calls.SetTrainer(a.model, parse_account(a.who), not a.remove)],
        model, ("--who", {}), ("--remove", {"action": "store_true", "required": False}),
    )
    command("share-model", lambda a: [calls.ShareModel(a.model, a.shares)], model, ("--shares", {"type": balance}))
    command("claim-revenue", lambda a: [calls.ClaimRevenue(a.model)], model)
    command("pay-model", lambda a: [calls.PayModel(a.model, a.amount)], model, amount)
    command(
        "inference-price", lambda a: [calls.SetInferencePrice(a.model, a.price_per_row)], model, ("--price-per-row", {"type": balance})
    )
    command(
        "infer", lambda a: [calls.Infer(a.model, a.version, a.inputs, a.max_price)],
        model, ("--version", {"type": u32, "default": None, "required": False}),
        ("--inputs", {"type": _parse_rows, "help": "rows as JSON, e.g. '[[0.1, 0.2], [0.3, 0.4]]'"}),
        ("--max-price", {"type": balance, "default": None, "required": False,
                         "help": "pay the owner at most this much for these rows, else the call fails (default: the price the node reads now)"}),
    )

    command(
        "dataset-license", _license_call,
        ("--dataset", {"type": u32}), ("--price-per-row", {"type": balance}),
        ("--asset", {"type": u32, "default": None, "required": False, "help": "price in this asset (default: POL)"}),
        ("--allow-account", {"action": "append", "default": [], "required": False, "help": "only these accounts may train (repeat)"}),
        ("--allow-model", {"action": "append", "type": u32, "default": [], "required": False, "help": "only these models may train on it (repeat)"}),
        ("--expires-at", {"type": u32, "default": None, "required": False, "help": "last block in which a job may use the data"}),
        ("--max-rows-per-job", {"type": u32, "default": None, "required": False, "help": "cap on steps x batch size"}),
        ("--text-file", {"default": None, "required": False, "help": "the licence text; its blake2-256 goes on chain"}),
    )

    command(
        "post-bounty", lambda a: [calls.PostBounty(a.model, a.dataset, calls.compute_f32_bits(a.target_loss), a.amount, a.expires_at)],
        model, ("--dataset", {"type": u32, "help": "the validation data set"}),
        ("--target-loss", {"type": f32, "help": "paid when a version's loss on the data set is below this"}),
        amount, ("--expires-at", {"type": u32, "help": "block after which the poster may cancel"}),
    )
    command("claim-bounty", lambda a: [calls.ClaimBounty(a.bounty, a.version)], ("--bounty", {"type": u32}), ("--version", {"type": u32}))
    command("cancel-bounty", lambda a: [calls.CancelBounty(a.bounty)], ("--bounty", {"type": u32}))
    command("gov-propose-price", lambda a: [calls.ProposeInferencePrice(a.model, a.price_per_row)], model,
            ("--price-per-row", {"type": balance}))
    command("gov-propose-policy", lambda a: [calls.ProposePolicy(a.model, a.permission, a.license_per_step)], model,
            ("--permission", {"choices": calls.PERMISSIONS}), ("--license-per-step", {"type": balance, "default": 0, "required": False}))
    command("gov-propose-release", lambda a: [calls.ProposeRelease(a.model, a.version)], model, ("--version", {"type": u32}))
    command("gov-propose-spend", lambda a: [calls.ProposeSpend(a.model, parse_account(a.dest), a.amount)], model, ("--dest", {}), amount)
    command("gov-propose-trainer", lambda a: [calls.ProposeTrainer(a.model, parse_account(a.who), not a.remove)], model,
            ("--who", {}), ("--remove", {"action": "store_true", "required": False}))
    command(
        "gov-propose-params", lambda a: [calls.ProposeParams(a.model, a.quorum, a.threshold, a.voting_blocks, a.enactment_blocks, a.treasury)],
        model, ("--quorum", {"type": u32, "help": "turnout, ppm of all shares"}), ("--threshold", {"type": u32, "help": "ayes, ppm of the votes cast"}),
        ("--voting-blocks", {"type": u32}), ("--enactment-blocks", {"type": u32}),
        ("--treasury", {"type": u32, "default": 0, "required": False, "help": "ppm of every payment set aside"}),
    )
    command("gov-vote", lambda a: [calls.Vote(a.proposal, a.vote == "aye")], ("--proposal", {"type": u32}),
            ("--vote", {"choices": ("aye", "nay")}))

    for name, positional in (
        ("asset", ("asset",)), ("asset-balance", ("asset", "account")), ("shares", ("model",)), ("revenue", ("model",)),
        ("proposals", ("model",)), ("proposal", ("proposal",)), ("rewards", ()),
    ):
        q = make_query(query, name)
        for arg in positional:
            q.add_argument(arg, type=u32 if arg in ("asset", "model", "proposal") else str)
        if name in ("shares", "revenue"):
            q.add_argument("--account", default=None)
        if name == "rewards":
            q.add_argument("--at", default=None, help="block hash (default: the best block)")
        q.set_defaults(rpc_call=_rpc_call)


def _license_call(a: argparse.Namespace) -> list[Any]:
    if a.allow_account and a.allow_model:
        raise ValueError("--allow-account and --allow-model exclude each other: a licence names accounts or models")
    allowed = "accounts" if a.allow_account else "models" if a.allow_model else "anyone"
    text_hash = bytes(32) if a.text_file is None else _hash_text_file(a.text_file)
    terms = calls.LicenseTerms(
        a.price_per_row, a.asset, allowed, tuple(parse_account(x) for x in a.allow_account), tuple(a.allow_model),
        a.expires_at, a.max_rows_per_job, text_hash,
    )
    return [calls.SetDatasetLicense(a.dataset, terms)]


def _hash_text_file(name: str) -> bytes:
    """blake2-256 of a licence text file, read in chunks. A regular file only: /dev/zero or a
    pipe never ends (read whole, it took all memory)."""
    try:
        with open(name, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"--text-file {name}: not a regular file")
            digest = hashlib.blake2b(digest_size=32)  # chain.crypto.blake2_256, fed in chunks
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ValueError(f"--text-file {name}: {exc.strerror or exc}") from None
    return digest.digest()


def _parse_rows(text: str) -> bytes:
    """JSON rows of numbers as the float32 little-endian bytes models.infer takes; the row
    width is the model's to check (the runtime says which rule a bad input breaks)."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
        raise argparse.ArgumentTypeError("must be a non-empty JSON list of non-empty lists of numbers")
    if len({len(r) for r in rows}) != 1:
        raise argparse.ArgumentTypeError("rows must all have the same length")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for r in rows for v in r):
        raise argparse.ArgumentTypeError("must hold numbers only")
    import numpy as np  # here, not when the CLI starts (node/cli.py: _Commands)

    with np.errstate(over="ignore"):
        x = np.asarray(rows, dtype=np.float64).astype("<f4")
    if not np.isfinite(x).all():
        raise argparse.ArgumentTypeError("has a number that is not finite in float32")
    return x.tobytes()


def _rpc_call(args: argparse.Namespace) -> tuple[str, list[Any], str]:
    """The RPC method, its params and what is asked for, of an economy query (cli.run_rpc_query)."""
    name = args.query_command
    if name == "asset":
        return "assets_getAsset", [args.asset], f"asset {args.asset}"
    if name == "asset-balance":
        return "assets_getBalance", [args.asset, ss58_encode(parse_account(args.account))], f"asset {args.asset}"
    if name == "proposals":
        return "gov_listProposals", [args.model], f"shared model {args.model}"
    if name == "proposal":
        return "gov_getProposal", [args.proposal], f"proposal {args.proposal}"
    if name == "rewards":  # the era's pots and each validator's points, authored and voted
        return "pol_getRewards", [] if args.at is None else [args.at], "rewards"
    method = "ml_getShares" if name == "shares" else "ml_getRevenue"
    params = [args.model] + ([ss58_encode(parse_account(args.account))] if args.account else [])
    return method, params, f"shared model {args.model}"
