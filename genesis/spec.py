"""Chain specs: the JSON a node starts from, its loader, and the genesis state it describes.

The JSON follows Substrate's chain spec: ``name``, ``id``, ``chainType``, ``bootNodes``,
``protocolId``, ``properties`` (tokenSymbol, tokenDecimals, ss58Format) and ``genesis``,
which is either ``{"runtimeGenesisConfig": {...}}`` (human-readable: balances, validators,
models, data sets, runtime constants) or, after ``build-spec --raw``, ``{"raw": {"top":
{"0x<key>": "0x<value>"}}}`` (the storage itself). Both give the same genesis hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import ml_runtime
from chain import calls
from chain.config import RUNTIME_CONFIG_KEY, RuntimeConfig, encode_runtime_config
from chain.crypto import parse_account, ss58_encode
from chain.errors import ChainError, DispatchError, GenesisError
from chain.pallets import assets, balances, datasets, models
from chain.pallets.items import StateAccess
from chain.pallets.staking import VALIDATORS

PRESETS = ("dev", "local")
CHAIN_TYPES = ("Development", "Local", "Live")
BUILTIN_SOURCES = ("digits",)


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """A parsed chain spec. ``genesis`` holds exactly one of ``config`` and ``raw``."""

    name: str
    id: str
    chain_type: str
    boot_nodes: tuple[str, ...]
    properties: dict[str, Any]
    protocol_id: str
    config: dict[str, Any] | None = None
    raw: dict[bytes, bytes] | None = None
    runtime_config: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_json(self, *, raw: bool = False) -> dict[str, Any]:
        if raw:
            storage = self.raw if self.raw is not None else compute_genesis_storage(self)
            genesis: dict[str, Any] = {"raw": {"top": {"0x" + k.hex(): "0x" + v.hex() for k, v in sorted(storage.items())}}}
        else:
            if self.config is None:
                raise GenesisError("a raw chain spec cannot be turned back into a readable genesis config")
            genesis = {"runtimeGenesisConfig": self.config}
        return {
            "name": self.name,
            "id": self.id,
            "chainType": self.chain_type,
            "bootNodes": list(self.boot_nodes),
            "protocolId": self.protocol_id,
            "properties": self.properties,
            "runtimeConfig": asdict(self.runtime_config),
            "genesis": genesis,
        }

    def apply_genesis(self, state: StateAccess) -> None:
        """Write the genesis storage into an empty state overlay."""
        storage = self.raw if self.raw is not None else compute_genesis_storage(self)
        for key, value in storage.items():
            state.set(key, value)


def load_chain_spec(chain: str) -> ChainSpec:
    """``dev``, ``local`` or a path to a chain spec JSON file."""
    if chain in PRESETS:
        text = resources.files("genesis").joinpath("presets", f"{chain}.json").read_text()
        where = f"preset {chain!r}"
    else:
        path = Path(chain)
        if not path.is_file():
            raise GenesisError(f"no chain spec at {chain!r} (and it is not one of the presets {', '.join(PRESETS)})")
        text, where = path.read_text(), str(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(f"{where}: not JSON: {exc}") from None
    return parse_chain_spec(obj, where)


def parse_chain_spec(obj: Any, where: str = "chain spec") -> ChainSpec:
    """Validate a chain spec's JSON; GenesisError names the field that is wrong."""
    if not isinstance(obj, dict):
        raise GenesisError(f"{where}: a chain spec is a JSON object")
    name = _field(obj, "name", str, where)
    chain_id = _field(obj, "id", str, where)
    chain_type = _field(obj, "chainType", str, where)
    if chain_type not in CHAIN_TYPES:
        raise GenesisError(f"{where}: chainType must be one of {CHAIN_TYPES}, got {chain_type!r}")
    boot_nodes = obj.get("bootNodes", [])
    if not isinstance(boot_nodes, list) or not all(isinstance(b, str) for b in boot_nodes):
        raise GenesisError(f"{where}: bootNodes must be a list of strings")
    properties = _field(obj, "properties", dict, where)
    for key, typ in (("tokenSymbol", str), ("tokenDecimals", int), ("ss58Format", int)):
        _field(properties, key, typ, f"{where}: properties")
    runtime_config = _parse_runtime_config(obj.get("runtimeConfig", {}), where)
    genesis = _field(obj, "genesis", dict, where)
    config = raw = None
    if "raw" in genesis:
        raw = _parse_raw(genesis["raw"], where)
    elif "runtimeGenesisConfig" in genesis:
        config = genesis["runtimeGenesisConfig"]
    else:
        raise GenesisError(f"{where}: genesis needs 'runtimeGenesisConfig' or 'raw'")
    spec = ChainSpec(
        name, chain_id, chain_type, tuple(boot_nodes), properties, str(obj.get("protocolId", chain_id)),
        config, raw, runtime_config,
    )
    if config is not None:
        compute_genesis_storage(spec)  # validates the config now, with its messages
    return spec


