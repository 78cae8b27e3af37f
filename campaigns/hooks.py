"""Hooks campaigns plugs into lower apps (points multipliers, referral reward resolvers, tier RFM
scores). Connected in ``CampaignsConfig.ready()``."""


def connect() -> None:
    pass
