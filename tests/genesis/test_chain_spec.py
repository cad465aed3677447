"""Chain specs: presets, the loader's errors, and raw specs that give the same genesis."""

from __future__ import annotations

import copy
import json

import pytest

from chain.blockchain import Blockchain
from chain.errors import GenesisError
from chain.storage import Database
from genesis.spec import load_chain_spec, parse_chain_spec


def _genesis_hash(tmp_path, spec) -> bytes:
    db = Database(tmp_path)
    try:
        return Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis).genesis_hash
    finally:
        db.close()


def test_presets_have_substrate_fields() -> None:
    for name, validators in (("dev", 1), ("local", 4)):
        spec = load_chain_spec(name)
        obj = spec.to_json()
        assert {"name", "id", "chainType", "bootNodes", "properties", "genesis"} <= obj.keys()
        assert obj["properties"] == {"tokenSymbol": "POL", "tokenDecimals": 9, "ss58Format": 42}
        assert len(obj["genesis"]["runtimeGenesisConfig"]["validators"]) == validators


def test_raw_spec_gives_the_same_genesis_hash(tmp_path) -> None:
    spec = load_chain_spec("dev")
    raw = parse_chain_spec(json.loads(json.dumps(spec.to_json(raw=True))))
    assert raw.raw is not None and raw.config is None
    assert _genesis_hash(tmp_path / "a", spec) == _genesis_hash(tmp_path / "b", raw)


def test_a_spec_file_loads(tmp_path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(load_chain_spec("local").to_json()))
    assert load_chain_spec(str(path)).id == "local_testnet"


def _broken(mutate) -> dict:
    obj = copy.deepcopy(load_chain_spec("dev").to_json())
    mutate(obj)
    return obj


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.pop("name"), "missing field 'name'"),
        (lambda o: o.__setitem__("chainType", "Testing"), "chainType must be one of"),
        (lambda o: o["properties"].__setitem__("tokenDecimals", "9"), "'tokenDecimals' must be a int"),
        (lambda o: o.__setitem__("genesis", {}), "needs 'runtimeGenesisConfig' or 'raw'"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["balances"].append(["//Zed", -1]), r"balances\[6\] must be"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["balances"].append(["5Bad", 1]), r"balances\[6\]"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"].__setitem__("validators", []), "at least one validator"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["validators"].append("//Nobody"), "cannot bond"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["models"][0].__setitem__("family", "cnn"), r"models\[0\]"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["models"][0].__setitem__("seed", "0x12"), "expected 32 bytes"),
        (lambda o: o["genesis"]["runtimeGenesisConfig"]["datasets"][0].__setitem__("source", "mnist"), "unknown source"),
        (lambda o: o.__setitem__("runtimeConfig", {"base_fee": -1}), "must be an integer >= 0"),
        (lambda o: o.__setitem__("runtimeConfig", {"fees": 1}), "unknown fields"),
    ],
)
def test_bad_specs_say_what_is_wrong(mutate, message: str) -> None:
    with pytest.raises(GenesisError, match=message):
        parse_chain_spec(_broken(mutate))


def test_bad_spec_files(tmp_path) -> None:
    with pytest.raises(GenesisError, match="no chain spec at"):
        load_chain_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(GenesisError, match="not JSON"):
        load_chain_spec(str(bad))
    raw = tmp_path / "raw.json"
    obj = load_chain_spec("dev").to_json()
    obj["genesis"] = {"raw": {"top": {"0xzz": "0x00"}}}
    raw.write_text(json.dumps(obj))
    with pytest.raises(GenesisError, match="is not hex"):
        load_chain_spec(str(raw))
