"""polchain node."""
