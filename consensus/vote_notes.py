"""Which finality votes a block's author notes on chain, so that their voters are paid.

The runtime's ``rewards.note_votes`` (chain.pallets.rewards) fails whole if any vote in it is
bad, so the author picks only votes that pass its checks in the state the new block builds
on (its parent, the best block, less the validators the new block removes if it starts an
era): for each validator of that state, its newest vote (highest
round) the collector holds (consensus.finality.VoteCollector: signatures checked already)
whose set id is the current one, whose target is a block of the best chain inside the
``system.BlockHash`` window, and whose target is above the block that validator is credited
for. Nothing is noted on a chain without rewards (the call would fail: RewardsDisabled), nor
when no vote adds anything.

The extrinsic is signed with the author's key and lives for exactly the block being built
(a mortal era of one block): if that block is retracted in a reorganisation, its note goes
back to the pool only to be dropped, and the next author notes the votes again on its own
chain. Its nonce follows the author's own extrinsics among the block's candidates (the
pool's ready ones come in nonce order from the account's nonce). The author pays its fee
to itself (it is the block's author).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chain import calls
from chain.blockchain import Blockchain
from chain.crypto import Keypair
from chain.extrinsic import Era, Extrinsic, sign_extrinsic
from chain.pallets import balances, rewards, staking, system
from chain.votes import SET_ID, SignedVote


def select_votes_to_note(chain: Blockchain, votes: Iterable[SignedVote]) -> tuple[SignedVote, ...]:
    """The votes the next block on the best block should note (module docstring), in voter
    order; at most one per validator, so at most ``calls.MAX_NOTED_VOTES`` for any set the
    call can carry."""
    state = chain.state.overlay()
    validators = set(staking.get_validators(state))
    best = chain.best_number
    era_length = chain.config.era_length
    if era_length and (best + 1) % era_length == 0:
        # The new block starts an era: its on_initialize removes the queued validators before
        # the note is applied, and a vote of one of them would fail the whole note.
        validators -= set(staking.PENDING_REMOVAL.get(state))
    lowest = max(0, best + 1 - system.BLOCK_HASH_COUNT)
    chosen: dict[bytes, SignedVote] = {}
    for signed in votes:
        vote, voter = signed.vote, signed.voter
        target = vote.target
        if voter not in validators or vote.set_id != SET_ID or not lowest <= target.block_number <= best:
            continue
        held = chosen.get(voter)
        if held is not None and held.vote.round >= vote.round:
            continue
        if not chain.is_canonical(target.block_hash, target.block_number):
            continue
        if target.block_number <= (rewards.CREDITED.get(state, voter) or 0):
            continue
        chosen[voter] = signed
    return tuple(chosen[v] for v in sorted(chosen))[: calls.MAX_NOTED_VOTES]


def make_note_votes(
    chain: Blockchain, key: Keypair, candidates: Sequence[Extrinsic], votes: Iterable[SignedVote]
) -> Extrinsic | None:
    """``key``'s note_votes extrinsic for the block about to be built on the best block from
    ``candidates`` (to be appended after them), or None if there is nothing to note."""
    if not rewards.is_enabled(chain.config):
        return None
    chosen = select_votes_to_note(chain, votes)
    if not chosen:
        return None
    own = sum(1 for xt in candidates if xt.signer == key.public)
    nonce = balances.get_account(chain.state.overlay(), key.public).nonce + own
    return sign_extrinsic(
        key, calls.NoteVotes(chosen), nonce=nonce, genesis_hash=chain.genesis_hash,
        spec_version=chain.runtime.spec_version, era=Era(chain.best_number + 1, 1),
    )
