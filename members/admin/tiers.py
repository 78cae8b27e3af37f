"""Admin: tiers. Operators define tiers and their qualification rules; the history of tier changes
is read-only. Staff with ``members.set_member_tier`` change a member's tier through the "Set a
member's tier" form, which calls ``tier_set_manually`` so that the change is audited.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from members.mobile import normalize_mobile
from members.models import Member, Tier, TierChange, TierRule
from members.services.tiers import SET_TIER_PERMISSION, tier_set_manually

_FORM_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load i18n %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{{ back_url }}">{{ back_label }}</a> &rsaquo; {{ title }}</div>{% endblock %}
{% block content %}<div id="content-main">
<form method="post" novalidate>{% csrf_token %}
{% if form.non_field_errors %}{{ form.non_field_errors }}{% endif %}
<fieldset class="module aligned">{% for field in form %}<div class="form-row">
{{ field.errors }}{{ field.label_tag }} {{ field }}
{% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}</div>{% endfor %}</fieldset>
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form></div>{% endblock %}"""
)


class TierRuleInline(admin.TabularInline):
    model = TierRule
    extra = 0
    fields = ("window_days", "min_spend", "min_orders", "min_rfm_score")


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = (
        "rank",
        "name",
        "code",
        "points_multiplier",
        "birthday_points_multiplier",
        "discount_rate",
        "free_shipping",
        "priority_service",
        "retention_days",
        "is_active",
    )
    list_display_links = ("name",)
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
    mobile = forms.CharField(label=_("member mobile"), max_length=32)
    tier = forms.ModelChoiceField(
        label=_("tier"),
        queryset=Tier.objects.filter(is_active=True),
        required=False,
        empty_label=_("(no tier)"),
    )
    reason = forms.CharField(label=_("reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_mobile(self):
        try:
            mobile = normalize_mobile(self.cleaned_data["mobile"])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        member = Member.objects.filter(mobile=mobile).select_related("tier").first()
        if member is None:
            raise ValidationError(_("No member has this mobile number."))
        self.member = member
        return mobile


@admin.register(TierChange)
class TierChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "member", "from_tier", "to_tier", "reason", "detail", "actor", "order")
    list_filter = ("reason", "to_tier", "from_tier", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("member__mobile",)
    list_select_related = ("member", "from_tier", "to_tier", "actor", "order")
    readonly_fields = ("member", "from_tier", "to_tier", "reason", "detail", "actor", "order", "created_at")
    fields = readonly_fields
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
            try:
                change = tier_set_manually(
                    member=form.member,
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
                        % {"member": form.member, "from": change.from_tier or "—", "to": change.to_tier or "—"},
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(reverse("admin:members_tierchange_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Set a member's tier"),
            "form": form,
            "submit_label": _("Set tier"),
            "back_url": reverse("admin:members_tierchange_changelist"),
            "back_label": TierChange._meta.verbose_name_plural,
            "opts": self.opts,
        }
        return TemplateResponse(request, _FORM_PAGE, context)
