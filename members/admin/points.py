"""Admin: points."""
