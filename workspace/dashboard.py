"""The figures of the operator dashboard (issue #17), read in a bounded number of set-based queries.

``dashboard_data()`` returns everything the admin home shows to operators and analysts:

- **KPIs** for the period (default: the last 30 days up to now) with the previous period of the
  same length beside them, and the change between the two:
  *members* (registered by the end; *new* in the period), *active* (members with an order paid in
  the period that was not refunded in full), *repurchase rate* (of the period's buyers, the share
  with two orders or more in it — 复购率), *average order value* and *revenue*: orders paid in the
  period, net of what has been refunded of them (an order refunded in full counts nowhere, as in
  the RFM figures), *stored-value liability* (principal and bonus not spent; the balance at the
  start of the period is the current one less the ledger's movements since) and *points
  liability* (spendable points; at the start: each member's balance after their last entry before
  it).
- **Segments** of the current run (``segmentation.selectors.current_run``): members per segment,
  counted from the current results (``MemberRfm``, which orders refresh between runs — so the
  count is exactly what the member list filtered by that segment shows), with their share.
- **Migration matrix** between the last two successful runs of the active scheme
  (``segmentation.selectors.segment_migration_matrix``: one statement over the runs' snapshots).
- **Segment sizes over time**: the counts of the active scheme's past runs (``RfmRun.segment_stats``).
- **R, F, M distributions**: members of the current results per range of recency, order count and
  spend — read with the members per segment in one pass (``GROUPING SETS``).
- **Running campaigns** with reach, redemption, incremental revenue and ROI
  (``campaigns.selectors.effect.campaign_effect``, at most ``CAMPAIGNS_SHOWN`` of them).
- **The last recompute**.

Everything is a plain dict or dataclass of ints and Decimals; names of segments are in the page's
language (``members.formatting.local_name``). Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.selectors.effect import campaign_effect
from members.formatting import local_name
from members.models import Member, Order, PointsAccount, PointsEntry, Wallet, WalletEntry
from members.money import RATE, cents, ratio
from segmentation.clv_selectors import clv_by_segment, current_clv_run, p_alive_distribution
from segmentation.models import MemberRfm, RfmRun, Scheme, Segment
from segmentation.selectors import ABSENT, current_run, segment_migration_matrix

DEFAULT_DAYS = 30
PERIODS = (7, 30, 90)
CAMPAIGNS_SHOWN = 6
HISTORY_RUNS = 12
MATRIX_CACHE_SECONDS = 7 * 24 * 3600
KPI_WORK_MEM = "64MB"

# Ranges of the R, F and M histograms: (from, to), both inclusive; None is open. The member list
# filters by the same bounds (``rfm__recency_days_from`` / ``_to`` …), so a bar and its list agree.
RECENCY_RANGES = ((0, 30), (31, 60), (61, 90), (91, 180), (181, 365), (366, None))
FREQUENCY_RANGES = ((0, 0), (1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, None))
MONETARY_RANGES = (
    (Decimal("0.00"), Decimal("0.00")),
    (Decimal("0.01"), Decimal("199.99")),
    (Decimal("200.00"), Decimal("499.99")),
    (Decimal("500.00"), Decimal("999.99")),
    (Decimal("1000.00"), Decimal("1999.99")),
    (Decimal("2000.00"), Decimal("4999.99")),
    (Decimal("5000.00"), None),
)
DIMENSIONS = (
    ("r", "recency_days", RECENCY_RANGES),
    ("f", "frequency", FREQUENCY_RANGES),
    ("m", "monetary", MONETARY_RANGES),
)


@dataclass(frozen=True)
class Period:
    """``[start, end)`` and the previous period of the same length, ``[previous_start, start)``."""

    days: int
    start: dt.datetime
    end: dt.datetime

    @property
    def previous_start(self) -> dt.datetime:
        return self.start - (self.end - self.start)


def dashboard_period(*, days: int = DEFAULT_DAYS, now: dt.datetime | None = None) -> Period:
    end = now or timezone.now()
    return Period(days=days, start=end - dt.timedelta(days=days), end=end)


@dataclass
class Kpi:
    key: str
    value: Decimal | int | None
    previous: Decimal | int | None
    kind: str  # count, money, rate, points
    extra: dict = field(default_factory=dict)

    @property
    def change(self) -> Decimal | None:
        """The relative change against the previous period (None when there is nothing to compare)."""
        if self.value is None or not self.previous:
            return None
        return ((Decimal(self.value) - Decimal(self.previous)) / abs(Decimal(self.previous))).quantize(
            RATE, rounding=ROUND_HALF_UP
        )

    @property
    def rising(self) -> bool | None:
        change = self.change
        return None if change is None or change == 0 else change > 0


# --- KPIs -------------------------------------------------------------------------------------


def _member_counts(period: Period) -> dict:
    return Member.objects.aggregate(
        total=Count("pk", filter=Q(registered_at__lt=period.end)),
        at_start=Count("pk", filter=Q(registered_at__lt=period.start)),
        new=Count("pk", filter=Q(registered_at__gte=period.start, registered_at__lt=period.end)),
        new_before=Count("pk", filter=Q(registered_at__gte=period.previous_start, registered_at__lt=period.start)),
    )


def _order_figures(period: Period) -> dict[bool, dict]:
    """Per period (True: this one, False: the previous): buyers, buyers with 2+ orders, orders and
    net revenue. One statement over the two periods' orders (``order_paid_at``)."""
    table = Order._meta.db_table
    sql = f"""
        WITH per_member AS (
            SELECT member_id, paid_at >= %(start)s AS current, COUNT(*) AS orders,
                   SUM(amount - refunded_amount) AS net
            FROM {table}
            WHERE paid_at >= %(previous)s AND paid_at < %(end)s AND status <> %(refunded)s
            GROUP BY member_id, paid_at >= %(start)s
        )
        SELECT current, COUNT(*), COUNT(*) FILTER (WHERE orders >= 2), SUM(orders), SUM(net)
        FROM per_member GROUP BY current
    """  # noqa: S608
    params = {
        "start": period.start,
        "previous": period.previous_start,
        "end": period.end,
        "refunded": Order.Status.REFUNDED.value,
    }
    figures = {flag: {"buyers": 0, "repeaters": 0, "orders": 0, "revenue": Decimal("0.00")} for flag in (True, False)}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{KPI_WORK_MEM}'")  # one hash per buyer, kept in memory
        cursor.execute(sql, params)
        for current, buyers, repeaters, orders, net in cursor.fetchall():
            figures[bool(current)] = {
                "buyers": buyers,
                "repeaters": repeaters,
                "orders": int(orders or 0),
                "revenue": cents(net),
            }
    return figures


