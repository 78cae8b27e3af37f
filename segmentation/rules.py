"""Segment rules, in one place: turned into one SQL ``CASE`` (recomputes, the per-order refresh,
previews) — the one implementation that places members — and evaluated in Python only to explain a
member's segment to a person (``selectors.segment_explain``: every rule, whether it holds). Both
read the same frozen rule dicts (``RfmRun.params["rules"]``) next to each other here.

A rule dict: ``{"id", "segment_id", "priority", "kind", "r", "f", "m", "value"}`` (see
``SegmentRule`` for the kinds), optionally with conditions on the member's current CLV scores
(``MemberClv``): ``p_alive_below``, ``p_alive_at_least`` and ``clv_at_least`` (numbers as strings;
absent or None: no condition). A member without CLV scores meets none of them. ``tag`` (absent or
empty: none) requires the member to carry that manual tag (``members.MemberTag``): ``EXISTS`` in
SQL (the name inlined as a quoted literal), ``values["tags"]`` in Python. Conditions on R, F, M
are ``H``/``M``/``L`` (high, medium 中, low: ``SchemeSpec.levels``, so a three-level thresholds
dimension stores 2/1/0 and a two-level one 1/0), a score or a range. In SQL they read the
scores with a lookup by member id (``CLV_TABLE``), so every caller's rows only need ``member_id``.
Values: ``recency_days``, ``first_order_days``, ``frequency``,
``monetary``, ``r_score``, ``f_score``, ``m_score`` (scores and days are None for a member who
never bought). Rules are tried in order; the first that holds gives the segment; when none holds
the member has no segment.
"""

from collections.abc import Mapping, Sequence
from decimal import Decimal

from django.utils.translation import gettext as _

NO_PURCHASE = "no_purchase"
CELL = "cell"
FIRST_ORDER_WITHIN = "first_order_within"
FREQUENCY_AT_LEAST = "frequency_at_least"
EVERYONE_ELSE = "everyone_else"

CLV_TABLE = "segmentation_memberclv"  # MemberClv's table (models import this module, not the reverse)
TAG_TABLE = "members_membertag"  # members.MemberTag's table (a test checks the name)
# rule key: (column of CLV_TABLE, SQL operator, Python test)
CLV_CONDITIONS = {
    "p_alive_below": ("p_alive", "<", lambda value, limit: value < limit),
    "p_alive_at_least": ("p_alive", ">=", lambda value, limit: value >= limit),
    "clv_at_least": ("clv", ">=", lambda value, limit: value >= limit),
}


def _clv_limits(rule: Mapping) -> list[tuple[str, Decimal]]:
    return [(key, Decimal(str(rule[key]))) for key in CLV_CONDITIONS if rule.get(key) not in (None, "")]


def rule_uses_clv(rule: Mapping) -> bool:
    """Whether the rule has a condition on the CLV scores (explaining it needs them)."""
    return bool(_clv_limits(rule))


def _clv_holds(rule: Mapping, values: Mapping) -> bool:
    for key, limit in _clv_limits(rule):
        column, _operator, test = CLV_CONDITIONS[key]
        value = values.get(column)
        if value is None or not test(Decimal(str(value)), limit):
            return False
    return True


def _clv_sql(rule: Mapping, member_id: str) -> list[str]:
    """Conditions on the member's CLV scores: constants of this module and Decimal literals only."""
    conditions = []
    for key, limit in _clv_limits(rule):
        column, operator, _test = CLV_CONDITIONS[key]
        lookup = f"SELECT c.{column} FROM {CLV_TABLE} c WHERE c.member_id = {member_id}"  # noqa: S608
        conditions.append(f"({lookup}) {operator} {format(limit, 'f')}")
    return conditions


Levels = int | Mapping[str, tuple[int, int]]


def _levels(high_level: Levels, dim: str) -> tuple[int, int]:
    """``(medium_from, high_from)`` of ``dim``: ``SchemeSpec.levels``, or one high level for all
    (two levels: nothing is medium)."""
    if isinstance(high_level, Mapping):
        medium_from, high_from = high_level[dim]
        return int(medium_from), int(high_from)
    return int(high_level), int(high_level)


def _score_holds(condition: str, score: int | None, levels: tuple[int, int]) -> bool:
    if not condition:
        return True
    if score is None:
        return False
    medium_from, high_from = levels
    if condition == "H":
        return score >= high_from
    if condition == "M":
        return medium_from <= score < high_from
    if condition == "L":
        return score < medium_from
    low, _sep, high = condition.partition("-")
    return int(low) <= score <= int(high or low)


def _tag_holds(rule: Mapping, values: Mapping) -> bool:
    tag = rule.get("tag") or ""
    return not tag or tag in (values.get("tags") or ())


def rule_uses_tags(rule: Mapping) -> bool:
    """Whether the rule requires a member tag (explaining it needs the member's tags)."""
    return bool(rule.get("tag"))


