"""``polchain bench kernels|validator|transfers|rpc|devnet``: the benchmarks from the CLI.

The work stays in the benches/ modules (each exposes ``run(ctx) -> Report``, see
benches/runner.py); this module only parses the flags and hands them over, so that
``python -m benches.X`` and ``polchain bench X`` measure the same code. The benches are
imported when the command runs, not when the CLI starts (numba, torch and matplotlib are
slow to import and a node never needs them).

Every result records the command that reproduces it, spelled out with every option,
defaults included, so that a record read later does not depend on the defaults of the
version that reads it.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path
from typing import Any

from node.cli import int_in, parse_int

# name -> (module, one-line help)
BENCHES: dict[str, tuple[str, str]] = {
    "kernels": ("benches.kernels", "SGD steps/s of the strict kernels vs fastmath, NumPy/BLAS, PyTorch; 1 vs 2 threads"),
    "validator": ("benches.validator", "a validator's import of training blocks: sampled (S/m = 4..32) vs full re-execution"),
    "transfers": ("benches.chain", "signed transfers imported/s against PyNaCl's signature ceilings on 1 and 2 cores"),
    "rpc": ("benches.rpc", "req/s of the node's method table vs a bare aiohttp handler, HTTP keep-alive and WebSocket"),
    "devnet": ("benches.devnet", "N validators on loopback, M clients over RPC: tx/s, latency to in-block and finalized"),
}
DEFAULT_OUT = Path("bench-results")
#: At most this many repetitions. A repetition of the default rpc bench is 16 cells of 2 s of load
#: (32 s), of the default kernels bench about as long: 1000 repetitions (the old bound) were 9 hours
#: of measuring; 50 are under half an hour, ten times the default.
MAX_REPS = 50


def _reps(text: str) -> int:
    value = parse_int(text)
    if not 2 <= value <= MAX_REPS:
        why = "a median of one shot is no median" if value < 2 else \
            "a default-size repetition takes up to half a minute: more would take hours"
        raise argparse.ArgumentTypeError(f"{value} repetitions: between 2 and {MAX_REPS} ({why})")
    return value


def add_subcommand(sub: Any) -> None:
    """Add ``bench`` and its five subcommands to the CLI's subparsers."""
    bench = sub.add_parser("bench", help="run a benchmark: table, JSON and PNG under --out")
    kinds = bench.add_subparsers(dest="bench_command", required=True)
    for name, (_module, help_text) in BENCHES.items():
        p = kinds.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--quick", action="store_true", help="small sizes: under a minute")
        p.add_argument("--reps", type=_reps, default=None, help=f"repetitions, 2..{MAX_REPS} (default: 5, --quick 3)")
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                       help=f"where <name>.json and <name>.png go (default {DEFAULT_OUT}/)")
        if name == "validator":
            p.add_argument("--jobs", type=int_in(1, 64), default=None, help="TRAIN calls per block (default 4, quick 2)")
            p.add_argument("--segment", type=int_in(1, 10_000), default=None,
                           help="steps per segment (default 25, quick 10; shorter where one call would not fit a block)")
            p.add_argument("--size", choices=("all", "digits", "mnist"), default="all",
                           help="model sizes: digits (64 features, batch 32), mnist (784 features, batch 64) or all (default)")
        if name == "devnet":
            p.add_argument("--validators", type=int_in(1, 16), default=None, help="validator processes (default 4, quick 2)")
            p.add_argument("--clients", type=int_in(1, 6), default=None, help="RPC clients submitting, one dev account each (default 4, quick 2)")
            p.add_argument("--seconds", type=int_in(1, 3600), default=None,
                           help="seconds of load in all, cut into --reps windows of at least 2 blocks (default 60, --quick 9)")
        p.set_defaults(run=run_bench)


OPTIONS = ("jobs", "segment", "size", "validators", "clients", "seconds")  # the benches' own flags


def resolve_args(args: argparse.Namespace) -> Any:
    """Fill in ``args``' defaults (repetitions; the sizes the bench module's ``resolve_options``
    gives, so that the recorded command names every size the run used) and return the module."""
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    module = importlib.import_module(BENCHES[args.bench_command][0])
    resolve = getattr(module, "resolve_options", None)
    if resolve is not None:
        given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k, None) is not None}
        for name, value in resolve(args.quick, given).items():
            setattr(args, name, value)
    return module


def compute_bench_command(args: argparse.Namespace) -> str:
    """``polchain bench NAME`` with every option as parsed (defaults resolved: :func:`resolve_args`)."""
    words = ["polchain", "bench", args.bench_command]
    if args.quick:
        words.append("--quick")
    words += ["--reps", str(args.reps), "--out", str(args.out)]
    for flag in OPTIONS:
        value = getattr(args, flag, None)
        if value is not None:
            words += [f"--{flag}", str(value)]
    return shlex.join(words)


def run_bench(args: argparse.Namespace) -> int:
    from benches.record import check_out_folder  # not at CLI start: see the module docstring
    from benches.runner import Context, finish

    module = resolve_args(args)
    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k, None) is not None}
    # A bench may refuse a combination of options (benches/devnet.py: windows too short to hold a
    # block); then the out folder, before minutes of measuring, not after.
    check = getattr(module, "check_options", None)
    problem = check(args.quick, args.reps, options) if check is not None else None
    if problem is not None:
        print(f"Error: bench {args.bench_command}: {problem}", file=sys.stderr)
        return 1
    problem = check_out_folder(args.out, [f"{args.bench_command}.json", f"{args.bench_command}.png"])
    if problem is not None:
        print(f"Error: --out {args.out}: {problem}", file=sys.stderr)
        return 1
    ctx = Context(
        name=args.bench_command, quick=args.quick, reps=args.reps, out=args.out,
        command=compute_bench_command(args), options=options,
    )
    try:
        report = module.run(ctx)
    except RuntimeError as exc:  # a bench that cannot measure says why, in one line
        print(f"Error: bench {args.bench_command}: {exc}", file=sys.stderr)
        return 1
    finish(ctx, report)
    return 0
