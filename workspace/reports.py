"""The growth and referral reports for operators (issue #19; seeds 001 and 002).

**Growth between two RFM runs** (``growth_report``; seed 001's 各层金额/频率变化及增长率): per
segment, the size, the total spend and the average frequency at run A and at run B, the change
(B − A) and the growth rate (B − A) / A — None when A is 0 (the page shows "—", or "new" when B is
not 0). The figures are each run's own (``RfmRun.segment_stats``: members, average F and average
M in the run's window), so a report never changes once both runs are written; the total spend is
the average × the members, in yuan to the cent (the run rounded the average to the cent, so the
total is within half a cent per member of the exact sum). Segments are matched by slug, so runs of
two schemes compare where their segments share slugs; a segment only one run has shows 0 in the
other. By default B is the current run and A the successful run of the same scheme before it.

**Referrals by the referrer's segment** (``referral_report``; seed 002's 推荐新客数): the members
who registered in the period with a referral (``members.Referral``), grouped by the *current*
segment of the member who referred them: how many referrers, how many new members, how many of
them have bought (an order paid before the period's end and not refunded in full), the value of
their first such orders (net of refunds) and their spend from registration to the period's end.

One statement per report besides reading the runs and segments. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from members.formatting import local_name
from members.models import Member, Order, Referral
from members.money import cents, ratio
from segmentation.models import MemberRfm, RfmRun, Segment

DEFAULT_REFERRAL_DAYS = 30


def growth_rate(before, after) -> Decimal | None:
    """(after − before) / before, to four places (0.5 is +50%); None when ``before`` is 0 or unknown."""
    if before is None or after is None:
        return None
    return ratio(Decimal(after) - Decimal(before), before)


# --- growth between two runs ------------------------------------------------------------------


def default_runs() -> tuple[RfmRun | None, RfmRun | None]:
    """(A, B): the current run and the successful run of its scheme before it."""
    to_run = RfmRun.objects.filter(is_current=True).first()
    if to_run is None:
        return None, None
    from_run = (
        RfmRun.objects.filter(scheme_id=to_run.scheme_id, status=RfmRun.Status.SUCCEEDED)
        .filter(started_at__lt=to_run.started_at)
        .order_by("-started_at", "-id")
        .first()
    )
    return from_run, to_run


def _run_figures(run: RfmRun) -> dict[str, dict]:
    """slug → members, average F, total M of one run ("" is "no segment")."""
    figures = {}
    for slug, stats in (run.segment_stats or {}).items():
        members = int(stats.get("count") or 0)
        frequency = Decimal(str(stats["avg_frequency"])) if stats.get("avg_frequency") is not None else None
        monetary = Decimal(str(stats["avg_monetary"])) if stats.get("avg_monetary") is not None else None
        figures[slug] = {
            "size": members,
            "spend": cents(monetary * members) if monetary is not None else Decimal("0.00"),
            "frequency": frequency if members else None,
        }
    return figures


def _change(before, after):
    if before is None or after is None:
        return None
    return after - before


def growth_report(*, from_run: RfmRun, to_run: RfmRun) -> dict:
    """Per segment (of B's scheme first, in its order; then A's other segments; then "no
    segment"), the figures at A and B with their changes and growth rates."""
    a, b = _run_figures(from_run), _run_figures(to_run)
    ordered = list(
        Segment.objects.filter(scheme_id__in={to_run.scheme_id, from_run.scheme_id}).order_by("ordering", "pk")
    )
    ordered.sort(key=lambda segment: segment.scheme_id != to_run.scheme_id)  # B's scheme first, stable
    segments, seen = [], set()
    for segment in ordered:
        if segment.slug not in seen:
            seen.add(segment.slug)
            segments.append(segment)
    slugs = [segment.slug for segment in segments] + sorted((set(a) | set(b)) - seen - {""})
    if "" in a or "" in b:
        slugs.append("")
    by_slug = {segment.slug: segment for segment in segments}
    rows = []
    empty = {"size": 0, "spend": Decimal("0.00"), "frequency": None}
    for slug in slugs:
        before, after = a.get(slug, empty), b.get(slug, empty)
        segment = by_slug.get(slug)
        row = {
            "slug": slug,
            "name_zh": segment.name_zh if segment else "",
            "name_en": segment.name_en if segment else "",
            "name": local_name(segment.name_zh, segment.name_en, slug) if segment else slug,
            "colour": segment.colour if segment else "#9e9e9e",
        }
        for key in ("size", "spend", "frequency"):
            row[f"{key}_a"] = before[key]
            row[f"{key}_b"] = after[key]
            row[f"{key}_change"] = _change(before[key], after[key])
            row[f"{key}_growth"] = growth_rate(before[key], after[key])
        row["new"] = not before["size"] and bool(after["size"])
        rows.append(row)
    total_a = sum(row["size_a"] for row in rows)
    total_b = sum(row["size_b"] for row in rows)
    spend_a = sum((row["spend_a"] for row in rows), Decimal("0.00"))
    spend_b = sum((row["spend_b"] for row in rows), Decimal("0.00"))
    return {
        "from_run": from_run,
        "to_run": to_run,
        "segments": rows,
        "total": {
            "size_a": total_a,
            "size_b": total_b,
            "size_change": total_b - total_a,
            "size_growth": growth_rate(total_a, total_b),
            "spend_a": spend_a,
            "spend_b": spend_b,
            "spend_change": spend_b - spend_a,
            "spend_growth": growth_rate(spend_a, spend_b),
        },
    }


GROWTH_CSV_FIELDS = [
    "slug",
    "name_zh",
    "name_en",
    *(f"{key}_{part}" for key in ("size", "spend", "frequency") for part in ("a", "b", "change", "growth")),
]


def _cell(value) -> str:
    return "" if value is None else str(value)


def growth_csv_rows(report: dict) -> list[list]:
    """A header row of the run ids, then one row per segment (growth rates as fractions: 0.5000 is +50%)."""
    rows: list[list] = [
        ["from_run", str(report["from_run"].pk), str(report["from_run"].as_of)],
        ["to_run", str(report["to_run"].pk), str(report["to_run"].as_of)],
        GROWTH_CSV_FIELDS,
    ]
    rows.extend([_cell(row[name]) for name in GROWTH_CSV_FIELDS] for row in report["segments"])
    return rows


# --- referrals by the referrer's segment ----------------------------------------------------


_REFERRAL_SQL = f"""
    WITH referred AS (
        SELECT f.referrer_id, f.referee_id, r.segment_id
        FROM {Referral._meta.db_table} f
        JOIN {Member._meta.db_table} m ON m.id = f.referee_id
        LEFT JOIN {MemberRfm._meta.db_table} r ON r.member_id = f.referrer_id
        WHERE m.registered_at >= %(start)s AND m.registered_at < %(end)s
    )
    SELECT d.segment_id, COUNT(DISTINCT d.referrer_id), COUNT(*), COUNT(o.first_value),
           COALESCE(SUM(o.first_value), 0), COALESCE(SUM(o.spend), 0), COALESCE(SUM(o.orders), 0)
    FROM referred d
    LEFT JOIN LATERAL (
        SELECT (ARRAY_AGG(x.amount - x.refunded_amount ORDER BY x.paid_at, x.id))[1] AS first_value,
               SUM(x.amount - x.refunded_amount) AS spend, COUNT(*) AS orders
        FROM {Order._meta.db_table} x
        WHERE x.member_id = d.referee_id AND x.paid_at < %(end)s AND x.refunded_amount < x.amount
    ) o ON TRUE
    GROUP BY d.segment_id
"""  # noqa: S608


def referral_period(*, start: dt.date | None = None, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The period's first and last days (both included); by default the last 30 days, today included."""
    end = end or timezone.localdate()
    start = start or end - dt.timedelta(days=DEFAULT_REFERRAL_DAYS - 1)
    return start, end


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone())


def referral_report(*, start: dt.date, end: dt.date) -> dict:
    """Per current segment of the referrer (every segment of the current run's scheme, even
    without referrals; then "no segment"): the referral figures of the members who registered
    from ``start`` to ``end`` (both included, local days)."""
    params = {"start": _day_start(start), "end": _day_start(end + dt.timedelta(days=1))}
    with connection.cursor() as cursor:
        cursor.execute(_REFERRAL_SQL, params)
        figures = {row[0]: row[1:] for row in cursor.fetchall()}
    current = RfmRun.objects.filter(is_current=True).values_list("scheme_id", flat=True).first()
    segments = list(Segment.objects.filter(scheme_id=current).order_by("ordering", "pk")) if current else []
    known = {segment.pk for segment in segments}
    extra = [key for key in figures if key is not None and key not in known]
    if extra:
        segments += list(Segment.objects.filter(pk__in=extra).order_by("ordering", "pk"))
    keyed = [(segment.pk, segment) for segment in segments] + ([(None, None)] if None in figures else [])
    rows = []
    for segment_id, segment in keyed:
        referrers, referred, buyers, first_value, spend, orders = figures.get(segment_id, (0, 0, 0, 0, 0, 0))
        first_value, spend = cents(first_value), cents(spend)
        rows.append(
            {
                "segment_id": segment_id,
                "slug": segment.slug if segment else "",
                "name_zh": segment.name_zh if segment else "",
                "name_en": segment.name_en if segment else "",
                "name": local_name(segment.name_zh, segment.name_en, segment.slug) if segment else "",
                "colour": segment.colour if segment else "#9e9e9e",
                "referrers": int(referrers),
                "referred": int(referred),
                "buyers": int(buyers),
                "conversion_rate": ratio(buyers, referred),
                "first_order_value": first_value,
                "average_first_order": cents(first_value / buyers) if buyers else None,
                "spend": spend,
                "orders": int(orders),
                "spend_per_referred": cents(spend / referred) if referred else None,
            }
        )
    totals = {
        key: sum((row[key] for row in rows), Decimal("0.00") if key in ("first_order_value", "spend") else 0)
        for key in ("referrers", "referred", "buyers", "first_order_value", "spend", "orders")
    }
    return {"start": start, "end": end, "segments": rows, "total": totals}


REFERRAL_CSV_FIELDS = [
    "slug",
    "name_zh",
    "name_en",
    "referrers",
    "referred",
    "buyers",
    "conversion_rate",
    "first_order_value",
    "average_first_order",
    "spend",
    "orders",
    "spend_per_referred",
]


def referral_csv_rows(report: dict) -> list[list]:
    rows: list[list] = [["start", str(report["start"])], ["end", str(report["end"])], REFERRAL_CSV_FIELDS]
    rows.extend([_cell(row[name]) for name in REFERRAL_CSV_FIELDS] for row in report["segments"])
    return rows
