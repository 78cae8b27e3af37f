"""Every periodic schedule of the platform, in one place.

``python manage.py setup_periodic_tasks`` writes them into django-celery-beat's tables (idempotent;
it never overwrites a schedule an operator has edited in the admin, unless ``--reset``).
Times are in settings.TIME_ZONE.

A schedule's ``name`` is its stable key in django-celery-beat's table (the command finds it by
name), so it is stored in English; the name and the description are marked for translation here and
the admin shows them in the user's language (``workspace.admin.system.PeriodicTaskAdmin``).
"""

from typing import NamedTuple

from django.utils.translation import gettext_noop as N_


class Schedule(NamedTuple):
    name: str
    task: str
    minute: str
    hour: str
    description: str


SCHEDULES = (
    Schedule(
        N_(N_("Recompute RFM segments")),
        "segmentation.tasks.segment_recompute_task",
        "30",
        "1",
        N_("Nightly full recompute of every member's R, F, M, scores and segment (active scheme)."),
    ),
    Schedule(
        N_(N_("Fit customer lifetime value")),
        "segmentation.clv_tasks.clv_fit_task",
        "30",
        "2",
        N_(
            "Nightly BG/NBD and Gamma-Gamma fit: every member's P(alive), expected purchases and CLV "
            "(an hour after the RFM recompute)."
        ),
    ),
    Schedule(
        N_(N_("Compute product preferences")),
        "segmentation.tasks.product_preferences_task",
        "0",
        "2",
        N_(
            "Nightly, set-based: every member's favourite product categories and every product's related "
            "products (bought by the same members), over the last 365 days."
        ),
    ),
    Schedule(
        N_(N_("Compute rule tags")),
        "segmentation.tasks.rule_tags_task",
        "20",
        "2",
        N_(
            "Nightly, set-based: give every active tag rule's tag (生日月, 高客单, 周末客, favourite category) to "
            "the members who qualify and take it off those who no longer do (after the product preferences)."
        ),
    ),
    Schedule(
        N_(N_("Roll up activity and retention")),
        "workspace.tasks.activity_rollup_task",
        "15",
        "3",
        N_(
            "Nightly, set-based: daily and weekly active members and the retention of new members for the "
            "days that ended, per segment, for the reports and the dashboard."
        ),
    ),
    Schedule(
        N_(N_("Drain live RFM refreshes")),
        "segmentation.tasks.segment_live_refresh_task",
        "*/10",
        "*",
        N_(
            "Refresh members whose orders asked for it, should a batch task have been lost "
            "(normally done within seconds)."
        ),
    ),
    Schedule(
        N_(N_("Mark abandoned RFM runs failed")),
        "segmentation.tasks.segment_recompute_reap_task",
        "*/15",
        "*",
        N_("Mark failed any RFM run left running by a worker that stopped, so that the run list shows it."),
    ),
    Schedule(
        N_(N_("Expire points")),
        "members.tasks.points_expire_task",
        "30",
        "0",
        N_("Expire what is left of old points lots."),
    ),
    Schedule(
        N_(N_("Downgrade tiers")),
        "members.tasks.tier_downgrade_task",
        "0",
        "2",
        N_("Downgrade members past their retention."),
    ),
    Schedule(
        N_(N_("Reconcile balances")),
        "members.tasks.reconcile_task",
        "0",
        "4",
        N_("Compare every balance with its ledger."),
    ),
    Schedule(
        N_(N_("Purge idempotency records")),
        "members.tasks.idempotency_records_purge_task",
        "30",
        "3",
        N_("Delete the API's stored responses to retried requests after HUIYUAN_IDEMPOTENCY_KEEP_DAYS."),
    ),
    Schedule(
        N_(N_("Prune old interactions")),
        "members.tasks.interactions_prune_task",
        "45",
        "3",
        N_("Delete members' interactions (page views, check-ins…) older than HUIYUAN_INTERACTION_KEEP_DAYS."),
    ),
    Schedule(
        N_(N_("Expire coupons")),
        "campaigns.tasks.coupons_expire_task",
        "15",
        "0",
        N_("Mark coupons past their validity expired."),
    ),
    Schedule(
        N_(N_("Start and end campaigns")),
        "campaigns.tasks.campaigns_advance_task",
        "*/5",
        "*",
        N_("Start scheduled campaigns whose time came; end those whose window closed."),
    ),
    Schedule(
        N_(N_("Flush the message outbox")),
        "campaigns.tasks.outbox_flush_task",
        "*",
        "*",
        N_("Queue due messages and recover ones stuck in sending."),
    ),
    Schedule(
        N_(N_("Sweep triggers")),
        "campaigns.tasks.triggers_sweep_task",
        "7",
        "*",
        N_("Fire inactivity and pattern triggers, due after-order firings and missed transitions."),
    ),
)
