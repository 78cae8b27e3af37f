"""Effect measurement (效果评估): did a campaign pay off, and how do segments move between runs.

**Per campaign** (``campaign_effect``), from its ``CampaignGrant`` rows — treated members and the
control group held out at random (``is_control``), each from their first grant:

- *targeted*, *held out* (control), *treated*; *reached* — treated members who got something other
  than a message, or whose message was sent;
- *redeemed* — the campaign's coupons redeemed (coupons and members);
- *converted* — members who bought within ``days`` (default 14) of their first grant, per group;
- *revenue per member* in that window, treated vs control (net of refunds; members who bought
  nothing count as 0): mean and sample variance, computed in SQL (``GROUP BY`` member, then
  ``AVG`` and ``VAR_SAMP`` per group — never a Python loop over members);
- *uplift* = mean(treated) − mean(control), with a 95% confidence interval by Welch's normal
  approximation: uplift ± z₀.₉₇₅ · √(s²ₜ/nₜ + s²꜀/n꜀);
- *cost* = what the grants cost (``CampaignGrant.cost``, the benefits' unit costs at grant time)
  with the coupons counted at what they were actually worth: their estimated face value in the
  grant cost is replaced by the discounts of the campaign's coupons that were redeemed (a coupon
  nobody used cost nothing);
- *incremental revenue* = uplift × treated; *ROI* = (incremental revenue − cost) / cost;
- *engagement* of the campaign's messages (``_engagement``): sent, delivered (where the channel
  reports it), opened and clicked (``campaigns.services.engagement``), with open and click rates
  **over the messages sent** — not over delivered, since only some channels report delivery (the
  log channel never does, WeChat only when the push is configured); a message counts once however
  often it was opened or clicked. The same figures per segment, the member's segment when granted
  (their latest segment transition up to the grant, else their current segment). One statement
  (``GROUPING SETS``: the campaign's total and each segment's row).

**Per segment between two runs** (``segment_report``), for the members of each segment at run A
(the run's snapshot): size at A and at B; *repurchase rate* — bought between A and B; *reactivation
rate* — of those lapsed at A (last purchase more than ``lapsed_days`` before A, default the
scheme's R threshold), the share who bought between A and B; spend between A and B (per member and
per order); *7/30-day retention* — bought within 7 / 30 days after A; and the migration matrix
(``segmentation.selectors.segment_migration_matrix``). One SQL statement for the per-segment
figures.

Both reports are plain dicts of Decimals and ints, shared by the admin pages, the API and the CSV
exports (``*_csv_rows``). They are reads: nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from statistics import NormalDist

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from campaigns.models import Campaign, CampaignBenefit, CampaignGrant, Coupon, OutboxMessage
from members.models import Order
from members.money import RATE, cents, ratio
from segmentation.models import MemberRfm, RfmRun, Segment, SegmentSnapshot, SegmentTransition
from segmentation.scoring import window_for
from segmentation.selectors import ABSENT, segment_migration_matrix

Z_95 = Decimal(str(round(NormalDist().inv_cdf(0.975), 6)))  # 1.959964
DEFAULT_DAYS = 14
BENEFIT_KEYS = ["coupons", "points", "multipliers", "offers", "follow_ups"]

_GRANT = CampaignGrant._meta.db_table
_ORDER = Order._meta.db_table
_MESSAGE = OutboxMessage._meta.db_table
_SNAPSHOT = SegmentSnapshot._meta.db_table
_TRANSITION = SegmentTransition._meta.db_table
_MEMBER_RFM = MemberRfm._meta.db_table


# --- per campaign ------------------------------------------------------------------------------------


def _group_revenue(campaign_id: int, days: int) -> dict[bool, dict]:
    """Per group (control or not): members, converted, total, mean and sample variance of the
    revenue per member in the ``days`` after their first grant. One statement."""
    sql = f"""
        WITH f AS (
            SELECT member_id, MIN(granted_at) AS first_at,
                   MAX(CASE WHEN is_control THEN 1 ELSE 0 END) AS control
            FROM {_GRANT} WHERE campaign_id = %s GROUP BY member_id
        ), per AS (
            SELECT f.member_id, f.control, COUNT(o.id) AS orders,
                   COALESCE(SUM(o.amount - o.refunded_amount), 0) AS revenue
            FROM f LEFT JOIN {_ORDER} o
              ON o.member_id = f.member_id AND o.refunded_amount < o.amount
             AND o.paid_at >= f.first_at AND o.paid_at < f.first_at + %s
            GROUP BY f.member_id, f.control
        )
        SELECT control, COUNT(*), SUM(CASE WHEN orders > 0 THEN 1 ELSE 0 END),
               COALESCE(SUM(revenue), 0), AVG(revenue), VAR_SAMP(revenue)
        FROM per GROUP BY control
    """  # noqa: S608
    groups = {
        flag: {"members": 0, "converted": 0, "revenue": Decimal(0), "mean": None, "variance": None}
        for flag in (False, True)
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, dt.timedelta(days=days)])
        for control, members, converted, total, mean, variance in cursor.fetchall():
            groups[bool(control)] = {
                "members": int(members),
                "converted": int(converted or 0),
                "revenue": Decimal(str(total)),
                "mean": None if mean is None else Decimal(str(mean)),
                "variance": None if variance is None else Decimal(str(variance)),
            }
    return groups


def _reached(campaign_id: int) -> int:
    """Treated members given something other than a message, or whose message was sent."""
    sql = f"""
        SELECT COUNT(DISTINCT g.member_id) FROM {_GRANT} g
        WHERE g.campaign_id = %s AND NOT g.is_control AND (
            g.details ?| %s
            OR EXISTS (
                SELECT 1 FROM {_MESSAGE} m WHERE m.id = CAST(g.details ->> 'message' AS BIGINT) AND m.status = %s
            )
        )
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, BENEFIT_KEYS, OutboxMessage.Status.SENT])
        return int(cursor.fetchone()[0])


