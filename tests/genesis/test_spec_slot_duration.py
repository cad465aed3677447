"""The slot duration is the chain's: a runtime constant of the spec, in the genesis hash.

As Substrate's pallet-aura ``SlotDuration`` (pallet-timestamp's ``MinimumPeriod * 2``, read by
the node through ``AuraApi::slot_duration``): every node of a chain agrees on it by
construction, not because each was given the same command-line flag.
"""

from __future__ import annotations

import copy
import json

import pytest

from chain.blockchain import Blockchain
from chain.config import (
    MAX_SLOT_DURATION_MS,
    RuntimeConfig,
    decode_runtime_config,
    encode_runtime_config,
)
from chain.errors import GenesisError
from chain.storage import Database
from genesis.spec import load_chain_spec, parse_chain_spec, with_slot_duration


def _genesis_hash(path, spec) -> bytes:
    db = Database(path)
    try:
        return Blockchain(db, chain_id=spec.id, build_genesis=spec.apply_genesis).genesis_hash
    finally:
        db.close()


def _spec_json(**runtime_config: int) -> dict:
    obj = copy.deepcopy(load_chain_spec("dev").to_json())
    obj["runtimeConfig"].update(runtime_config)
    return obj


def test_the_default_is_six_seconds_and_a_spec_names_it() -> None:
    assert RuntimeConfig().slot_duration_ms == 6000
    for preset in ("dev", "local"):
        spec = load_chain_spec(preset)
        assert spec.runtime_config.slot_duration_ms == 6000
        assert spec.to_json()["runtimeConfig"]["slot_duration_ms"] == 6000  # build-spec shows it
    assert parse_chain_spec(_spec_json(slot_duration_ms=500)).runtime_config.slot_duration_ms == 500
    config = RuntimeConfig(slot_duration_ms=1234)
    assert decode_runtime_config(encode_runtime_config(config)) == config


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"runtimeConfig\.slot_duration_ms must be 1 to 3,600,000 ms \(1 hour\), got 0: "),
        (MAX_SLOT_DURATION_MS + 1, r"runtimeConfig\.slot_duration_ms must be 1 to 3,600,000 ms \(1 hour\), got 3,600,001: "),
        (2**63 - 1, r"runtimeConfig\.slot_duration_ms must be 1 to 3,600,000 ms"),
    ],
)
def test_a_slot_duration_of_zero_or_past_an_hour_is_refused_naming_the_field(value: int, message: str) -> None:
    with pytest.raises(GenesisError, match=message):
        parse_chain_spec(_spec_json(slot_duration_ms=value))


def test_the_bounds_themselves_are_accepted() -> None:
    for value in (1, MAX_SLOT_DURATION_MS):
        assert parse_chain_spec(_spec_json(slot_duration_ms=value)).runtime_config.slot_duration_ms == value


def test_the_slot_duration_is_in_the_genesis_hash_and_a_raw_spec_keeps_it(tmp_path) -> None:
    six, two = load_chain_spec("dev"), parse_chain_spec(_spec_json(slot_duration_ms=2000))
    assert _genesis_hash(tmp_path / "six", six) != _genesis_hash(tmp_path / "two", two)
    raw = parse_chain_spec(json.loads(json.dumps(two.to_json(raw=True))))
    assert raw.raw is not None and raw.runtime_config.slot_duration_ms == 2000
    assert _genesis_hash(tmp_path / "raw", raw) == _genesis_hash(tmp_path / "two2", two)
    # A raw spec whose stated runtimeConfig says another duration than its storage says two things.
    obj = two.to_json(raw=True)
    obj["runtimeConfig"]["slot_duration_ms"] = 6000
    with pytest.raises(GenesisError, match=r"runtimeConfig disagrees with genesis\.raw: slot_duration_ms 2000 \(genesis\.raw\) vs 6000"):
        parse_chain_spec(obj)


def test_with_slot_duration_builds_a_spec_and_refuses_a_raw_one_or_a_bad_value() -> None:
    dev = load_chain_spec("dev")
    built = with_slot_duration(dev, 1000)
    assert built.runtime_config.slot_duration_ms == 1000
    assert built.runtime_config == RuntimeConfig(**{**vars_of(dev.runtime_config), "slot_duration_ms": 1000})
    assert with_slot_duration(dev, 6000) == dev
    with pytest.raises(GenesisError, match=r"runtimeConfig\.slot_duration_ms must be 1 to 3,600,000 ms"):
        with_slot_duration(dev, 0)
    raw = parse_chain_spec(dev.to_json(raw=True))
    with pytest.raises(GenesisError, match="a raw chain spec's slot duration is in its genesis storage"):
        with_slot_duration(raw, 1000)


def vars_of(config: RuntimeConfig) -> dict[str, int]:
    from dataclasses import asdict

    return asdict(config)
