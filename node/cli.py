"""The ``polchain`` command line: node, key, build-spec, purge-chain, tx and query.

Flags follow Substrate's spelling (``--dev``, ``--chain``, ``--base-path``, ``--tmp``,
``--rpc-port``, ``--rpc-external``, ``--rpc-methods``, ``--rpc-cors``, ``--alice``...).
Every error a user can cause ends in one line on stderr and exit status 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import ml_runtime
from chain import calls
from chain.codec import decode
from chain.crypto import DEV_ACCOUNTS, Keypair, blake2_256, parse_account, ss58_encode
from chain.errors import ChainError
from chain.extrinsic import sign_extrinsic
from chain.pallets import balances, datasets
from genesis.spec import load_chain_spec
from node import devnet
from node.metrics import DEFAULT_PORT as PROMETHEUS_PORT
from node.metrics import MetricsServer
from node.service import NodeConfig, NodeService
from rpc.api import build_method_table
from rpc.client import RpcCallError, RpcClient
from rpc.server import RpcServer

log = logging.getLogger("polchain")


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log.upper(), logging.INFO) if hasattr(args, "log") else logging.WARNING,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args) or 0)
    except (CliError, devnet.DevnetError, ChainError, ml_runtime.MLRuntimeError, RpcCallError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polchain", description="polchain: an app chain for machine learning")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run a node")
    node.add_argument("--dev", action="store_true", help="dev chain: --chain dev --alice --tmp (unless --base-path)")
    node.add_argument("--chain", default=None, help="dev, local, or a chain spec JSON path")
    node.add_argument("--base-path", "-d", type=Path, default=None)
    node.add_argument("--tmp", action="store_true", help="a temporary database, deleted at exit")
    node.add_argument("--name", default="polchain-node")
    node.add_argument("--validator", action="store_true")
    for who in DEV_ACCOUNTS:
        node.add_argument(f"--{who.lower()}", action="store_true", help=f"author with //{who} (implies --validator)")
    node.add_argument("--key", default=None, metavar="URI", help="author with this secret URI, e.g. //Validator7")
    node.add_argument("--block-time", type=_positive, default=6000, metavar="MS")
    node.add_argument("--instant-seal", action="store_true", help="author a block as soon as the pool holds something")
    node.add_argument("--rpc-port", type=int, default=9944)
    node.add_argument("--rpc-external", action="store_true", help="listen on all interfaces")
    node.add_argument("--rpc-methods", choices=("auto", "safe", "unsafe"), default="auto")
    node.add_argument("--rpc-cors", default=None, help="'all' or a comma-separated list of origins")
    node.add_argument("--rpc-max-connections", type=_positive, default=100)
    node.add_argument("--rpc-max-request-size", type=_positive, default=15, metavar="MB")
    node.add_argument("--rpc-max-response-size", type=_positive, default=15, metavar="MB")
    node.add_argument("--rpc-max-subscriptions-per-connection", type=_positive, default=1024)
    node.add_argument("--port", type=int, default=30333, help="p2p port (networking is not built yet)")
    node.add_argument("--bootnodes", nargs="*", default=[], help="p2p boot nodes (networking is not built yet)")
    node.add_argument("--prometheus-port", type=_port, default=None, help=f"metrics port (default {PROMETHEUS_PORT})")
    node.add_argument("--prometheus-external", action="store_true", help="serve metrics on all interfaces")
    node.add_argument("--no-prometheus", action="store_true", help="serve no metrics")
    node.add_argument("--log", "-l", default="info", help="log level: error, warn, info, debug")
    node.set_defaults(run=run_node)
    devnet.add_subcommand(sub, node)

    key = sub.add_parser("key", help="generate and inspect keys").add_subparsers(dest="key_command", required=True)
    for name, fn in (("generate", run_key_generate), ("inspect", run_key_inspect)):
        k = key.add_parser(name)
        if name == "inspect":
            k.add_argument("uri", help="a secret URI (//Alice, 0x<seed>) or an SS58 address")
        k.add_argument("--scheme", choices=("ed25519",), default="ed25519")
        k.add_argument("--output-type", choices=("text", "json"), default="text")
        k.set_defaults(run=fn)

    spec = sub.add_parser("build-spec", help="print a chain spec")
    spec.add_argument("--chain", default="dev")
    spec.add_argument("--raw", action="store_true", help="the genesis storage instead of the readable config")
    spec.set_defaults(run=run_build_spec)

    purge = sub.add_parser("purge-chain", help="delete a chain's database")
    purge.add_argument("--base-path", "-d", type=Path, required=True)
    purge.add_argument("--chain", default="dev")
    purge.add_argument("-y", action="store_true", help="do not ask")
    purge.set_defaults(run=run_purge_chain)

    tx = sub.add_parser("tx", help="sign and submit a transaction").add_subparsers(dest="tx_command", required=True)
    t = _tx(tx, "call")
    t.add_argument("--call", required=True, help='a call in JSON: {"pallet": ..., "call": ..., "args": {...}}')
    t = _tx(tx, "transfer")
    t.add_argument("--dest", required=True)
    t.add_argument("--value", type=int, required=True)
    t = _tx(tx, "register-model")
    t.add_argument("--name", required=True)
    t.add_argument("--family", choices=("linear", "softmax", "mlp"), required=True)
    t.add_argument("--d", type=int, required=True)
    t.add_argument("--k", type=int, required=True)
    t.add_argument("--h", type=int, default=0)
    t.add_argument("--seed", default=None, help="0x 32-byte init seed (random if omitted)")
    t = _tx(tx, "register-dataset")
    t.add_argument("--name", required=True)
    t.add_argument("--csv", type=Path, required=True, help="rows: features..., then the label (or k targets)")
    t.add_argument("--kind", choices=("classification", "regression"), required=True)
    t.add_argument("--outputs", type=int, required=True, help="classes, or targets per row")
    t.add_argument("--price-per-row", type=int, default=0)
    t.add_argument("--license", default="")
    t = _tx(tx, "train")
    t.add_argument("--model", type=int, required=True)
    t.add_argument("--dataset", type=int, required=True)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--batch-size", type=int, required=True)
    t.add_argument("--lr", type=float, required=True)
    t.add_argument("--l2", type=float, default=0.0)
    t.add_argument("--segment-len", type=int, default=None, help="steps per checkpoint (default: steps/16, at least 1)")
    t.add_argument("--from-version", type=int, default=None)

    query = sub.add_parser("query", help="read chain state").add_subparsers(dest="query_command", required=True)
    for name, arg in (("model", "id"), ("dataset", "id"), ("account", "address"), ("block", "at")):
        q = query.add_parser(name)
        q.add_argument(arg, nargs="?" if name == "block" else None)
        q.add_argument("--rpc", default="http://127.0.0.1:9944")
        if name == "model":
            q.add_argument("--version", type=int, default=None)
        q.set_defaults(run=run_query)
    return parser


def _tx(sub: Any, name: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name)
    p.add_argument("--rpc", default="http://127.0.0.1:9944")
    p.add_argument("--signer", default="//Alice", help="secret URI of the signer")
    p.add_argument("--tip", type=int, default=0)
    p.add_argument("--nonce", type=int, default=None, help="default: system_accountNextIndex")
    p.add_argument("--no-wait", action="store_true", help="return once the pool accepted it")
    p.add_argument("--sign-only", action="store_true", help="print the signed extrinsic as 0x-hex; submit nothing")
    p.add_argument("--output-type", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(run=run_tx)
    return p


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1..65535)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


# --- node -------------------------------------------------------------------------------------
def run_node(args: argparse.Namespace) -> int:
    chain = args.chain or ("dev" if args.dev else "local")
    dev_flag = next((who for who in DEV_ACCOUNTS if getattr(args, who.lower())), None)
    if args.key and dev_flag:
        raise CliError(f"--key and --{dev_flag.lower()} both name the authoring key; use one")  # a key is never echoed
    author = args.key or (f"//{dev_flag}" if dev_flag else None)
    if args.dev and author is None:
        author = "//Alice"
    if args.validator and author is None:
        raise CliError("--validator needs a key: use one of --alice .. --ferdie")
    if args.bootnodes or args.port != 30333:
        log.warning("--port and --bootnodes are accepted but networking is not built yet; running alone")
    cors: tuple[str, ...] | str | None = None
    if args.rpc_cors:
        cors = "all" if args.rpc_cors == "all" else tuple(o.strip() for o in args.rpc_cors.split(",") if o.strip())
    config = NodeConfig(
        chain=chain, base_path=args.base_path, tmp=args.tmp or (args.dev and args.base_path is None),
        name=args.name, author=author, block_time_ms=args.block_time, instant_seal=args.instant_seal,
        rpc_host="0.0.0.0" if args.rpc_external else "127.0.0.1", rpc_port=args.rpc_port,
        rpc_methods=args.rpc_methods, rpc_cors=cors, rpc_max_connections=args.rpc_max_connections,
        rpc_max_request_size_mb=args.rpc_max_request_size, rpc_max_response_size_mb=args.rpc_max_response_size,
        rpc_max_subscriptions=args.rpc_max_subscriptions_per_connection,
        prometheus_host="0.0.0.0" if args.prometheus_external else "127.0.0.1",
        prometheus_port=None if args.no_prometheus else (args.prometheus_port or PROMETHEUS_PORT),
        prometheus_required=args.prometheus_port is not None,
    )
    spec = load_chain_spec(chain)
    log.info("polchain node %r on chain %r (%s)", args.name, spec.name, spec.id)
    ml_runtime.warm_up()
    ml_runtime.verify_build()
    asyncio.run(_serve(config, spec))
    return 0


async def _serve(config: NodeConfig, spec: Any) -> None:
    service = NodeService(config, spec)
    log.info("Genesis 0x%s, best #%d, database %s", service.chain.genesis_hash.hex(), service.chain.best_number, service.db_path)
    server = RpcServer(
        build_method_table(service, node_name=config.name), host=config.rpc_host, port=config.rpc_port,
        max_request_size=config.rpc_max_request_size_mb * 1024 * 1024,
        max_response_size=config.rpc_max_response_size_mb * 1024 * 1024,
        max_connections=config.rpc_max_connections,
        max_subscriptions_per_connection=config.rpc_max_subscriptions,
        cors=config.rpc_cors, rpc_methods=config.rpc_methods,  # type: ignore[arg-type]
    )
    metrics = await _start_metrics(config, service)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    try:
        await service.run(server)
    finally:
        if metrics is not None:
            await metrics.stop()
    log.info("Shut down cleanly at block #%d", service.chain.best_number)


async def _start_metrics(config: NodeConfig, service: NodeService) -> MetricsServer | None:
    """The Prometheus endpoint. A port asked for with --prometheus-port must bind (as in
    Substrate); the default one may be taken by another node on this machine, which then
    costs the metrics only."""
    if config.prometheus_port is None:
        return None
    metrics = MetricsServer(service.metrics, config.prometheus_host, config.prometheus_port)
    try:
        await metrics.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if config.prometheus_required:
            service.close()
            raise CliError(f"cannot serve Prometheus metrics on {config.prometheus_host}:{config.prometheus_port}: {reason}") from None
        log.warning("Prometheus metrics off: %s:%d is not free (%s)", config.prometheus_host, config.prometheus_port, reason)
        return None
    log.info("Prometheus exporter on %s", metrics.url)
    return metrics


# --- key ----------------------------------------------------------------------------------------
def _key_info(pair: Keypair | None, public: bytes, secret: str | None) -> dict[str, Any]:
    info = {
        "secretSeed": "0x" + pair.seed.hex() if pair else None,
        "publicKey": "0x" + public.hex(),
        "accountId": "0x" + public.hex(),
        "ss58Address": ss58_encode(public),
        "scheme": "ed25519",
    }
    if secret is not None:
        info["secretUri"] = secret
    return info


def _print_key(info: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(info, indent=2))
        return
    labels = (("secretUri", "Secret URI"), ("secretSeed", "Secret seed"), ("publicKey", "Public key (hex)"),
              ("accountId", "Account ID"), ("ss58Address", "SS58 Address"), ("scheme", "Key scheme"))
    for key, label in labels:
        if info.get(key) is not None:
            print(f"{label + ':':<20}{info[key]}")


def run_key_generate(args: argparse.Namespace) -> int:
    pair = Keypair.from_seed(secrets.token_bytes(32))
    _print_key(_key_info(pair, pair.public, None), args.output_type)
    return 0


def run_key_inspect(args: argparse.Namespace) -> int:
    if args.uri.startswith(("//", "0x")) or " " in args.uri:
        pair = Keypair.from_uri(args.uri)
        _print_key(_key_info(pair, pair.public, args.uri), args.output_type)
    else:
        public = parse_account(args.uri)
        _print_key(_key_info(None, public, None), args.output_type)
    return 0


# --- build-spec / purge-chain ---------------------------------------------------------------------
def run_build_spec(args: argparse.Namespace) -> int:
    print(json.dumps(load_chain_spec(args.chain).to_json(raw=args.raw), indent=2))
    return 0


def run_purge_chain(args: argparse.Namespace) -> int:
    spec = load_chain_spec(args.chain)
    db = args.base_path / "chains" / spec.id / "db"
    if not db.exists():
        print(f"{db} does not exist; nothing to purge", file=sys.stderr)
        return 0
    if not args.y:
        if not sys.stdin.isatty():
            raise CliError("refusing to delete without a terminal to ask; pass -y")
        if input(f"Are you sure to remove {db}? [y/N]: ").strip().lower() not in ("y", "yes"):
            print("Aborted", file=sys.stderr)
            return 1
    shutil.rmtree(db)
    print(f"{db} removed", file=sys.stderr)
    return 0


# --- tx ---------------------------------------------------------------------------------------------
def run_tx(args: argparse.Namespace) -> int:
    return asyncio.run(_tx_main(args))


async def _tx_main(args: argparse.Namespace) -> int:
    async with RpcClient(args.rpc.replace("http", "ws", 1) if args.rpc.startswith("http") else args.rpc, timeout=args.timeout) as client:
        signer = Keypair.from_uri(args.signer)
        genesis = bytes.fromhex((await client.call("chain_getBlockHash", [0]))[2:])
        version = (await client.call("state_getRuntimeVersion", []))["specVersion"]
        nonce = args.nonce if args.nonce is not None else await client.call("system_accountNextIndex", [signer.address])
        results = []
        for call in await _tx_calls(args, client):
            xt = sign_extrinsic(signer, call, nonce=nonce, genesis_hash=genesis, spec_version=version, tip=args.tip)
            nonce += 1
            if args.sign_only:
                print("0x" + xt.encode().hex())
                continue
            results.append(await _submit(client, xt.encode(), wait=not args.no_wait, timeout=args.timeout))
        if args.sign_only:
            return 0
        _print_tx(results, args.output_type)
        return 0 if all(r.get("success", True) for r in results) else 1


async def _tx_calls(args: argparse.Namespace, client: RpcClient) -> list[Any]:
    name = args.tx_command
    if name == "call":
        try:
            return [calls.call_from_json(json.loads(args.call))]
        except json.JSONDecodeError as exc:
            raise CliError(f"--call is not JSON: {exc}") from None
    if name == "transfer":
        return [calls.Transfer(parse_account(args.dest), args.value)]
    if name == "register-model":
        spec = ml_runtime.ModelSpec(args.family, args.d, args.k, args.h)
        seed = bytes.fromhex(args.seed[2:]) if args.seed else secrets.token_bytes(32)
        return [calls.RegisterModel(args.name, spec.encode(), seed)]
    if name == "register-dataset":
        try:
            table = np.loadtxt(args.csv, delimiter=",", dtype=np.float64, ndmin=2)
        except (OSError, ValueError) as exc:
            raise CliError(f"{args.csv}: {exc}") from None
        width = 1 if args.kind == "classification" else args.outputs
        if table.shape[1] <= width:
            raise CliError(f"{args.csv}: rows need features and {width} label column(s)")
        x = table[:, :-width].astype(np.float32)
        y = table[:, -1].astype(np.uint32) if args.kind == "classification" else table[:, -width:].astype(np.float32)
        rows = datasets.compute_rows_bytes(x, y, args.kind)
        row_size = len(rows) // len(table)
        next_id = len(await client.call("ml_listDatasets", []))
        out: list[Any] = [calls.RegisterDataset(
            args.name, x.shape[1], args.kind, args.outputs, len(table),
            datasets.compute_rows_root(rows, row_size), args.price_per_row, args.license,
        )]
        per_chunk = max(1, calls.MAX_ROWS_CHUNK // row_size)
        for first in range(0, len(table), per_chunk):
            out.append(calls.AppendRows(next_id, first, rows[first * row_size : (first + per_chunk) * row_size]))
        return out
    if name == "train":
        segment = args.segment_len or max(1, args.steps // 16)
        return [calls.Train(
            args.model, args.dataset, args.steps, args.batch_size,
            calls.compute_f32_bits(args.lr), calls.compute_f32_bits(args.l2), segment, args.from_version,
        )]
    raise CliError(f"unknown tx {name}")


async def _submit(client: RpcClient, raw: bytes, *, wait: bool, timeout: float) -> dict[str, Any]:
    xt_hash = "0x" + blake2_256(raw).hex()
    if not wait:
        return {"hash": await client.call("author_submitExtrinsic", ["0x" + raw.hex()]), "status": "submitted"}
    sub = await client.subscribe("author_submitAndWatchExtrinsic", ["0x" + raw.hex()], "author_unwatchExtrinsic")
    async with sub:
        while True:
            status = await sub.next(timeout)
            if isinstance(status, dict) and "inBlock" in status:
                receipt = await client.call("ml_getTrainingReceipt", [xt_hash])
                return {"hash": xt_hash, "block": status["inBlock"], **(receipt or {})}
            if status in ("invalid", "dropped") or (isinstance(status, dict) and "usurped" in status):
                raise CliError(f"transaction {xt_hash} was {status}")


def _print_tx(results: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return
    for r in results:
        print(f"Extrinsic {r['hash']}")
        if "block" in r:
            print(f"  in block #{r.get('blockNumber')} {r['block']}: {'success' if r.get('success') else 'FAILED: ' + str(r.get('error'))}")
            print(f"  fee {r.get('fee')}")
            for e in r.get("events", []):
                print(f"  event {e['pallet']}.{e['name']} {json.dumps(e['args'])}")
            if "lossCurve" in r:
                curve = r["lossCurve"]
                print(f"  model {r['model']} version {r['version']}; mean batch loss {curve[1]:.4f} (first segment) -> {curve[-1]:.4f} (last)")


# --- query ------------------------------------------------------------------------------------------
def run_query(args: argparse.Namespace) -> int:
    return asyncio.run(_query_main(args))


async def _query_main(args: argparse.Namespace) -> int:
    async with RpcClient(args.rpc) as client:
        name = args.query_command
        if name == "model":
            result: Any = await client.call("ml_getModel", [int(args.id)])
            if result is not None and args.version is not None:
                result = {**result, "weights": await client.call("ml_getWeights", [int(args.id), args.version])}
        elif name == "dataset":
            result = await client.call("ml_getDataset", [int(args.id)])
        elif name == "account":
            who = parse_account(args.address)
            raw = await client.call("state_getStorage", ["0x" + balances.ACCOUNT.compute_key(who).hex()])
            info = decode(bytes.fromhex(raw[2:]), balances.AccountInfo) if raw else balances.EMPTY
            result = {"address": ss58_encode(who), "nonce": info.nonce, "free": str(info.free), "staked": str(info.staked)}
        else:
            at = args.at
            if at is not None and not at.startswith("0x"):
                at = await client.call("chain_getBlockHash", [int(at)])
            result = await client.call("chain_getBlock", [at] if at else [])
        if result is None:
            raise CliError(f"no {name} {getattr(args, 'id', None) or getattr(args, 'at', '')}".strip())
        print(json.dumps(result, indent=2))
        return 0


if __name__ == "__main__":
    sys.exit(main())
