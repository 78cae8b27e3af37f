"""The operator dashboard on the admin home (issue #17) and its recompute button.

- ``dashboard_callback`` (``UNFOLD["DASHBOARD_CALLBACK"]``) adds the dashboard to the index's
  context for operators, analysts and superusers — whoever sees every store and may view RFM runs
  (``DASHBOARD_PERMISSIONS``). Store staff and managers keep the counter's search and their tasks.
  The figures are ``workspace.dashboard.dashboard_data``; this module turns them into what the
  template shows: formatted cards, Chart.js datasets and, for every number, the address of the
  filtered member list behind it (the filters are in ``workspace.admin.members``). The activity
  card (DAU/WAU trends and new members' retention) reads ``workspace.activity.dashboard_activity``
  — the nightly rollup and today's DAU, kept in the cache for ten minutes — and links to the
  activity report (``workspace.admin.reports``).
- ``recompute_start_view`` (POST ``/admin/workspace/recompute/``) queues
  ``segment_recompute_task`` and answers with the status box; ``recompute_status_view``
  (GET ``/admin/workspace/recompute/status/?after=<run id>``) is that box, which htmx polls every
  second while the recompute runs (its phase from ``segmentation.services.recompute.
  recompute_progress``) and which shows the new run's figures once it has finished — no reload.
  Viewing needs ``segmentation.view_rfmrun``; starting also ``segmentation.add_rfmrun`` (operators).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from members.formatting import count, local_name, percent, yuan
from segmentation.models import RfmRun, Segment
from segmentation.selectors import ABSENT
from segmentation.services.recompute import recompute_progress
from segmentation.tasks import segment_recompute_task
from workspace import activity
from workspace import dashboard as figures
from workspace.admin.activity_figures import activity_context

logger = logging.getLogger(__name__)

DASHBOARD_PERMISSIONS = ("members.view_all_stores", "segmentation.view_rfmrun")
VIEW_RUNS_PERMISSION = "segmentation.view_rfmrun"
START_RECOMPUTE_PERMISSION = "segmentation.add_rfmrun"
STATUS_TEMPLATE = "admin/workspace/recompute_status.html"
MEMBER_LIST = "admin:members_member_changelist"
NONE_TOKEN, ABSENT_TOKEN = "0", "x"


def shows_dashboard(user) -> bool:
    return user.is_active and user.is_staff and user.has_perms(DASHBOARD_PERMISSIONS)


def _url(name: str, *args, query: dict | None = None) -> str:
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(query)}" if query else url


def member_list_url(**query) -> str:
    return _url(MEMBER_LIST, query=query or None)


def _token(key) -> str:
    return ABSENT_TOKEN if key == ABSENT else NONE_TOKEN if key is None else str(key)


def _range_query(column: str, low, high) -> dict:
    query = {f"rfm__{column}_from": str(low)}
    if high is not None:
        query[f"rfm__{column}_to"] = str(high)
    return query


def _range_label(dim: str, low, high) -> str:
    """``0–30`` days, ``3–5`` orders, ``¥200–500`` (M ranges end a cent below the next one)."""
    if dim == "m":
        if high is not None and low == high:
            return yuan(low, places=0)
        start = yuan(low.to_integral_value(rounding="ROUND_FLOOR"), places=0)
        if high is None:
            return f"≥ {start}"
        return f"{start}–{count((high + Decimal('0.01')).to_integral_value())}"
    if high is not None and low == high:
        return str(low)
    return f"{low}–{high}" if high is not None else f"≥ {low}"


# --- The cards --------------------------------------------------------------------------------


def _kpi_cards(kpis: list[figures.Kpi], days: int, request) -> list[dict]:
    user = request.user
    titles = {
        "members": _("Members"),
        "new_members": _("New members"),
        "active": _("Active members"),
        "repurchase_rate": _("Repurchase rate"),
        "average_order_value": _("Average order value"),
        "revenue": _("Revenue (net of refunds)"),
        "stored_value": _("Stored-value liability"),
        "points": _("Points liability"),
    }
    bought = member_list_url(bought=str(days))
    links = {
        "members": member_list_url(),
        "new_members": member_list_url(registered=str(days)),
        "active": bought,
        "repurchase_rate": member_list_url(bought=f"{days}-2"),
        "average_order_value": bought,
        "revenue": bought,
        "stored_value": _url("admin:members_wallet_changelist") if user.has_perm("members.view_wallet") else "",
        "points": _url("admin:members_pointsaccount_changelist") if user.has_perm("members.view_pointsaccount") else "",
    }
    cards = []
    for kpi in kpis:
        shown = {
            "count": count,
            "money": yuan,
            "rate": percent,
            "points": count,
        }[kpi.kind]
        note = ""
        if kpi.key == "members":
            note = _("%(new)s new in the period") % {"new": count(kpi.extra["new"])}
        elif kpi.key == "repurchase_rate":
            note = _("%(n)s bought twice or more") % {"n": count(kpi.extra["repeaters"])}
        elif kpi.key == "average_order_value":
            note = _("%(n)s orders") % {"n": count(kpi.extra["orders"])}
        elif kpi.key == "stored_value":
            note = _("principal %(principal)s · bonus %(bonus)s") % {
                "principal": yuan(kpi.extra["principal"]),
                "bonus": yuan(kpi.extra["bonus"]),
            }
        change = kpi.change
        if kpi.kind == "rate" and kpi.value is not None and kpi.previous is not None:
            # a rate's change is in percentage points
            points = (kpi.value - kpi.previous) * 100
            change_text = _("%(points)s pp") % {"points": f"{points:+.1f}"}
        else:
            change_text = percent(change, signed=True) if change is not None else "—"
        cards.append(
            {
                "key": kpi.key,
                "title": titles[kpi.key],
                "value": shown(kpi.value),
                "previous": shown(kpi.previous),
                "change": change_text,
                "rising": kpi.rising,
                "note": note,
                "url": links[kpi.key],
            }
        )
    return cards


def _segment_chart(segments: dict) -> tuple[str, list[str], list[dict]]:
    rows = [
        {**row, "url": member_list_url(segment=str(row["id"])), "share_text": percent(row["share"])}
        for row in segments["segments"]
    ]
    data = {
        "labels": [row["name"] for row in rows],
        "datasets": [
            {
                "label": _("Members"),
                "data": [row["count"] for row in rows],
                "backgroundColor": [row["colour"] for row in rows],
                "maxBarThickness": 44,
            }
        ],
    }
    return json.dumps(data, ensure_ascii=False), [row["url"] for row in rows], rows


def _history_chart(history: dict) -> tuple[str, list[list[str]]]:
    runs = history["runs"]
    labels = run_labels(runs)
    data = {
        "labels": [labels[run.pk] for run in runs],
        "datasets": [
            {
                "label": series["name"],
                "data": series["counts"],
                "borderColor": series["colour"],
                "backgroundColor": series["colour"],
            }
            for series in history["series"]
        ],
    }
    links = [[member_list_url(snapshot=f"{run.pk}.{series['id']}") for run in runs] for series in history["series"]]
    return json.dumps(data, ensure_ascii=False), links


def _distribution_charts(distributions: dict | None) -> list[dict]:
    if not distributions:
        return []
    titles = {
        "r": (_("R: days since the last order"), _("days")),
        "f": (_("F: orders in the window"), _("orders")),
        "m": (_("M: spend in the window"), ""),
    }
    charts = []
    for dim, column, _ranges in figures.DIMENSIONS:
        bars = [
            {
                "label": _range_label(dim, bar["from"], bar["to"]),
                "count": bar["count"],
                "url": member_list_url(**_range_query(column, bar["from"], bar["to"])),
            }
            for bar in distributions[dim]
        ]
        data = {
            "labels": [bar["label"] for bar in bars],
            "datasets": [
                {
                    "label": _("Members"),
                    "data": [bar["count"] for bar in bars],
                    "backgroundColor": "var(--color-primary-500)",
                    "maxBarThickness": 36,
                }
            ],
        }
        title, unit = titles[dim]
        charts.append(
            {
                "dim": dim,
                "title": title,
                "unit": unit,
                "data": json.dumps(data, ensure_ascii=False),
                "links": json.dumps([bar["url"] for bar in bars]),
                "bars": bars,
            }
        )
    return charts


def _clv_context(clv: dict | None) -> dict | None:
    """CLV by segment (a table), P(alive) in ten bars, and the calibration chart: the mean
    purchases expected in the holdout against those made, by purchases in the calibration period."""
    if not clv:
        return None
    rows = [
        {
            "name": row["segment"].name if row["segment"] else _("(no segment)"),
            "colour": row["segment"].colour if row["segment"] else "#9e9e9e",
            "members": row["members"],
            "total": yuan(row["total"], places=0),
            "average": yuan(row["average"]),
            "p_alive": percent(row["p_alive"], places=0),
        }
        for row in clv["by_segment"]
    ]
    bars = clv["p_alive"]
    p_alive_chart = {
        "labels": [f"{bar['from']:.0%}–{bar['to']:.0%}" for bar in bars],
        "datasets": [
            {
                "label": _("Members"),
                "data": [bar["count"] for bar in bars],
                "backgroundColor": "var(--color-primary-500)",
                "maxBarThickness": 36,
            }
        ],
    }
    calibration = clv["calibration"]
    groups = calibration.get("groups") or []
    calibration_chart = {
        "labels": [f"{group['frequency']}+" if group.get("or_more") else str(group["frequency"]) for group in groups],
        "datasets": [
            {
                "label": _("Expected by the model"),
                "data": [group["expected"] for group in groups],
                "borderColor": "#1e88e5",
                "backgroundColor": "#1e88e5",
            },
            {
                "label": _("Actual"),
                "data": [group["actual"] for group in groups],
                "borderColor": "#e53935",
                "backgroundColor": "#e53935",
            },
        ],
    }
    return {
        "run": clv["run"],
        "segments": rows,
        "p_alive_chart": json.dumps(p_alive_chart, ensure_ascii=False),
        "p_alive_bars": bars,
        "calibration": calibration,
        "calibration_groups": groups,
        "calibration_chart": json.dumps(calibration_chart, ensure_ascii=False) if groups else None,
    }


def run_labels(runs: list[RfmRun]) -> dict[int, str]:
    """Each run's as-of date; where runs share a date, with the time it started (to the second
    where they share the minute, and the run's number where even that is shared), so that no two
    labels are the same."""

    def day(run):
        return f"{run.as_of:%Y-%m-%d}"

    shared_days = {day(run) for run in runs if [day(other) for other in runs].count(day(run)) > 1}
    labels = {run.pk: day(run) for run in runs}
    for fmt in ("%H:%M", "%H:%M:%S", "%H:%M:%S #{pk}"):
        if len(set(labels.values())) == len(labels):
            break
        for run in runs:
            if day(run) in shared_days:
                moment = timezone.localtime(run.started_at).strftime(fmt).replace("{pk}", str(run.pk))
                labels[run.pk] = f"{day(run)} ({moment})"
    return labels


def _heatmap(matrix: dict | None) -> dict | None:
    if matrix is None:
        return None
    from_run, to_run = matrix["from_run"], matrix["to_run"]
    labels = {**matrix["labels"], None: _("No segment"), ABSENT: _("Not in the run")}

    def link(a, b, count_):
        if not count_:
            return ""
        return member_list_url(moved=f"{from_run.pk}.{_token(a)}.{to_run.pk}.{_token(b)}")

    rows = []
    for row in matrix["rows"]:
        rows.append(
            {
                "label": labels.get(row["key"], "?"),
                "colour": matrix["colours"].get(row["key"], "#9e9e9e"),
                "total": row["total"],
                "cells": [
                    {
                        **cell,
                        "url": link(cell["from"], cell["to"], cell["count"]),
                        "to_label": labels.get(cell["to"], "?"),
                        "background": (
                            "rgba(120, 120, 120, 0.10)"
                            if cell["stay"]
                            else f"rgba(220, 38, 38, {cell['shade']})"
                            if cell["count"]
                            else "transparent"
                        ),
                        "dark_text": cell["shade"] > 0.55,
                    }
                    for cell in row["cells"]
                ],
            }
        )
    return {
        "from_run": from_run,
        "to_run": to_run,
        "from_label": run_labels([from_run, to_run])[from_run.pk],
        "to_label": run_labels([from_run, to_run])[to_run.pk],
        "columns": [
            {"label": labels.get(key, "?"), "colour": matrix["colours"].get(key, "#9e9e9e")}
            for key in matrix["columns"]
        ],
        "rows": rows,
        "moved": matrix["moved"],
        "transitions_url": _url("admin:segmentation_segmenttransition_changelist", query={"run__id__exact": to_run.pk}),
    }


def _activity_card(run: RfmRun | None) -> dict:
    """The activity card: DAU over the last 30 days and WAU over the last 12 weeks (all members),
    and the retention of the new members of the last 30 days (``workspace.activity``)."""
    report = activity.dashboard_activity(run_id=run.pk if run else None)
    daily, weekly = report["daily"], report["weekly"]

    def line(buckets, label, colour):
        return json.dumps(
            {
                "labels": [f"{bucket.start:%m-%d}" for bucket in buckets],
                "datasets": [
                    {
                        "label": label,
                        "data": [bucket.active for bucket in buckets],
                        "borderColor": colour,
                        "backgroundColor": colour,
                        "pointRadius": 2,
                        "tension": 0,
                        "cubicInterpolationMode": "default",
                    }
                ],
            },
            ensure_ascii=False,
        )

    context = activity_context(report)
    return {
        "days": report["days"],
        "weeks": report["weeks"],
        "today_active": context["today_active"],
        "dau_average": context["dau_average"],
        "wau_last": context["wau_last"],
        "new": context["total"]["new"],
        "retention": [
            {"days": n, "rate": percent(rate) if rate is not None else "—"}
            for n, rate in zip(activity.RETENTION_DAYS, context["total"]["rates"], strict=True)
        ],
        "daily_chart": line(daily, _("Daily active"), "#dc2626"),
        "weekly_chart": line(weekly, _("Weekly active"), "#2563eb"),
        "url": _url("admin:workspace_report_activity"),
        "rolled_up": report["rolled_up_at"] is not None,
    }


def _campaign_rows(campaigns: list[dict]) -> list[dict]:
    rows = []
    for item in campaigns:
        campaign, effect = item["campaign"], item["effect"]
        rows.append(
            {
                "name": campaign.name,
                "url": _url("admin:campaigns_campaigneffect_report", campaign.pk)
                or _url("admin:campaigns_campaign_change", campaign.pk),
                "targeted": count(effect["targeted"]),
                "reached": count(effect["reached"]),
                "reach_rate": percent(effect["reached"] / effect["treated"]) if effect["treated"] else "—",
                "redeemed": count(effect["coupons_redeemed"]),
                "redemption_rate": (
                    percent(effect["coupons_redeemed"] / effect["coupons_issued"]) if effect["coupons_issued"] else "—"
                ),
                "incremental_revenue": yuan(effect["incremental_revenue"]),
                "roi": percent(effect["roi"]) if effect["roi"] is not None else "—",
                "roi_negative": effect["roi"] is not None and effect["roi"] < 0,
                "coupons_url": _url("admin:campaigns_coupon_changelist", query={"campaign__id__exact": campaign.pk}),
            }
        )
    return rows


def dashboard_context(request) -> dict:
    try:
        days = int(request.GET.get("days", figures.DEFAULT_DAYS))
    except ValueError:
        days = figures.DEFAULT_DAYS
    if days not in figures.PERIODS:
        days = figures.DEFAULT_DAYS
    data = figures.dashboard_data(days=days)
    segment_json, segment_links, segment_rows = _segment_chart(data["segments"])
    history_json, history_links = _history_chart(data["history"])
    last = data["last_recompute"]
    return {
        "days": days,
        "periods": [{"days": n, "current": n == days, "url": f"?days={n}"} for n in figures.PERIODS],
        "period": data["period"],
        "cards": _kpi_cards(data["kpis"], days, request),
        "run": data["run"],
        "scheme": data["scheme"],
        "segments": segment_rows,
        "segment_total": data["segments"]["total"],
        "segment_chart": segment_json,
        "segment_links": json.dumps(segment_links),
        "history": data["history"],
        "history_chart": history_json,
        "history_links": json.dumps(history_links),
        "distributions": _distribution_charts(data["distributions"]),
        "heatmap": _heatmap(data["matrix"]),
        "campaigns": _campaign_rows(data["campaigns"]),
        "campaigns_url": _url("admin:campaigns_campaign_changelist", query={"status__exact": "running"}),
        "recompute": _status_context(request, after=last.pk if last else 0, polling=False),
        "clv": _clv_context(data["clv"]),
        "activity": _activity_card(data["run"]),
    }


def dashboard_callback(request, context: dict) -> dict:
    """``UNFOLD["DASHBOARD_CALLBACK"]``: the dashboard for those who see every store's figures."""
    if shows_dashboard(request.user):
        context["dashboard"] = dashboard_context(request)
    return context