def compute_genesis_storage(spec: ChainSpec) -> dict[bytes, bytes]:
    """The genesis key/value storage a readable genesis config describes."""
    if spec.config is None:
        raise GenesisError("no genesis config")
    state = _DictState()
    cfg = spec.config
    where = f"chain spec {spec.id!r}: genesis"
    if not isinstance(cfg, dict):
        raise GenesisError(f"{where}: runtimeGenesisConfig must be an object")
    try:
        for i, entry in enumerate(_field(cfg, "balances", list, where)):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], int) and entry[1] >= 0):
                raise GenesisError(f"{where}: balances[{i}] must be [account, amount >= 0]")
            balances.apply_mint(state, _account(entry[0], f"{where}: balances[{i}]"), entry[1])
        validators = tuple(_account(v, f"{where}: validators") for v in _field(cfg, "validators", list, where))
        if not validators:
            raise GenesisError(f"{where}: at least one validator is needed")
        for v in validators:
            info = balances.get_account(state, v)
            bond = min(info.free, spec.runtime_config.min_validator_bond)
            if bond < spec.runtime_config.min_validator_bond:
                raise GenesisError(f"{where}: validator {ss58_encode(v)} cannot bond {spec.runtime_config.min_validator_bond}")
            balances.apply_account(state, v, balances.AccountInfo(info.nonce, info.free - bond, info.staked + bond))
        VALIDATORS.apply_set(state, validators)
        for i, ds in enumerate(cfg.get("datasets", [])):
            _apply_dataset(state, ds, f"{where}: datasets[{i}]")
        for i, m in enumerate(cfg.get("models", [])):
            _apply_model(state, m, f"{where}: models[{i}]", spec.runtime_config.max_model_params)
        for i, a in enumerate(cfg.get("assets", [])):
            _apply_asset(state, a, f"{where}: assets[{i}]")
        # In state, so the genesis hash covers the fees and limits (chain/config.py).
        state.set(RUNTIME_CONFIG_KEY, encode_runtime_config(spec.runtime_config))
    except ChainError as exc:
        if isinstance(exc, GenesisError):
            raise
        raise GenesisError(f"{where}: {exc}") from None
    return state.items


def _apply_dataset(state: StateAccess, ds: Any, where: str) -> None:
    if not isinstance(ds, dict):
        raise GenesisError(f"{where}: a data set is an object")
    source = _field(ds, "source", str, where)
    if source not in BUILTIN_SOURCES:
        raise GenesisError(f"{where}: unknown source {source!r}; built in: {BUILTIN_SOURCES}")
    x, y = ml_runtime.load_digits()
    rows = datasets.compute_rows_bytes(x, y, "classification")
    info = datasets.DatasetInfo(
        _account(_field(ds, "provider", str, where), where), _field(ds, "name", str, where), x.shape[1],
        "classification", int(y.max()) + 1, x.shape[0], datasets.compute_rows_root(rows, 4 * x.shape[1] + 4),
        _field(ds, "pricePerRow", int, where), str(ds.get("license", "")),
    )
    dataset_id = datasets.apply_new_dataset(state, info)
    datasets.apply_rows(state, dataset_id, 0, rows)


def _apply_model(state: StateAccess, m: Any, where: str, max_params: int) -> None:
    if not isinstance(m, dict):
        raise GenesisError(f"{where}: a model is an object")
    try:
        spec = ml_runtime.ModelSpec(_field(m, "family", str, where), _field(m, "d", int, where), _field(m, "k", int, where), int(m.get("h", 0)))
    except ml_runtime.MLRuntimeError as exc:
        raise GenesisError(f"{where}: {exc}") from None
    seed = _hex(_field(m, "seed", str, where), 32, f"{where}: seed")
    permission = m.get("trainingPermission", "owner")
    if permission not in calls.PERMISSIONS[:3]:
        raise GenesisError(f"{where}: trainingPermission must be one of {calls.PERMISSIONS[:3]}, got {permission!r}")
    models.apply_new_model(
        state, _account(_field(m, "owner", str, where), where), _field(m, "name", str, where), spec, seed, 0, max_params,
        permission,
    )


