"""``fl_*``: federated rounds, their updates and the lineage of the versions they made.

- ``fl_getRound(round, at?)``: the round's parameters, status, participants in commit order,
  challenge seed, forfeited bonds, the fewest reveals a block the limits allowed
  (``revealRate``: at the opening, then since the challenge), and, once closed, the new version with its lineage
  (each accepted participant's data root, row count, transcript root and sample count, in
  FedAvg order); ``null`` for an unknown round.
- ``fl_listRounds(start?, at?)``: summaries of at most MAX_LIST rounds from ``start``
  (default: the newest MAX_LIST), oldest first.
- ``fl_getUpdate(round, account, at?)``: one participant's update: its commitments, the
  segments it must reveal (after the challenge), those verified, status, the reason it was
  excluded (or excused: left unrevealed by a window the lowered block limits could no longer
  fill, its bond returned), its reward; ``null`` if that account committed nothing to that round.

Round ids are u32; accounts SS58 or 0x-hex (as everywhere); balances are decimal strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain import calls
from chain.crypto import ss58_encode
from chain.pallets import federated
from rpc.methods import MethodTable, bind_params
from rpc.params import AccountId, At, Id, OptionalId
from rpc.reads import state_at
from rpc.shapes import hexb

if TYPE_CHECKING:
    from rpc.api import NodeApi

MAX_LIST = 100


def round_json(round_id: int, info: federated.RoundInfo) -> dict[str, Any]:
    return {
        "id": round_id, "owner": ss58_encode(info.owner), "model": info.model, "baseVersion": info.base_version,
        "allowlist": [ss58_encode(a) for a in info.allowlist], "localSteps": info.local_steps,
        "batchSize": info.batch_size, "lr": calls.compute_f32_value(info.lr), "l2": calls.compute_f32_value(info.l2),
        "segmentLen": info.segment_len, "segments": info.segments, "samples": info.samples,
        "minUpdates": info.min_updates, "maxUpdates": info.max_updates, "bond": str(info.bond),
        "rewardPool": str(info.reward_pool), "commitDeadline": info.commit_deadline,
        "revealDeadline": info.reveal_deadline, "openedAt": info.opened_at, "status": info.status,
        "participants": [ss58_encode(a) for a in info.participants], "totalSamples": info.total_samples,
        "forfeited": str(info.forfeited),
        "challengeSeed": None if info.challenge_seed is None else hexb(info.challenge_seed),
        "newVersion": info.new_version, "revealRate": info.reveal_rate,
    }


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def fl_getRound(round: Id, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = federated.ROUNDS.get(state, round)
        if info is None:
            return None
        out = round_json(round, info)
        lineage = None if info.new_version is None else federated.LINEAGE.get(state, info.model, info.new_version)
        out["lineage"] = None if lineage is None else [
            {"participant": ss58_encode(e.participant), "dataRoot": hexb(e.data_root), "rowCount": e.row_count,
             "transcriptRoot": hexb(e.transcript_root), "sampleCount": e.sample_count}
            for e in lineage.entries
        ]
        return out

    @bind_params
    async def fl_listRounds(start: OptionalId = None, at: At = None) -> list[dict[str, Any]]:
        state = state_at(chain, at)
        end = federated.NEXT_ROUND.get(state)
        first = max(0, end - MAX_LIST) if start is None else start
        return [
            round_json(i, info)
            for i in range(first, min(end, first + MAX_LIST))
            if (info := federated.ROUNDS.get(state, i)) is not None
        ]

    @bind_params
    async def fl_getUpdate(round: Id, account: AccountId, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = federated.ROUNDS.get(state, round)
        update = federated.UPDATES.get(state, round, account)
        if info is None or update is None:
            return None
        return {
            "round": round, "participant": ss58_encode(account), "dataRoot": hexb(update.data_root),
            "rowCount": update.row_count, "sampleCount": update.sample_count,
            "weightsHash": hexb(update.weights_hash), "transcriptRoot": hexb(update.transcript_root),
            "lossCurve": [calls.compute_f32_value(b) for b in update.losses[1:]],
            "committedAt": update.committed_at, "status": update.status,
            "challenged": list(federated.compute_challenged(info, account)), "verified": list(update.verified),
            "reason": update.reason or None, "reward": str(update.reward),
        }

    for fn in (fl_getRound, fl_listRounds, fl_getUpdate):
        table.register(fn.__name__, fn)
    return table
