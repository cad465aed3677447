"""A pallet's agenda: what it does at the start of a block, at most MAX_AGENDA items a block.

Model governance (chain.pallets.governance) and runtime-config referenda
(chain.pallets.democracy) both tally a vote at the block where it ends and enact a passed one
some blocks later, before that block's extrinsics (Substrate's pallet-scheduler keeps such an
agenda of calls by block; here the items are proposal ids). Work per block is bounded: a vote
whose end block already holds MAX_AGENDA items is refused when proposed (the caller's
AgendaFull), and the enactments due are taken MAX_AGENDA a block, the earliest due first, the
rest carried over to the next block (:class:`Queue`).

An enactment is never refused for want of room. It moved to the next block with room, at most
64 blocks on, and failed if it found none: an attacker's own passing proposals, 1,024 of them
on 128 models of its own with one-block votes (their deposits back at each tally), filled
those 64 blocks and vetoed a shared model's passed proposal for about 3.8 POL of fees (an
outside tester's finding, round 13). Now such a flood delays it: a block's tallies (at most
MAX_AGENDA) bound the enactments that become due a block, so a backlog is one the flood
paid for, proposal by proposal, and it drains as fast as it can grow.
"""

from __future__ import annotations

from chain.codec import U32
from chain.pallets.items import StateAccess, StorageMap

MAX_AGENDA = 16  # items tallied or enacted at the start of one block
MAX_SCAN = 64  # blocks of a queue one block's start looks at for items due (Queue.apply_take_due)


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
        """Put ``item`` on block ``number``'s agenda (an Agenda's caller checked :meth:`has_room`;
        a :class:`Queue` takes any number)."""
        self.apply_set(state, (*(self.get(state, number) or ()), item), number)

    def apply_take(self, state: StateAccess, number: int) -> tuple[int, ...]:
        """The ids due at block ``number``, removed from the agenda."""
        due = self.get(state, number) or ()
        if due:
            self.apply_delete(state, number)
        return due


class Queue(Agenda):
    """Block number -> the ids due then, any number of them, taken MAX_AGENDA a block in the
    order they fell due, the rest carried over. While a backlog is carried,
    ``<pallet>.<name>Backlog`` holds the earliest block that may still hold ids; without one
    nothing is stored beyond the lists (every block's ids were taken at its start)."""

    def __init__(self, pallet: str, name: str) -> None:
        super().__init__(pallet, name)
        self.backlog = StorageMap(pallet, f"{name}Backlog", U32)  # one entry, under the key 0

    def apply_take_due(self, state: StateAccess, number: int) -> tuple[int, ...]:
        """At most MAX_AGENDA ids due at block ``number`` or before, the earliest due first,
        removed from the queue, looking at most MAX_SCAN blocks from the backlog's first."""
        start = self.backlog.get(state, 0)
        cursor = number if start is None else start
        taken: list[int] = []
        for at in range(cursor, min(number + 1, cursor + MAX_SCAN)):
            room = MAX_AGENDA - len(taken)
            if not room:  # (full: the next block's start reads on from here)
                break
            due = self.get(state, at) or ()
            taken += due[:room]
            if len(due) > room:  # the rest waits for the next block
                self.apply_set(state, due[room:], at)
                break
            if due:
                self.apply_delete(state, at)
            cursor = at + 1
        if cursor <= number:
            self.backlog.apply_set(state, cursor, 0)
        elif start is not None:
            self.backlog.apply_delete(state, 0)
        return tuple(taken)
