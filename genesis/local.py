"""The ``local`` preset generalised to N validators (what ``polchain devnet`` starts).

Validator i (0-based) is the dev account ``//Alice``, ``//Bob``, ``//Charlie``, ``//Dave``,
``//Eve``, ``//Ferdie`` for i < 6, then ``//Validator7``, ``//Validator8``, … (the number is
the validator's 1-based position, so the names count on from the six). Each extra validator
gets the same endowment as a dev account, enough to bond. Everything else (data set 0, model
0, runtime constants, the chain id) is the ``local`` preset's, so ``local_spec(4)`` *is* the
preset, with the same genesis hash, and a node started with ``--chain local`` can join a
4-validator devnet.
"""

from __future__ import annotations

import copy
from typing import Any

from chain.crypto import DEV_ACCOUNTS
from chain.errors import GenesisError
from genesis.spec import ChainSpec, load_chain_spec, parse_chain_spec

# One machine runs every node of a devnet; each is a process of a few hundred MB.
MAX_VALIDATORS = 64
PRESET_VALIDATORS = 4


def validator_names(n: int) -> tuple[str, ...]:
    """The first ``n`` validator names: Alice .. Ferdie, then Validator7, Validator8, …"""
    if not 1 <= n <= MAX_VALIDATORS:
        raise GenesisError(f"a local chain has 1 to {MAX_VALIDATORS} validators, not {n}")
    return tuple(DEV_ACCOUNTS[i] if i < len(DEV_ACCOUNTS) else f"Validator{i + 1}" for i in range(n))


def local_spec(n: int) -> ChainSpec:
    """The ``local`` chain spec with validators ``validator_names(n)`` (see module doc)."""
    names = validator_names(n)
    preset = load_chain_spec("local")
    obj: dict[str, Any] = copy.deepcopy(preset.to_json())
    config = obj["genesis"]["runtimeGenesisConfig"]
    endowed = {entry[0] for entry in config["balances"]}
    endowment = max(entry[1] for entry in config["balances"])
    config["balances"] += [["//" + name, endowment] for name in names if "//" + name not in endowed]
    config["validators"] = ["//" + name for name in names]
    if n != PRESET_VALIDATORS:
        obj["name"] = f"{preset.name} ({n} validators)"
    return parse_chain_spec(obj, f"local spec for {n} validators")
