"""Fresh between runs: when an order or refund is recorded, that member's R, F, M, scores and
segment are updated at once, scored with the cut points (or thresholds) and rules frozen on the
current run — so a lapsed member who buys today leaves ``lost`` today, not tonight.

Values are computed as of today (or the run's as-of date if later), exactly as a recompute would
for this member, then scored against the run's cut points: ``score = 1 + the number of cut points
reached``, which gives every member of the run the score the run gave them.

This is **one statement**, for one member or a batch of them (aggregate over the members' orders
through the ``order_member_paid_at_cover`` index, score, segment, upsert, previous segment, the member's
RFM score) with an asynchronous commit when it runs on its own — the row is derived data that
the next run rewrites anyway, so it need not wait for the WAL flush. Two refreshes of one member
racing (two orders at the same instant) cannot leave the older view behind: the row remembers the
latest order change it saw (``source_version``) and an upsert that saw less is skipped. A changed
segment adds a ``SegmentTransition`` (``source=live``) and one ``segment_changed`` after commit.

The member's ``MemberRfmScore`` (R + F + M, what tier rules read) is written by the same statement
for every row it writes, and only where it changes, so it always agrees with ``MemberRfm`` —
while tier rules read scores at all (``members.services.tiers.rfm_scores_wanted``); then members
whom a risen score qualifies for a higher tier move up (``tiers_upgrade_on_score``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from members import rows
from members.models import Interaction, Member, MemberRfmScore, Order
from members.services.tiers import rfm_scores_wanted, tiers_upgrade_on_score
from segmentation.events import segment_changed
from segmentation.models import MemberRfm, RfmRun, Segment, SegmentTransition
from segmentation.rules import segment_case_sql
from segmentation.scoring import SchemeSpec, brand_timezone
from segmentation.services.rfm_sql import member_score_exprs

_TABLE = MemberRfm._meta.db_table
_MEMBER_TABLE = Member._meta.db_table
_INTERACTION_TABLE = Interaction._meta.db_table
_SCORE_TABLE = MemberRfmScore._meta.db_table
_RUN_TABLE = RfmRun._meta.db_table
_TRANSITION_TABLE = SegmentTransition._meta.db_table
_COLUMNS = (
    "run_id",
    "as_of",
    "recency_days",
    "first_order_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "segment_id",
    "source_version",
    "updated_at",
)
_UPDATES = ", ".join(f"{column} = excluded.{column}" for column in _COLUMNS)


class _Run:
    """What a refresh needs from a run, built once per run and process (runs never change)."""

    def __init__(self, run_id: int):
        run = RfmRun.objects.only("params", "cut_points", "as_of").get(pk=run_id)
        self.id = run_id
        self.spec = SchemeSpec.from_params(run.params)
        self.cut_points = run.cut_points or {}
        self.as_of = run.as_of
        self.slugs = dict(Segment.objects.filter(scheme_id=self.spec.scheme_id).values_list("pk", "slug"))
        # With and without keeping the members' RFM scores (two data-modifying steps that cost
        # about 0.4 ms even when they write nothing): chosen per call by ``rfm_scores_wanted``.
        self.sql = {scores: _statement(self.spec, self.cut_points, scores=scores) for scores in (False, True)}


_runs: dict[int, _Run] = {}
_current: list[int | None] = [None]


def _run(run_id: int) -> _Run:
    if run_id not in _runs:
        if len(_runs) > 8:
            _runs.clear()
        _runs[run_id] = _Run(run_id)
    return _runs[run_id]


def current_activity_kinds() -> tuple[int, ...]:
    """The interaction kinds the current run's scheme counts for R (none: interactions change nothing)."""
    run_id = _current[0] or RfmRun.objects.filter(is_current=True).values_list("id", flat=True).first()
    if run_id is None:
        return ()
    try:
        return _run(run_id).spec.activity_kinds
    except RfmRun.DoesNotExist:
        return ()