def _engagement(campaign_id: int) -> dict:
    """Sent, delivered, opened and clicked messages of the campaign's treated grants, with rates
    over sent: in total and per segment at grant time (see the module docstring). One statement;
    the segments' names in one more query."""
    sql = f"""
        WITH msg AS (
            SELECT m.sent_at, m.delivered_at, m.first_opened_at, m.first_clicked_at,
                   COALESCE(t.to_segment_id, r.segment_id) AS segment_id
            FROM {_GRANT} g
            JOIN {_MESSAGE} m ON m.id = CAST(g.details ->> 'message' AS BIGINT)
            LEFT JOIN LATERAL (
                SELECT st.to_segment_id FROM {_TRANSITION} st
                WHERE st.member_id = g.member_id AND st.created_at <= g.granted_at
                ORDER BY st.created_at DESC, st.id DESC LIMIT 1
            ) t ON TRUE
            LEFT JOIN {_MEMBER_RFM} r ON r.member_id = g.member_id
            WHERE g.campaign_id = %s AND NOT g.is_control AND g.details ? 'message'
        )
        SELECT GROUPING(segment_id) = 1 AS total, segment_id, COUNT(*),
               COUNT(sent_at), COUNT(delivered_at), COUNT(first_opened_at), COUNT(first_clicked_at)
        FROM msg GROUP BY GROUPING SETS ((), (segment_id))
    """  # noqa: S608

    def figures(messages, sent, delivered, opened, clicked) -> dict:
        return {
            "messages": int(messages),
            "sent": int(sent),
            "delivered": int(delivered),
            "opened": int(opened),
            "clicked": int(clicked),
            "open_rate": ratio(opened, sent),
            "click_rate": ratio(clicked, sent),
        }

    total = figures(0, 0, 0, 0, 0)
    rows = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id])
        for is_total, segment_id, *counts in cursor.fetchall():
            if is_total:
                total = figures(*counts)
            else:
                rows.append((segment_id, figures(*counts)))
    names = {
        segment.pk: segment
        for segment in Segment.objects.filter(pk__in=[segment_id for segment_id, _ in rows if segment_id is not None])
    }
    segments = [
        {
            "segment_id": segment_id,
            "slug": names[segment_id].slug if segment_id in names else "",
            "name_zh": names[segment_id].name_zh if segment_id in names else "",
            "name_en": names[segment_id].name_en if segment_id in names else "",
            **values,
        }
        for segment_id, values in rows
    ]
    segments.sort(
        key=lambda row: (row["segment_id"] is None, getattr(names.get(row["segment_id"]), "ordering", 0), row["slug"])
    )
    return {**total, "rate_base": "sent", "segments": segments}


