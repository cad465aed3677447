"""``polchain fl``: take part in federated rounds (chain/pallets/federated.py) from the command line.

- ``fl open``: the model's owner opens a round; deadlines are given in blocks from now.
- ``fl train``: train locally on a private CSV for a round and print the commitment (nothing
  is submitted; the rows never leave the machine).
- ``fl join``: the same, then submit the commitment (CommitUpdate).
- ``fl reveal``: wait for the commit deadline, challenge the round if nobody has, then reveal
  this participant's challenged segments (retraining from the same CSV: the job is
  deterministic, so no local state is kept between ``join`` and ``reveal``).
- ``fl close``: aggregate a round whose reveals are done or whose reveal deadline passed.
- ``fl status``: the round (``fl_getRound``) and, with ``--account``, one update (``fl_getUpdate``).

The private CSV has the data sets' row format: the model's d features, then the label (a
softmax or MLP model) or its k targets (a linear model). Signing and submission are node/cli.py's
(each tx subcommand here sets ``build_calls_online``, which cli._tx_main awaits with its client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain import calls
from chain.codec import decode
from chain.crypto import Keypair, parse_account, ss58_encode
from chain.extrinsic import sign_extrinsic

if TYPE_CHECKING:
    import numpy as np

    import ml_runtime
    from chain.pallets import federated
    from rpc.client import RpcClient

# numpy, ml_runtime and chain.pallets.federated (numba) are imported by the commands that train
# or read a round's parameters, not by `fl status` and `fl close` (node/cli.py: _Commands).

ParserFactory = Callable[[Any, str], argparse.ArgumentParser]
ArgType = Callable[[str], Any]
NodeErrors = Callable[[str, float], AbstractContextManager[None]]


class FlError(Exception):
    """A federated command that cannot go on (main prints it as one Error: line)."""


def _run_simulate(args: argparse.Namespace) -> int:
    from node import fl_simulation

    try:
        report = fl_simulation.simulate(
            trials=args.trials, seed=args.seed, participants=args.participants, cheat=args.cheater,
            fake_segments=args.fake_segments, samples=args.samples, steps=args.steps, batch=args.batch_size,
            segment=args.segment_len, lr=args.lr,
        )
    except fl_simulation.SimulationError as exc:
        raise FlError(str(exc)) from None
    if args.output_type == "json":
        print(fl_simulation.compute_json(report).decode())
    else:
        print("\n".join(fl_simulation.compute_summary_lines(report)))
    return 0


def add_commands(sub: Any, make_tx: ParserFactory, make_query: ParserFactory, *, u32: ArgType, balance: ArgType, f32: ArgType,
                 node_errors: NodeErrors) -> None:
    """Add ``polchain fl ...`` to the top-level subparsers. ``node_errors(url, timeout)`` turns a
    node that does not answer into the CLI's one line (node/cli.py, as for the tx commands)."""
    fl = sub.add_parser("fl", help="federated learning rounds").add_subparsers(dest="tx_command", required=True)
    p = make_tx(fl, "open")
    for flag, typ, default in (
        ("--model", u32, None), ("--base-version", u32, None), ("--local-steps", u32, None), ("--batch-size", u32, None),
        ("--lr", f32, None), ("--l2", f32, 0.0), ("--segment-len", u32, None), ("--samples", u32, 2),
        ("--min-updates", u32, 1), ("--max-updates", u32, 8), ("--bond", balance, 0), ("--reward-pool", balance, 0),
        ("--commit-blocks", u32, 10), ("--reveal-blocks", u32, 10),
    ):
        p.add_argument(flag, type=typ, default=default, required=default is None and flag != "--base-version")
    p.add_argument("--allowlist", default="", help="comma-separated accounts (default: anyone may join)")
    p.set_defaults(build_calls_online=_open_calls)
    for name in ("join", "reveal"):
        p = make_tx(fl, name)
        p.add_argument("--round", type=u32, required=True)
        p.add_argument("--data", type=Path, required=True, help="the private rows (CSV): features, then label or targets")
        p.add_argument("--sample-count", type=u32, default=None, help="FedAvg weight (default: the row count)")
        p.set_defaults(build_calls_online=_join_calls if name == "join" else _reveal_calls)
    p = make_tx(fl, "close")
    p.add_argument("--round", type=u32, required=True)
    p.set_defaults(build_calls_online=lambda a, client, signer: _static([calls.CloseRound(a.round)]))
    p = make_query(fl, "train")
    p.add_argument("--round", type=u32, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--signer", default="//Alice", help="the participant's secret URI (its account seeds the batches)")
    p.add_argument("--account", default=None, help="the participant's account instead of --signer")
    p.add_argument("--sample-count", type=u32, default=None)
    p.set_defaults(run=_run_train, node_errors=node_errors)
    fl.add_command("simulate", "rounds with a cheater on an in-process dev chain (no node needed)",
                   lambda: _add_simulate(fl, u32=u32, f32=f32))
    p = make_query(fl, "status")
    p.add_argument("--round", type=u32, required=True)
    p.add_argument("--account", default=None)
    p.set_defaults(run=_run_status, node_errors=node_errors)


def _add_simulate(fl: Any, *, u32: ArgType, f32: ArgType) -> None:
    from node import fl_simulation  # for --cheater's choices: built when `fl simulate` is parsed

    p = fl.add_parser("simulate")
    p.add_argument("--participants", type=u32, default=4, help="2..5, the last one cheats")
    p.add_argument("--cheater", choices=fl_simulation.CHEATS, default="fake-weights")
    p.add_argument("--fake-segments", type=u32, default=1, help="segments a fake-weights cheater fakes")
    p.add_argument("--samples", type=u32, default=2, help="m: challenged segments per update")
    p.add_argument("--steps", type=u32, default=200)
    p.add_argument("--batch-size", type=u32, default=16)
    p.add_argument("--segment-len", type=u32, default=20)
    p.add_argument("--lr", type=f32, default=0.5)
    p.add_argument("--trials", type=u32, default=1)
    p.add_argument("--seed", type=u32, default=0, help="splits the digits; trial t uses seed + t")
    p.add_argument("--output-type", choices=("text", "json"), default="text")
    p.set_defaults(run=_run_simulate)


async def _static(items: list[Any]) -> list[Any]:
    return items


async def _best_number(client: RpcClient) -> int:
    return int((await client.call("chain_getHeader", []))["number"], 16)


async def _open_calls(args: argparse.Namespace, client: RpcClient, signer: Any) -> list[Any]:
    from chain.pallets import federated

    # The deadlines the chain would refuse (federated._verify_open), before anything is signed:
    # commit after now + 1 + commit-blocks, reveal 1 + reveal-blocks later, at most
    # MAX_ROUND_BLOCKS ahead; the reveal phase needs a block.
    if args.reveal_blocks < 1:
        raise FlError(f"--reveal-blocks {args.reveal_blocks}: the reveal phase is at least 1 block")
    if args.commit_blocks + args.reveal_blocks + 2 > federated.MAX_ROUND_BLOCKS:
        raise FlError(f"--commit-blocks {args.commit_blocks} + --reveal-blocks {args.reveal_blocks}: a round's deadlines "
                      f"are at most {federated.MAX_ROUND_BLOCKS} blocks ahead")
    now = await _best_number(client)
    model = await client.call("ml_getModel", [args.model])
    if model is None:
        raise FlError(f"no model {args.model}")
    base = model["latestVersion"] if args.base_version is None else args.base_version
    allow = tuple(parse_account(a) for a in args.allowlist.split(",") if a.strip())
    commit = now + 1 + args.commit_blocks
    return [calls.OpenRound(
        args.model, base, allow, args.local_steps, args.batch_size, calls.compute_f32_bits(args.lr),
        calls.compute_f32_bits(args.l2), args.segment_len, args.samples, args.min_updates, args.max_updates,
        args.bond, args.reward_pool, commit, commit + 1 + args.reveal_blocks,
    )]


async def _storage(client: RpcClient, key: bytes) -> bytes | None:
    raw = await client.call("state_getStorage", ["0x" + key.hex()])
    return None if raw is None else bytes.fromhex(raw[2:])


class LocalWork:
    """A participant's round: the round's parameters read from the chain, its private rows,
    and the local job's result."""

    def __init__(self, round_id: int, info: federated.RoundInfo, spec: ml_runtime.ModelSpec, base: np.ndarray,
                 account: bytes, x: np.ndarray, y: np.ndarray, sample_count: int | None) -> None:
        import ml_runtime
        from chain.pallets import federated

        self.round_id, self.info, self.account = round_id, info, account
        job = federated.compute_job(info, spec, base, account, x, y, round_id)
        self.result = ml_runtime.run_job(job)
        if not self.result.finite:
            raise FlError(f"local training diverged in segment {self.result.diverged_segment}: lower --lr in the next round")
        self.leaves = federated.compute_row_leaves(spec, x, y)
        n = len(self.leaves)
        self.commit = federated.compute_commit(
            round_id, ml_runtime.compute_merkle_root(self.leaves), n, n if sample_count is None else sample_count, self.result,
        )

    @classmethod
    async def load(cls, client: RpcClient, round_id: int, account: bytes, data: Path, sample_count: int | None) -> LocalWork:
        import numpy as np

        import ml_runtime

        info = await _round(client, round_id)
        model = await client.call("ml_getModel", [info.model])
        s = model["spec"]
        spec = ml_runtime.ModelSpec(s["family"], s["d"], s["k"], s["h"])
        weights = await client.call("ml_getWeights", [info.model, info.base_version])
        base = np.frombuffer(bytes.fromhex(weights["weights"][2:]), dtype="<f4").astype(np.float32)
        x, y = read_rows(data, spec)
        return cls(round_id, info, spec, base, account, x, y, sample_count)

    def summary(self) -> dict[str, Any]:
        import ml_runtime

        c = self.commit
        return {
            "round": self.round_id, "participant": ss58_encode(self.account), "rows": c.row_count,
            "sampleCount": c.sample_count, "dataRoot": "0x" + c.data_root.hex(),
            "transcriptRoot": "0x" + c.transcript_root.hex(),
            "weightsHash": "0x" + ml_runtime.hash_weights(self.result.weights).hex(),
            "lossCurve": [calls.compute_f32_value(b) for b in c.losses[1:]],
        }


def read_csv_table(path: Path) -> np.ndarray:
    """A CSV file of numbers (``tx register-dataset --csv``, ``fl ... --data``) as a 2-D float64
    table; FlError naming the file and what is wrong, in our words: numpy's repeated the file's
    name ("rows.csv: rows.csv not found.") or advised an option we do not have ("use `usecols`
    to select a subset"; an outside tester's D6, round 15)."""
    import numpy as np

    if not path.exists():
        raise FlError(f"{path}: no such file")
    if not path.is_file():  # /dev/zero, a pipe: one endless line, all memory
        raise FlError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file: no rows, the caller says so
            table: np.ndarray = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FlError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except (OSError, ValueError) as exc:
        raise FlError(f"{path}: {str(exc).split('; use `usecols`', 1)[0]}") from None
    return table


def read_rows(path: Path, spec: ml_runtime.ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """The private CSV: d finite float32 features, then a label in 0..k-1 or k float32 targets."""
    import numpy as np

    table = read_csv_table(path)
    width = spec.k if spec.family == "linear" else 1
    if table.shape[0] == 0:
        raise FlError(f"{path}: no rows")
    if table.shape[1] != spec.d + width:
        raise FlError(f"{path}: rows must have {spec.d} features and {width} label column(s), got {table.shape[1]} columns")
    x = table[:, : spec.d].astype(np.float32)
    if not np.isfinite(x).all():
        raise FlError(f"{path}: a feature is not a finite float32")
    if spec.family == "linear":
        y = table[:, spec.d :].astype(np.float32)
        if not np.isfinite(y).all():
            raise FlError(f"{path}: a target is not a finite float32")
        return x, y
    labels = table[:, -1]
    if not ((labels == np.floor(labels)) & (labels >= 0) & (labels < spec.k)).all():
        raise FlError(f"{path}: labels are integers 0..{spec.k - 1}")
    return x, labels.astype(np.int32)


async def _join_calls(args: argparse.Namespace, client: RpcClient, signer: Any) -> list[Any]:
    work = await LocalWork.load(client, args.round, signer.public, args.data, args.sample_count)
    return [work.commit]


async def _reveal_calls(args: argparse.Namespace, client: RpcClient, signer: Any) -> list[Any]:
    """The reveals of this participant's challenged segments not verified yet. Waits for the
    commit deadline; if nobody has challenged the round by then, challenges it (a signed
    ChallengeRound, waited for), since the segments are known only once that is in a block."""
    from chain.pallets import federated

    work = await LocalWork.load(client, args.round, signer.public, args.data, args.sample_count)
    deadline = time.monotonic() + args.timeout
    challenged = False
    while True:
        info = await _round(client, args.round)
        if info.status != federated.OPEN:
            break
        if not challenged and await _best_number(client) >= info.commit_deadline:
            await _submit_challenge(client, signer, args.round)
            challenged = True
        if time.monotonic() > deadline:
            raise FlError(f"round {args.round} was not challenged within --timeout {args.timeout:g} s (commits until block {info.commit_deadline})")
        await asyncio.sleep(0.25)
    if info.status != federated.REVEALING:
        raise FlError(f"round {args.round} is {info.status}: nothing to reveal")
    raw = await _storage(client, federated.UPDATES.compute_key(args.round, signer.public))
    if raw is None:
        raise FlError(f"{ss58_encode(signer.public)} committed no update to round {args.round}")
    update = decode(raw, federated.UpdateInfo)
    if update.status != federated.COMMITTED:
        raise FlError(f"this update is already {update.status}")
    pending = [j for j in federated.compute_challenged(info, work.account) if j not in update.verified]
    if not pending:
        raise FlError("every challenged segment is verified already")
    return [federated.compute_reveal(work.round_id, info, j, work.result, work.leaves, work.account) for j in pending]


async def _round(client: RpcClient, round_id: int) -> federated.RoundInfo:
    from chain.pallets import federated

    raw = await _storage(client, federated.ROUNDS.compute_key(round_id))
    if raw is None:
        raise FlError(f"no federated round {round_id}")
    return decode(raw, federated.RoundInfo)


async def _submit_challenge(client: RpcClient, signer: Any, round_id: int) -> None:
    genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
    version = (await client.call("state_getRuntimeVersion", []))["specVersion"]
    nonce = await client.call("system_accountNextIndex", [signer.address])
    xt = sign_extrinsic(signer, calls.ChallengeRound(round_id), nonce=nonce, genesis_hash=genesis, spec_version=version)
    await client.call("author_submitExtrinsic", ["0x" + xt.encode().hex()])


def _run_train(args: argparse.Namespace) -> int:
    from rpc.client import RpcClient

    account = parse_account(args.account) if args.account else Keypair.from_uri(args.signer).public

    async def main() -> dict[str, Any]:
        async with RpcClient(args.rpc, timeout=args.timeout) as client:
            return (await LocalWork.load(client, args.round, account, args.data, args.sample_count)).summary()

    with args.node_errors(args.rpc, args.timeout):
        summary = asyncio.run(main())
    print(json.dumps(summary, indent=2))
    return 0


def _run_status(args: argparse.Namespace) -> int:
    from rpc.client import RpcClient

    async def main() -> Any:
        async with RpcClient(args.rpc, timeout=args.timeout) as client:
            result = await client.call("fl_getRound", [args.round])
            if result is None:
                raise FlError(f"no federated round {args.round}")
            if args.account:
                result = {**result, "update": await client.call("fl_getUpdate", [args.round, ss58_encode(parse_account(args.account))])}
            return result

    with args.node_errors(args.rpc, args.timeout):
        result = asyncio.run(main())
    print(json.dumps(result, indent=2))
    return 0
