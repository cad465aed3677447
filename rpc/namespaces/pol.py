"""``pol_getOffences``: the offences the runtime has punished (chain.pallets.pol) and the
validator set's pending and past removals (chain.pallets.staking). ``pol_getRewards``: the
era's reward pots and each validator's era points, authored and voted (chain.pallets.rewards).

One page holds at most :data:`PAGE` offences in storage-key order; ``next`` is the storage
key to pass as ``start_key`` (the second parameter) for the next page, or null after the last. Amounts are decimal
strings, accounts SS58, offence keys 0x-hex (kind prefix ``fraud/`` + block hash, ``aura/``
+ slot + author, ``vote/`` + set id + round + voter; numbers u64 big-endian).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.codec import decode
from chain.crypto import ss58_encode
from chain.pallets import pol, rewards, staking
from chain.pallets.balances import get_account
from rpc.methods import MethodTable, bind_params
from rpc.params import At, OptionalStorageKey
from rpc.reads import block_at, state_at
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
        keys = state.keys_paged(pol.OFFENCES.prefix, PAGE + 1, start_key)
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
        for key in state.keys_paged(staking.REMOVED.prefix, PAGE):
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

    @bind_params
    async def pol_getRewards(at: At = None) -> dict[str, Any]:
        """The era in progress at ``at``: its two pots, what each validator (and any earner
        that left the set) has earned in points so far, split into blocks authored and blocks
        its noted finality votes covered, and the block its votes are credited up to."""
        state = state_at(chain, at)
        block_hash = block_at(chain, at)
        number = chain.get_header(block_hash).number
        config = chain.runtime_of(state).config  # the config of the state read, not the best one
        validators = staking.get_validators(state)
        known = set(validators)
        accounts = list(validators) + [e for e in rewards.EARNERS.get(state) if e not in known]
        listed = []
        for who in accounts:  # the validator set and the earners: both bounded by the genesis validators
            points = rewards.get_points(state, who)
            listed.append({
                "account": ss58_encode(who), "authoredPoints": points.authored, "votedPoints": points.voted,
                "creditedTo": rewards.CREDITED.get(state, who),
            })
        era_length = config.era_length
        return {
            "block": number, "eraLength": era_length,
            "era": number // era_length if era_length else 0,
            "nextPayout": (number // era_length + 1) * era_length if era_length else None,
            "enabled": rewards.is_enabled(config),
            "blockReward": str(rewards.compute_minted_reward(state, config, number + 1)),
            "voterRewardSharePpm": config.voter_reward_share_ppm, "validatorFeeSharePpm": config.validator_fee_share_ppm,
            "authorPot": str(get_account(state, rewards.POT_ACCOUNT).free),
            "voterPot": str(get_account(state, rewards.VOTER_POT_ACCOUNT).free),
            "authorPotAccount": ss58_encode(rewards.POT_ACCOUNT), "voterPotAccount": ss58_encode(rewards.VOTER_POT_ACCOUNT),
            "validators": listed,
        }

    table.register("pol_getOffences", pol_getOffences)
    table.register("pol_getRewards", pol_getRewards)
    return table
