"""polchain chain."""
