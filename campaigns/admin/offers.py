"""Admin: offers."""
