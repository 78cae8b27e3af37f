"""Admin for the members app, one module per part of the domain.

``members.admin.base`` holds what the admin modules of every app build on (read-only admins, the
search by phone, staff form pages); its page templates are under ``templates/admin/members/``.
"""

from members.admin import api, core, interactions, points, products, tiers, wallet  # noqa: F401