def _wallet_liability(period: Period) -> dict:
    now = Wallet.objects.aggregate(principal=Sum("principal"), bonus=Sum("bonus"))
    moved = WalletEntry.objects.filter(created_at__gte=period.start).aggregate(
        principal=Sum("principal_delta"), bonus=Sum("bonus_delta")
    )
    principal, bonus = cents(now["principal"]), cents(now["bonus"])
    return {
        "principal": principal,
        "bonus": bonus,
        "previous_principal": principal - cents(moved["principal"]),
        "previous_bonus": bonus - cents(moved["bonus"]),
    }


def _points_liability(period: Period) -> dict:
    """Spendable points now, and at the start of the period: for the members whose balance moved
    since, the balance after their last entry before it (0 if none) — debt makes the sum of the
    entries' points differ from the change of the balance, so it is read from the ledger."""
    accounts, entries = PointsAccount._meta.db_table, PointsEntry._meta.db_table
    sql = f"""
        WITH moved AS (SELECT DISTINCT member_id FROM {entries} WHERE created_at >= %(start)s)
        SELECT (SELECT COALESCE(SUM(balance), 0) FROM {accounts}),
               COALESCE(SUM(a.balance - COALESCE(b.balance_after, 0)), 0)
        FROM moved
        LEFT JOIN {accounts} a ON a.member_id = moved.member_id
        LEFT JOIN LATERAL (
            SELECT e.balance_after FROM {entries} e
            WHERE e.member_id = moved.member_id AND e.created_at < %(start)s
            ORDER BY e.created_at DESC, e.id DESC LIMIT 1
        ) b ON TRUE
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": period.start})
        balance, change = cursor.fetchone()
    return {"balance": int(balance or 0), "previous_balance": int(balance or 0) - int(change or 0)}


def dashboard_kpis(*, period: Period) -> list[Kpi]:
    members = _member_counts(period)
    orders = _order_figures(period)
    now, before = orders[True], orders[False]
    wallet = _wallet_liability(period)
    points = _points_liability(period)
    return [
        Kpi("members", members["total"], members["at_start"], "count", {"new": members["new"]}),
        Kpi("new_members", members["new"], members["new_before"], "count"),
        Kpi("active", now["buyers"], before["buyers"], "count"),
        Kpi(
            "repurchase_rate",
            ratio(now["repeaters"], now["buyers"]),
            ratio(before["repeaters"], before["buyers"]),
            "rate",
            {"repeaters": now["repeaters"]},
        ),
        Kpi(
            "average_order_value",
            cents(now["revenue"] / now["orders"]) if now["orders"] else None,
            cents(before["revenue"] / before["orders"]) if before["orders"] else None,
            "money",
            {"orders": now["orders"]},
        ),
        Kpi("revenue", now["revenue"], before["revenue"], "money"),
        Kpi(
            "stored_value",
            wallet["principal"] + wallet["bonus"],
            wallet["previous_principal"] + wallet["previous_bonus"],
            "money",
            {"principal": wallet["principal"], "bonus": wallet["bonus"]},
        ),
        Kpi("points", points["balance"], points["previous_balance"], "points"),
    ]


# --- Segments ---------------------------------------------------------------------------------


def _segment_row(segment: Segment | None, count: int, total: int) -> dict:
    return {
        "id": segment.pk if segment else None,
        "slug": segment.slug if segment else "",
        "name": local_name(segment.name_zh, segment.name_en, segment.slug) if segment else None,
        "colour": segment.colour if segment else "#9e9e9e",
        "count": count,
        "share": ratio(count, total),
    }


def segment_distribution(*, run: RfmRun | None, counts: dict | None = None) -> dict:
    """Members per segment of ``run``'s scheme in the current results (every segment, even empty);
    ``counts`` (segment id → members) when ``current_result_counts`` has read them already."""
    if run is None:
        return {"total": 0, "segments": [], "unsegmented": 0}
    if counts is None:
        counts = dict(MemberRfm.objects.order_by().values_list("segment_id").annotate(n=Count("pk")))
    segments = list(Segment.objects.filter(scheme_id=run.scheme_id).order_by("ordering", "pk"))
    total = sum(counts.values())
    rows = [_segment_row(segment, counts.get(segment.pk, 0), total) for segment in segments]
    known = {segment.pk for segment in segments}
    unsegmented = sum(n for segment_id, n in counts.items() if segment_id not in known)
    return {"total": total, "segments": rows, "unsegmented": unsegmented}


def last_two_runs(*, scheme: Scheme | None) -> tuple[RfmRun | None, RfmRun | None]:
    """The last two successful runs of ``scheme`` (older, newer)."""
    if scheme is None:
        return None, None
    runs = list(RfmRun.objects.filter(scheme=scheme, status=RfmRun.Status.SUCCEEDED).order_by("-started_at", "-id")[:2])
    if len(runs) < 2:
        return None, runs[0] if runs else None
    return runs[1], runs[0]


def migration_cells(*, from_run: RfmRun, to_run: RfmRun) -> dict:
    """The cells of ``segment_migration_matrix`` between two finished runs. Their snapshots never
    change once written, so the cells are kept in the cache (the statement reads every member id
    of both runs: the dashboard's most expensive query otherwise)."""
    stamps = [run.finished_at.timestamp() if run.finished_at else 0 for run in (from_run, to_run)]
    key = f"workspace:dashboard:migration:{from_run.pk}:{to_run.pk}:{stamps[0]}:{stamps[1]}"
    cells = cache.get(key)
    if cells is None:
        cells = segment_migration_matrix(from_run=from_run, to_run=to_run)["cells"]
        cache.set(key, cells, MATRIX_CACHE_SECONDS)
    return cells


def migration_heatmap(*, from_run: RfmRun, to_run: RfmRun) -> dict:
    """The migration matrix as rows (from) × columns (to) with a shade per cell (its count against
    the largest off-diagonal cell, so the moves stand out: staying is the usual case)."""
    cells = migration_cells(from_run=from_run, to_run=to_run)
    ordered = list(Segment.objects.filter(scheme_id=to_run.scheme_id).order_by("ordering", "pk"))
    known = {segment.pk for segment in ordered}
    extra = sorted({key for pair in cells for key in pair if key not in known and key not in (None, ABSENT)})
    segments = ordered + list(Segment.objects.filter(pk__in=extra)) if extra else ordered
    keys = [segment.pk for segment in segments]
    if any(None in pair for pair in cells):
        keys.append(None)
    labels = {segment.pk: local_name(segment.name_zh, segment.name_en, segment.slug) for segment in segments}
    colours = {segment.pk: segment.colour for segment in segments}
    row_keys = [*keys, ABSENT] if any(pair[0] == ABSENT for pair in cells) else keys
    column_keys = [*keys, ABSENT] if any(pair[1] == ABSENT for pair in cells) else keys
    moves = [count for (a, b), count in cells.items() if a != b]
    largest = max(moves, default=0) or 1
    rows = []
    for a in row_keys:
        row_cells = []
        for b in column_keys:
            count = cells.get((a, b), 0)
            row_cells.append(
                {
                    "from": a,
                    "to": b,
                    "count": count,
                    "stay": a == b,
                    "shade": 0.0 if a == b or not count else round(0.12 + 0.78 * count / largest, 3),
                }
            )
        rows.append({"key": a, "cells": row_cells, "total": sum(cell["count"] for cell in row_cells)})
    return {
        "from_run": from_run,
        "to_run": to_run,
        "rows": rows,
        "columns": column_keys,
        "labels": labels,
        "colours": colours,
        "moved": sum(moves),
    }


def segment_history(*, scheme: Scheme | None, limit: int = HISTORY_RUNS) -> dict:
    """Segment sizes at each of the last ``limit`` successful runs of ``scheme``, oldest first."""
    if scheme is None:
        return {"runs": [], "series": []}
    runs = list(
        RfmRun.objects.filter(scheme=scheme, status=RfmRun.Status.SUCCEEDED)
        .order_by("-started_at", "-id")
        .only("pk", "as_of", "started_at", "segment_stats")[:limit]
    )[::-1]
    series = []
    for segment in Segment.objects.filter(scheme=scheme).order_by("ordering", "pk"):
        series.append(
            {
                "id": segment.pk,
                "name": local_name(segment.name_zh, segment.name_en, segment.slug),
                "colour": segment.colour,
                "counts": [int((run.segment_stats or {}).get(segment.slug, {}).get("count", 0)) for run in runs],
            }
        )
    return {"runs": runs, "series": series}


def _bucket_sql(column: str, ranges) -> tuple[str, list]:
    whens, params = [], []
    for index, (low, high) in enumerate(ranges):
        if high is None:
            whens.append(f"WHEN {column} >= %s THEN {index}")
            params.append(low)
        else:
            whens.append(f"WHEN {column} BETWEEN %s AND %s THEN {index}")
            params += [low, high]
    return f"CASE {' '.join(whens)} END", params


def current_result_counts() -> dict:
    """From the current results, in one pass (``GROUPING SETS``): members per segment
    (``"segments"``: segment id → count) and per range of R (days), F (orders) and M (yuan)
    (``"r"``, ``"f"``, ``"m"``: lists of ``{"from", "to", "count"}``). Members who never bought
    have no R and are left out of its histogram."""
    selects, params = [], []
    for dim, column, ranges in DIMENSIONS:
        sql, bucket_params = _bucket_sql(column, ranges)
        selects.append(f"{sql} AS {dim}")
        params += bucket_params
    sql = f"""
        SELECT r, f, m, segment_id, GROUPING(r), GROUPING(f), GROUPING(m), COUNT(*)
        FROM (SELECT {", ".join(selects)}, segment_id FROM {MemberRfm._meta.db_table}) x
        GROUP BY GROUPING SETS ((r), (f), (m), (segment_id))
    """  # noqa: S608
    counts: dict[tuple[str, int], int] = {}
    segments: dict[int | None, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for r, f, m, segment_id, r_grouped, f_grouped, m_grouped, n in cursor.fetchall():
            if not r_grouped:
                dim, bucket = "r", r
            elif not f_grouped:
                dim, bucket = "f", f
            elif not m_grouped:
                dim, bucket = "m", m
            else:
                segments[segment_id] = n
                continue
            if bucket is not None:
                counts[(dim, bucket)] = n
    result: dict = {
        dim: [
            {"from": low, "to": high, "count": counts.get((dim, index), 0)} for index, (low, high) in enumerate(ranges)
        ]
        for dim, _column, ranges in DIMENSIONS
    }
    result["segments"] = segments
    return result


def rfm_distributions() -> dict[str, list[dict]]:
    """The R, F and M histograms of ``current_result_counts``."""
    counts = current_result_counts()
    return {dim: counts[dim] for dim in ("r", "f", "m")}


def running_campaigns(*, limit: int = CAMPAIGNS_SHOWN) -> list[dict]:
    """The running campaigns (the latest started first, at most ``limit``) with their effect."""
    campaigns = Campaign.objects.filter(status=Campaign.Status.RUNNING).order_by("-starts_at", "-pk")[:limit]
    return [{"campaign": campaign, "effect": campaign_effect(campaign=campaign)} for campaign in campaigns]


def last_recompute() -> RfmRun | None:
    return RfmRun.objects.select_related("scheme").order_by("-started_at", "-id").first()


def clv_figures() -> dict | None:
    """The current CLV run with CLV by segment, the distribution of P(alive) and the holdout
    calibration (None before the first run)."""
    run = current_clv_run()
    if run is None:
        return None
    return {
        "run": run,
        "by_segment": clv_by_segment(),
        "p_alive": p_alive_distribution(),
        "calibration": run.calibration or {},
    }


def dashboard_data(*, days: int = DEFAULT_DAYS, now: dt.datetime | None = None) -> dict:
    """Everything the dashboard shows (see the module docstring)."""
    period = dashboard_period(days=days, now=now)
    run = current_run()
    scheme = Scheme.objects.filter(is_active=True).first()
    from_run, to_run = last_two_runs(scheme=scheme)
    counts = current_result_counts() if run else None
    return {
        "period": period,
        "kpis": dashboard_kpis(period=period),
        "run": run,
        "scheme": scheme,
        "segments": segment_distribution(run=run, counts=counts["segments"] if counts else None),
        "matrix": migration_heatmap(from_run=from_run, to_run=to_run) if from_run and to_run else None,
        "history": segment_history(scheme=scheme),
        "distributions": {dim: counts[dim] for dim in ("r", "f", "m")} if counts else None,
        "campaigns": running_campaigns(),
        "last_recompute": last_recompute(),
        "clv": clv_figures(),
    }
