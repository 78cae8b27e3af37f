"""Admin: wallet."""
