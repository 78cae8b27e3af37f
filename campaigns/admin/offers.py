"""Admin: stored-value top-up offers, their uses (read-only), and referral reward rules."""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from campaigns.admin.choosers import segments_with_scheme
from campaigns.models import OfferTopUp, ReferralRewardRule, TopUpOffer
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin
from members.admin.columns import money_column, multiplier_column
from members.formatting import in_chinese


@admin.register(TopUpOffer)
class TopUpOfferAdmin(ModelAdmin):
    list_display = [
        "shown_name",
        "code",
        "segment_list",
        "min_amount_shown",
        "bonus_amount_shown",
        "points_multiplier_shown",
        "per_member_limit",
        "use_count",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "name_en", "code"]
    filter_horizontal = ["segments"]
    min_amount_shown = money_column(TopUpOffer, "min_amount")
    bonus_amount_shown = money_column(TopUpOffer, "bonus_amount")
    points_multiplier_shown = multiplier_column(TopUpOffer, "points_multiplier")
    fieldsets = [
        (None, {"fields": [("name", "name_en"), "code", ("description", "description_en"), "is_active"]}),
        (_("Who"), {"fields": ["segments", "per_member_limit"]}),
        (_("Offer"), {"fields": ["min_amount", "bonus_amount", "points_multiplier", "multiplier_days"]}),
        (
            _("Restriction"),
            {"fields": [("restriction_note", "restriction_note_en"), ("product_tags", "product_categories")]},
        ),
        (_("When"), {"fields": ["valid_from", "valid_until"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("segments").annotate(uses_total=Count("uses"))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return segments_with_scheme(field) if db_field.name == "segments" else field

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, offer):
        return offer.display_name

    @admin.display(description=_("segments"))
    def segment_list(self, offer):
        separator = "、" if in_chinese() else ", "
        return separator.join(segment.name for segment in offer.segments.all()) or _("everyone")

    @admin.display(description=_("uses"), ordering="uses_total")
    def use_count(self, offer):
        return offer.uses_total


@admin.register(OfferTopUp)
class OfferTopUpAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["created_at", "offer", "member", "amount_paid_shown", "bonus_shown", "sequence", "wallet_entry"]
    amount_paid_shown = money_column(OfferTopUp, "amount_paid")
    bonus_shown = money_column(OfferTopUp, "bonus")
    list_filter = ["offer"]
    search_fields = ("=member__mobile",)
    list_select_related = ["offer", "member", "wallet_entry"]
    raw_id_fields = ["offer", "member", "wallet_entry"]


@admin.register(ReferralRewardRule)
class ReferralRewardRuleAdmin(ModelAdmin):
    list_display = [
        "shown_name",
        "referrer_segment",
        "referrer_coupon_template",
        "referee_coupon_template",
        "referrer_points",
        "referee_points",
        "referrer_extra_template",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "name_en", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = [
        "referrer_segment",
        "referrer_coupon_template",
        "referee_coupon_template",
        "referrer_extra_template",
    ]
    fieldsets = [
        (None, {"fields": [("name", "name_en"), "slug", "referrer_segment", "is_active"]}),
        (_("Referrer"), {"fields": ["referrer_coupon_template", "referrer_points", "referrer_extra_template"]}),
        (_("New member"), {"fields": ["referee_coupon_template", "referee_points"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return segments_with_scheme(field) if db_field.name == "referrer_segment" else field

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, rule):
        return rule.display_name
