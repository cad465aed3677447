"""polchain consensus."""
