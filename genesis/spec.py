"""Chain specs: the JSON a node starts from, its loader, and the genesis state it describes.

The JSON follows Substrate's chain spec: ``name``, ``id``, ``chainType``, ``bootNodes``,
``protocolId``, ``properties`` (tokenSymbol, tokenDecimals, ss58Format) and ``genesis``,
which is either ``{"runtimeGenesisConfig": {...}}`` (human-readable: balances, validators,
models, data sets, runtime constants) or, after ``build-spec --raw``, ``{"raw": {"top":
{"0x<key>": "0x<value>"}}}`` (the storage itself). Both give the same genesis hash.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import ml_runtime
from chain import calls
from chain.config import (
    RUNTIME_CONFIG_KEY,
    RUNTIME_VERSION_KEY,
    SPEC_NAME,
    SPEC_VERSION,
    RuntimeConfig,
    decode_runtime_config,
    describe_runtime_version,
    encode_runtime_config,
    encode_runtime_version,
)
from chain.crypto import SS58_PREFIX, parse_account, ss58_encode
from chain.errors import ChainError, DispatchError, GenesisError
from chain.pallets import assets, balances, datasets, models
from chain.pallets.items import StateAccess
from chain.pallets.staking import VALIDATORS

PRESETS = ("dev", "local")
# Substrate's chain spec ids are lowercase letters, digits, '_' and '-'; here the id is also a
# directory name under --base-path (chains/<id>/db), so nothing else may appear in it.
CHAIN_ID = re.compile(r"[a-z0-9_-]{1,64}")
MAX_SPEC_DEPTH = 32  # the deepest real spec is 6 levels; json and json.dumps recurse
MAX_BALANCE = 2**63 - 1  # chain.codec.Balance
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
    """``dev``, ``local`` or a path to a chain spec JSON file (UTF-8, RFC 8259)."""
    if chain in PRESETS:
        data = resources.files("genesis").joinpath("presets", f"{chain}.json").read_bytes()
        where = f"preset {chain!r}"
    else:
        path = Path(chain)
        if path.exists() and not path.is_file():  # /dev/zero, a pipe, a folder (as the other file flags say)
            raise GenesisError(f"--chain {chain}: not a regular file")
        if not path.is_file():
            raise GenesisError(f"no chain spec at {chain!r} (and it is not one of the presets {', '.join(PRESETS)})")
        data, where = path.read_bytes(), str(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenesisError(f"{where}: not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's 4,300 digits
        raise GenesisError(f"{where}: not JSON: {exc}") from None
    except RecursionError:
        raise GenesisError(f"{where}: JSON nested deeper than {MAX_SPEC_DEPTH} levels") from None
    return parse_chain_spec(obj, where)


def _check_depth(obj: Any, where: str) -> None:
    """Refuse JSON nested deeper than MAX_SPEC_DEPTH, without recursing."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_SPEC_DEPTH:
            raise GenesisError(f"{where}: JSON nested deeper than {MAX_SPEC_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def parse_chain_spec(obj: Any, where: str = "chain spec") -> ChainSpec:
    """Validate a chain spec's JSON; GenesisError names the field that is wrong."""
    if not isinstance(obj, dict):
        raise GenesisError(f"{where}: a chain spec is a JSON object")
    _check_depth(obj, where)
    name = _field(obj, "name", str, where)
    chain_id = _field(obj, "id", str, where)
    if not CHAIN_ID.fullmatch(chain_id):
        raise GenesisError(
            f"{where}: id {chain_id[:80]!r} must be 1-64 lowercase letters, digits, '_' or '-' "
            "(it names the database directory under --base-path)"
        )
    protocol_id = obj.get("protocolId", chain_id)
    if not isinstance(protocol_id, str) or not CHAIN_ID.fullmatch(protocol_id):
        raise GenesisError(f"{where}: protocolId must be 1-64 lowercase letters, digits, '_' or '-'")
    chain_type = _field(obj, "chainType", str, where)
    if chain_type not in CHAIN_TYPES:
        raise GenesisError(f"{where}: chainType must be one of {CHAIN_TYPES}, got {chain_type!r}")
    boot_nodes = obj.get("bootNodes", [])
    if not isinstance(boot_nodes, list) or not all(isinstance(b, str) for b in boot_nodes):
        raise GenesisError(f"{where}: bootNodes must be a list of strings")
    properties = _field(obj, "properties", dict, where)
    for key, typ in (("tokenSymbol", str), ("tokenDecimals", int), ("ss58Format", int)):
        _field(properties, key, typ, f"{where}: properties")
    if not 0 <= properties["tokenDecimals"] <= 18:
        raise GenesisError(f"{where}: properties.tokenDecimals must be in 0..18 (a balance is at most 2^63-1)")
    if properties["ss58Format"] != SS58_PREFIX:
        raise GenesisError(f"{where}: properties.ss58Format must be {SS58_PREFIX}: polchain addresses use the generic prefix")
    runtime_config = _parse_runtime_config(obj.get("runtimeConfig", {}), where)
    genesis = _field(obj, "genesis", dict, where)
    config = raw = None
    if "raw" in genesis:
        raw = _parse_raw(genesis["raw"], where)
        if VALIDATORS.key not in raw:
            raise GenesisError(f"{where}: genesis.raw has no validators (Staking.Validators): no block could ever be authored")
        _check_raw_runtime_version(raw, where)
        runtime_config = _raw_runtime_config(raw, runtime_config if "runtimeConfig" in obj else None, where)
    elif "runtimeGenesisConfig" in genesis:
        config = genesis["runtimeGenesisConfig"]
    else:
        raise GenesisError(f"{where}: genesis needs 'runtimeGenesisConfig' or 'raw'")
    check_runtime_config(runtime_config, where)
    spec = ChainSpec(
        name, chain_id, chain_type, tuple(boot_nodes), properties, protocol_id,
        config, raw, runtime_config,
    )
    if config is not None:
        compute_genesis_storage(spec)  # validates the config now, with its messages
    return spec


def with_slot_duration(spec: ChainSpec, slot_duration_ms: int) -> ChainSpec:
    """``spec`` with ``runtimeConfig.slot_duration_ms`` set: what ``--block-time`` does to a spec
    the node or ``build-spec`` builds (a preset, a devnet's). A new value makes another chain
    (the genesis hash covers it). A raw spec is a chain already built: its duration is in its
    genesis storage, and only the same value is accepted. GenesisError if out of bounds."""
    if slot_duration_ms == spec.runtime_config.slot_duration_ms:
        return spec
    if spec.raw is not None:
        raise GenesisError(
            f"chain spec {spec.id!r}: a raw chain spec's slot duration is in its genesis storage "
            f"(slot_duration_ms {spec.runtime_config.slot_duration_ms}), not {slot_duration_ms}"
        )
    runtime_config = replace(spec.runtime_config, slot_duration_ms=slot_duration_ms)
    check_runtime_config(runtime_config, f"chain spec {spec.id!r}")
    return replace(spec, runtime_config=runtime_config)


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
        total = 0
        endowed: set[bytes] = set()
        for i, entry in enumerate(_field(cfg, "balances", list, where)):
            if not (isinstance(entry, list) and len(entry) == 2 and _is_int(entry[1]) and 0 <= entry[1] <= MAX_BALANCE):
                raise GenesisError(f"{where}: balances[{i}] must be [account, amount in 0..2^63-1]")
            if entry[1] < spec.runtime_config.existential_deposit:
                # As Substrate's pallet-balances genesis: an account below the existential
                # deposit could not exist, and would be reaped by its first transfer.
                raise GenesisError(
                    f"{where}: balances[{i}]: {entry[1]} is below runtimeConfig.existential_deposit "
                    f"({spec.runtime_config.existential_deposit})"
                )
            total += entry[1]
            if total > MAX_BALANCE:
                raise GenesisError(f"{where}: balances[{i}]: the total issuance exceeds 2^63-1")
            who = _account(entry[0], f"{where}: balances[{i}]")
            _check_once(who, endowed, f"{where}: balances[{i}]")
            balances.apply_mint(state, who, entry[1])
        validators = tuple(_account(v, f"{where}: validators") for v in _field(cfg, "validators", list, where))
        if not validators:
            raise GenesisError(f"{where}: at least one validator is needed")
        seen: set[bytes] = set()
        for i, v in enumerate(validators):
            # Each entry is an Aura slot and a finality vote: one key twice would hold two.
            _check_once(v, seen, f"{where}: validators[{i}]")
        for v in validators:
            info = balances.get_account(state, v)
            bond = min(info.free, spec.runtime_config.min_validator_bond)
            if bond < spec.runtime_config.min_validator_bond:
                raise GenesisError(f"{where}: validator {ss58_encode(v)} cannot bond {spec.runtime_config.min_validator_bond}")
            balances.apply_account(state, v, balances.AccountInfo(info.nonce, info.free - bond, info.staked + bond))
        VALIDATORS.apply_set(state, validators)
        for i, ds in enumerate(_optional(cfg, "datasets", list, [], where)):
            _apply_dataset(state, ds, f"{where}: datasets[{i}]")
        for i, m in enumerate(_optional(cfg, "models", list, [], where)):
            _apply_model(state, m, f"{where}: models[{i}]", spec.runtime_config.max_model_params)
        for i, a in enumerate(_optional(cfg, "assets", list, [], where)):
            _apply_asset(state, a, f"{where}: assets[{i}]")
        # In state, so the genesis hash covers the fees and limits, and the rules (chain/config.py).
        state.set(RUNTIME_CONFIG_KEY, encode_runtime_config(spec.runtime_config))
        state.set(RUNTIME_VERSION_KEY, encode_runtime_version())
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
    license_text = _optional(ds, "license", str, "", where)
    if len(license_text) > 4096:
        raise GenesisError(f"{where}: license is longer than 4096 characters")
    x, y = ml_runtime.load_digits()
    rows = datasets.compute_rows_bytes(x, y, "classification")
    info = datasets.DatasetInfo(
        _account(_field(ds, "provider", str, where), where), _name(ds, where), x.shape[1],
        "classification", int(y.max()) + 1, x.shape[0], datasets.compute_rows_root(rows, 4 * x.shape[1] + 4),
        _amount(ds, "pricePerRow", where), license_text,
    )
    dataset_id = datasets.apply_new_dataset(state, info)
    datasets.apply_rows(state, dataset_id, 0, rows, 0)


def _apply_model(state: StateAccess, m: Any, where: str, max_params: int) -> None:
    if not isinstance(m, dict):
        raise GenesisError(f"{where}: a model is an object")
    try:
        spec = ml_runtime.ModelSpec(
            _field(m, "family", str, where), _field(m, "d", int, where), _field(m, "k", int, where),
            _optional(m, "h", int, 0, where),
        )
    except ml_runtime.MLRuntimeError as exc:
        raise GenesisError(f"{where}: {exc}") from None
    seed = _hex(_field(m, "seed", str, where), 32, f"{where}: seed")
    permission = m.get("trainingPermission", "owner")
    if permission not in calls.PERMISSIONS[:3]:
        raise GenesisError(f"{where}: trainingPermission must be one of {calls.PERMISSIONS[:3]}, got {permission!r}")
    models.apply_new_model(
        state, _account(_field(m, "owner", str, where), where), _name(m, where), spec, seed, 0, max_params,
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
    except ChainError as exc:
        raise GenesisError(f"{where}: {exc}") from None
    if not isinstance(meta, calls.SetAssetMetadata):  # what call_from_json built for that JSON
        raise GenesisError(f"{where}: not asset metadata")
    owner = _account(_field(a, "owner", str, where), where)
    min_balance, holders = _amount(a, "minBalance", where), _field(a, "balances", list, where)
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


def check_runtime_config(cfg: RuntimeConfig, where: str) -> None:
    """Refuse constants that start a chain on which nothing useful can happen, naming the
    field: the first of :meth:`chain.config.RuntimeConfig.compute_problems` (the one table
    of bounds, which runtime-config referenda are held to as well)."""
    problems = cfg.compute_problems()
    if problems:
        raise GenesisError(f"{where}: runtimeConfig.{problems[0]}")


def _check_raw_runtime_version(raw: dict[bytes, bytes], where: str) -> None:
    """A raw spec's genesis names the runtime it was built for: this node runs only its own."""
    stored = raw.get(RUNTIME_VERSION_KEY)
    if stored != encode_runtime_version():
        raise GenesisError(
            f"{where}: genesis.raw is for runtime {describe_runtime_version(stored)}; this node implements "
            f"{SPEC_NAME}/{SPEC_VERSION} (build the spec again with this node's build-spec)"
        )


def _raw_runtime_config(raw: dict[bytes, bytes], stated: RuntimeConfig | None, where: str) -> RuntimeConfig:
    """The constants a raw spec's genesis storage holds (what its genesis hash covers); a
    ``runtimeConfig`` stated beside them must agree, or the spec says two things at once."""
    value = raw.get(RUNTIME_CONFIG_KEY)
    if value is None:
        raise GenesisError(f"{where}: genesis.raw has no runtime config ({RUNTIME_CONFIG_KEY!r}): fees and limits are unknown")
    try:
        stored = decode_runtime_config(value)
    except ChainError as exc:
        raise GenesisError(f"{where}: genesis.raw's runtime config is malformed: {exc}") from None
    if stated is not None and stated != stored:
        differences = "; ".join(stored.compute_differences(stated)).replace("(stored)", "(genesis.raw)")
        raise GenesisError(f"{where}: runtimeConfig disagrees with genesis.raw: {differences}")
    return stored


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


def _check_once(who: bytes, seen: set[bytes], where: str) -> None:
    """Refuse an account listed twice (Substrate's balances genesis: "duplicate balances in
    genesis"; its staking genesis refuses a stash bonded twice), whatever form names it."""
    if who in seen:
        raise GenesisError(f"{where}: {ss58_encode(who)} is listed twice")
    seen.add(who)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(obj: dict[str, Any], key: str, typ: type, default: Any, where: str) -> Any:
    return _field(obj, key, typ, where) if key in obj else default


def _amount(obj: dict[str, Any], key: str, where: str) -> int:
    value = _field(obj, key, int, where)
    if not 0 <= value <= MAX_BALANCE:
        raise GenesisError(f"{where}: {key} must be in 0..2^63-1")
    return int(value)


def _name(obj: dict[str, Any], where: str) -> str:
    value = _field(obj, "name", str, where)
    if not 1 <= len(value) <= 64:
        raise GenesisError(f"{where}: name must be 1-64 characters")
    return str(value)


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


