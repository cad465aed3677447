"""polchain ml_runtime."""
