"""Admin for the loyalty program, points and referrals.

Operators edit the one ``LoyaltyProgram`` row. The points ledger, the lots, the accounts and the
referrals are written only by services, so the admin shows them read-only; staff who hold
``members.adjust_points`` correct a balance through the "adjust points" page, which calls
``points_adjust`` (reason required, audited with the staff user on the entry).
"""

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from members.admin.base import MemberMobileField, MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, form_page
from members.admin.columns import multiplier_column
from members.models import (
    LoyaltyProgram,
    Member,
    MemberPointsMultiplier,
    PointsAccount,
    PointsEntry,
    PointsLot,
    Referral,
)
from members.services.points import ADJUST_PERMISSION, points_adjust


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(ModelAdmin):
    fieldsets = [
        (_("Earning"), {"fields": ["points_per_yuan"]}),
        (_("Points life"), {"fields": ["points_life_policy", "points_life_months"]}),
        (
            _("Referrals"),
            {
                "fields": [
                    "referral_min_order_amount",
                    "referral_referrer_points",
                    "referral_referee_points",
                    "referral_reversal_days",
                ]
            },
        ),
        (_("Stored value"), {"fields": ["top_up_max_amount", "wallet_max_balance"]}),
    ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not LoyaltyProgram.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        """There is one program: go straight to it (created with the defaults if needed)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        program = LoyaltyProgram.current()
        return HttpResponseRedirect(reverse("admin:members_loyaltyprogram_change", args=[program.pk]))

    def save_model(self, request, obj, form, change):
        obj.pk = LoyaltyProgram.SINGLETON_ID
        super().save_model(request, obj, form, change)


@admin.register(PointsEntry)
class PointsEntryAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "member",
        "kind",
        "points",
        "balance_after",
        "debt_after",
        "reason",
        "actor",
        "reference",
    ]
    list_filter = ["kind", "created_at"]
    search_fields = ("=member__mobile",)
    list_select_related = ["member", "actor"]
    raw_id_fields = ["member", "actor", "order", "reverses"]


@admin.register(PointsLot)
class PointsLotAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["member", "points", "remaining", "earned_at", "expires_at", "source_kind"]
    list_filter = ["source_entry__kind", "expires_at", "earned_at"]
    search_fields = ("=member__mobile",)
    list_select_related = ["member", "source_entry"]
    raw_id_fields = ["member", "source_entry"]

    @admin.display(description=_("source"), ordering="source_entry__kind")
    def source_kind(self, lot):
        return lot.source_entry.get_kind_display()


@admin.register(MemberPointsMultiplier)
class MemberPointsMultiplierAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["member", "multiplier_shown", "starts_at", "ends_at", "source"]
    multiplier_shown = multiplier_column(MemberPointsMultiplier, "multiplier")
    search_fields = ("=member__mobile",)
    list_select_related = ["member"]
    raw_id_fields = ["member"]
    ordering = ["-ends_at"]


@admin.register(PointsAccount)
class PointsAccountAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["member", "balance", "debt", "updated_at", "adjust_link"]
    search_fields = ("=member__mobile",)
    list_select_related = ["member"]
    raw_id_fields = ["member"]

    @admin.display(description=_("adjust"))
    def adjust_link(self, account):
        url = reverse("admin:members_points_adjust") + "?" + urlencode({"member": account.member.mobile})
        return format_html('<a href="{}">{}</a>', url, _("Adjust points"))

    def get_urls(self):
        view = self.admin_site.admin_view(self.adjust_view)
        return [path("adjust/", view, name="members_points_adjust"), *super().get_urls()]

    def adjust_view(self, request):
        """A staff correction of one member's points, with a reason; needs ``members.adjust_points``."""
        if not request.user.has_perm(ADJUST_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            form = PointsAdjustForm(request.POST)
            if form.is_valid():
                member = form.cleaned_data["member"]
                entry = form.adjust(member=member, actor=request.user)
                if entry is not None:
                    messages.success(
                        request,
                        _("%(points)+d points for %(member)s; the balance is now %(balance)s.")
                        % {"points": entry.points, "member": member, "balance": entry.balance_after},
                    )
                    changelist = reverse("admin:members_pointsentry_changelist")
                    return HttpResponseRedirect(f"{changelist}?{urlencode({'q': member.mobile})}")
        else:
            form = PointsAdjustForm(
                initial={"member": request.GET.get("member", ""), "idempotency_key": uuid.uuid4().hex}
            )
        return form_page(
            self,
            request,
            template="admin/members/points_adjust.html",
            title=_("Adjust points"),
            submit_label=_("Adjust points"),
            form=form,
        )


class PointsAdjustForm(forms.Form):
    member = MemberMobileField(label=_("Member mobile"))
    points = forms.IntegerField(
        label=_("Points"), help_text=_("A positive number adds points, a negative one takes them.")
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Adjust by a number of points other than zero."))
        return points

    def adjust(self, *, member: Member, actor) -> PointsEntry | None:
        """Adjust ``member``'s points as the valid form says (``points_adjust``); None, with the
        service's refusal on the form, when it refuses."""
        try:
            return points_adjust(
                member=member,
                points=self.cleaned_data["points"],
                reason=self.cleaned_data["reason"],
                actor=actor,
                idempotency_key=self.cleaned_data["idempotency_key"],
            )
        except ValidationError as exc:
            self.add_error(None, exc.messages)
            return None


@admin.register(Referral)
class ReferralAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["created_at", "referrer", "referee", "status", "qualifying_order", "completed_at", "reversed_at"]
    list_filter = ["status", "created_at", "completed_at"]
    mobile_search_members = ("referrer", "referee")
    search_fields = ("=code",)
    list_select_related = ["referrer", "referee", "qualifying_order"]
    raw_id_fields = ["referrer", "referee", "qualifying_order", "referrer_entry", "referee_entry"]

    def get_search_results(self, request, queryset, search_term):
        # Either party's mobile number, or a referral code in any case.
        return super().get_search_results(request, queryset, search_term.strip().upper())
