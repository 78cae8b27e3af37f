"""Admin: effect."""