def _coupon_face_value_in_grants(campaign: Campaign) -> Decimal:
    """The coupons' estimated cost counted in the grants' cost: per template, the coupons the
    campaign's grants issued × the benefit's unit cost (a handful of rows: one per template)."""
    issued = dict(
        Coupon.objects.filter(campaign_id=campaign.pk, idempotency_key__startswith="campaign-grant:")
        .values("template_id")
        .annotate(n=Count("pk"))
        .values_list("template_id", "n")
    )
    if not issued:
        return Decimal("0.00")
    benefits = {}
    for benefit in CampaignBenefit.objects.filter(
        campaign_id=campaign.pk, coupon_template_id__in=list(issued)
    ).select_related("coupon_template"):
        benefits.setdefault(benefit.coupon_template_id, benefit)
    return sum(
        (benefits[template_id].cost * count for template_id, count in issued.items() if template_id in benefits),
        Decimal("0.00"),
    )


def campaign_effect(*, campaign: Campaign, days: int = DEFAULT_DAYS) -> dict:
    """The effect report of ``campaign`` (see the module docstring)."""
    groups = _group_revenue(campaign.pk, days)
    treated, control = groups[False], groups[True]
    coupons = Coupon.objects.filter(campaign_id=campaign.pk).aggregate(
        issued=Count("pk"),
        redeemed=Count("pk", filter=Q(status=Coupon.Status.REDEEMED)),
        redeemed_members=Count("member_id", filter=Q(status=Coupon.Status.REDEEMED), distinct=True),
        discount=Sum("discount", filter=Q(status=Coupon.Status.REDEEMED)),
    )
    grant_cost = cents(
        CampaignGrant.objects.filter(campaign_id=campaign.pk, is_control=False).aggregate(total=Sum("cost"))["total"]
    )
    coupon_estimate = cents(_coupon_face_value_in_grants(campaign))
    redeemed_discount = cents(coupons["discount"])
    cost = cents(max(grant_cost - coupon_estimate, Decimal(0)) + redeemed_discount)

    uplift = ci_low = ci_high = standard_error = None
    if treated["mean"] is not None and control["mean"] is not None:
        uplift = treated["mean"] - control["mean"]
        if treated["variance"] is not None and control["variance"] is not None:
            standard_error = (
                treated["variance"] / treated["members"] + control["variance"] / control["members"]
            ).sqrt()
            ci_low, ci_high = uplift - Z_95 * standard_error, uplift + Z_95 * standard_error
    incremental = None if uplift is None else uplift * treated["members"]
    roi = None
    if incremental is not None and cost > 0:
        roi = ((incremental - cost) / cost).quantize(RATE, rounding=ROUND_HALF_UP)

    def group(stats: dict) -> dict:
        return {
            "members": stats["members"],
            "converted": stats["converted"],
            "conversion_rate": ratio(stats["converted"], stats["members"]),
            "revenue": cents(stats["revenue"]),
            "revenue_per_member": None if stats["mean"] is None else cents(stats["mean"]),
            "revenue_variance": None if stats["variance"] is None else cents(stats["variance"]),
        }

    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "slug": campaign.slug, "status": campaign.status},
        "days": days,
        "targeted": treated["members"] + control["members"],
        "held_out": control["members"],
        "treated": treated["members"],
        "reached": _reached(campaign.pk),
        "coupons_issued": coupons["issued"],
        "coupons_redeemed": coupons["redeemed"],
        "redeemed_members": coupons["redeemed_members"],
        "treated_group": group(treated),
        "control_group": group(control),
        "uplift_per_member": None if uplift is None else cents(uplift),
        "uplift_standard_error": None if standard_error is None else cents(standard_error),
        "uplift_ci_low": None if ci_low is None else cents(ci_low),
        "uplift_ci_high": None if ci_high is None else cents(ci_high),
        "grant_cost": grant_cost,
        "coupon_face_value_in_grants": coupon_estimate,
        "redeemed_discount": redeemed_discount,
        "cost": cost,
        "incremental_revenue": None if incremental is None else cents(incremental),
        "roi": roi,
        "engagement": _engagement(campaign.pk),
    }


