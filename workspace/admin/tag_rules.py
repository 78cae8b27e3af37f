"""Admin: tag rules (标签规则) — the tags the nightly run gives members by their behaviour.

Operators define a rule (生日月, 高客单, 周末客, favourite category), switch it on, and the nightly
run (``segmentation.tasks.rule_tags_task``) tags the members who qualify; *compute now* runs it at
once in the background. The list shows how many members each rule tagged and when it last ran.
"""

from functools import partial

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from members import formatting
from members.admin.base import ModelAdmin
from members.models import TagRule
from segmentation.tasks import rule_tags_task

Kind = TagRule.Kind


@admin.register(TagRule)
class TagRuleAdmin(ModelAdmin):
    list_display = ("name", "kind", "condition", "is_active", "members", "computed_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    actions = ["activate", "deactivate", "compute_now"]
    readonly_fields = ("member_count", "computed_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "is_active")}),
        (
            _("Who qualifies"),
            {
                "fields": ("window_days", "min_orders", "average_at_least", "weekend_share_at_least"),
                "description": _(
                    "Birthday month: members whose birthday is in the current month. Favourite category: the "
                    "favourite category of the nightly product preference, after the tag as a prefix. The "
                    "other two count the orders paid in the window, net of refunds."
                ),
            },
        ),
        (_("Last run"), {"fields": ("member_count", "computed_at")}),
    )

    @admin.display(description=_("who qualifies"))
    def condition(self, obj):
        if obj.kind == Kind.BIRTHDAY_MONTH:
            return _("birthday in the current month")
        if obj.kind == Kind.FAVOURITE_CATEGORY:
            return _("%(prefix)s + favourite category") % {"prefix": obj.name}
        if obj.kind == Kind.HIGH_AVERAGE_ORDER:
            return _("≥ %(n)s orders in %(d)s days, average ≥ ¥%(amount)s") % {
                "n": obj.min_orders,
                "d": obj.window_days,
                "amount": obj.average_at_least,
            }
        return _("≥ %(n)s orders in %(d)s days, ≥ %(share)s%% at weekends") % {
            "n": obj.min_orders,
            "d": obj.window_days,
            "share": obj.weekend_share_at_least,
        }

    @admin.display(description=_("members"), ordering="member_count")
    def members(self, obj):
        if not obj.member_count:
            return formatting.count(0)
        url = reverse("admin:members_member_changelist")
        if obj.kind == Kind.FAVOURITE_CATEGORY:
            return formatting.count(obj.member_count)
        return format_html(
            '<a href="{}?{}">{}</a>', url, urlencode({"tag": obj.name}), formatting.count(obj.member_count)
        )

    @admin.action(description=_("Activate the selected tag rules"), permissions=["change"])
    def activate(self, request, queryset):
        count = queryset.update(is_active=True)
        self.message_user(
            request,
            _("%(n)s tag rules activated; members are tagged in the nightly run, or now with “Compute now”.")
            % {"n": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate the selected tag rules"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(
            request, _("%(n)s tag rules deactivated; their tags go in the next run.") % {"n": count}, messages.SUCCESS
        )

    @admin.action(description=_("Compute the tags now"), permissions=["change"])
    def compute_now(self, request, queryset):
        transaction.on_commit(partial(rule_tags_task.delay), robust=True)
        self.message_user(
            request, _("The tags are being computed in the background; reload in a minute."), messages.INFO
        )
