"""Admin for the members app, one module per part of the domain."""

from members.admin import api, core, points, tiers, wallet  # noqa: F401
