"""polchain genesis."""
