"""What the activity report page and the dashboard's activity card show of
``workspace.activity``'s figures: segment names in the page's language, tables and Chart.js line
charts. Shared by ``workspace.admin.reports`` and ``workspace.admin.dashboard``."""

from __future__ import annotations

import json

from django.utils.translation import gettext as _

from members.formatting import local_name
from segmentation.models import Segment
from workspace import activity


def _segment_names(segment_ids) -> dict:
    """segment id → (name in the page's language, colour); None is "no segment". One query
    whatever the ids (none too: the dashboard's query count stays the same on any data); the
    segments of the schemes involved are few."""
    names = {None: (_("(no segment)"), "#9e9e9e")}
    ids = {segment_id for segment_id in segment_ids if segment_id is not None}
    schemes = Segment.objects.filter(pk__in=ids or [0]).values("scheme_id")
    for segment in Segment.objects.filter(scheme_id__in=schemes).order_by("ordering", "pk"):
        if segment.pk in ids:
            names[segment.pk] = (local_name(segment.name_zh, segment.name_en, segment.slug), segment.colour)
    return names


def _ordered_ids(names: dict, ids) -> list:
    """The segments in ``names``'s order (by the scheme's ordering), "no segment" last."""
    present = set(ids)
    return [key for key in names if key in present and key is not None] + ([None] if None in present else [])


def line_chart(labels: list[str], series: list[dict], *, unit: str = "") -> dict:
    """Chart.js data and options (unfold's line component) for ``series`` of
    ``{"label", "data", "colour"}``; the first one drawn thicker (the total)."""
    data = {
        "labels": labels,
        "datasets": [
            {
                "label": item["label"],
                "data": item["data"],
                "borderColor": item["colour"],
                "backgroundColor": item["colour"],
                "borderWidth": 3 if index == 0 else 1.5,
                "pointRadius": 2,
                "tension": 0,
                "cubicInterpolationMode": "default",
            }
            for index, item in enumerate(series)
        ],
    }
    options = {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": True,
        "aspectRatio": 3,
        "plugins": {"legend": {"display": True, "position": "bottom"}, "tooltip": {"enabled": True}},
        "scales": {
            "x": {"grid": {"display": False}, "ticks": {"color": "#6b7280", "display": True}},
            "y": {
                "beginAtZero": True,
                "ticks": {"color": "#6b7280", "display": True, "precision": 0},
                "title": {"display": bool(unit), "text": unit, "color": "#6b7280"},
            },
        },
    }
    return {"data": json.dumps(data, ensure_ascii=False), "options": json.dumps(options, ensure_ascii=False)}


def activity_series_chart(buckets: list, names: dict, *, weekly: bool) -> dict:
    """The total and one line per current segment."""
    ids = _ordered_ids(names, {key for bucket in buckets for key in bucket.by_segment})
    labels = [f"{bucket.start:%m-%d}" for bucket in buckets]
    series = [{"label": _("All members"), "data": [bucket.active for bucket in buckets], "colour": "#dc2626"}]
    for segment_id in ids:
        name, colour = names.get(segment_id, (str(segment_id), "#9e9e9e"))
        series.append(
            {"label": name, "data": [bucket.by_segment.get(segment_id, 0) for bucket in buckets], "colour": colour}
        )
    return line_chart(labels, series, unit=_("members active in the week") if weekly else _("members active that day"))


def activity_context(report: dict) -> dict:
    """Names, tables and charts of ``workspace.activity.activity_report``."""
    daily, weekly, kept = report["daily"], report["weekly"], report["retention"]
    ids = {key for bucket in daily + weekly for key in bucket.by_segment} | set(kept["segments"])
    names = _segment_names(ids)
    order = _ordered_ids(names, ids)
    latest_day = daily[-1] if daily else None
    last_week = weekly[-2] if len(weekly) >= 2 else None  # the last full week
    average = sum(bucket.active for bucket in daily) / len(daily) if daily else 0
    segments = []
    for segment_id in order:
        cohort = kept["segments"].get(segment_id)
        name, colour = names[segment_id]
        segments.append(
            {
                "name": name,
                "colour": colour,
                "dau_average": round(sum(b.by_segment.get(segment_id, 0) for b in daily) / len(daily), 1)
                if daily
                else 0,
                "wau_last": last_week.by_segment.get(segment_id, 0) if last_week else 0,
                "cohort": cohort,
                "new": cohort.new if cohort else 0,
                "rates": [cohort.rate(n) if cohort else None for n in activity.RETENTION_DAYS],
            }
        )
    cohorts = [
        {"day": cohort.key, "new": cohort.new, "rates": [cohort.rate(n) for n in activity.RETENTION_DAYS]}
        for cohort in reversed(kept["days"])
    ]
    return {
        "daily_chart": activity_series_chart(daily, names, weekly=False),
        "weekly_chart": activity_series_chart(weekly, names, weekly=True),
        "today_active": latest_day.active if latest_day else 0,
        "dau_average": round(average, 1),
        "wau_last": last_week.active if last_week else 0,
        "last_week_start": last_week.start if last_week else None,
        "segments": segments,
        "cohorts": cohorts,
        "total": {"new": kept["total"].new, "rates": [kept["total"].rate(n) for n in activity.RETENTION_DAYS]},
        "retention_days": activity.RETENTION_DAYS,
    }
