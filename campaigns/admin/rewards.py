"""Admin: the points catalogue — rewards with their segment and tier prices, and the redemptions (read-only)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from campaigns.admin.choosers import segments_with_scheme
from campaigns.models import Reward, RewardPrice, RewardRedemption
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline
from members.formatting import in_chinese


class RewardPriceInline(TabularInline):
    model = RewardPrice
    extra = 0
    fields = ["segment", "tier", "points_price"]
    verbose_name = _("segment or tier price")
    verbose_name_plural = _("segment and tier prices (the member pays the lowest that applies)")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return segments_with_scheme(field) if db_field.name == "segment" else field


@admin.register(Reward)
class RewardAdmin(ModelAdmin):
    list_display = [
        "shown_name",
        "kind",
        "points_price",
        "segment_list",
        "stock",
        "redeemed_count",
        "stock_left_shown",
        "limit_per_member",
        "is_active",
    ]
    list_filter = ["is_active", "kind"]
    search_fields = ["name", "name_en", "slug"]
    filter_horizontal = ["exclusive_segments"]
    autocomplete_fields = ["coupon_template", "product"]
    readonly_fields = ["redeemed_count"]
    inlines = [RewardPriceInline]
    fieldsets = [
        (None, {"fields": [("name", "name_en"), "slug", ("description", "description_en"), "is_active"]}),
        (_("What"), {"fields": ["kind", "coupon_template", "product"]}),
        (_("Price and stock"), {"fields": ["points_price", ("stock", "redeemed_count"), "limit_per_member"]}),
        (_("Who"), {"fields": ["exclusive_segments"]}),
        (_("When"), {"fields": ["starts_at", "ends_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("exclusive_segments")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return segments_with_scheme(field) if db_field.name == "exclusive_segments" else field

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, reward):
        return reward.display_name

    @admin.display(description=_("exclusive to"))
    def segment_list(self, reward):
        separator = "、" if in_chinese() else ", "
        return separator.join(segment.name for segment in reward.exclusive_segments.all()) or _("everyone")

    @admin.display(description=_("left"))
    def stock_left_shown(self, reward):
        left = reward.stock_left
        return "—" if left is None else left


@admin.register(RewardRedemption)
class RewardRedemptionAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["created_at", "reward", "member", "points", "status", "channel", "store", "coupon", "collected_at"]
    list_filter = ["status", "channel", "reward"]
    search_fields = ("=member__mobile",)
    list_select_related = ["reward", "member", "store", "coupon"]
    raw_id_fields = ["reward", "member", "points_entry", "coupon", "store", "collected_store"]
