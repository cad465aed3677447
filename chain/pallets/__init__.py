"""The runtime modules ("pallets"), one module per concept: system, balances, models,
datasets, licenses, training, inference, staking, assets, revenue, bounties, pol, rewards,
governance and agenda (model shares' votes), democracy (POL holders' referenda), federated;
items (typed storage items) and context (the call context and events) serve them all.

Each pallet module holds its storage items and its call handlers. Handlers read in the same
order: decode (done by the codec), authorize, charge weight (done by the executive before
dispatch), operate on the overlay, emit events named in the past tense.
"""