def member_rfm_refresh(*, member_id: int) -> bool:
    """Recompute one member now with the current run's scoring. False when nothing was written
    (no run yet, no such member, or a concurrent refresh already wrote a fresher view)."""
    return _refresh([member_id]) == 1


def members_rfm_refresh(*, member_ids: Iterable[int]) -> int:
    """``member_rfm_refresh`` for many members at once, in one statement whatever their number
    (the batched refresh after orders, ``segmentation.services.live_batch``). Returns how many
    rows were written."""
    member_ids = sorted({int(member_id) for member_id in member_ids})
    if not member_ids:
        return 0
    return _refresh(member_ids)


# --- The statement ----------------------------------------------------------------------------


def _statement(spec: SchemeSpec, cut_points: dict, *, scores: bool) -> str:
    r_expr, f_expr, m_expr = member_score_exprs(spec, cut_points, alias="a")
    keep_scores = f"""
        scored AS (
            INSERT INTO {_SCORE_TABLE} (member_id, score)
            SELECT member_id, rfm_score FROM up WHERE rfm_score IS NOT NULL ORDER BY member_id
            ON CONFLICT (member_id) DO UPDATE SET score = excluded.score
            WHERE {_SCORE_TABLE}.score <> excluded.score
        ),
        unscored AS (
            DELETE FROM {_SCORE_TABLE} WHERE member_id IN (SELECT member_id FROM up WHERE rfm_score IS NULL)
        ),"""  # noqa: S608 - a table name from model metadata
    case = segment_case_sql(spec.rules, high_level=spec.levels, alias="s")
    counted = "o.paid_at < %(end)s AND o.refunded_amount < o.amount"
    last = f"MAX(o.paid_at) FILTER (WHERE {counted})"
    if spec.activity_kinds:  # R counts these interactions too, for a member who bought (as the recompute)
        kinds = ", ".join(str(int(kind)) for kind in spec.activity_kinds)
        last = f"""CASE WHEN {last} IS NULL THEN NULL ELSE GREATEST({last}, (
                       SELECT MAX(i.occurred_at) FROM {_INTERACTION_TABLE} i
                       WHERE i.member_id = ids.member_id AND i.kind IN ({kinds}) AND i.occurred_at < %(end)s)) END"""  # noqa: S608 - a table name from model metadata, kinds are ints
    return f"""
        WITH current_run AS (SELECT id FROM {_RUN_TABLE} WHERE is_current),
        ids AS (SELECT m.id AS member_id FROM {_MEMBER_TABLE} m
                WHERE m.id = ANY(CAST(%(members)s AS bigint[]))),
        prev AS (SELECT r.member_id, COALESCE(r.segment_id, 0) AS segment_id
                 FROM {_TABLE} r JOIN ids USING (member_id)),
        a AS (
            SELECT ids.member_id,
                   CAST(%(as_of)s AS DATE) - CAST(({last} AT TIME ZONE %(tz)s) AS DATE) AS recency_days,
                   CAST(%(as_of)s AS DATE)
                       - CAST((MIN(o.paid_at) FILTER (WHERE {counted}) AT TIME ZONE %(tz)s) AS DATE)
                       AS first_order_days,
                   COUNT(o.id) FILTER (WHERE {counted} AND o.paid_at >= %(f_start)s) AS frequency,
                   COALESCE(SUM(o.amount - o.refunded_amount) FILTER (WHERE {counted} AND o.paid_at >= %(m_start)s), 0)
                       AS money,
                   MAX(o.updated_at) AS version
            FROM ids LEFT JOIN {Order._meta.db_table} o ON o.member_id = ids.member_id
            GROUP BY ids.member_id
        ),
        s AS (SELECT a.*, {r_expr} AS r_score, {f_expr} AS f_score, {m_expr} AS m_score FROM a),
        up AS (
            INSERT INTO {_TABLE} (member_id, created_at, {", ".join(_COLUMNS)})
            SELECT s.member_id, CAST(%(now)s AS timestamptz), %(run)s, %(as_of)s, s.recency_days,
                   s.first_order_days, s.frequency, s.money, s.r_score, s.f_score, s.m_score, {case}, s.version,
                   CAST(%(now)s AS timestamptz)
            FROM s
            WHERE EXISTS (SELECT 1 FROM current_run WHERE id = %(run)s)
            ORDER BY s.member_id
            ON CONFLICT (member_id) DO UPDATE SET {_UPDATES}
            WHERE {_TABLE}.source_version IS NULL OR excluded.source_version IS NULL
               OR {_TABLE}.source_version <= excluded.source_version
            RETURNING member_id, segment_id, r_score + f_score + m_score AS rfm_score
        ),
        {keep_scores if scores else ""}
        changed AS (
            INSERT INTO {_TRANSITION_TABLE} (run_id, member_id, from_segment_id, to_segment_id, source,
                                             created_at, updated_at)
            SELECT %(run)s, u.member_id, NULLIF(p.segment_id, 0), u.segment_id, 'live',
                   CAST(%(now)s AS timestamptz), CAST(%(now)s AS timestamptz)
            FROM up u LEFT JOIN prev p USING (member_id)
            WHERE COALESCE(p.segment_id, 0) <> COALESCE(u.segment_id, 0)
            ORDER BY u.member_id
            RETURNING id, member_id, from_segment_id, to_segment_id
        )
        SELECT {{async_commit}} (SELECT id FROM current_run), (SELECT COUNT(*) FROM up),
               c.id, c.member_id, c.from_segment_id, c.to_segment_id
        FROM (SELECT 1) AS one LEFT JOIN changed c ON TRUE
    """  # noqa: S608 - table names from model metadata, values are parameters


