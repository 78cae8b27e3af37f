"""Admin: the points catalogue — rewards with their segment and tier prices, and the redemptions
(read-only; whoever may reverse them can undo a coupon redemption whose coupon is unused)."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from campaigns.admin.choosers import segments_with_scheme
from campaigns.models import Reward, RewardPrice, RewardRedemption
from campaigns.services.rewards import reward_redemption_reverse
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline
from members.formatting import in_chinese

REVERSE_AT_ONCE = 100


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

    actions = ["reverse_selected"]

    def has_reverse_permission(self, request):
        return request.user.has_perm("campaigns.reverse_rewardredemption")

    @admin.action(
        description=_("Reverse the selected coupon redemptions (points and stock given back)"), permissions=["reverse"]
    )
    def reverse_selected(self, request, queryset):
        reversed_count = 0
        for redemption in queryset.order_by("pk")[:REVERSE_AT_ONCE]:
            try:
                reward_redemption_reverse(redemption=redemption, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{redemption}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                reversed_count += 1
        if reversed_count:
            self.message_user(request, _("%(n)s redemption(s) reversed.") % {"n": reversed_count}, messages.SUCCESS)
