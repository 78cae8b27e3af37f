"""Admin: tiers. Operators define tiers and their qualification rules; the history of tier changes
is read-only. Staff with ``members.set_member_tier`` change a member's tier through the "Set a
member's tier" form, which calls ``tier_set_manually`` so that the change is audited.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from members.admin.base import MemberMobileField, MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline, form_page
from members.admin.columns import multiplier_column
from members.models import Member, Tier, TierChange, TierRule
from members.services.tiers import SET_TIER_PERMISSION, tier_set_manually


class TierRuleInline(TabularInline):
    model = TierRule
    extra = 0
    fields = ("window_days", "min_spend", "min_orders", "min_rfm_score")


@admin.register(Tier)
class TierAdmin(ModelAdmin):
    list_display = (
        "rank",
        "name",
        "code",
        "points_multiplier_shown",
        "birthday_points_multiplier_shown",
        "discount_rate_shown",
        "free_shipping",
        "priority_service",
        "retention_days",
        "is_active",
    )
    list_display_links = ("name",)
    points_multiplier_shown = multiplier_column(Tier, "points_multiplier")
    birthday_points_multiplier_shown = multiplier_column(Tier, "birthday_points_multiplier")
    discount_rate_shown = multiplier_column(Tier, "discount_rate")
    list_filter = ("is_active",)
    ordering = ("rank",)
    search_fields = ("code", "name")
    prepopulated_fields = {"code": ("name",)}
    inlines = [TierRuleInline]
    fieldsets = (
        (None, {"fields": ("name", "code", "rank", "is_active", "retention_days")}),
        (
            _("Benefits"),
            {
                "fields": (
                    "points_multiplier",
                    "birthday_points_multiplier",
                    "discount_rate",
                    "free_shipping",
                    "priority_service",
                )
            },
        ),
    )


class SetTierForm(forms.Form):
    mobile = MemberMobileField(label=_("member mobile"), queryset=Member.objects.select_related("tier"))
    tier = forms.ModelChoiceField(
        label=_("tier"),
        queryset=Tier.objects.filter(is_active=True),
        required=False,
        empty_label=_("(no tier)"),
    )
    reason = forms.CharField(label=_("reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(TierChange)
class TierChangeAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("created_at", "member", "from_tier", "to_tier", "reason", "detail", "actor", "order")
    list_filter = ("reason", "to_tier", "from_tier", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("member__mobile",)
    list_select_related = ("member", "from_tier", "to_tier", "actor", "order")
    readonly_fields = ("member", "from_tier", "to_tier", "reason", "detail", "actor", "order", "created_at")
    fields = readonly_fields
    ordering = ("-created_at", "-id")

    def get_urls(self):
        return [
            path("set/", self.admin_site.admin_view(self.set_tier_view), name="members_tierchange_set"),
            *super().get_urls(),
        ]

    def set_tier_view(self, request):
        if not request.user.has_perm(SET_TIER_PERMISSION):
            raise PermissionDenied
        form = SetTierForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            member = form.cleaned_data["mobile"]
            try:
                change = tier_set_manually(
                    member=member,
                    tier=form.cleaned_data["tier"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                if change is None:
                    self.message_user(request, _("The member already has this tier."), messages.WARNING)
                else:
                    self.message_user(
                        request,
                        _("%(member)s moved from %(from)s to %(to)s.")
                        % {"member": member, "from": change.from_tier or "—", "to": change.to_tier or "—"},
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(reverse("admin:members_tierchange_changelist"))
        return form_page(
            self,
            request,
            title=_("Set a member's tier"),
            form=form,
            submit_label=_("Set tier"),
            back_url=reverse("admin:members_tierchange_changelist"),
            back_label=TierChange._meta.verbose_name_plural,
        )
