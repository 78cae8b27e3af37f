"""The campaigns app's API views, all under ``/api/v1/`` (``campaigns.urls``).

- ``effect`` — effect reports for dashboards (staff only, ``/api/v1/campaigns/...``).
- ``coupons`` — the member's coupons and redeeming one at the till.
- ``offers`` — the member's top-up offers and points multipliers.

These views sit above ``members``: they may import ``members.apis.*``, never the other way round.
"""
