"""The runtime modules ("pallets"): system, balances, models, datasets, training, staking, assets, pol.

Each pallet module holds its storage items and its call handlers. Handlers read in the same
order: decode (done by the codec), authorize, charge weight (done by the executive before
dispatch), operate on the overlay, emit events named in the past tense.
"""
