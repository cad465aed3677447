"""A pallet's agenda: what it does at the start of a block, at most MAX_AGENDA items a block.

Model governance (chain.pallets.governance) and runtime-config referenda
(chain.pallets.democracy) both tally a vote at the block where it ends and enact a passed one
some blocks later, before that block's extrinsics (Substrate's pallet-scheduler keeps such an
agenda of calls by block; here the items are proposal ids). Work per block is bounded: a vote
whose end block already holds MAX_AGENDA items is refused when proposed (the caller's
AgendaFull), and an enactment moves to the next block with room, at most MAX_DEFER blocks on;
one that finds none fails (the caller says so on the proposal).
"""

from __future__ import annotations

from chain.codec import U32
from chain.pallets.items import StateAccess, StorageMap

MAX_AGENDA = 16  # items tallied or enacted at the start of one block
MAX_DEFER = 64  # blocks an enactment may be pushed back when agendas are full


class Agenda(StorageMap[tuple[int, ...]]):
    """Block number -> the ids due at its start, stored as ``<pallet>.<name>``.

    A pallet keeps its tallies and its enactments on two agendas: on one, the proposals that
    anyone can make for a deposit returned at the tally could fill every block an enactment
    may move to, and so veto a passed vote (AgendaFull) without casting one."""

    def __init__(self, pallet: str, name: str = "Agenda") -> None:
        super().__init__(pallet, name, tuple[U32, ...])

    def has_room(self, state: StateAccess, number: int) -> bool:
        return len(self.get(state, number) or ()) < MAX_AGENDA

    def apply_add(self, state: StateAccess, item: int, number: int) -> None:
        """Put ``item`` on block ``number``'s agenda (the caller checked :meth:`has_room`)."""
        self.apply_set(state, (*(self.get(state, number) or ()), item), number)

    def apply_schedule(self, state: StateAccess, item: int, number: int) -> int | None:
        """Put ``item`` on the first agenda from block ``number`` with room, at most MAX_DEFER
        blocks on; the block it went to, or None if every one was full."""
        for at in range(number, number + MAX_DEFER):
            if self.has_room(state, at):
                self.apply_add(state, item, at)
                return at
        return None

    def apply_take(self, state: StateAccess, number: int) -> tuple[int, ...]:
        """The ids due at block ``number``, removed from the agenda."""
        due = self.get(state, number) or ()
        if due:
            self.apply_delete(state, number)
        return due
