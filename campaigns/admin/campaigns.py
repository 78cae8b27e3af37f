"""Admin: the campaign builder, the launch with a confirmation, and the grants.

**The builder** is the campaign's add and change page, laid out for a 1366 px screen: the basics and
the window; the target — a segmentation *scheme* first, then that scheme's segments (by name, in
the user's language) or the segment members enter; the benefits; the limits (budgets, per-member
cap, control-group share); an optional narrowing (home stores, tiers, registration dates).

Above the form, the **estimate** (reach, control group, treated, cost — ``campaign_estimate``)
follows the choices before anything is saved: every change of the form posts it (htmx) to
``estimate/``, which prices the unsaved choices with ``campaign_estimate_draft`` — the same logic,
one COUNT. Changing the scheme swaps the segment choices for that scheme's (``segments/``). The page
itself computes the estimate once (``render_change_form``).

**Status** changes through the buttons at the top of the campaign's page — launch, pause, end —
each asking for a confirmation in a dialog (unfold's action dialogs) before calling the campaign
service; the list keeps its bulk actions, and "run now" queues ``campaign_run_task`` (safe to run
twice) for the campaigns ``campaign_run_check`` accepts. Grants are written by services and shown
read-only.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import capfirst, slugify
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.decorators import action
from unfold.enums import ActionVariant
from unfold.forms import BaseDialogForm
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminSelect2MultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
)

from campaigns.models import Campaign, CampaignBenefit, CampaignGrant, CouponTemplate
from campaigns.services.campaigns import (
    CampaignEstimate,
    campaign_end,
    campaign_estimate,
    campaign_estimate_draft,
    campaign_launch,
    campaign_pause,
    campaign_run_check,
)
from campaigns.tasks import campaign_run_task
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, StackedInline
from members.formatting import count, local_name, yuan
from members.models import Store, Tier
from segmentation.models import MemberRfm, Scheme, Segment

ESTIMATE_TEMPLATE = "campaigns/admin/campaign_estimate.html"
SEGMENTS_TEMPLATE = "campaigns/admin/campaign_segments.html"
MAX_BENEFIT_ROWS = 50
Status = Campaign.Status
LAUNCHABLE = (Status.DRAFT, Status.SCHEDULED, Status.PAUSED)
PAUSABLE = (Status.RUNNING, Status.SCHEDULED)
ENDABLE = (Status.DRAFT, Status.SCHEDULED, Status.RUNNING, Status.PAUSED)


def segment_label(segment: Segment) -> str:
    return local_name(segment.name_zh, segment.name_en, segment.slug)


def scheme_segments(scheme_id: int | None):
    return Segment.objects.filter(scheme_id=scheme_id).order_by("ordering", "pk")


def segment_sizes(scheme_id: int | None) -> dict[int, int]:
    """Members now in each segment of the scheme (one GROUP BY; the current run's segments only)."""
    if scheme_id is None:
        return {}
    return dict(
        MemberRfm.objects.filter(segment__scheme_id=scheme_id)
        .values("segment_id")
        .annotate(n=Count("pk"))
        .values_list("segment_id", "n")
    )


class SegmentCheckboxes(UnfoldAdminCheckboxSelectMultipleWidget):
    """The scheme's segments as a grid of checkboxes, each with its name and current size."""

    template_name = SEGMENTS_TEMPLATE
    sizes: dict[int, int] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        key = getattr(value, "value", value)
        option["size"] = self.sizes.get(key) if key not in (None, "") else None
        return option


class SegmentField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return segment_label(obj)


class SegmentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return segment_label(obj)


class SchemeField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


class CampaignBuilderForm(forms.ModelForm):
    """The campaign, with the scheme its segments come from: only that scheme's segments are offered
    (and accepted), labelled by name."""

    scheme = SchemeField(
        label=_("Segmentation scheme"),
        queryset=Scheme.objects.all(),
        required=False,
        empty_label=None,
        widget=UnfoldAdminSelectWidget,
        help_text=_("The segments below are this scheme's."),
    )
    segments = SegmentField(
        label=capfirst(_("segments")),
        queryset=Segment.objects.none(),
        required=False,
        widget=SegmentCheckboxes,
        help_text=_("Members currently in any of these segments (members now in each)."),
    )
    target_transition_to = SegmentChoiceField(
        label=capfirst(_("entering segment")),
        queryset=Segment.objects.none(),
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text=_("Members who move into this segment while the campaign runs."),
    )
    stores = forms.ModelMultipleChoiceField(
        label=capfirst(_("home stores")),
        queryset=Store.objects.order_by("code"),
        required=False,
        widget=UnfoldAdminSelect2MultipleWidget,
        help_text=_("Empty: any store."),
    )
    tiers = forms.ModelMultipleChoiceField(
        label=capfirst(_("tiers")),
        queryset=Tier.objects.all(),
        required=False,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        help_text=_("Empty: any tier."),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "slug",
            "description",
            "strategy",
            "starts_at",
            "ends_at",
            "target_kind",
            "segments",
            "target_transition_to",
            "stores",
            "tiers",
            "registered_after",
            "registered_before",
            "p_alive_below",
            "p_alive_at_least",
            "clv_at_least",
            "favourite_categories",
            "member_tags",
            "budget_money",
            "budget_count",
            "per_member_cap",
            "control_percent",
        ]
        widgets = {
            "description": UnfoldAdminTextareaWidget(attrs={"rows": 2}),
            "strategy": UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scheme_id = self._scheme_id()
        self.fields["scheme"].initial = scheme_id
        self.fields["scheme"].widget.attrs.update(
            {
                "hx-get": reverse("admin:campaigns_campaign_builder_segments"),
                "hx-target": "#id_segments",
                "hx-swap": "outerHTML",
                "hx-trigger": "change",
            }
        )
        for name in ("segments", "target_transition_to"):
            self.fields[name].queryset = scheme_segments(scheme_id)
        self.fields["segments"].widget.sizes = segment_sizes(scheme_id)
        self.fields["target_transition_to"].widget.attrs["id"] = "id_target_transition_to"
        if "slug" in self.fields:
            self.fields["slug"].required = False
            self.fields["slug"].help_text = _("Empty: made from the name (or the date, for a Chinese name).")

    def _scheme_id(self) -> int | None:
        """The posted scheme, else the scheme of the campaign's segments, else the active one."""
        if self.is_bound and self.data.get(self.add_prefix("scheme")):
            try:
                return int(self.data[self.add_prefix("scheme")])
            except (TypeError, ValueError):
                return None
        campaign = self.instance
        if campaign.pk is not None:
            chosen = campaign.target_transition_to_id or next(
                iter(campaign.segments.values_list("pk", flat=True)[:1]), None
            )
            if chosen is not None:
                return Segment.objects.filter(pk=chosen).values_list("scheme_id", flat=True).first()
        return Scheme.objects.filter(is_active=True).values_list("pk", flat=True).first()

    def clean_slug(self):
        """The slug given, else one made from the name — a Chinese name has no ASCII letters, so the
        date then — made unique with a number."""
        slug = self.cleaned_data.get("slug")
        if slug:
            return slug
        base = slugify(self.data.get(self.add_prefix("name")) or "")[:50] or f"campaign-{timezone.localdate():%Y%m%d}"
        taken = set(
            Campaign.objects.filter(slug__startswith=base).exclude(pk=self.instance.pk).values_list("slug", flat=True)
        )
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        return slug

    def clean(self):
        data = super().clean()
        kind = data.get("target_kind")
        if kind == Campaign.TargetKind.TRANSITION and not data.get("target_transition_to"):
            self.add_error("target_transition_to", _("Choose the segment members enter."))
        return data


class CampaignBenefitInline(StackedInline):
    model = CampaignBenefit
    extra = 0
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("kind", "coupon_template", "unit_cost"),
                    ("points", "multiplier", "multiplier_days", "top_up_offer"),
                    ("follow_up_reason", "follow_up_due_days", "message_template", "message_channel"),
                    ("message_link",),
                ]
            },
        )
    ]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # Every row's select lists the same templates and offers: query them once per page.
        for name in ("coupon_template", "top_up_offer"):
            field = formset.form.base_fields[name]
            field.choices = list(field.choices)
        return formset


