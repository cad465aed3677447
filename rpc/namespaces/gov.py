"""``gov_*``: shared models' proposals and their votes (chain.pallets.governance).

``gov_getProposal(id)`` is one proposal: its model, proposer, action (the proposing call's
JSON form), the block it was made and when voting ends, the quorum and threshold it is
judged by (ppm), ayes and nays in shares, and its ``status`` (``voting``, ``passed`` with
``enactAt``, ``rejected``, ``enacted`` or ``failed`` with a ``note`` saying why);
``null`` for an id nobody made. ``gov_listProposals(model)`` lists a model's open
proposals (voting or waiting to be enacted), each as ``gov_getProposal`` shows it, with the
model's governance parameters and treasury balance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain import calls
from chain.crypto import ss58_encode
from chain.pallets import balances, governance, models, revenue
from rpc.methods import MethodTable, bind_params
from rpc.params import At, Id
from rpc.reads import state_at

if TYPE_CHECKING:
    from rpc.api import NodeApi


def proposal_json(proposal_id: int, p: governance.Proposal) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": proposal_id, "model": p.model, "proposer": ss58_encode(p.proposer), "action": calls.call_to_json(p.action),
        "created": p.created, "ends": p.ends, "enactmentBlocks": p.enactment_blocks, "quorum": p.quorum,
        "threshold": p.threshold, "ayes": str(p.ayes), "nays": str(p.nays), "status": p.status, "deposit": str(p.deposit),
    }
    if p.enact_at is not None:
        out["enactAt"] = p.enact_at
    if p.note:
        out["note"] = p.note
    return out


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def gov_getProposal(proposal: Id, at: At = None) -> dict[str, Any] | None:
        p = governance.PROPOSALS.get(state_at(chain, at), proposal)
        return None if p is None else proposal_json(proposal, p)

    @bind_params
    async def gov_listProposals(model: Id, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = models.MODELS.get(state, model)
        if info is None or not info.shares:
            return None
        params = models.get_gov_params(state, model)
        open_ = []
        for proposal_id in governance.ACTIVE.get(state, model) or ():
            p = governance.PROPOSALS.get(state, proposal_id)
            if p is not None:
                open_.append(proposal_json(proposal_id, p))
        treasury = balances.get_account(state, revenue.compute_treasury_account(model)).free
        return {
            "model": model, "shares": str(info.shares), "releasedVersion": info.released_version,
            "params": {"quorum": params.quorum, "threshold": params.threshold, "votingBlocks": params.voting_blocks,
                       "enactmentBlocks": params.enactment_blocks, "treasury": params.treasury},
            "treasury": str(treasury), "proposals": open_,
        }

    for fn in (gov_getProposal, gov_listProposals):
        table.register(fn.__name__, fn)
    return table
