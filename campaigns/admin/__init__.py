"""Admin for the campaigns app, one module per part."""

from campaigns.admin import (  # noqa: F401
    campaigns,
    coupons,
    effect,
    followups,
    offers,
    outbox,
    rewards,
    stamps,
    triggers,
    wallet,
)
