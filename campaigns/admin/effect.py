"""Admin: effect reports (``campaigns.selectors.effect``).

"Campaign effects" lists the campaigns with their targeted and held-out counts; each links to its
report page (conversion window in days as a parameter, CSV download). The segment report compares
two RFM runs picked on the page (per-segment figures and the migration matrix, CSV download).
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns.apis.effect import CsvRenderer
from campaigns.models import CampaignEffect
from campaigns.selectors.effect import (
    DEFAULT_DAYS,
    campaign_effect,
    campaign_effect_csv_rows,
    segment_report,
    segment_report_csv_rows,
)
from members.admin.base import ReadOnlyAdmin
from segmentation.models import RfmRun


def csv_download(rows: list[list], filename: str) -> HttpResponse:
    response = HttpResponse(CsvRenderer().render(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class EffectWindowForm(forms.Form):
    days = forms.IntegerField(
        label=_("Conversion window (days)"), min_value=1, max_value=365, initial=DEFAULT_DAYS, required=False
    )


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"#{obj.pk} {obj.scheme.name} @ {obj.as_of}"


class SegmentReportForm(forms.Form):
    from_run = RunChoiceField(label=_("From run"), queryset=RfmRun.objects.none())
    to_run = RunChoiceField(label=_("To run"), queryset=RfmRun.objects.none())
    lapsed_days = forms.IntegerField(
        label=_("Lapsed after (days)"),
        min_value=1,
        max_value=3650,
        required=False,
        help_text=_("Empty: the scheme's R threshold."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        runs = RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).select_related("scheme").order_by("-as_of", "-pk")
        self.fields["from_run"].queryset = runs
        self.fields["to_run"].queryset = runs

    def clean(self):
        data = super().clean()
        if data.get("from_run") and data.get("to_run") and data["to_run"].as_of < data["from_run"].as_of:
            raise forms.ValidationError(_("Choose a second run as of the same day as the first, or later."))
        return data


@admin.register(CampaignEffect)
class CampaignEffectAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "targeted", "held_out", "report_link")
    list_display_links = None
    list_filter = ("status",)
    search_fields = ("name", "slug")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                targeted_count=Count("grants__member", distinct=True),
                held_out_count=Count("grants__member", filter=Q(grants__is_control=True), distinct=True),
            )
        )

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("campaigns.view_campaigneffect") or request.user.has_perm(
            "campaigns.view_campaign"
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    @admin.display(description=_("targeted"), ordering="targeted_count")
    def targeted(self, obj):
        return obj.targeted_count

    @admin.display(description=_("held out"), ordering="held_out_count")
    def held_out(self, obj):
        return obj.held_out_count

    @admin.display(description=_("report"))
    def report_link(self, obj):
        url = reverse("admin:campaigns_campaigneffect_report", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Effect report"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:campaign_id>/report/", view(self.report_view), name="campaigns_campaigneffect_report"),
            path("segments/", view(self.segment_view), name="campaigns_campaigneffect_segments"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:campaigns_campaigneffect_report", args=[object_id]))

    def _context(self, request, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.opts, **extra}

    def report_view(self, request, campaign_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(CampaignEffect, pk=campaign_id)
        form = EffectWindowForm(request.GET or None)
        days = (form.cleaned_data.get("days") if form.is_valid() else None) or DEFAULT_DAYS
        report = campaign_effect(campaign=campaign, days=days)
        if request.GET.get("format") == "csv":
            return csv_download(campaign_effect_csv_rows(report), f"campaign-{campaign.pk}-effect.csv")
        title = _("Effect of %(name)s") % {"name": campaign.name}
        return TemplateResponse(
            request,
            "admin/campaigns/effect_report.html",
            self._context(request, title, campaign=campaign, report=report, form=form, days=days),
        )

    def segment_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = SegmentReportForm(request.GET or None)
        report = None
        if form.is_valid():
            data = form.cleaned_data
            report = segment_report(from_run=data["from_run"], to_run=data["to_run"], lapsed_days=data["lapsed_days"])
            if request.GET.get("format") == "csv":
                return csv_download(
                    segment_report_csv_rows(report), f"segments-{data['from_run'].pk}-{data['to_run'].pk}.csv"
                )
        return TemplateResponse(
            request,
            "admin/campaigns/segment_report.html",
            self._context(
                request,
                _("Segments between two runs"),
                form=form,
                report=report,
                matrix=_matrix_table(report["matrix"]) if report else None,
                csv_query=request.GET.urlencode(),
            ),
        )


def _matrix_table(cells: list[dict]) -> dict:
    sources = list(dict.fromkeys(cell["from"] for cell in cells))
    targets = list(dict.fromkeys(cell["to"] for cell in cells))
    counts = {(cell["from"], cell["to"]): cell["count"] for cell in cells}

    def label(key):
        return {"": str(_("(no segment)")), "absent": str(_("(not in run)"))}.get(key, key)

    return {
        "columns": [label(target) for target in targets],
        "rows": [
            {"label": label(source), "cells": (row := [counts.get((source, t), 0) for t in targets]), "total": sum(row)}
            for source in sources
        ],
    }
