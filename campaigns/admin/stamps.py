"""Admin: stamp cards (edited by operators) and their completions (read-only history).

Saving a card drops this process's cache of active cards (``forget_active_stamp_cards``; other
processes see the change within the settings TTL)."""

from django.contrib import admin
from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from campaigns.models import StampCard, StampCompletion
from campaigns.services.stamps import forget_active_stamp_cards
from members import formatting
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin


@admin.register(StampCard)
class StampCardAdmin(ModelAdmin):
    list_display = ("shown_name", "rule", "reward", "is_active", "starts_at", "ends_at", "completed")
    list_filter = ("is_active",)
    list_select_related = ("coupon_template",)
    search_fields = ("name", "name_en", "slug")
    filter_horizontal = ("segments",)
    fieldsets = (
        (None, {"fields": (("name", "name_en"), "slug", ("description", "description_en"), "is_active")}),
        (
            _("What counts"),
            {"fields": ("stamps_required", "window_days", "category", "min_order_amount", "segments")},
        ),
        (_("Reward"), {"fields": ("coupon_template", "bonus_points")}),
        (_("When"), {"fields": (("starts_at", "ends_at"),)}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                completed_count=Count(
                    "completions", filter=Q(completions__status=StampCompletion.Status.REWARDED), distinct=True
                )
            )
        )

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, obj):
        return obj.display_name

    @admin.display(description=_("rule"))
    def rule(self, obj):
        text = _("%(n)s orders in %(d)s days") % {"n": obj.stamps_required, "d": obj.window_days}
        if obj.category:
            text = f"{text} · {obj.category}"
        if obj.min_order_amount is not None:
            text = f"{text} · ≥ ¥{obj.min_order_amount}"
        return text

    @admin.display(description=_("reward"))
    def reward(self, obj):
        parts = [str(obj.coupon_template)] if obj.coupon_template_id else []
        if obj.bonus_points:
            parts.append(str(_("%(n)s points") % {"n": obj.bonus_points}))
        return "; ".join(parts) or "—"

    @admin.display(description=_("completed"), ordering="completed_count")
    def completed(self, obj):
        return formatting.count(obj.completed_count)

    def save_model(self, request, obj, form, change):
        obj.full_clean()
        super().save_model(request, obj, form, change)
        forget_active_stamp_cards()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        forget_active_stamp_cards()


@admin.register(StampCompletion)
class StampCompletionAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("completed_at", "card", "member", "status", "coupon", "points_entry", "note")
    list_filter = ("status", "card")
    list_select_related = ("card", "member", "coupon", "points_entry")
    date_hierarchy = "completed_at"
    raw_id_fields = ("member", "coupon", "points_entry")