def _tag_sql(rule: Mapping, member_id: str) -> list[str]:
    """``EXISTS`` the member's tag: the name as a quoted SQL string literal (``_quoted``)."""
    tag = rule.get("tag") or ""
    if not tag:
        return []
    return [f"EXISTS (SELECT 1 FROM {TAG_TABLE} t WHERE t.member_id = {member_id} AND t.name = {_quoted(tag)})"]  # noqa: S608


def _quoted(text: str) -> str:
    """A PostgreSQL string literal of ``text``: ``E'…'`` with quotes and backslashes escaped, so
    it means the same whatever ``standard_conforming_strings`` says; NUL cannot be in a text."""
    if "\x00" in text:
        raise ValueError("a tag cannot hold NUL")
    escaped = str(text).replace("\\", "\\\\").replace("'", "''")
    # the statements run with parameters, where a bare % would be read as a placeholder
    escaped = escaped.replace("%", "' || chr(37) || '")
    return f"(E'{escaped}')"


def rule_holds(rule: Mapping, values: Mapping, *, high_level: Levels) -> bool:
    """Whether ``rule`` holds for ``values`` (``high_level``: ``SchemeSpec.levels``, or one
    high level for every dimension); ``values["tags"]``, the member's tags, when a rule needs them."""
    kind = rule["kind"]
    if not _clv_holds(rule, values) or not _tag_holds(rule, values):
        return False
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
    return all(_score_holds(rule[dim], values[f"{dim}_score"], _levels(high_level, dim)) for dim in ("r", "f", "m"))


def _score_sql(condition: str, column: str, levels: tuple[int, int]) -> str | None:
    if not condition:
        return None
    medium_from, high_from = levels
    if condition == "H":
        return f"{column} >= {int(high_from)}"
    if condition == "M":
        return f"{column} >= {int(medium_from)} AND {column} < {int(high_from)}"
    if condition == "L":
        return f"{column} < {int(medium_from)}"
    low, _sep, high = condition.partition("-")
    return f"{column} BETWEEN {int(low)} AND {int(high or low)}"


def rule_sql(rule: Mapping, *, high_level: Levels, alias: str = "") -> str:
    """The SQL condition of one rule over columns named like MemberRfm's (integers, decimals and
    a quoted tag literal inlined)."""
    p = f"{alias}." if alias else ""
    kind = rule["kind"]
    clv = [*_clv_sql(rule, f"{p}member_id"), *_tag_sql(rule, f"{p}member_id")]
    if kind == EVERYONE_ELSE:
        return " AND ".join(clv) or "1 = 1"
    if kind == NO_PURCHASE:
        return " AND ".join([f"{p}recency_days IS NULL", *clv])
    parts = [*clv]
    if kind == CELL:
        parts.append(f"{p}recency_days IS NOT NULL")
    elif kind == FIRST_ORDER_WITHIN:
        parts.append(f"{p}first_order_days < {int(rule['value'])}")
    elif kind == FREQUENCY_AT_LEAST:
        parts.append(f"{p}frequency >= {int(rule['value'])}")
    else:
        raise ValueError(f"unknown rule kind {kind!r}")
    for dim in ("r", "f", "m"):
        condition = _score_sql(rule[dim], f"{p}{dim}_score", _levels(high_level, dim))
        if condition:
            parts.append(condition)
    return " AND ".join(parts)


def segment_case_sql(rules: Sequence[Mapping], *, high_level: Levels, alias: str = "") -> str:
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
        return " ".join(filter(None, [str(_("never bought")), _describe_clv(rule)]))
    if kind == EVERYONE_ELSE:
        return " ".join(filter(None, [str(_("everyone else")), _describe_clv(rule)]))
    cells = " ".join(f"{dim.upper()}={rule[dim] or _('any')}" for dim in ("r", "f", "m"))
    clv = _describe_clv(rule)
    if clv:
        cells = f"{cells} {clv}"
    if kind == FIRST_ORDER_WITHIN:
        return _("first order within %(n)s days") % {"n": rule["value"]} + f", {cells}"
    if kind == FREQUENCY_AT_LEAST:
        return _("F ≥ %(n)s") % {"n": rule["value"]} + f", {cells}"
    return cells


def _describe_clv(rule: Mapping) -> str:
    texts = {
        "p_alive_below": _("P(alive) < %(n)s"),
        "p_alive_at_least": _("P(alive) ≥ %(n)s"),
        "clv_at_least": _("CLV ≥ %(n)s yuan"),
    }
    parts = [texts[key] % {"n": format(limit, "f")} for key, limit in _clv_limits(rule)]
    if rule.get("tag"):
        parts.append(_("tagged “%(tag)s”") % {"tag": rule["tag"]})
    return " ".join(parts)
