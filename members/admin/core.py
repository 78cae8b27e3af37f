"""Admin: core."""
