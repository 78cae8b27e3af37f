"""Admin for the loyalty program, points and referrals.

Operators edit the one ``LoyaltyProgram`` row. The points ledger, the lots, the accounts and the
referrals are written only by services, so the admin shows them read-only; staff who hold
``members.adjust_points`` correct a balance through the "adjust points" page, which calls
``points_adjust`` (reason required, audited with the staff user on the entry).
"""

import contextlib
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from members.mobile import normalize_mobile
from members.models import LoyaltyProgram, Member, PointsAccount, PointsEntry, PointsLot, Referral
from members.services.points import ADJUST_PERMISSION, points_adjust


class MobileSearchMixin:
    """Search by a member's mobile number in any spelling (``+86 138-0013-8000``), matched exactly."""

    search_fields: tuple[str, ...] = ()

    def get_search_results(self, request, queryset, search_term):
        with contextlib.suppress(ValidationError):
            search_term = normalize_mobile(search_term)
        return super().get_search_results(request, queryset, search_term)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by services only: viewable, never added, changed or deleted here."""

    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(admin.ModelAdmin):
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
class PointsEntryAdmin(MobileSearchMixin, ReadOnlyAdmin):
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
class PointsLotAdmin(MobileSearchMixin, ReadOnlyAdmin):
    list_display = ["member", "points", "remaining", "earned_at", "expires_at", "source_kind"]
    list_filter = ["source_entry__kind", "expires_at", "earned_at"]
    search_fields = ("=member__mobile",)
    list_select_related = ["member", "source_entry"]
    raw_id_fields = ["member", "source_entry"]

    @admin.display(description=_("source"), ordering="source_entry__kind")
    def source_kind(self, lot):
        return lot.source_entry.get_kind_display()


@admin.register(PointsAccount)
class PointsAccountAdmin(MobileSearchMixin, ReadOnlyAdmin):
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
                try:
                    entry = points_adjust(
                        member=member,
                        points=form.cleaned_data["points"],
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                        idempotency_key=form.cleaned_data["idempotency_key"],
                    )
                except ValidationError as exc:
                    form.add_error(None, exc.messages)
                else:
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
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Adjust points"),
            "submit_label": _("Adjust points"),
            "form": form,
        }
        return TemplateResponse(request, _adjust_template(), context)


class PointsAdjustForm(forms.Form):
    member = forms.CharField(label=_("Member mobile"), max_length=32)
    points = forms.IntegerField(
        label=_("Points"), help_text=_("A positive number adds points, a negative one takes them.")
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def clean_member(self) -> Member:
        try:
            mobile = normalize_mobile(self.cleaned_data["member"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        member = Member.objects.filter(mobile=mobile).first()
        if member is None:
            raise forms.ValidationError(_("No member has this mobile number."))
        return member

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Adjust by a number of points other than zero."))
        return points


_ADJUST_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{{ site_header }}</a> ›
<a href="{% url 'admin:members_pointsaccount_changelist' %}">{{ opts.verbose_name_plural|capfirst }}</a> ›
{{ title }}</div>{% endblock %}
{% block content %}<div id="content-main">
<form method="post" novalidate>{% csrf_token %}
{% if form.non_field_errors %}<p class="errornote">{{ form.non_field_errors|join:" " }}</p>{% endif %}
<fieldset class="module aligned">{% for field in form.visible_fields %}
<div class="form-row">{{ field.errors }}<div class="flex-container">{{ field.label_tag }} {{ field }}</div>
{% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}</div>{% endfor %}
{% for field in form.hidden_fields %}{{ field }}{% endfor %}</fieldset>
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form></div>{% endblock %}
"""


def _adjust_template():
    # Kept beside its view; could move to templates/admin/members/points_adjust.html.
    return engines["django"].from_string(_ADJUST_TEMPLATE)


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "referrer", "referee", "status", "qualifying_order", "completed_at", "reversed_at"]
    list_filter = ["status", "created_at", "completed_at"]
    search_fields = ("=referrer__mobile", "=referee__mobile", "=code")
    list_select_related = ["referrer", "referee", "qualifying_order"]
    raw_id_fields = ["referrer", "referee", "qualifying_order", "referrer_entry", "referee_entry"]

    def get_search_results(self, request, queryset, search_term):
        try:
            search_term = normalize_mobile(search_term)
        except ValidationError:
            search_term = search_term.strip().upper()  # a referral code
        return super().get_search_results(request, queryset, search_term)