# --- the estimate of unsaved choices ---------------------------------------------------------------------


class EstimateChoicesForm(forms.Form):
    """The builder's fields the estimate reads; a field still being typed is left out, not refused."""

    target_kind = forms.ChoiceField(choices=Campaign.TargetKind.choices, required=False)
    segments = forms.TypedMultipleChoiceField(coerce=int, required=False)
    target_transition_to = forms.IntegerField(required=False)
    stores = forms.TypedMultipleChoiceField(coerce=int, required=False)
    tiers = forms.TypedMultipleChoiceField(coerce=int, required=False)
    registered_after = forms.DateField(required=False)
    registered_before = forms.DateField(required=False)
    p_alive_below = forms.DecimalField(min_value=0, max_value=1, max_digits=4, decimal_places=3, required=False)
    p_alive_at_least = forms.DecimalField(min_value=0, max_value=1, max_digits=4, decimal_places=3, required=False)
    clv_at_least = forms.DecimalField(min_value=0, max_digits=14, decimal_places=2, required=False)
    favourite_categories = forms.CharField(max_length=200, required=False)
    member_tags = forms.CharField(max_length=200, required=False)
    control_percent = forms.IntegerField(min_value=0, max_value=50, required=False)
    budget_money = forms.DecimalField(min_value=0, max_digits=14, decimal_places=2, required=False)
    budget_count = forms.IntegerField(min_value=0, required=False)

    def __init__(self, data):
        super().__init__(data)
        for name in ("segments", "stores", "tiers"):
            # Any integer id: what it means is the count's business (an unknown id matches nobody).
            self.fields[name].valid_value = lambda value: True

    def value(self, name):
        self.is_valid()
        return self.cleaned_data.get(name)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decimal(value) -> Decimal | None:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def draft_benefits(data, prefix: str = "benefits") -> list[CampaignBenefit]:
    """The benefit rows of the posted inline formset as unsaved ``CampaignBenefit`` (rows without a
    kind, or marked for deletion, left out); their coupon templates in one query."""
    total = min(_int(data.get(f"{prefix}-TOTAL_FORMS")) or 0, MAX_BENEFIT_ROWS)
    rows = []
    for index in range(total):
        row = f"{prefix}-{index}-"
        kind = data.get(row + "kind")
        if kind not in CampaignBenefit.Kind.values or data.get(row + "DELETE") in ("on", "true", "1"):
            continue
        rows.append(
            {
                "kind": kind,
                "template_id": _int(data.get(row + "coupon_template")),
                "points": _int(data.get(row + "points")),
                "unit_cost": _decimal(data.get(row + "unit_cost")) if data.get(row + "unit_cost") else None,
            }
        )
    templates = CouponTemplate.objects.in_bulk([r["template_id"] for r in rows if r["template_id"]])
    return [
        CampaignBenefit(
            kind=r["kind"],
            coupon_template=templates.get(r["template_id"]),
            points=r["points"] if r["points"] and r["points"] > 0 else None,
            unit_cost=r["unit_cost"],
        )
        for r in rows
    ]