def _apply_asset(state: StateAccess, a: Any, where: str) -> None:
    """A genesis asset: ``{"id", "name", "symbol", "decimals", "minBalance", "owner",
    "balances": [[account, amount], ...]}``, owned and issued by ``owner``, with no deposit
    (as Substrate's genesis assets)."""
    if not isinstance(a, dict):
        raise GenesisError(f"{where}: an asset is an object")
    asset_id = _field(a, "id", int, where)
    if not 0 <= asset_id < assets.SHARES_BASE:
        raise GenesisError(f"{where}: id must be in 0..{assets.SHARES_BASE - 1} (higher ids are model shares)")
    name, symbol, decimals = _field(a, "name", str, where), _field(a, "symbol", str, where), _field(a, "decimals", int, where)
    try:  # the bounds a SetAssetMetadata call would check
        meta = calls.call_from_json({"pallet": "assets", "call": "set_metadata", "args": {
            "asset": asset_id, "name": name, "symbol": symbol, "decimals": decimals,
        }})
        assert isinstance(meta, calls.SetAssetMetadata)
    except ChainError as exc:
        raise GenesisError(f"{where}: {exc}") from None
    owner = _account(_field(a, "owner", str, where), where)
    min_balance, holders = _field(a, "minBalance", int, where), _field(a, "balances", list, where)
    try:
        assets.apply_new_asset(state, asset_id, owner, owner, min_balance, 0)
        assets.apply_metadata(state, asset_id, meta.name, meta.symbol, meta.decimals)
        for i, entry in enumerate(holders):
            if not (isinstance(entry, list) and len(entry) == 2 and type(entry[1]) is int and entry[1] > 0):
                raise GenesisError(f"{where}: balances[{i}] must be [account, amount > 0]")
            assets.apply_mint(state, asset_id, _account(entry[0], f"{where}: balances[{i}]"), entry[1])
    except DispatchError as exc:
        raise GenesisError(f"{where}: {exc}") from None


def _parse_runtime_config(obj: Any, where: str) -> RuntimeConfig:
    if not isinstance(obj, dict):
        raise GenesisError(f"{where}: runtimeConfig must be an object")
    names = {f.name for f in fields(RuntimeConfig)}
    unknown = set(obj) - names
    if unknown:
        raise GenesisError(f"{where}: runtimeConfig has unknown fields {sorted(unknown)}")
    for key, value in obj.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise GenesisError(f"{where}: runtimeConfig.{key} must be an integer >= 0")
    return RuntimeConfig(**obj)


def _parse_raw(raw: Any, where: str) -> dict[bytes, bytes]:
    top = raw.get("top") if isinstance(raw, dict) else None
    if not isinstance(top, dict):
        raise GenesisError(f"{where}: genesis.raw.top must be an object of 0x-hex keys and values")
    return {_hex(k, None, f"{where}: raw key"): _hex(v, None, f"{where}: raw value of {k}") for k, v in top.items()}


def _field(obj: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in obj:
        raise GenesisError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise GenesisError(f"{where}: field {key!r} must be a {typ.__name__}, got {type(value).__name__}")
    return value


def _account(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise GenesisError(f"{where}: an account is an SS58 address, 0x-hex or a //Dev URI")
    try:
        return parse_account(text)
    except ChainError as exc:
        raise GenesisError(f"{where}: {exc}") from None


def _hex(text: Any, size: int | None, where: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise GenesisError(f"{where}: expected 0x-prefixed hex")
    try:
        value = bytes.fromhex(text[2:])
    except ValueError:
        raise GenesisError(f"{where}: {text[:20]!r} is not hex") from None
    if size is not None and len(value) != size:
        raise GenesisError(f"{where}: expected {size} bytes, got {len(value)}")
    return value


class _DictState:
    """A plain key/value state used to compute genesis storage before any database exists."""

    def __init__(self) -> None:
        self.items: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.items[key] = value

    def delete(self, key: bytes) -> None:
        self.items.pop(key, None)


