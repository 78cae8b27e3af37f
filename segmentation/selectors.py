"""Reads of the segmentation app: current results, explanations, previews, migration matrices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from members.formatting import local_name
from members.models import Member, MemberTag
from segmentation.models import MemberClv, MemberRfm, RfmRun, Scheme, Segment, SegmentSnapshot
from segmentation.rules import describe_rule, rule_holds, rule_uses_clv, rule_uses_tags
from segmentation.scoring import THRESHOLDS, SchemeSpec
from segmentation.services import rfm_sql


def current_run() -> RfmRun | None:
    """The run whose results members carry now (None before the first recompute)."""
    return RfmRun.objects.filter(is_current=True).select_related("scheme").first()


def memberrfm_list() -> QuerySet[MemberRfm]:
    return MemberRfm.objects.select_related("member", "segment")


def segment_explain(*, member: Member) -> dict:
    """Why ``member`` is in their segment: the values, the thresholds (``thresholds``: the scheme's
    R/F/M limits, which decide H/L in thresholds mode) or cut points, every rule of the run in order
    with whether it holds, and the rule that matched."""
    row = MemberRfm.objects.filter(member_id=member.pk).select_related("segment").first()
    if row is None:
        return {"computed": False, "member_id": member.pk, "message": _("Not computed yet: run a recompute.")}
    run = RfmRun.objects.select_related("scheme").get(pk=row.run_id)
    spec = SchemeSpec.from_params(run.params)
    values = {
        "recency_days": row.recency_days,
        "first_order_days": row.first_order_days,
        "frequency": row.frequency,
        "monetary": row.monetary,
        "r_score": row.r_score,
        "f_score": row.f_score,
        "m_score": row.m_score,
    }
    if any(rule_uses_clv(rule) for rule in spec.rules):  # one more query, only for schemes that need it
        scores = MemberClv.objects.filter(member_id=member.pk).values("p_alive", "clv").first() or {}
        values.update(p_alive=scores.get("p_alive"), clv=scores.get("clv"))
    if any(rule_uses_tags(rule) for rule in spec.rules):  # likewise, the member's tags
        values["tags"] = set(MemberTag.objects.filter(member_id=member.pk).values_list("name", flat=True))
    segments = {segment.pk: segment for segment in Segment.objects.filter(scheme_id=spec.scheme_id)}
    rules, matched = [], None
    for rule in spec.rules:
        holds = rule_holds(rule, values, high_level=spec.levels)
        segment = segments.get(rule["segment_id"])
        entry = {
            "priority": rule["priority"],
            "description": describe_rule(rule),
            "segment": segment.slug if segment else None,
            "holds": holds,
        }
        rules.append(entry)
        if holds and matched is None:
            matched = entry
    if spec.mode == THRESHOLDS:
        criteria = {
            "r": _("high when R ≤ %(n)s days") % {"n": spec.r_max_days},
            "f": _("high when F ≥ %(n)s orders") % {"n": spec.f_min},
            "m": _("high when M ≥ %(n)s yuan") % {"n": spec.m_min},
        }
        middles = {
            "r": (spec.r_mid_days, _("medium when R ≤ %(n)s days")),
            "f": (spec.f_mid_min, _("medium when F ≥ %(n)s orders")),
            "m": (spec.m_mid_min, _("medium when M ≥ %(n)s yuan")),
        }
        for dim, (limit, text) in middles.items():
            if limit is not None:
                criteria[dim] = f"{criteria[dim]} · {text % {'n': limit}}"
    else:
        cuts = run.cut_points or {}
        criteria = {
            "r": _("scores 2–5 from R ≤ %(cuts)s days") % {"cuts": _cuts(cuts.get("r"))},
            "f": _("scores 2–5 from F ≥ %(cuts)s") % {"cuts": _cuts(cuts.get("f"))},
            "m": _("scores 2–5 from M ≥ %(cuts)s") % {"cuts": _cuts(cuts.get("m"))},
            "high": _("high from score %(n)s") % {"n": spec.high_score},
        }
    return {
        "computed": True,
        "member_id": member.pk,
        "run_id": run.pk,
        "scheme": run.scheme.name,
        "mode": spec.mode,
        "as_of": row.as_of,
        "refreshed_by_order": row.source_version is not None,
        "window_days": spec.window_days,
        "f_window_days": spec.f_days,
        "m_window_days": spec.m_days,
        "values": {k: values[k] for k in ("recency_days", "first_order_days", "frequency", "monetary")},
        "scores": {
            dim: {
                "score": values[f"{dim}_score"],
                "label": spec.label(dim, values[f"{dim}_score"]),
                "high": spec.level(dim, values[f"{dim}_score"]) == "H",
            }
            for dim in ("r", "f", "m")
        },
        # H, M (中) or L per dimension, and its name in the page's language (高/中/低)
        "levels": {
            dim: {
                "level": spec.level(dim, values[f"{dim}_score"]),
                "name": str(LEVEL_NAMES[spec.level(dim, values[f"{dim}_score"])]),
            }
            for dim in ("r", "f", "m")
        },
        "criteria": criteria,
        "thresholds": {
            "r_max_days": spec.r_max_days,
            "f_min": spec.f_min,
            "m_min": spec.m_min,
            "r_mid_days": spec.r_mid_days,
            "f_mid_min": spec.f_mid_min,
            "m_mid_min": spec.m_mid_min,
        },
        "cut_points": run.cut_points or {},
        "rules": rules,
        "matched_rule": matched,
        "segment": (
            {
                "slug": row.segment.slug,
                "name_zh": row.segment.name_zh,
                "name_en": row.segment.name_en,
                "colour": row.segment.colour,
            }
            if row.segment_id and row.segment
            else None
        ),
    }


LEVEL_NAMES = {"H": _lazy("high (高)"), "M": _lazy("medium (中)"), "L": _lazy("low (低)"), "": ""}


def _cuts(values) -> str:
    return " / ".join("—" if value is None else str(value) for value in (values or [])) or "—"


def _aggregate(spec: SchemeSpec, as_of: dt.date) -> tuple[str, list]:
    """The per-member aggregates of ``spec`` as of ``as_of`` (its own windows for F and M)."""
    window, f_window, m_window = spec.windows(as_of)
    return rfm_sql.aggregate_sql(
        window=window, activity_kinds=spec.activity_kinds, f_window=f_window, m_window=m_window
    )


def scheme_preview(*, scheme: Scheme, as_of: dt.date | None = None) -> dict:
    """Segment sizes ``scheme`` would give on the current data, as of today: one SELECT, nothing
    written. (Quintile cut points need everyone's values, so this costs about a recompute's reading.)"""
    spec = SchemeSpec.from_scheme(scheme)
    as_of = as_of or timezone.localdate()
    sql, params = rfm_sql.scored_sql(spec, _aggregate(spec, as_of))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT segment_id, COUNT(*) FROM ({sql}) x GROUP BY segment_id", params)  # noqa: S608
        counts = dict(cursor.fetchall())
    segments = [
        {
            "id": segment.pk,
            "slug": segment.slug,
            "name_zh": segment.name_zh,
            "name_en": segment.name_en,
            "colour": segment.colour,
            "count": counts.get(segment.pk, 0),
        }
        for segment in scheme.segments.all()
    ]
    return {
        "as_of": as_of,
        "members": sum(counts.values()),
        "segments": segments,
        "sizes": {segment["slug"]: segment["count"] for segment in segments},
        "unmatched": counts.get(None, 0),
    }


def scheme_preview_changes(*, scheme: Scheme, as_of: dt.date | None = None, moves: int = 8) -> dict:
    """What ``scheme`` (as stored now — the builder calls it inside a rolled-back transaction
    holding the unsaved edits) would do on the current data: its segment sizes, how many members
    each segment has now (segments are matched by slug, so a scheme other than the current run's
    compares too), how many members would change segment, and the largest moves. One SELECT over
    the scored members joined to their current results; four queries in all, whatever the data.

    Members without a current result (never computed) are counted apart, not as changes."""
    spec = SchemeSpec.from_scheme(scheme)
    as_of = as_of or timezone.localdate()
    sql, params = rfm_sql.scored_sql(spec, _aggregate(spec, as_of))
    current_table = MemberRfm._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.member_id IS NOT NULL, c.segment_id, x.segment_id, COUNT(*) "  # noqa: S608
            f"FROM ({sql}) x LEFT JOIN {current_table} c ON c.member_id = x.member_id GROUP BY 1, 2, 3",
            params,
        )
        cells = cursor.fetchall()
    ours = list(scheme.segments.all())
    current_ids = {current for computed, current, _new, _count in cells if computed and current is not None}
    others = {segment.pk: segment for segment in Segment.objects.filter(pk__in=current_ids - {s.pk for s in ours})}
    by_id = {segment.pk: segment for segment in ours} | others

    def slug_of(segment_id):
        segment = by_id.get(segment_id)
        return segment.slug if segment else None

    def name_of(segment_id):
        segment = by_id.get(segment_id)
        if segment is None:
            return _("(no segment)")
        return local_name(segment.name_zh, segment.name_en, segment.slug)

    preview_counts: dict = {}
    current_counts: dict = {}
    moved: dict = {}
    changing = not_computed = total = 0
    for computed, current, new, count in cells:
        total += count
        preview_counts[new] = preview_counts.get(new, 0) + count
        if not computed:
            not_computed += count
            continue
        current_counts[slug_of(current)] = current_counts.get(slug_of(current), 0) + count
        if slug_of(current) != slug_of(new):
            changing += count
            moved[(current, new)] = moved.get((current, new), 0) + count
    segments = [
        {
            "id": segment.pk,
            "slug": segment.slug,
            "name": local_name(segment.name_zh, segment.name_en, segment.slug),
            "colour": segment.colour,
            "count": preview_counts.get(segment.pk, 0),
            "share": preview_counts.get(segment.pk, 0) / total if total else None,
            "current": current_counts.get(segment.slug, 0),
            "change": preview_counts.get(segment.pk, 0) - current_counts.get(segment.slug, 0),
        }
        for segment in ours
    ]
    largest = sorted(moved.items(), key=lambda item: -item[1])[:moves]
    return {
        "as_of": as_of,
        "members": total,
        "segments": segments,
        "sizes": {segment["slug"]: segment["count"] for segment in segments},
        "unmatched": preview_counts.get(None, 0),
        "changing": changing,
        "changing_share": changing / (total - not_computed) if total - not_computed else None,
        "not_computed": not_computed,
        "moves": [{"from": name_of(current), "to": name_of(new), "count": count} for (current, new), count in largest],
    }


ABSENT = "absent"


def segment_migration_matrix(*, from_run: RfmRun, to_run: RfmRun) -> dict:
    """How many members moved from each segment of ``from_run`` to each of ``to_run``: one SQL
    statement over the two runs' snapshots. Keys are ``(from_segment_id, to_segment_id)``; None is
    "no segment" and ``"absent"`` "not in that run" (registered later, or removed)."""
    table = SegmentSnapshot._meta.db_table
    ids = "CROSS JOIN LATERAL unnest(s.member_ids) AS e(member_id)"
    sql = f"""
        WITH a AS (SELECT s.segment_id, e.member_id FROM {table} s {ids} WHERE s.run_id = %s),
             b AS (SELECT s.segment_id, e.member_id FROM {table} s {ids} WHERE s.run_id = %s)
        SELECT fa, fb, COUNT(*) FROM (
            SELECT COALESCE(a.segment_id, 0) AS fa,
                   CASE WHEN b.member_id IS NULL THEN -1 ELSE COALESCE(b.segment_id, 0) END AS fb
            FROM a LEFT JOIN b ON a.member_id = b.member_id
            UNION ALL
            SELECT -1 AS fa, COALESCE(b.segment_id, 0) AS fb
            FROM b WHERE NOT EXISTS (SELECT 1 FROM a WHERE a.member_id = b.member_id)
        ) t GROUP BY fa, fb
    """  # noqa: S608

    def key(value):
        return ABSENT if value == -1 else (value or None)

    with connection.cursor() as cursor:
        cursor.execute(sql, [from_run.pk, to_run.pk])
        cells = {(key(fa), key(fb)): count for fa, fb, count in cursor.fetchall()}
    segment_ids = {k for pair in cells for k in pair if k not in (None, ABSENT)}
    segments = {segment.pk: segment for segment in Segment.objects.filter(pk__in=segment_ids)}
    return {"from_run": from_run, "to_run": to_run, "cells": cells, "segments": segments}


def rfm_export_rows(*, chunk_size: int = 5000) -> tuple[RfmRun, Iterator[tuple]]:
    """The export of PRODUCT.md for the active scheme's latest run, streamed: rows of
    ``(mobile, recency_days, frequency, monetary, r_score, f_score, m_score, segment_slug)`` with
    scores as the export shows them. Raises ``LookupError`` when that run is not the current one."""
    run = current_run()
    active = Scheme.objects.filter(is_active=True).first()
    if run is None or active is None or run.scheme_id != active.pk:
        raise LookupError(_("The active scheme has no current run yet: run recompute_rfm first."))
    spec = SchemeSpec.from_params(run.params)
    rows = (
        MemberRfm.objects.order_by("member_id")
        .values_list(
            "member__mobile", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "segment__slug"
        )
        .iterator(chunk_size=chunk_size)
    )

    def formatted():
        for mobile, recency, frequency, monetary, r_score, f_score, m_score, slug in rows:
            yield (
                mobile,
                "" if recency is None else recency,
                frequency,
                f"{monetary:.2f}",
                spec.label("r", r_score),
                spec.label("f", f_score),
                spec.label("m", m_score),
                slug or "",
            )

    return run, formatted()
