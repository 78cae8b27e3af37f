"""Admin: triggers."""
