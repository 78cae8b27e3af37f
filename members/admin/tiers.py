"""Admin: tiers."""