# --- The recompute button ---------------------------------------------------------------------


def _status_context(request, *, after: int, polling: bool) -> dict:
    """What the status box shows: the recompute that is running (phase, percentage) or the runs
    since ``after`` (the newest run when the page was drawn or the button pressed)."""
    newest = RfmRun.objects.select_related("scheme").order_by("-started_at", "-id").first()
    finished = None
    if newest is not None and newest.pk > after and newest.status != RfmRun.Status.RUNNING:
        finished = newest
    progress = None if finished else recompute_progress()
    running = progress is not None or (newest is not None and newest.status == RfmRun.Status.RUNNING)
    state = "finished" if finished else "running" if running else "queued" if polling else "idle"
    new_segments = []
    if finished is not None and finished.status == RfmRun.Status.SUCCEEDED:
        stats = finished.segment_stats or {}
        for segment in Segment.objects.filter(scheme_id=finished.scheme_id).order_by("ordering", "pk"):
            new_segments.append(
                {
                    "name": local_name(segment.name_zh, segment.name_en, segment.slug),
                    "colour": segment.colour,
                    "count": int(stats.get(segment.slug, {}).get("count", 0)),
                }
            )
    phases = {
        "started": _("starting"),
        "aggregating": _("reading the orders"),
        "summarising": _("counting segments and recording changes"),
        "indexes": _("building indexes"),
        "swapping": _("switching to the new results"),
        "scores": _("updating tier scores"),
    }
    return {
        "state": state,
        "polling": polling and state != "finished",
        "after": after,
        "last": finished or newest,
        "new_segments": new_segments,
        "finished": finished,
        "progress": progress,
        "phase": phases.get(progress["phase"], progress["phase"]) if progress else "",
        "percent": round(100 * progress["step"] / (progress["steps"] + 1)) if progress else (5 if running else 0),
        "can_start": request.user.has_perm(START_RECOMPUTE_PERMISSION) and state not in ("running", "queued"),
        "status_url": reverse("admin:workspace_recompute_status") + f"?{urlencode({'after': after})}",
        "start_url": reverse("admin:workspace_recompute_start"),
        "runs_url": _url("admin:segmentation_rfmrun_changelist"),
    }


def _render_status(request, *, after: int, polling: bool):
    return TemplateResponse(
        request, STATUS_TEMPLATE, {"recompute": _status_context(request, after=after, polling=polling)}
    )


def recompute_status_view(request):
    if not request.user.has_perm(VIEW_RUNS_PERMISSION):
        raise PermissionDenied
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        after = 0
    return _render_status(request, after=after, polling=True)


def recompute_start_view(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not (request.user.has_perm(VIEW_RUNS_PERMISSION) and request.user.has_perm(START_RECOMPUTE_PERMISSION)):
        raise PermissionDenied
    newest = RfmRun.objects.order_by("-id").values_list("pk", flat=True).first() or 0

    def queue():
        try:
            segment_recompute_task.delay()
        except Exception:  # a broker that is down; or, run eagerly, a recompute that failed (recorded as a run)
            logger.exception("could not run the RFM recompute from the dashboard")

    transaction.on_commit(queue)
    return _render_status(request, after=newest, polling=True)


def dashboard_urls() -> list:
    view = admin.site.admin_view
    return [
        path("workspace/recompute/", view(recompute_start_view), name="workspace_recompute_start"),
        path("workspace/recompute/status/", view(recompute_status_view), name="workspace_recompute_status"),
    ]