def draft_estimate(data, saved: Campaign | None = None) -> CampaignEstimate:
    """``campaign_estimate_draft`` of the builder's posted choices; the spend so far from ``saved``."""
    choices = EstimateChoicesForm(data)
    value = choices.value
    draft = Campaign(
        target_kind=value("target_kind") or Campaign.TargetKind.SEGMENT,
        target_transition_to_id=value("target_transition_to"),
        registered_after=value("registered_after"),
        registered_before=value("registered_before"),
        p_alive_below=value("p_alive_below"),
        p_alive_at_least=value("p_alive_at_least"),
        clv_at_least=value("clv_at_least"),
        favourite_categories=value("favourite_categories") or "",
        member_tags=value("member_tags") or "",
        control_percent=value("control_percent") or 0,
        budget_money=value("budget_money"),
        budget_count=value("budget_count"),
        spent_money=saved.spent_money if saved else Decimal("0.00"),
        spent_count=saved.spent_count if saved else 0,
    )
    return campaign_estimate_draft(
        campaign=draft,
        segment_ids=value("segments") or (),
        store_ids=value("stores") or (),
        tier_ids=value("tiers") or (),
        benefits=draft_benefits(data),
    )


def estimate_context(estimate: CampaignEstimate | None, target_kind: str) -> dict:
    return {
        "estimate": estimate,
        "is_transition": target_kind == Campaign.TargetKind.TRANSITION,
    }


# --- confirmations --------------------------------------------------------------------------------------


class StatusChangeForm(BaseDialogForm):
    """A status change's confirmation: what the campaign is about to do, then "confirm"."""

    form_before_template = "campaigns/admin/campaign_confirm.html"

    def get_before_template_context(self, request, object_id=None):
        campaign = get_object_or_404(Campaign, pk=object_id)
        estimate = campaign_estimate(campaign=campaign)
        return {
            "campaign": campaign,
            **estimate_context(estimate, campaign.target_kind),
        }