def _refresh(member_ids: list[int]) -> int:
    for _attempt in range(2):
        run_id = _current[0]
        if run_id is None:
            run_id = RfmRun.objects.filter(is_current=True).values_list("id", flat=True).first()
            if run_id is None:
                return 0
            _current[0] = run_id
        try:
            run = _run(run_id)
        except RfmRun.DoesNotExist:  # the remembered run is gone (the data was reset): look again
            _current[0] = None
            continue
        as_of = max(timezone.localdate(), run.as_of)
        window, f_window, m_window = run.spec.windows(as_of)  # F and M may have windows of their own
        # On its own (the usual case: after the order committed) the commit need not wait for the disk.
        async_commit = "" if connection.in_atomic_block else "set_config('synchronous_commit', 'off', true),"
        params = {
            "members": member_ids,
            "run": run_id,
            "as_of": as_of,
            "tz": str(brand_timezone()),
            "f_start": f_window.start,
            "m_start": m_window.start,
            "end": window.end,
            "now": timezone.now(),  # the platform's clock, as every other timestamp
        }
        # Prepared once per connection (``members.rows.fetch_prepared``): planning is most of its cost.
        sql = run.sql[rfm_scores_wanted()]
        found = rows.fetch_prepared(sql.replace("{async_commit}", async_commit), params)
        current, written = found[0][-6:-4]
        if current != run_id:
            _current[0] = current  # a new run committed since: score with it
            if current is None:
                return 0
            continue
        for *_ignored, transition_id, member_id, from_id, segment_id in found:
            if transition_id is not None:
                _publish(run, transition_id, member_id, from_id, segment_id)
        if rfm_scores_wanted():  # a score that rose may lift a tier now, not at the next order
            tiers_upgrade_on_score(member_ids=member_ids)
        return int(written)
    return 0


def _publish(run: _Run, transition_id: int, member_id: int, from_id: int | None, segment_id: int | None) -> None:
    segment_changed.publish(
        transition_id=transition_id,
        run_id=run.id,
        member_id=member_id,
        from_segment_id=from_id,
        to_segment_id=segment_id,
        from_slug=run.slugs.get(from_id),
        to_slug=run.slugs.get(segment_id),
        source=SegmentTransition.Source.LIVE.value,
    )
