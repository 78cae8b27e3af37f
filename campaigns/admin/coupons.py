"""Admin: coupons."""
