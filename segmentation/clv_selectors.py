"""Reads of the CLV scores for people: the member 360, the dashboard, the admin. Nothing here
imports PyMC (the web process reads what the worker wrote).

The one-line explanation (``clv_explain``) says what the two numbers mean for this member in
words an operator can act on: how likely they are still a customer given how long they usually
take between purchases and how long it has been, and what they are expected to spend.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _

from members.formatting import yuan
from segmentation.models import ClvRun, MemberClv, MemberRfm, Segment

P_ALIVE_BUCKETS = 10


def clv_default_horizon_days() -> int:
    """The horizon of the nightly run and the admin's default (``HUIYUAN_CLV_HORIZON_DAYS``)."""
    return int(getattr(settings, "HUIYUAN_CLV_HORIZON_DAYS", 365))


def clv_default_discount_rate() -> Decimal:
    """The annual discount rate of the nightly run and the admin's default (``HUIYUAN_CLV_DISCOUNT_RATE``)."""
    return Decimal(str(getattr(settings, "HUIYUAN_CLV_DISCOUNT_RATE", "0.10")))


def current_clv_run() -> ClvRun | None:
    return ClvRun.objects.filter(is_current=True).first()


def last_clv_run() -> ClvRun | None:
    return ClvRun.objects.order_by("-started_at", "-id").first()


def clv_explain(score: MemberClv, *, horizon_days: int) -> str:
    """One line: P(alive) in the light of the member's rhythm, and the expected value."""
    silent = score.age_days - score.recency_days
    values = {
        "p": f"{score.p_alive:.0%}",
        "silent": silent,
        "n": score.frequency,
        "purchases": f"{score.expected_purchases_365:.1f}",
        "spend": yuan(score.expected_spend),
        "clv": yuan(score.clv),
        "days": horizon_days,
    }
    if score.frequency == 0:
        text = _(
            "Bought once, %(silent)s days ago: %(p)s likely still a customer (no repeat purchase to judge "
            "from yet); expected %(purchases)s purchases in a year at about %(spend)s each, worth "
            "%(clv)s over %(days)s days."
        )
    else:
        gap = score.recency_days / score.frequency
        values["gap"] = f"{gap:.0f}"
        text = _(
            "Came back %(n)s times, about every %(gap)s days, last %(silent)s days ago: %(p)s likely "
            "still a customer; expected %(purchases)s purchases in a year at about %(spend)s each, "
            "worth %(clv)s over %(days)s days."
        )
    return text % values


def member_clv(*, member_id: int) -> dict | None:
    """The member's current scores with the explanation, or None (not scored: never bought by
    the run's date, or no run yet). One query."""
    score = MemberClv.objects.filter(member_id=member_id).select_related("run").first()
    if score is None:
        return None
    run = score.run
    horizon = run.horizon_days
    return {
        "score": score,
        "run": run,
        "horizon_days": horizon,
        "explanation": clv_explain(score, horizon_days=horizon),
    }


def clv_by_segment() -> list[dict]:
    """Per current RFM segment: members scored, total and average CLV, average P(alive) — one
    query joining the two current tables."""
    sql = f"""
        SELECT r.segment_id, COUNT(*), SUM(c.clv), AVG(c.clv), AVG(c.p_alive)
        FROM {MemberClv._meta.db_table} c JOIN {MemberRfm._meta.db_table} r ON r.member_id = c.member_id
        GROUP BY r.segment_id
        ORDER BY SUM(c.clv) DESC
    """  # noqa: S608 - table names from model metadata
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    segments = Segment.objects.in_bulk([row[0] for row in rows if row[0] is not None])
    return [
        {
            "segment": segments.get(segment_id),
            "members": members,
            "total": Decimal(total).quantize(Decimal("0.01")),
            "average": Decimal(average).quantize(Decimal("0.01")),
            "p_alive": float(p_alive),
        }
        for segment_id, members, total, average, p_alive in rows
    ]


def p_alive_distribution(*, buckets: int = P_ALIVE_BUCKETS) -> list[dict]:
    """Members per P(alive) bucket ``[k/buckets, (k+1)/buckets)`` (the last one includes 1)."""
    sql = f"""
        SELECT LEAST(FLOOR(p_alive * %s), %s - 1) AS bucket, COUNT(*)
        FROM {MemberClv._meta.db_table} GROUP BY 1
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [buckets, buckets])
        counts = {int(bucket): n for bucket, n in cursor.fetchall()}
    return [
        {"from": index / buckets, "to": (index + 1) / buckets, "count": counts.get(index, 0)}
        for index in range(buckets)
    ]
