"""Admin for the campaigns app, one module per part."""

from campaigns.admin import campaigns, coupons, effect, followups, offers, outbox, triggers, wallet  # noqa: F401