CAMPAIGN_CSV_FIELDS = [
    ("days", ("days",)),
    ("targeted", ("targeted",)),
    ("held_out", ("held_out",)),
    ("treated", ("treated",)),
    ("reached", ("reached",)),
    ("coupons_issued", ("coupons_issued",)),
    ("coupons_redeemed", ("coupons_redeemed",)),
    ("redeemed_members", ("redeemed_members",)),
    ("treated_converted", ("treated_group", "converted")),
    ("treated_conversion_rate", ("treated_group", "conversion_rate")),
    ("treated_revenue", ("treated_group", "revenue")),
    ("treated_revenue_per_member", ("treated_group", "revenue_per_member")),
    ("control_converted", ("control_group", "converted")),
    ("control_conversion_rate", ("control_group", "conversion_rate")),
    ("control_revenue", ("control_group", "revenue")),
    ("control_revenue_per_member", ("control_group", "revenue_per_member")),
    ("uplift_per_member", ("uplift_per_member",)),
    ("uplift_ci_low", ("uplift_ci_low",)),
    ("uplift_ci_high", ("uplift_ci_high",)),
    ("grant_cost", ("grant_cost",)),
    ("coupon_face_value_in_grants", ("coupon_face_value_in_grants",)),
    ("redeemed_discount", ("redeemed_discount",)),
    ("cost", ("cost",)),
    ("incremental_revenue", ("incremental_revenue",)),
    ("roi", ("roi",)),
    ("messages_sent", ("engagement", "sent")),
    ("messages_delivered", ("engagement", "delivered")),
    ("messages_opened", ("engagement", "opened")),
    ("messages_clicked", ("engagement", "clicked")),
    ("open_rate_of_sent", ("engagement", "open_rate")),
    ("click_rate_of_sent", ("engagement", "click_rate")),
]


def campaign_effect_csv_rows(report: dict) -> list[list]:
    """``metric,value`` rows (a header first), for the admin download and ``?format=csv``."""
    rows: list[list] = [["metric", "value"], ["campaign", report["campaign"]["name"]]]
    for name, path in CAMPAIGN_CSV_FIELDS:
        value = report
        for key in path:
            value = value[key]
        rows.append([name, "" if value is None else str(value)])
    return rows


# --- per segment, between two runs -------------------------------------------------------------------


def _run_end(run: RfmRun) -> dt.datetime:
    """The end of the run's as-of day (local midnight after it): orders from here on are "after"."""
    return window_for(run.as_of, 1).end


