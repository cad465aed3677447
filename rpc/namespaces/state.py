"""``state_*``: raw storage reads, key paging and read proofs (Substrate's state API).

Keys are at most 256 bytes (the trie's ``MAX_KEY_LEN``); ``state_getKeysPaged`` returns
at most 1000 keys per call, in key order, strictly after ``start_key``; a read proof
holds at most 1000 keys and verifies with `chain.trie.verify_read_proof` against the
``stateRoot`` of the block in its ``at``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from chain.config import SPEC_NAME, SPEC_VERSION, TRANSACTION_VERSION
from rpc.methods import MethodTable, bind_params
from rpc.params import At, KeysCount, OptionalStorageKey, StorageKey, StorageKeys
from rpc.reads import block_at, pruned_while_read, run_read, state_at, state_root_at
from rpc.shapes import hexb

if TYPE_CHECKING:
    from rpc.api import NodeApi


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def state_getStorage(key: StorageKey, at: At = None) -> str | None:
        root = state_root_at(chain, at)
        with pruned_while_read(chain, root):
            value = chain.state.get(key, at=root)
        return None if value is None else hexb(value)

    @bind_params
    async def state_getKeysPaged(
        prefix: OptionalStorageKey, count: KeysCount, start_key: OptionalStorageKey = None, at: At = None
    ) -> list[str]:
        root = state_root_at(chain, at)
        with pruned_while_read(chain, root):
            keys = await run_read(chain.state.keys_paged, prefix or b"", count, start_key, at=root)
        return [hexb(k) for k in keys]

    @bind_params
    async def state_getReadProof(keys: StorageKeys, at: At = None) -> dict[str, Any]:
        block_hash = block_at(chain, at)
        root = state_root_at(chain, block_hash)
        with pruned_while_read(chain, root):
            proof = await run_read(chain.state.prove, keys, at=root)
        return {"at": hexb(block_hash), "proof": [hexb(node) for node in proof]}

    @bind_params
    async def state_getRuntimeVersion(at: At = None) -> dict[str, Any]:
        block_at(chain, at)  # one runtime so far: the block only has to exist
        return {
            "specName": SPEC_NAME, "implName": "polchain-node", "authoringVersion": 1,
            "specVersion": SPEC_VERSION, "implVersion": 1, "apis": [],
            "transactionVersion": TRANSACTION_VERSION, "stateVersion": 1,
        }

    @bind_params
    async def state_getRuntimeConfig(at: At = None) -> dict[str, int]:
        """The runtime config in the state after block ``at`` (default best): the config
        its children run with (genesis sets it; a referendum may change it,
        chain.pallets.democracy). Every field a JSON number, as the chain spec's
        ``runtimeConfig``."""
        return dataclasses.asdict(chain.runtime_of(state_at(chain, at)).config)

    for fn in (state_getStorage, state_getKeysPaged, state_getReadProof, state_getRuntimeVersion, state_getRuntimeConfig):
        table.register(fn.__name__, fn)
    return table
