"""Reporting the equivocations a node has evidence of: Aura's as ``pol.report_equivocation``,
finality votes' as ``pol.report_vote_equivocation``.

consensus.aura stores the evidence when it checks the header of a second block one author
sealed in one slot (both are imported, as in Substrate; the pair is kept under
``aura/`` + slot + author). Evidence on one node's disk punishes nobody: a node with an
authoring key turns it into the extrinsic chain.pallets.pol checks (two sealed headers,
same author and slot), signed with that key and submitted to its own pool, from where it is
gossiped like any other; the runtime slashes the offender, pays this node the reporter's
share and removes the offender at the next era start (Substrate's offchain equivocation
reports do the same with an unsigned transaction; polchain's pays a fee instead, so an
invalid report costs its sender). Finality votes are the same: consensus.finality's collector
stores two votes of one validator that break a Casper FFG slashing condition (a double or a
surround vote) and raises VoteEquivocation with them; :meth:`EquivocationReporter.on_vote_equivocation`
reports the pair.

Each offence is submitted once per node run, and not at all if the best state already
records it as punished or the offender cannot be reported (``pol.is_reportable``: neither a
validator nor one removed for an offence) or is punished already (``pol.is_punished``: one
slash per removal, so the report would fail and cost its fee). A node never reports
itself (an equivocating node imports its own second block, and would collect its own
reporter's share). Several honest nodes may report the same offence at the same moment:
the first included is punished; an honest author leaves the others out of its block, undone
(``pol.STALE_REPORT_ERRORS``), and its pool drops them, so their senders pay nothing
(unless a later transaction of the sender is waiting behind it: Blockchain.build_block). An
author that includes them anyway makes a valid block in which they fail with DuplicateReport
and their senders pay the fee.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

from chain import calls
from chain.blockchain import Blockchain
from chain.codec import decode, encode
from chain.crypto import Keypair, ss58_encode
from chain.extrinsic import Extrinsic, sign_extrinsic
from chain.header import Header
from chain.pallets import pol
from chain.pool import compute_next_nonce
from consensus.aura import AuraEquivocation, compute_evidence_key
from consensus.finality import VoteEquivocationEvidence

log = logging.getLogger("polchain")

# Offence keys this node remembers having submitted (oldest forgotten first): a bound on memory
# that a flood of equivocations cannot grow; a forgotten one is caught by the state check.
MAX_REMEMBERED: Final = 1024


class EquivocationReporter:
    """Call :meth:`on_block` with every imported block's header."""

    def __init__(
        self, chain: Blockchain, author: Keypair | None, submit: Callable[[bytes], object],
        pending: Callable[[], Iterable[Extrinsic]],
    ) -> None:
        self.chain = chain
        self.author = author
        self.submit = submit
        self.pending = pending
        self._reported: dict[bytes, None] = {}

    def on_vote_equivocation(self, evidence: VoteEquivocationEvidence) -> Extrinsic | None:
        """Report two votes of one validator that break a slashing condition (the collector's
        evidence), unless already reported or punished, or the voter is this node."""
        first, second = evidence.first, evidence.second
        a, b = first.vote, second.vote
        round_number = a.target.round if evidence.kind == "double_vote" else max(a.target.round, b.target.round)
        key = pol.compute_offence_key(pol.OFFENCE_VOTE, a.set_id, round_number, first.voter)
        what = f"{ss58_encode(first.voter)} signed a {evidence.kind.replace('_', ' ')} in round {round_number}"
        call = calls.ReportVoteEquivocation(encode(first), encode(second))
        return self._report(first.voter, key, call, "report_vote_equivocation", what)

    def on_block(self, header: Header) -> Extrinsic | None:
        """If the evidence store holds an equivocation of ``header``'s author in its slot, not
        reported yet: sign and submit the report; returns it (None: nothing to report)."""
        if self.author is None or header.author == self.author.public:
            return None
        raw = self.chain.get_evidence(compute_evidence_key(header.slot, header.author))
        if raw is None:
            return None
        key = pol.compute_offence_key(pol.OFFENCE_AURA, header.slot, header.author)
        evidence = decode(raw, AuraEquivocation)
        call = calls.ReportEquivocation(evidence.first.encode(), evidence.second.encode())
        what = f"{ss58_encode(header.author)} sealed two blocks in slot {header.slot}"
        return self._report(header.author, key, call, "report_equivocation", what)

    def _report(self, offender: bytes, key: bytes, call: calls.Call, name: str, what: str) -> Extrinsic | None:
        if self.author is None or offender == self.author.public or key in self._reported:
            return None
        state = self.chain.state.overlay()
        if pol.get_offence(state, key) is not None or not pol.is_reportable(state, offender) or pol.is_punished(state, offender):
            return None
        xt = sign_extrinsic(
            self.author, call, nonce=compute_next_nonce(self.chain.state.overlay(), self.pending(), self.author.public),
            genesis_hash=self.chain.genesis_hash, spec_version=self.chain.runtime.spec_version,
        )
        self.submit(xt.encode())
        self._reported[key] = None
        while len(self._reported) > MAX_REMEMBERED:
            self._reported.pop(next(iter(self._reported)))
        log.warning("Submitted pol.%s: %s (nonce %d)", name, what, xt.nonce)
        return xt
