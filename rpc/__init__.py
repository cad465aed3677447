"""polchain rpc."""
