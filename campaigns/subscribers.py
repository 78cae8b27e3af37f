"""Everything campaigns does when members' or segmentation's events fire — listed in one place.
Connected in ``CampaignsConfig.ready()``."""


def connect() -> None:
    pass
