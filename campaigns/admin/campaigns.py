"""Admin: campaigns with their benefits, the estimate before launch, and the status actions.

Status changes only through the actions (launch, pause, end), which call the campaign services;
"run now" queues ``campaign_run_task`` (safe to run twice) for the campaigns ``campaign_run_check``
accepts. The change page shows the estimated reach, control group and cost
(``campaign_estimate``). Grants are written by services and shown read-only.
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns.models import Campaign, CampaignBenefit, CampaignGrant
from campaigns.services.campaigns import (
    campaign_end,
    campaign_estimate,
    campaign_launch,
    campaign_pause,
    campaign_run_check,
)
from campaigns.tasks import campaign_run_task
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline


class CampaignBenefitInline(TabularInline):
    model = CampaignBenefit
    extra = 0
    fields = [
        "kind",
        "coupon_template",
        "points",
        "multiplier",
        "multiplier_days",
        "top_up_offer",
        "follow_up_reason",
        "follow_up_due_days",
        "message_template",
        "message_channel",
        "unit_cost",
    ]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # Every row's select lists the same templates and offers: query them once per page.
        for name in ("coupon_template", "top_up_offer"):
            field = formset.form.base_fields[name]
            field.choices = list(field.choices)
        return formset


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    inlines = [CampaignBenefitInline]
    list_display = ["name", "status", "target", "starts_at", "ends_at", "control_percent", "budget_used"]
    list_filter = ["status", "target_kind"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["segments", "stores", "tiers"]
    actions = ["launch_selected", "pause_selected", "end_selected", "run_now"]
    readonly_fields = ["status", "estimate", "spent_count", "spent_money", "launched_at", "ended_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "strategy", "status", "starts_at", "ends_at"]}),
        (_("Target"), {"fields": ["target_kind", "segments", "target_transition_to"]}),
        (_("Narrow down (optional)"), {"fields": ["stores", "tiers", "registered_after", "registered_before"]}),
        (
            _("Limits"),
            {"fields": ["budget_money", "budget_count", "per_member_cap", "control_percent"]},
        ),
        (_("Estimate and spend"), {"fields": ["estimate", "spent_count", "spent_money", "launched_at", "ended_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("target_transition_to").prefetch_related("segments")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "target_transition_to":
            kwargs["queryset"] = db_field.related_model.objects.select_related("scheme")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("target"))
    def target(self, campaign):
        if campaign.target_kind == Campaign.TargetKind.TRANSITION:
            segment = campaign.target_transition_to
            return _("entering %(segment)s") % {"segment": segment.slug if segment else "—"}
        return ", ".join(segment.slug for segment in campaign.segments.all()) or "—"

    @admin.display(description=_("budget used"))
    def budget_used(self, campaign):
        parts = []
        if campaign.budget_count is not None:
            parts.append(f"{campaign.spent_count} / {campaign.budget_count}")
        else:
            parts.append(str(campaign.spent_count))
        if campaign.budget_money is not None:
            parts.append(f"¥{campaign.spent_money} / ¥{campaign.budget_money}")
        elif campaign.spent_money:
            parts.append(f"¥{campaign.spent_money}")
        return " · ".join(parts)

    @admin.display(description=_("estimate"))
    def estimate(self, campaign):
        if campaign.pk is None:
            return _("Save the campaign to see its estimated reach and cost.")
        estimate = campaign_estimate(campaign=campaign)
        text = _(
            "Reach %(reach)s members, of whom %(control)s held out as the control group; "
            "%(treated)s granted at ¥%(unit)s each: ¥%(cost)s."
        ) % {
            "reach": estimate.reach,
            "control": estimate.control,
            "treated": estimate.treated,
            "unit": estimate.unit_cost,
            "cost": estimate.cost,
        }
        if campaign.target_kind == Campaign.TargetKind.TRANSITION:
            text = _("%(text)s (Reach: members who entered the segment in the last 30 days.)") % {"text": text}
        if estimate.limited_by_budget:
            text = _("%(text)s Limited by the budget.") % {"text": text}
        return text

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
