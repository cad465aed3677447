"""Fixtures for the rpc tests (defined in rpc_fixtures, a uniquely named module)."""

from rpc_fixtures import server, session, start_server, table

__all__ = ["server", "session", "start_server", "table"]
