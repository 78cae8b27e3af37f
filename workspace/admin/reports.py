"""Admin: the operators' reports of issue #19, each a page with a form, a CSV download
(``?format=csv``) and the same figures as the staff API (``workspace.apis``):

- **Activity and retention** (``/admin/workspace/reports/activity/``): DAU over the last N days
  and WAU over the last N weeks, in all and per current segment (line charts and tables), and the
  next-day / 7-day / 30-day retention of new members per segment and per registration day
  (``workspace.activity``, whose docstring defines every figure; the page says it in words).
- **Segment growth** (``/admin/workspace/reports/growth/``): per segment, size, total spend and
  average frequency at two RFM runs with the change and the growth rate (``workspace.reports``).
- **Referrals** (``/admin/workspace/reports/referrals/``): new members brought by referral and
  their value, by the referrer's segment, over a period.

Like the dashboard they read every store's figures, so they are for the users the dashboard is
for (``workspace.admin.dashboard.shows_dashboard``: operators, analysts, superusers); anyone else
gets a 403.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.widgets import UnfoldAdminDateWidget, UnfoldAdminIntegerFieldWidget

from campaigns.admin.effect import RunPairForm, csv_download
from segmentation.models import Segment
from workspace import activity, reports
from workspace.admin.activity_figures import activity_context
from workspace.admin.dashboard import shows_dashboard

MAX_REFERRAL_DAYS = 3 * 366


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def _allowed(request) -> None:
    if not shows_dashboard(request.user):
        raise PermissionDenied


# --- activity ---------------------------------------------------------------------------------


class ActivityForm(forms.Form):
    days = forms.IntegerField(
        label=gettext_lazy("Days"),
        min_value=7,
        max_value=activity.MAX_DAYS,
        initial=activity.DEFAULT_DAYS,
        required=False,
        widget=UnfoldAdminIntegerFieldWidget,
    )
    weeks = forms.IntegerField(
        label=gettext_lazy("Weeks"),
        min_value=4,
        max_value=activity.MAX_WEEKS,
        initial=activity.DEFAULT_WEEKS,
        required=False,
        widget=UnfoldAdminIntegerFieldWidget,
    )


def activity_csv_rows(report: dict) -> list[list]:
    """Four blocks, each with its header: the daily and weekly series per segment slug (the total
    under ``*``), retention per registration day and per segment (rates as fractions)."""
    kept = report["retention"]
    ids = {key for bucket in report["daily"] + report["weekly"] for key in bucket.by_segment} | set(kept["segments"])
    slugs = dict(Segment.objects.filter(pk__in=[i for i in ids if i is not None]).values_list("pk", "slug"))

    def slug(segment_id):
        return slugs.get(segment_id, "") if segment_id is not None else ""

    def rate(cohort, n):
        value = cohort.rate(n)
        return "" if value is None else str(value)

    rows: list[list] = [["series", "start", "segment", "active"]]
    for name, buckets in (("day", report["daily"]), ("week", report["weekly"])):
        for bucket in buckets:
            rows.append([name, str(bucket.start), "*", str(bucket.active)])
            rows.extend(
                [name, str(bucket.start), slug(segment_id), str(n)] for segment_id, n in bucket.by_segment.items()
            )
    rows.append([])
    rows.append(["registered_on", "new_members", "next_day_retention", "retention_7d", "retention_30d"])
    rows.extend(
        [str(cohort.key), str(cohort.new), *(rate(cohort, n) for n in activity.RETENTION_DAYS)]
        for cohort in kept["days"]
    )
    rows.append([])
    rows.append(["segment", "new_members", "next_day_retention", "retention_7d", "retention_30d"])
    for segment_id, cohort in kept["segments"].items():
        rows.append([slug(segment_id), str(cohort.new), *(rate(cohort, n) for n in activity.RETENTION_DAYS)])
    rows.append(["*", str(kept["total"].new), *(rate(kept["total"], n) for n in activity.RETENTION_DAYS)])
    return rows


def activity_view(request):
    _allowed(request)
    form = ActivityForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    days = data.get("days") or activity.DEFAULT_DAYS
    weeks = data.get("weeks") or activity.DEFAULT_WEEKS
    report = activity.activity_report(days=days, weeks=weeks)
    if request.GET.get("format") == "csv":
        return csv_download(activity_csv_rows(report), f"activity-{report['today']}.csv")
    query = request.GET.copy()
    query["format"] = "csv"
    return TemplateResponse(
        request,
        "admin/workspace/reports/activity.html",
        _context(
            request,
            _("Activity and retention"),
            form=form,
            report=report,
            csv_url=f"?{query.urlencode()}",
            **activity_context(report),
        ),
    )


# --- growth between two runs ------------------------------------------------------------------


class GrowthForm(RunPairForm):
    runs_required = False  # neither: the current run and the one before

    def clean(self):
        data = super().clean()
        if bool(data.get("from_run")) != bool(data.get("to_run")):
            raise forms.ValidationError(_("Choose both runs, or neither for the current run and the one before."))
        return data


def growth_view(request):
    _allowed(request)
    form = GrowthForm(request.GET or None)
    report = None
    from_run = to_run = None
    if form.is_bound and form.is_valid():
        from_run, to_run = form.cleaned_data.get("from_run"), form.cleaned_data.get("to_run")
    if not form.is_bound or (form.is_valid() and from_run is None):
        from_run, to_run = reports.default_runs()
        if not form.is_bound and from_run is not None:  # show which runs the default compares
            form = GrowthForm(initial={"from_run": from_run.pk, "to_run": to_run.pk})
    if from_run is not None and to_run is not None:
        report = reports.growth_report(from_run=from_run, to_run=to_run)
        if request.GET.get("format") == "csv":
            return csv_download(reports.growth_csv_rows(report), f"growth-{from_run.pk}-{to_run.pk}.csv")
    return TemplateResponse(
        request,
        "admin/workspace/reports/growth.html",
        _context(
            request,
            _("Segment growth between two runs"),
            form=form,
            report=report,
            csv_url=f"?from_run={from_run.pk}&to_run={to_run.pk}&format=csv" if report else "",
        ),
    )


# --- referrals --------------------------------------------------------------------------------


class ReferralForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=UnfoldAdminDateWidget)
    end = forms.DateField(label=gettext_lazy("To"), required=False, widget=UnfoldAdminDateWidget)

    def clean(self):
        data = super().clean()
        start, end = reports.referral_period(start=data.get("start"), end=data.get("end"))
        if end < start:
            raise forms.ValidationError(_("The period must end on or after its first day."))
        if (end - start).days >= MAX_REFERRAL_DAYS:
            raise forms.ValidationError(_("Choose a period of at most three years."))
        data["start"], data["end"] = start, end
        return data


def referral_view(request):
    _allowed(request)
    form = ReferralForm(request.GET or None)
    report = None
    if not form.is_bound or form.is_valid():
        if form.is_bound:
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        else:
            start, end = reports.referral_period()
            form = ReferralForm(initial={"start": start, "end": end})
        report = reports.referral_report(start=start, end=end)
        if request.GET.get("format") == "csv":
            return csv_download(reports.referral_csv_rows(report), f"referrals-{start}-{end}.csv")
    return TemplateResponse(
        request,
        "admin/workspace/reports/referrals.html",
        _context(
            request,
            _("Referrals by the referrer's segment"),
            form=form,
            report=report,
            csv_url=f"?start={report['start']}&end={report['end']}&format=csv" if report else "",
        ),
    )


def report_urls() -> list:
    view = admin.site.admin_view
    return [
        path("workspace/reports/activity/", view(activity_view), name="workspace_report_activity"),
        path("workspace/reports/growth/", view(growth_view), name="workspace_report_growth"),
        path("workspace/reports/referrals/", view(referral_view), name="workspace_report_referrals"),
    ]
