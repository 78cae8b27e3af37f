"""The admin's sidebar, grouped by what operators do: 会员 / 分群 / 营销 / 储值与积分 / 门店与接口 / 系统.

``sidebar(request)`` (``UNFOLD["SIDEBAR"]["navigation"]``) lists, in each group, the models the
user may view, linking to their lists, plus the pages that are not a model's list (the dashboard,
the migration matrix, the reports). A group the user can see nothing of is left out. The technical tables
(tokens, idempotency records, the outbox, the raw schedules) are for superusers only: their admins
refuse everyone else (``members.admin.base.SuperuserOnlyMixin``), so they are not listed either.
"""

from dataclasses import dataclass

from django.contrib import admin
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Entry:
    model: str  # "app_label.ModelName"
    icon: str  # a Material Symbols name
    title: str | None = None  # the model's plural name unless given


@dataclass(frozen=True)
class Page:
    url_name: str
    title: str
    icon: str
    permission: str | tuple[str, ...]  # "app_label.codename", or several that are all needed


# The reports of ``workspace.admin.reports`` read every store's figures, as the dashboard does.
REPORT_PERMISSIONS = ("members.view_all_stores", "segmentation.view_rfmrun")

GROUPS = (
    (
        _("Overview"),
        (
            Page("admin:index", _("Dashboard"), "dashboard", ""),
            Page("admin:workspace_report_activity", _("Activity and retention"), "monitoring", REPORT_PERMISSIONS),
            Page("admin:workspace_report_growth", _("Segment growth"), "trending_up", REPORT_PERMISSIONS),
            Page("admin:workspace_report_referrals", _("Referrals by segment"), "group_add", REPORT_PERMISSIONS),
        ),
    ),
    (
        _("Members"),
        (
            Entry("members.Member", "group"),
            Entry("members.Order", "receipt_long"),
            Entry("campaigns.FollowUpTask", "task_alt"),
            Entry("members.Tier", "workspace_premium"),
            Entry("members.TierChange", "swap_vert"),
            Entry("members.Referral", "share"),
            Entry("members.Interaction", "touch_app"),
            Entry("members.TagRule", "sell"),
        ),
    ),
    (
        _("Segments"),
        (
            Entry("segmentation.Scheme", "category"),
            Entry("segmentation.RfmRun", "query_stats"),
            Page("admin:segmentation_rfmrun_matrix", _("Migration matrix"), "grid_on", "segmentation.view_rfmrun"),
            Entry("segmentation.MemberRfm", "person_search"),
            Entry("segmentation.SegmentTransition", "moving"),
            Entry("segmentation.ClvRun", "monitoring"),
            Entry("segmentation.MemberClv", "paid"),
        ),
    ),
    (
        _("Marketing"),
        (
            Entry("campaigns.Campaign", "campaign"),
            Entry("campaigns.CampaignEffect", "insights"),
            Entry("campaigns.Trigger", "bolt"),
            Entry("campaigns.CouponTemplate", "confirmation_number"),
            Entry("campaigns.Coupon", "local_activity"),
            Entry("campaigns.ReferralRewardRule", "redeem"),
            Entry("campaigns.StampCard", "loyalty"),
            Entry("campaigns.StampCompletion", "approval"),
            Entry("campaigns.CampaignGrant", "card_giftcard"),
            Entry("campaigns.TriggerFiring", "history"),
        ),
    ),
    (
        _("Stored value and points"),
        (
            Entry("members.Wallet", "account_balance_wallet"),
            Entry("members.WalletEntry", "receipt"),
            Entry("campaigns.TopUpOffer", "savings"),
            Entry("campaigns.OfferTopUp", "price_check"),
            Entry("members.TopUpIntent", "payments"),
            Entry("members.LoyaltyProgram", "tune"),
            Entry("members.PointsAccount", "stars"),
            Entry("members.PointsEntry", "format_list_numbered"),
            Entry("members.PointsLot", "inventory_2"),
            Entry("members.MemberPointsMultiplier", "trending_up"),
            Entry("campaigns.Reward", "loyalty"),
            Entry("campaigns.RewardRedemption", "shopping_bag"),
        ),
    ),
    (
        _("Stores and API"),
        (
            Entry("members.Store", "storefront"),
            Entry("members.StoreApiKey", "key"),
            Entry("auth.User", "badge"),
            Entry("auth.Group", "admin_panel_settings"),
            Entry("members.StaffAccess", "visibility"),
        ),
    ),
    (
        _("System"),
        (
            Entry("audit.AuditLogEntry", "history_edu"),
            Entry("django_celery_beat.PeriodicTask", "schedule"),
            Entry("django_celery_beat.CrontabSchedule", "calendar_month"),
            Entry("django_celery_beat.IntervalSchedule", "timer"),
            Entry("django_celery_beat.ClockedSchedule", "alarm"),
            Entry("django_celery_beat.SolarSchedule", "wb_twilight"),
            Entry("campaigns.OutboxMessage", "outbox"),
            Entry("members.ApiIdempotencyRecord", "fingerprint"),
            Entry("token_blacklist.OutstandingToken", "token"),
            Entry("token_blacklist.BlacklistedToken", "block"),
        ),
    ),
)


def _models_by_label():
    return {model._meta.label: (model, model_admin) for model, model_admin in admin.site._registry.items()}


def _entry_item(entry: Entry, request, registry) -> dict | None:
    registered = registry.get(entry.model)
    if registered is None:
        return None
    model, model_admin = registered
    if not model_admin.has_view_or_change_permission(request):
        return None
    opts = model._meta
    return {
        "title": entry.title or capfirst(opts.verbose_name_plural),
        "icon": entry.icon,
        "link": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }


def _page_item(page: Page, request) -> dict | None:
    needed = (page.permission,) if isinstance(page.permission, str) else page.permission
    if page.permission and not request.user.has_perms(needed):
        return None
    return {"title": page.title, "icon": page.icon, "link": reverse(page.url_name)}


def sidebar(request) -> list[dict]:
    """The groups and links of the sidebar for this user."""
    registry = _models_by_label()
    groups = []
    for title, entries in GROUPS:
        items = [
            item
            for entry in entries
            if (
                item := _entry_item(entry, request, registry)
                if isinstance(entry, Entry)
                else _page_item(entry, request)
            )
        ]
        if items:
            groups.append(
                {
                    "title": title,
                    "separator": True,
                    "collapsible": title not in (_("Overview"), _("Members")),
                    "items": items,
                }
            )
    return groups
