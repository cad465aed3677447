"""polchain consensus: every consensus rule, handed to the chain and driven by the node.

- ``aura``: slot assignment, header checks, block equivocation evidence;
- ``fork_choice``: the longest chain containing the highest justified checkpoint (and so the
  finalized block), ties to the earlier slot, then the lowest hash;
- ``finality``: signed votes, justifications, vote equivocation evidence;
- ``block_import``: the rules object a node passes to ``Blockchain(rules=...)``, and the pool
  update after a reorganisation;
- ``pol``: sampled verification of training proofs, fraud proofs;
- ``vote_notes``: which finality votes a block's author notes on chain (``rewards.note_votes``).
"""
