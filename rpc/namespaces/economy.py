"""``assets_*`` and the ``ml_`` economy reads: assets, balances, model shares and revenue.

Amounts are decimal strings (they may exceed 2^53, past what a JSON number carries exactly
in most clients), accounts SS58. An asset or model id nobody has answers ``null``; so does
``ml_getShares`` / ``ml_getRevenue`` for a model that was never shared. Balances of an
account that holds nothing are ``"0"``.

``ml_getRevenue`` reads one model's pool (chain.pallets.revenue): the totals paid in,
claimed and sent to the dust account, and with an ``account`` what that account could claim
now (``claimable``, whole units) and the fraction of a unit it holds towards its next one
(``claimableFraction``, in 10^-18 units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.crypto import ss58_encode
from chain.pallets import assets, models, revenue
from rpc.methods import MethodTable, bind_params
from rpc.params import AccountId, At, Id, OptionalAccountId
from rpc.reads import state_at

if TYPE_CHECKING:
    from rpc.api import NodeApi


def build(node: NodeApi) -> MethodTable:
    table = MethodTable()
    chain = node.chain

    @bind_params
    async def assets_getAsset(asset: Id, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        details = assets.ASSETS.get(state, asset)
        if details is None:
            return None
        meta = assets.METADATA.get(state, asset)
        return {
            "id": asset, "owner": ss58_encode(details.owner), "issuer": ss58_encode(details.issuer),
            "supply": str(details.supply), "minBalance": str(details.min_balance), "deposit": str(details.deposit),
            "accounts": details.accounts, "model": assets.compute_shares_model(asset),
            "metadata": None if meta is None else {"name": meta.name, "symbol": meta.symbol, "decimals": meta.decimals},
        }

    @bind_params
    async def assets_getBalance(asset: Id, account: AccountId, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        if assets.ASSETS.get(state, asset) is None:
            return None
        return {"asset": asset, "account": ss58_encode(account), "balance": str(assets.get_balance(state, asset, account))}

    @bind_params
    async def ml_getShares(model: Id, account: OptionalAccountId = None, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        info = models.MODELS.get(state, model)
        if info is None or not info.shares:
            return None
        asset = assets.compute_shares_asset(model)
        out: dict[str, Any] = {
            "model": model, "asset": asset, "totalShares": str(info.shares),
            "holders": assets.get_asset(state, asset).accounts,
        }
        if account is not None:
            out.update({"account": ss58_encode(account), "shares": str(assets.get_balance(state, asset, account))})
        return out

    @bind_params
    async def ml_getRevenue(model: Id, account: OptionalAccountId = None, at: At = None) -> dict[str, Any] | None:
        state = state_at(chain, at)
        pool = revenue.POOLS.get(state, model)
        if pool is None:
            return None
        out: dict[str, Any] = {
            "model": model, "totalShares": str(pool.total_shares), "paid": str(revenue.u256(pool.paid)),
            "claimed": str(revenue.u256(pool.claimed)), "dustPaid": str(revenue.u256(pool.dust_paid)),
            "dustAccount": ss58_encode(revenue.DUST_ACCOUNT), "potAccount": ss58_encode(revenue.POT_ACCOUNT),
        }
        if account is not None:
            shares = assets.get_balance(state, assets.compute_shares_asset(model), account)
            whole, frac = revenue.compute_owed(state, model, account, shares)
            out.update({
                "account": ss58_encode(account), "shares": str(shares),
                "claimable": str(whole), "claimableFraction": str(frac),
            })
        return out

    for fn in (assets_getAsset, assets_getBalance, ml_getShares, ml_getRevenue):
        table.register(fn.__name__, fn)
    return table
