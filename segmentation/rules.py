"""Segment rules, in one place: turned into one SQL ``CASE`` (recomputes, the per-order refresh,
previews) — the one implementation that places members — and evaluated in Python only to explain a
member's segment to a person (``selectors.segment_explain``: every rule, whether it holds). Both
read the same frozen rule dicts (``RfmRun.params["rules"]``) next to each other here.

A rule dict: ``{"id", "segment_id", "priority", "kind", "r", "f", "m", "value"}`` (see
``SegmentRule`` for the kinds). Values: ``recency_days``, ``first_order_days``, ``frequency``,
``monetary``, ``r_score``, ``f_score``, ``m_score`` (scores and days are None for a member who
never bought). Rules are tried in order; the first that holds gives the segment; when none holds
the member has no segment.
"""

from collections.abc import Mapping, Sequence

from django.utils.translation import gettext as _

NO_PURCHASE = "no_purchase"
CELL = "cell"
FIRST_ORDER_WITHIN = "first_order_within"
FREQUENCY_AT_LEAST = "frequency_at_least"
EVERYONE_ELSE = "everyone_else"


def _score_holds(condition: str, score: int | None, high_level: int) -> bool:
    if not condition:
        return True
    if score is None:
        return False
    if condition == "H":
        return score >= high_level
    if condition == "L":
        return score < high_level
    low, _sep, high = condition.partition("-")
    return int(low) <= score <= int(high or low)


def rule_holds(rule: Mapping, values: Mapping, *, high_level: int) -> bool:
    kind = rule["kind"]
    if kind == EVERYONE_ELSE:
        return True
    if kind == NO_PURCHASE:
        return values["recency_days"] is None
    if kind == CELL and values["recency_days"] is None:
        return False
    if kind == FIRST_ORDER_WITHIN and (
        values["first_order_days"] is None or values["first_order_days"] >= int(rule["value"])
    ):
        return False
    if kind == FREQUENCY_AT_LEAST and values["frequency"] < int(rule["value"]):
        return False
    return all(_score_holds(rule[dim], values[f"{dim}_score"], high_level) for dim in ("r", "f", "m"))


def _score_sql(condition: str, column: str, high_level: int) -> str | None:
    if not condition:
        return None
    if condition == "H":
        return f"{column} >= {int(high_level)}"
    if condition == "L":
        return f"{column} < {int(high_level)}"
    low, _sep, high = condition.partition("-")
    return f"{column} BETWEEN {int(low)} AND {int(high or low)}"


def rule_sql(rule: Mapping, *, high_level: int, alias: str = "") -> str:
    """The SQL condition of one rule over columns named like MemberRfm's (integers inlined)."""
    p = f"{alias}." if alias else ""
    kind = rule["kind"]
    if kind == EVERYONE_ELSE:
        return "1 = 1"
    if kind == NO_PURCHASE:
        return f"{p}recency_days IS NULL"
    parts = []
    if kind == CELL:
        parts.append(f"{p}recency_days IS NOT NULL")
    elif kind == FIRST_ORDER_WITHIN:
        parts.append(f"{p}first_order_days < {int(rule['value'])}")
    elif kind == FREQUENCY_AT_LEAST:
        parts.append(f"{p}frequency >= {int(rule['value'])}")
    else:
        raise ValueError(f"unknown rule kind {kind!r}")
    for dim in ("r", "f", "m"):
        condition = _score_sql(rule[dim], f"{p}{dim}_score", high_level)
        if condition:
            parts.append(condition)
    return " AND ".join(parts)


def segment_case_sql(rules: Sequence[Mapping], *, high_level: int, alias: str = "") -> str:
    """``CASE WHEN <rule> THEN <segment id> ... END`` (NULL when no rule holds)."""
    if not rules:
        return "CAST(NULL AS BIGINT)"
    whens = " ".join(
        f"WHEN {rule_sql(rule, high_level=high_level, alias=alias)} THEN {int(rule['segment_id'])}" for rule in rules
    )
    return f"CASE {whens} END"


def describe_rule(rule: Mapping) -> str:
    """A short human description, e.g. ``R=H F=L M=any`` or ``first order within 14 days``."""
    kind = rule["kind"]
    if kind == NO_PURCHASE:
        return _("never bought")
    if kind == EVERYONE_ELSE:
        return _("everyone else")
    cells = " ".join(f"{dim.upper()}={rule[dim] or _('any')}" for dim in ("r", "f", "m"))
    if kind == FIRST_ORDER_WITHIN:
        return _("first order within %(n)s days") % {"n": rule["value"]} + f", {cells}"
    if kind == FREQUENCY_AT_LEAST:
        return _("F ≥ %(n)s") % {"n": rule["value"]} + f", {cells}"
    return cells