def _dialog(title, description, submit):
    return {"title": title, "description": description, "form_class": StatusChangeForm, "form_submit_text": submit}


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    form = CampaignBuilderForm
    inlines = [CampaignBenefitInline]
    list_display = ["name", "status", "target", "starts_at", "ends_at", "control_percent", "budget_used"]
    list_filter = ["status", "target_kind"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    radio_fields = {"target_kind": admin.HORIZONTAL}
    actions = ["launch_selected", "pause_selected", "end_selected", "run_now"]
    actions_detail = ["launch_campaign", "pause_campaign", "end_campaign", "effect_report"]
    readonly_fields = ["status", "spent_count", "spent", "launched_at", "ended_at"]
    change_form_before_template = "campaigns/admin/campaign_builder_top.html"
    compressed_fields = False  # labels above the fields: rows of two to four fields fit 1366 px
    conditional_fields = {
        "segments": "target_kind == 'segment'",
        "target_transition_to": "target_kind == 'transition'",
    }

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": [("name", "slug"), ("starts_at", "ends_at"), ("description", "strategy")]}),
            (_("Target"), {"fields": [("scheme", "target_kind"), "segments", "target_transition_to"]}),
            (
                _("Limits"),
                {"fields": [("budget_money", "budget_count"), ("per_member_cap", "control_percent")]},
            ),
            (
                _("Narrow down (optional)"),
                {
                    "fields": [
                        ("stores", "tiers"),
                        ("registered_after", "registered_before"),
                        ("p_alive_below", "p_alive_at_least", "clv_at_least"),
                        ("favourite_categories", "member_tags"),
                    ]
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    _("Status and spend"),
                    {"fields": [("status", "launched_at", "ended_at"), ("spent_count", "spent")]},
                )
            )
        return fieldsets

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("target_transition_to").prefetch_related("segments")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("builder/estimate/", view(self.estimate_view), name="campaigns_campaign_builder_estimate"),
            path("builder/segments/", view(self.segments_view), name="campaigns_campaign_builder_segments"),
            *super().get_urls(),
        ]

    # --- the builder ---

    def _may_build(self, request) -> bool:
        return self.has_add_permission(request) or self.has_change_permission(request)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The estimate, computed once per page: of the posted choices when the form comes back with
        # errors, else of the saved campaign (a new one has no choices yet).
        if request.method == "POST":
            estimate = draft_estimate(request.POST, obj)
            target_kind = request.POST.get("target_kind")
        elif obj is not None:
            estimate = campaign_estimate(campaign=obj)
            target_kind = obj.target_kind
        else:
            estimate, target_kind = None, Campaign.TargetKind.SEGMENT
        url = reverse("admin:campaigns_campaign_builder_estimate")
        context.update(
            {
                **estimate_context(estimate, target_kind),
                "estimate_url": f"{url}?campaign={obj.pk}" if obj is not None else url,
                "effect_url": reverse("admin:campaigns_campaigneffect_report", args=[obj.pk]) if obj else None,
            }
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def estimate_view(self, request: HttpRequest) -> HttpResponse:
        """The estimate of the posted (unsaved) choices, as the fragment the builder swaps in."""
        if not self._may_build(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponse(status=405)
        saved_id = _int(request.GET.get("campaign"))
        saved = Campaign.objects.filter(pk=saved_id).only("spent_money", "spent_count").first() if saved_id else None
        estimate = draft_estimate(request.POST, saved)
        html = render_to_string(
            ESTIMATE_TEMPLATE, estimate_context(estimate, request.POST.get("target_kind")), request=request
        )
        return HttpResponse(html)

    def segments_view(self, request: HttpRequest) -> HttpResponse:
        """The chosen scheme's segments: the checkboxes, and (out of band) the "entering" select."""
        if not self._may_build(request):
            raise PermissionDenied
        form = CampaignBuilderForm(data={"scheme": request.GET.get("scheme", "")})
        transition = form["target_transition_to"].as_widget(attrs={"hx-swap-oob": "outerHTML"})
        response = HttpResponse(f"{form['segments']}\n{transition}")
        response["HX-Trigger-After-Settle"] = "segments-changed"
        return response

    # --- list columns ---

    @admin.display(description=_("target"))
    def target(self, campaign):
        if campaign.target_kind == Campaign.TargetKind.TRANSITION:
            segment = campaign.target_transition_to
            return _("entering %(segment)s") % {"segment": segment_label(segment) if segment else "—"}
        return ", ".join(segment_label(segment) for segment in campaign.segments.all()) or "—"

    @admin.display(description=_("spent (yuan)"))
    def spent(self, campaign):
        return yuan(campaign.spent_money)

    @admin.display(description=_("budget used"))
    def budget_used(self, campaign):
        parts = []
        if campaign.budget_count is not None:
            parts.append(f"{count(campaign.spent_count)} / {count(campaign.budget_count)}")
        else:
            parts.append(count(campaign.spent_count))
        if campaign.budget_money is not None:
            parts.append(f"{yuan(campaign.spent_money)} / {yuan(campaign.budget_money)}")
        elif campaign.spent_money:
            parts.append(yuan(campaign.spent_money))
        return " · ".join(parts)

    # --- the campaign page's buttons ---

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        status = Campaign.objects.filter(pk=object_id).values_list("status", flat=True).first()
        shown = {
            "launch_campaign": status in LAUNCHABLE,
            "pause_campaign": status in PAUSABLE,
            "end_campaign": status in ENDABLE,
            "effect_report": status != Status.DRAFT,
        }
        return [a for a in actions if shown.get(a.action_name.removeprefix("campaigns_campaign_"), True)]

    def _status_change(self, request, object_id, service, done_message):
        campaign = get_object_or_404(Campaign, pk=object_id)
        try:
            service(campaign=campaign)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, done_message % {"name": campaign.name}, messages.SUCCESS)
        url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)

    @action(
        description=_("Launch"),
        url_path="launch",
        permissions=["change"],
        icon="rocket_launch",
        variant=ActionVariant.PRIMARY,
        dialog=_dialog(
            _("Launch this campaign?"),
            _("Members are granted its benefits from its start, within its budget."),
            _("Launch"),
        ),
    )
    def launch_campaign(self, request, form, object_id):
        return self._status_change(request, object_id, campaign_launch, _("%(name)s launched."))

    @action(
        description=_("Pause"),
        url_path="pause",
        permissions=["change"],
        icon="pause",
        dialog=_dialog(
            _("Pause this campaign?"), _("No member is granted anything until it is launched again."), _("Pause")
        ),
    )
    def pause_campaign(self, request, form, object_id):
        return self._status_change(request, object_id, campaign_pause, _("%(name)s paused."))

    @action(
        description=_("End"),
        url_path="end",
        permissions=["change"],
        icon="stop_circle",
        variant=ActionVariant.DANGER,
        dialog=_dialog(_("End this campaign?"), _("An ended campaign cannot be launched again."), _("End")),
    )
    def end_campaign(self, request, form, object_id):
        return self._status_change(request, object_id, campaign_end, _("%(name)s ended."))

    @action(description=_("Effect report"), url_path="effect", permissions=["view"], icon="monitoring")
    def effect_report(self, request, object_id):
        return HttpResponseRedirect(reverse("admin:campaigns_campaigneffect_report", args=[object_id]))

    # --- the list's bulk actions ---

    def _each(self, request, queryset, service, done_message):
        changed = 0
        for campaign in queryset:
            try:
                service(campaign=campaign)
            except ValidationError as exc:
                self.message_user(request, f"{campaign}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                changed += 1
        if changed:
            self.message_user(request, done_message % {"n": changed}, messages.SUCCESS)

    @admin.action(description=_("Launch the selected campaigns"), permissions=["change"])
    def launch_selected(self, request, queryset):
        self._each(request, queryset, campaign_launch, _("%(n)s campaign(s) launched."))

    @admin.action(description=_("Pause the selected campaigns"), permissions=["change"])
    def pause_selected(self, request, queryset):
        self._each(request, queryset, campaign_pause, _("%(n)s campaign(s) paused."))

    @admin.action(description=_("End the selected campaigns"), permissions=["change"])
    def end_selected(self, request, queryset):
        self._each(request, queryset, campaign_end, _("%(n)s campaign(s) ended."))

    @admin.action(description=_("Run now: grant to the targeted members"), permissions=["change"])
    def run_now(self, request, queryset):
        queued = 0
        for campaign in queryset:
            try:
                campaign_run_check(campaign=campaign)
            except ValidationError as exc:
                self.message_user(request, f"{campaign}: {' '.join(exc.messages)}", messages.WARNING)
                continue
            campaign_run_task.delay_on_commit(campaign.pk)
            queued += 1
        if queued:
            self.message_user(
                request,
                ngettext("%(n)d campaign queued.", "%(n)d campaigns queued.", queued) % {"n": queued},
                messages.SUCCESS,
            )


@admin.register(CampaignGrant)
class CampaignGrantAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ["granted_at", "campaign", "member", "cause", "sequence", "is_control", "cost"]
    list_filter = ["is_control", "campaign"]
    search_fields = ("=member__mobile",)
    list_select_related = ["campaign", "member"]
    raw_id_fields = ["campaign", "member"]
