"""Admin: followups."""
