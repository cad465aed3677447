"""``democracy_*``: runtime-config referenda (chain.pallets.democracy).

``democracy_getReferendum(id)`` is one referendum: its proposer, the changes (field and new
value, in the call's canonical order), the deposit, the block it was proposed in and when
voting ends, the enactment delay, ayes and nays in POL units (strings, as every amount), and
its ``status`` (``voting``, ``passed`` with ``enactAt``, ``rejected``, ``enacted``, or
``failed`` with a ``note`` saying why); ``null`` for an id nobody made.
``democracy_listReferenda(before)`` pages through them newest first: at most
:data:`PAGE` referenda with ids below ``before`` (default: all), the rules they are judged by
(quorum and threshold in ppm, the deposit) and ``next``, the ``before`` of the next page
(``null`` at the first referendum). ``state_getRuntimeConfig`` (rpc.namespaces.state) is
the config a block's children run with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.crypto import ss58_encode
from chain.pallets import democracy
from rpc.methods import MethodTable, bind_params
from rpc.params import At, Id, OptionalId
from rpc.reads import state_at

if TYPE_CHECKING:
    from rpc.api import NodeApi

PAGE = 64


def referendum_json(referendum_id: int, r: democracy.Referendum) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": referendum_id, "proposer": ss58_encode(r.proposer),
        "changes": [{"name": c.name, "value": c.value} for c in r.changes], "deposit": str(r.deposit),
        "created": r.created, "ends": r.ends, "enactmentBlocks": r.enactment_blocks,
        "ayes": str(r.ayes), "nays": str(r.nays), "status": r.status,
    }
    if r.enact_at is not None:
        out["enactAt"] = r.enact_at
    if r.note:
        out["note"] = r.note
    return out


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def democracy_getReferendum(referendum: Id, at: At = None) -> dict[str, Any] | None:
        r = democracy.REFERENDA.get(state_at(chain, at), referendum)
        return None if r is None else referendum_json(referendum, r)

    @bind_params
    async def democracy_listReferenda(before: OptionalId = None, at: At = None) -> dict[str, Any]:
        state = state_at(chain, at)
        end = democracy.NEXT_REFERENDUM.get(state)
        end = end if before is None else min(before, end)
        first = max(end - PAGE, 0)
        found = []
        for referendum_id in range(end - 1, first - 1, -1):
            r = democracy.REFERENDA.get(state, referendum_id)
            if r is not None:
                found.append(referendum_json(referendum_id, r))
        return {
            "quorum": democracy.QUORUM_PPM, "threshold": democracy.THRESHOLD_PPM, "deposit": str(democracy.PROPOSAL_DEPOSIT),
            "referenda": found, "next": first if first > 0 else None,
        }

    for fn in (democracy_getReferendum, democracy_listReferenda):
        table.register(fn.__name__, fn)
    return table
