"""Admin: effect reports (``campaigns.selectors.effect``).

"Campaign effects" lists the campaigns with their targeted and held-out counts; each links to its
report page (conversion window in days as a parameter, CSV download): the uplift with its 95%
confidence interval, incremental revenue, cost and ROI in yuan and percentages, bar charts of
treated vs control (conversion rate, revenue per member), and the engagement of the campaign's
messages — sent, delivered, opened, clicked, open and click rates over sent — in total and per
segment. The segment report compares
two RFM runs picked on the page (per-segment figures and the migration matrix, CSV download).
"""

import json
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminIntegerFieldWidget, UnfoldAdminSelectWidget

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
from members.formatting import local_name
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
        return f"{date_format(obj.as_of)} · {obj.scheme.name} (#{obj.pk})"


class RunPairForm(forms.Form):
    """Two successful runs to compare, newest first in the choosers; the second not older."""

    runs_required = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        runs = RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).select_related("scheme").order_by("-as_of", "-pk")
        for name, label in (("from_run", _("From run")), ("to_run", _("To run"))):
            self.fields[name] = RunChoiceField(
                label=label, queryset=runs, widget=UnfoldAdminSelectWidget, required=self.runs_required
            )
        self.order_fields(["from_run", "to_run"])

    def clean(self):
        data = super().clean()
        if data.get("from_run") and data.get("to_run") and data["to_run"].as_of < data["from_run"].as_of:
            raise forms.ValidationError(_("Choose a second run as of the same day as the first, or later."))
        return data


class SegmentReportForm(RunPairForm):
    lapsed_days = forms.IntegerField(
        label=_("Lapsed after (days)"),
        min_value=1,
        max_value=3650,
        required=False,
        help_text=_("Empty: the scheme's R threshold."),
        widget=UnfoldAdminIntegerFieldWidget,
    )


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
            self._context(
                request,
                title,
                campaign=campaign,
                report=report,
                form=form,
                days=days,
                figures=_effect_figures(report),
                engagement_rows=_segment_rows(report["engagement"]["segments"]),
                campaign_url=reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
                **_effect_charts(report),
            ),
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
                matrix=_matrix_table(report["matrix"], report["segments"]) if report else None,
                rows=_segment_rows(report["segments"]) if report else None,
                csv_query=request.GET.urlencode(),
            ),
        )


def _relative(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    """``part`` as a fraction of ``whole`` (an uplift against the control group's figure)."""
    if part is None or not whole:
        return None
    return part / whole


def _effect_figures(report: dict) -> dict:
    """What the report page shows besides the selector's figures: the uplift relative to the
    control group (its CI too), and the difference in conversion rates."""
    treated, control = report["treated_group"], report["control_group"]
    base = control["revenue_per_member"]
    conversion_gap = None
    if treated["conversion_rate"] is not None and control["conversion_rate"] is not None:
        conversion_gap = treated["conversion_rate"] - control["conversion_rate"]
    return {
        "uplift_relative": _relative(report["uplift_per_member"], base),
        "ci_low_relative": _relative(report["uplift_ci_low"], base),
        "ci_high_relative": _relative(report["uplift_ci_high"], base),
        "conversion_gap_points": None if conversion_gap is None else f"{conversion_gap * 100:+.1f}",
        "significant": report["uplift_ci_low"] is not None
        and (report["uplift_ci_low"] > 0 or report["uplift_ci_high"] < 0),
    }


def _chart(label: str, values: list, unit: str) -> dict:
    data = {
        "labels": [str(_("Treated")), str(_("Control group"))],
        "datasets": [
            {
                "label": label,
                "data": values,
                "backgroundColor": ["var(--color-primary-600)", "var(--color-base-400)"],
                "borderRadius": 6,
                "maxBarThickness": 72,
            }
        ],
    }
    options = {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": True,
        "aspectRatio": 2,
        "plugins": {"legend": {"display": False}, "tooltip": {"enabled": True}},
        "scales": {
            "x": {"grid": {"display": False}, "ticks": {"color": "#6b7280"}},
            "y": {
                "beginAtZero": True,
                "ticks": {"color": "#6b7280"},
                "title": {"display": True, "text": unit, "color": "#6b7280"},
            },
        },
    }
    return {"data": json.dumps(data), "options": json.dumps(options)}


def _effect_charts(report: dict) -> dict:
    """Treated vs control, as two bar charts (Chart.js through unfold's chart component): the
    conversion rate (%) and the revenue per member (yuan) in the window."""
    treated, control = report["treated_group"], report["control_group"]

    def pct(rate):
        return None if rate is None else float((rate * 100).quantize(Decimal("0.1")))

    def money(value):
        return None if value is None else float(value)

    return {
        "conversion_chart": _chart(
            str(_("Conversion rate")), [pct(treated["conversion_rate"]), pct(control["conversion_rate"])], "%"
        ),
        "revenue_chart": _chart(
            str(_("Revenue per member")),
            [money(treated["revenue_per_member"]), money(control["revenue_per_member"])],
            "¥",
        ),
    }


def _segment_rows(segments: list[dict]) -> list[dict]:
    """The report's rows with each segment's name in the user's language."""
    return [{**row, "name": local_name(row["name_zh"], row["name_en"], row["slug"])} for row in segments]


def _matrix_table(cells: list[dict], segments: list[dict]) -> dict:
    """The migration matrix as rows of cells, labelled by segment name, each cell with its share of
    the row (for the heat map's shading)."""
    names = {row["slug"]: local_name(row["name_zh"], row["name_en"], row["slug"]) for row in segments}
    sources = list(dict.fromkeys(cell["from"] for cell in cells))
    targets = list(dict.fromkeys(cell["to"] for cell in cells))
    counts = {(cell["from"], cell["to"]): cell["count"] for cell in cells}

    def label(key):
        return {"": str(_("(no segment)")), "absent": str(_("(not in run)"))}.get(key) or names.get(key, key)

    rows = []
    for source in sources:
        values = [counts.get((source, target), 0) for target in targets]
        total = sum(values)
        rows.append(
            {
                "label": label(source),
                "cells": [
                    {
                        "count": value,
                        "share": (value / total) if total else 0,
                        "alpha": round(0.08 + 0.72 * value / total, 2) if total and value else 0,
                        "stays": source == target,
                    }
                    for value, target in zip(values, targets, strict=True)
                ],
                "total": total,
            }
        )
    return {"columns": [label(target) for target in targets], "rows": rows}
