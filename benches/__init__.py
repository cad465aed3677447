"""polchain benches."""
