"""Every periodic schedule of the platform, in one place.

``python manage.py setup_periodic_tasks`` writes them into django-celery-beat's tables (idempotent;
it never overwrites a schedule an operator has edited in the admin, unless ``--reset``).
Times are in settings.TIME_ZONE.
"""

from typing import NamedTuple


class Schedule(NamedTuple):
    name: str
    task: str
    minute: str
    hour: str
    description: str


SCHEDULES = (
    Schedule(
        "Recompute RFM segments",
        "segmentation.tasks.segment_recompute_task",
        "30",
        "1",
        "Nightly full recompute of every member's R, F, M, scores and segment (active scheme).",
    ),
    Schedule(
        "Drain live RFM refreshes",
        "segmentation.tasks.segment_live_refresh_task",
        "*/10",
        "*",
        "Refresh members whose orders asked for it, should a batch task have been lost (normally done within seconds).",
    ),
    Schedule("Expire points", "members.tasks.points_expire_task", "30", "0", "Expire what is left of old points lots."),
    Schedule(
        "Downgrade tiers", "members.tasks.tier_downgrade_task", "0", "2", "Downgrade members past their retention."
    ),
    Schedule("Reconcile balances", "members.tasks.reconcile_task", "0", "4", "Compare every balance with its ledger."),
    Schedule(
        "Purge idempotency records",
        "members.tasks.idempotency_records_purge_task",
        "30",
        "3",
        "Delete the API's stored responses to retried requests after HUIYUAN_IDEMPOTENCY_KEEP_DAYS.",
    ),
    Schedule(
        "Expire coupons", "campaigns.tasks.coupons_expire_task", "15", "0", "Mark coupons past their validity expired."
    ),
    Schedule(
        "Start and end campaigns",
        "campaigns.tasks.campaigns_advance_task",
        "*/5",
        "*",
        "Start scheduled campaigns whose time came; end those whose window closed.",
    ),
    Schedule(
        "Flush the message outbox",
        "campaigns.tasks.outbox_flush_task",
        "*",
        "*",
        "Queue due messages and recover ones stuck in sending.",
    ),
    Schedule(
        "Sweep triggers",
        "campaigns.tasks.triggers_sweep_task",
        "7",
        "*",
        "Fire inactivity and pattern triggers, due after-order firings and missed transitions.",
    ),
)