def segment_report(*, from_run: RfmRun, to_run: RfmRun, lapsed_days: int | None = None) -> dict:
    """The per-segment report between ``from_run`` (A) and ``to_run`` (B); see the module docstring."""
    if lapsed_days is None:
        lapsed_days = int((from_run.params or {}).get("r_max_days") or 90)
    a_end, b_end = _run_end(from_run), _run_end(to_run)
    day7, day30 = a_end + dt.timedelta(days=7), a_end + dt.timedelta(days=30)
    sql = f"""
        WITH a AS (
            SELECT s.segment_id, e.member_id
            FROM {_SNAPSHOT} s CROSS JOIN LATERAL unnest(s.member_ids) AS e(member_id)
            WHERE s.run_id = %(run)s
        ),
        per AS (
            SELECT a.segment_id, a.member_id,
                   MAX(CASE WHEN o.paid_at < %(a)s THEN o.paid_at END) AS last_before,
                   SUM(CASE WHEN o.paid_at >= %(a)s AND o.paid_at < %(b)s THEN 1 ELSE 0 END) AS orders_between,
                   SUM(CASE WHEN o.paid_at >= %(a)s AND o.paid_at < %(b)s THEN o.amount - o.refunded_amount ELSE 0 END)
                       AS spend_between,
                   SUM(CASE WHEN o.paid_at >= %(a)s AND o.paid_at < %(day7)s THEN 1 ELSE 0 END) AS in_7,
                   SUM(CASE WHEN o.paid_at >= %(a)s AND o.paid_at < %(day30)s THEN 1 ELSE 0 END) AS in_30
            FROM a LEFT JOIN {_ORDER} o
              ON o.member_id = a.member_id AND o.refunded_amount < o.amount AND o.paid_at < %(horizon)s
            GROUP BY a.segment_id, a.member_id
        )
        SELECT segment_id, COUNT(*),
               SUM(CASE WHEN orders_between > 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN last_before < %(lapsed)s THEN 1 ELSE 0 END),
               SUM(CASE WHEN last_before < %(lapsed)s AND orders_between > 0 THEN 1 ELSE 0 END),
               COALESCE(SUM(spend_between), 0), COALESCE(SUM(orders_between), 0),
               SUM(CASE WHEN in_7 > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN in_30 > 0 THEN 1 ELSE 0 END)
        FROM per GROUP BY segment_id
    """  # noqa: S608
    params = {
        "run": from_run.pk,
        "a": a_end,
        "b": b_end,
        "day7": day7,
        "day30": day30,
        "horizon": max(b_end, day30),
        "lapsed": a_end - dt.timedelta(days=lapsed_days),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        figures = {row[0]: row[1:] for row in cursor.fetchall()}
    sizes_to = dict(SegmentSnapshot.objects.filter(run=to_run).values_list("segment_id", "member_count"))
    segments = list(Segment.objects.filter(scheme_id=from_run.scheme_id).order_by("ordering", "pk"))
    known = {segment.pk for segment in segments}
    extra = [segment_id for segment_id in figures if segment_id is not None and segment_id not in known]
    segments += list(Segment.objects.filter(pk__in=extra))
    now = timezone.now()
    rows = []
    for segment_id, segment in [(s.pk, s) for s in segments] + ([(None, None)] if None in figures else []):
        size, repurchasers, lapsed_n, reactivated, spend, orders, kept_7, kept_30 = figures.get(
            segment_id, (0, 0, 0, 0, 0, 0, 0, 0)
        )
        size, orders = int(size or 0), int(orders or 0)
        spend = cents(spend)
        rows.append(
            {
                "segment_id": segment_id,
                "slug": segment.slug if segment else "",
                "name_zh": segment.name_zh if segment else "",
                "name_en": segment.name_en if segment else "",
                "size": size,
                "size_to": int(sizes_to.get(segment_id, 0)),
                "repurchasers": int(repurchasers or 0),
                "repurchase_rate": ratio(repurchasers or 0, size),
                "lapsed": int(lapsed_n or 0),
                "reactivated": int(reactivated or 0),
                "reactivation_rate": ratio(reactivated or 0, lapsed_n or 0),
                "revenue": spend,
                "orders": orders,
                "spend_per_member": cents(spend / size) if size else None,
                "average_order_value": cents(spend / orders) if orders else None,
                "retained_7d": int(kept_7 or 0),
                "retention_7d": ratio(kept_7 or 0, size),
                "retained_30d": int(kept_30 or 0),
                "retention_30d": ratio(kept_30 or 0, size),
            }
        )
    return {
        "from_run": {"id": from_run.pk, "as_of": from_run.as_of},
        "to_run": {"id": to_run.pk, "as_of": to_run.as_of},
        "lapsed_days": lapsed_days,
        "retention_30d_complete": now >= day30,
        "segments": rows,
        "matrix": _matrix(segment_migration_matrix(from_run=from_run, to_run=to_run)),
    }


def _matrix(matrix: dict) -> list[dict]:
    segments = matrix["segments"]

    def label(key):
        if key == ABSENT:
            return ABSENT
        if key is None:
            return ""
        segment = segments.get(key)
        return segment.slug if segment else str(key)

    return [
        {"from": label(source), "to": label(target), "count": count}
        for (source, target), count in sorted(
            matrix["cells"].items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
        )
    ]


SEGMENT_CSV_FIELDS = [
    "slug",
    "name_zh",
    "name_en",
    "size",
    "size_to",
    "repurchasers",
    "repurchase_rate",
    "lapsed",
    "reactivated",
    "reactivation_rate",
    "revenue",
    "orders",
    "spend_per_member",
    "average_order_value",
    "retained_7d",
    "retention_7d",
    "retained_30d",
    "retention_30d",
]


def segment_report_csv_rows(report: dict) -> list[list]:
    """One row per segment, then a blank row and the migration matrix as ``from,to,count`` rows."""
    rows: list[list] = [SEGMENT_CSV_FIELDS]
    for segment in report["segments"]:
        rows.append(["" if segment[name] is None else str(segment[name]) for name in SEGMENT_CSV_FIELDS])
    rows.append([])
    rows.append(["from", "to", "count"])
    rows.extend([cell["from"], cell["to"], str(cell["count"])] for cell in report["matrix"])
    return rows
