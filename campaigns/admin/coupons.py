"""Admin: coupon templates (edited by operators) and coupons (written by services, shown read-only).

Coupons are found by the member's mobile number in any spelling, or by their code; the one thing
staff can do to a coupon here is revoke it (``coupon_revoke``), which never touches a used one.
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns.models import Coupon, CouponTemplate
from campaigns.services.coupons import coupon_revoke
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin
from members.admin.columns import money_column
from members.formatting import yuan


@admin.register(CouponTemplate)
class CouponTemplateAdmin(ModelAdmin):
    list_display = ["shown_name", "kind", "value", "min_spend_shown", "validity_display", "issued", "is_active"]
    list_filter = ["kind", "is_active", "validity"]
    search_fields = ["name", "name_en", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["stores"]
    readonly_fields = ["issued_count", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": [("name", "name_en"), "slug", ("description", "description_en"), "is_active"]}),
        (
            _("Value"),
            {
                "fields": [
                    "kind",
                    "amount",
                    "percent_off",
                    "max_discount",
                    ("gift_description", "gift_description_en"),
                    "min_spend",
                ]
            },
        ),
        (
            _("Products"),
            {
                "fields": [("product_tags", "product_categories")],
                "description": _(
                    "Leave both empty for any product. Otherwise the coupon discounts only eligible lines."
                ),
            },
        ),
        (_("Where and when"), {"fields": ["stores", "validity", "valid_from", "valid_until", "valid_days"]}),
        (_("Issue limit"), {"fields": ["issue_limit", "issued_count"]}),
        (_("Record"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    min_spend_shown = money_column(CouponTemplate, "min_spend")

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, template):
        return template.display_name

    @admin.display(description=_("value"))
    def value(self, template):
        if template.kind == CouponTemplate.Kind.FIXED_AMOUNT:
            return yuan(template.amount)
        if template.kind == CouponTemplate.Kind.PERCENTAGE:
            cap = _(" (at most %(cap)s)") % {"cap": yuan(template.max_discount)} if template.max_discount else ""
            return f"{template.percent_off}%{cap}"
        if template.kind == CouponTemplate.Kind.GIFT_ITEM:
            return template.display_gift or template.get_kind_display()
        return template.get_kind_display()

    @admin.display(description=_("valid"))
    def validity_display(self, template):
        if template.validity == CouponTemplate.Validity.DAYS_AFTER_GRANT:
            return _("%(days)s days after grant") % {"days": template.valid_days}
        return _("until %(date)s") % {"date": f"{template.valid_until:%Y-%m-%d}"}

    @admin.display(description=_("issued"), ordering="issued_count")
    def issued(self, template):
        if template.issue_limit is None:
            return str(template.issued_count)
        return f"{template.issued_count} / {template.issue_limit}"


@admin.register(Coupon)
class CouponAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = [
        "code",
        "member",
        "template",
        "status",
        "granted_at",
        "valid_until",
        "redeemed_at",
        "discount_shown",
        "campaign",
        "source_shown",
    ]
    list_filter = ["status", "template__kind", "granted_at", "template"]
    search_fields = ("=member__mobile", "=code")
    list_select_related = ["member", "template", "campaign"]
    raw_id_fields = ["member", "order", "campaign", "template", "redeemed_store"]
    date_hierarchy = "granted_at"
    actions = ["revoke_selected"]
    discount_shown = money_column(Coupon, "discount")

    @admin.display(description=_("source"), ordering="source")
    def source_shown(self, coupon):
        """What granted it, in words: the stored source is a key ("campaign:<slug>", "offer:<code>" …)."""
        kind, _sep, key = coupon.source.partition(":")
        if kind == "campaign" and coupon.campaign_id:
            return _("campaign")
        if kind == "offer":
            return _("top-up offer %(code)s") % {"code": key}
        if kind == "referral":
            return _("referral #%(id)s") % {"id": key}
        if kind == "trigger":
            return _("trigger #%(id)s") % {"id": key}
        return coupon.source or "—"

    def has_revoke_permission(self, request):
        return request.user.has_perm("campaigns.change_coupon")

    @admin.action(description=_("Revoke the selected unused coupons"), permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        revoked, refused = 0, 0
        for coupon in queryset.filter(status=Coupon.Status.ISSUED):
            try:
                coupon_revoke(coupon=coupon, reason=str(_("Revoked in the admin by %(user)s") % {"user": request.user}))
            except ValidationError:
                refused += 1
            else:
                revoked += 1
        self.message_user(
            request,
            ngettext("%(n)d coupon revoked.", "%(n)d coupons revoked.", revoked) % {"n": revoked},
            messages.SUCCESS if revoked else messages.WARNING,
        )
        if refused:
            self.message_user(request, _("%(n)d were used meanwhile and kept.") % {"n": refused}, messages.WARNING)
