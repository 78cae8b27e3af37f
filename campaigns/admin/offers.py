"""Admin: stored-value top-up offers, their uses (read-only), and referral reward rules."""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from campaigns.models import OfferTopUp, ReferralRewardRule, TopUpOffer
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin


@admin.register(TopUpOffer)
class TopUpOfferAdmin(ModelAdmin):
    list_display = [
        "name",
        "code",
        "segment_list",
        "min_amount",
        "bonus_amount",
        "points_multiplier",
        "per_member_limit",
        "use_count",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "code"]
    filter_horizontal = ["segments"]
    fieldsets = [
        (None, {"fields": ["name", "code", "description", "is_active"]}),
        (_("Who"), {"fields": ["segments", "per_member_limit"]}),
        (_("Offer"), {"fields": ["min_amount", "bonus_amount", "points_multiplier", "multiplier_days"]}),
        (_("Restriction"), {"fields": ["restriction_note", "product_tags"]}),
        (_("When"), {"fields": ["valid_from", "valid_until"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("segments").annotate(uses_total=Count("uses"))

    @admin.display(description=_("segments"))
    def segment_list(self, offer):
        return ", ".join(segment.slug for segment in offer.segments.all()) or _("everyone")

    @admin.display(description=_("uses"), ordering="uses_total")
    def use_count(self, offer):
        return offer.uses_total


@admin.register(OfferTopUp)
class OfferTopUpAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["created_at", "offer", "member", "amount_paid", "bonus", "sequence", "wallet_entry"]
    list_filter = ["offer"]
    search_fields = ("=member__mobile",)
    list_select_related = ["offer", "member", "wallet_entry"]
    raw_id_fields = ["offer", "member", "wallet_entry"]


@admin.register(ReferralRewardRule)
class ReferralRewardRuleAdmin(ModelAdmin):
    list_display = [
        "name",
        "referrer_segment",
        "referrer_coupon_template",
        "referee_coupon_template",
        "referrer_points",
        "referee_points",
        "referrer_extra_template",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = [
        "referrer_segment",
        "referrer_coupon_template",
        "referee_coupon_template",
        "referrer_extra_template",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "referrer_segment", "is_active"]}),
        (_("Referrer"), {"fields": ["referrer_coupon_template", "referrer_points", "referrer_extra_template"]}),
        (_("New member"), {"fields": ["referee_coupon_template", "referee_points"]}),
    ]
