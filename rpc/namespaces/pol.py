"""``pol_getOffences``: the offences the runtime has punished (chain.pallets.pol) and the
validator set's pending and past removals (chain.pallets.staking).

One page holds at most :data:`PAGE` offences in storage-key order; ``next`` is the storage
key to pass as ``start_key`` (the second parameter) for the next page, or null after the last. Amounts are decimal
strings, accounts SS58, offence keys 0x-hex (kind prefix ``fraud/`` + block hash, ``aura/``
+ slot + author, ``vote/`` + set id + round + voter; numbers u64 big-endian).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.codec import decode
from chain.crypto import ss58_encode
from chain.pallets import pol, staking
from rpc.methods import MethodTable, bind_params
from rpc.params import At, OptionalStorageKey
from rpc.reads import state_at, state_root_at
from rpc.shapes import hexb

if TYPE_CHECKING:
    from rpc.api import NodeApi

PAGE = 1000
KINDS = {pol.OFFENCE_FRAUD: "fraud", pol.OFFENCE_AURA: "aura", pol.OFFENCE_VOTE: "vote"}


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def pol_getOffences(at: At = None, start_key: OptionalStorageKey = None) -> dict[str, Any]:
        state = state_at(chain, at)
        keys = chain.state.keys_paged(pol.OFFENCES.prefix, PAGE + 1, start_key, at=state_root_at(chain, at))
        offences = []
        for key in keys[:PAGE]:
            raw = state.get(key)
            if raw is None:
                continue
            offence = decode(raw, pol.Offence)
            offences.append({
                "key": hexb(key[len(pol.OFFENCES.prefix) + 16 :]), "storageKey": hexb(key),
                "kind": KINDS.get(offence.kind, str(offence.kind)), "offender": ss58_encode(offence.offender),
                "reporter": ss58_encode(offence.reporter), "block": offence.block, "slashed": str(offence.slashed),
                "reporterReward": str(offence.reporter_reward), "burned": str(offence.burned),
            })
        validators = staking.get_validators(state)
        removed = []  # at most the genesis validators: no call adds a validator
        for key in chain.state.keys_paged(staking.REMOVED.prefix, PAGE, at=state_root_at(chain, at)):
            raw = state.get(key)
            if raw is not None:
                removal = decode(raw, staking.Removal)
                removed.append({"who": ss58_encode(key[-32:]), "era": removal.era, "block": removal.block})
        return {
            "offences": offences,
            "next": hexb(keys[PAGE - 1]) if len(keys) > PAGE else None,
            "validators": [ss58_encode(v) for v in validators],
            "pendingRemoval": [ss58_encode(v) for v in staking.PENDING_REMOVAL.get(state)],
            "removed": removed,
        }

    table.register("pol_getOffences", pol_getOffences)
    return table
